"""What the interpreter keeps from one evaluation to the next within a batch, and when it must
not: loop-invariant values, image row offsets, consecutive-index (ramp) and bounds facts about
index arrays, and locals that die with their block.

Each kernel here changes a variable's array in place (a divergent assignment given back to a
frame that owns the array) between two evaluations that would otherwise reuse a stale fact,
and is compared with a numpy reference on every backend.
"""

import numpy as np
import pytest

from xv_core.plugins import load_plugins
from xv_cpu.interp import InterpBackend
from xv_cpu.interp.compiler import KernelCompiler
from xv_cpu_irb import aload, astore, c, kernel, run, sp, store

pytestmark = pytest.mark.usefixtures("each_backend")

BATCHES = [InterpBackend(), InterpBackend(48)]


def compiled(source):
    try:
        frontend = load_plugins().frontend_for("k.xvk")
    except Exception:  # noqa: BLE001 - no front end installed: nothing to compile with
        pytest.skip("no front end for .xvk is installed")
    (k,) = frontend.compile(source, "k.xvk").kernels
    return k


STALE_RAMP = """
kernel k(buffer<f32> src, buffer<f32> dst) {
    i32 i = global_id.x;
    i32 j = i;
    for (i32 t = 0; t < 4; t += 1) {
        dst[i] += src[j];
        if (i % 2 == 0 && t >= 1) {
            j = j * (2 - t);
        }
    }
}
"""


@pytest.mark.parametrize("backend", BATCHES)
def test_an_index_array_changed_in_place_is_not_read_as_a_slice_any_more(backend):
    # j is first the consecutive ids (a read of src[j] is a slice), then set to 0 in place for
    # the even items: the next read must gather.
    n = 64
    src = np.arange(n, dtype=np.float32) + 1
    dst = np.zeros(n, np.float32)
    run(compiled(STALE_RAMP), {"src": src, "dst": dst}, grid=1, block=n, backend=backend)
    i = np.arange(n)
    j = i.copy()
    want = np.zeros(n, np.float32)
    for t in range(4):
        want += src[j]
        j = np.where((i % 2 == 0) & (t >= 1), j * (2 - t), j)
    np.testing.assert_array_equal(dst, want)


INVARIANT = """
kernel k(buffer<i32> out) {
    i32 i = global_id.x;
    i32 a = i;
    i32 acc = 0;
    for (i32 t = 0; t < 4; t += 1) {
        for (i32 u = 0; u < 2; u += 1) {
            acc += (a * 3 + 1) * (u + 1);
        }
        if (i % 3 == t % 3) {
            a = a + 5;
        }
    }
    out[i] = acc;
}
"""


@pytest.mark.parametrize("backend", BATCHES)
def test_a_loop_invariant_value_is_computed_again_when_its_variable_changes(backend):
    # a * 3 + 1 is the same in every pass of the loop over u (it is computed once per pass of
    # the loop over t), but a changes in place for some items between passes over t.
    n = 96
    out = np.zeros(n, np.int32)
    work = run(compiled(INVARIANT), {"out": out}, grid=2, block=n // 2, backend=backend)
    i = np.arange(n)
    a = i.copy()
    acc = np.zeros(n, np.int64)
    for t in range(4):
        acc += (a * 3 + 1) * 3
        a = np.where(i % 3 == t % 3, a + 5, a)
    np.testing.assert_array_equal(out, acc)
    # Reused values still count their operations for every item: per item 5 + 4 for the loop
    # over t, per pass 3 + 2 (loop over u) + 2 x 5 (body) + 3 (condition), and one add per
    # item and pass where a changes (t % 3 == i % 3: twice for i % 3 == 0).
    changes = sum(np.count_nonzero(i % 3 == t % 3) for t in range(4))
    assert work.ops == n * (9 + 4 * 18) + changes


ROWS = """
kernel k(image<f32> src, buffer<f32> out) {
    i32 x = global_id.x;
    i32 y = 0;
    f32 acc = 0.0;
    for (i32 t = 0; t < 5; t += 1) {
        acc += src[x, y] * f32(t + 1);
        if (x % 2 == t % 2) {
            y = y + 1;
        }
    }
    out[x] = acc;
}
"""


@pytest.mark.parametrize("backend", BATCHES)
def test_image_rows_follow_a_y_changed_in_place(backend):
    w = 40
    src = np.random.default_rng(4).random((6, w), dtype=np.float32)
    out = np.zeros(w, np.float32)
    run(compiled(ROWS), {"src": src, "out": out}, grid=1, block=w, backend=backend)
    x = np.arange(w)
    y = np.zeros(w, np.int64)
    want = np.zeros(w, np.float32)
    for t in range(5):
        want += src[y, x] * np.float32(t + 1)
        y = np.where(x % 2 == t % 2, y + 1, y)
    np.testing.assert_array_equal(out, want)


GAUSS3 = """
const f32 W[3] = {1.0, 2.0, 1.0};

@workgroup(8, 8)
kernel k(image<f32> src, image<f32> dst) {
    i32 x = global_id.x;
    i32 y = global_id.y;
    if (x >= src.width || y >= src.height) {
        return;
    }
    f32 acc = 0.0;
    for (i32 dy = -1; dy <= 1; dy += 1) {
        for (i32 dx = -1; dx <= 1; dx += 1) {
            i32 sx = clamp(x + dx, 0, src.width - 1);
            i32 sy = clamp(y + dy, 0, src.height - 1);
            acc += W[dx + 1] * W[dy + 1] * src[sx, sy];
        }
    }
    dst[x, y] = acc / 16.0;
}
"""


@pytest.mark.parametrize("backend", BATCHES)
def test_a_clamped_row_reused_across_the_inner_loop_of_a_blur(backend):
    # sy is the same in every pass over dx: its clamp, bounds and row offsets are reused.
    src = np.random.default_rng(2).random((21, 30), dtype=np.float32)
    dst = np.zeros_like(src)
    run(compiled(GAUSS3), {"src": src, "dst": dst}, grid=(4, 3), block=(8, 8), backend=backend)
    w = np.array([1, 2, 1], np.float32)
    p = np.pad(src, 1, mode="edge")
    want = np.zeros_like(src)
    for dy in range(3):
        for dx in range(3):
            want += w[dx] * w[dy] * p[dy:dy + 21, dx:dx + 30]
    np.testing.assert_allclose(dst, want / np.float32(16), rtol=1e-6)


TEMPS = """
kernel k(buffer<f32> x, buffer<f32> out, buffer<i32> steps) {
    i32 i = global_id.x;
    f32 last = -1.0;
    i32 t = 0;
    while (t < 8) {
        f32 v = x[i] * f32(t);
        if (v > 3.0) {
            break;
        }
        last = v;
        t += 1;
    }
    out[i] = last;
    steps[i] = t;
}
"""


@pytest.mark.parametrize("backend", BATCHES)
def test_a_local_of_a_loop_body_is_not_carried_out_of_it(backend, each_backend):
    k = compiled(TEMPS)
    if each_backend == "interp":
        # v dies with each pass of the body; last and t live on after the loop.
        temps = KernelCompiler(k).temps
        assert "v" in temps and not {"last", "t"} & temps
    n = 70
    x = np.random.default_rng(9).random(n, dtype=np.float32) * 2
    out = np.zeros(n, np.float32)
    steps = np.zeros(n, np.int32)
    run(k, {"x": x, "out": out, "steps": steps}, grid=2, block=35, backend=backend)
    want_last = np.full(n, -1.0, np.float32)
    want_t = np.zeros(n, np.int32)
    for item in range(n):
        for t in range(8):
            v = x[item] * np.float32(t)
            if v > 3.0:
                break
            want_last[item] = v
            want_t[item] = t + 1
    np.testing.assert_array_equal(out, want_last)
    np.testing.assert_array_equal(steps, want_t)


def test_a_uniform_constant_index_out_of_range_names_the_first_item():
    k = kernel("consts", "buffer<f32> out", [
        store("out", sp("global_id.x"), aload("W", c(5), line=3)),
    ], consts={"W": ("f32[5]", [1, 4, 6, 4, 1])})
    with pytest.raises(Exception) as info:
        run(k, {"out": np.zeros(8, np.float32)}, grid=1, block=8)
    assert str(info.value).startswith(
        "tests/kernel.xvk:3: out-of-bounds read W[5] by work item global_id=(0, 0, 0) in "
        "kernel 'consts': constant array 'W' is f32[5]")


def test_batches_grow_while_other_tiles_run_the_interpreter():
    from xv_core.runtime.interfaces import Launch, Tile
    from xv_cpu.interp.backend import CONCURRENT_FACTOR, RUNNING

    k = kernel("plain", "buffer<f32> out", [store("out", sp("global_id.x"), c(1.0, "f32"))])
    prepared = InterpBackend(100).prepare(k)
    tile = Tile(0, Launch((40, 1, 1), (25, 1, 1)), 0, 40)  # 1000 items
    assert [n for _, n, _ in prepared.batches(tile)] == [100] * 10
    with RUNNING, RUNNING:  # this tile and another one
        sizes = [n for _, n, _ in prepared.batches(tile)]
    assert sizes == [100 * CONCURRENT_FACTOR] * 2 + [1000 - 200 * CONCURRENT_FACTOR]
    # Groups that share memory stay whole.
    shared = kernel("grouped", "buffer<f32> out", [
        astore("s", [sp("local_id.x")], c(1.0, "f32")),
        store("out", sp("global_id.x"), aload("s", sp("local_id.x"))),
    ], shared={"s": "f32[25]"})
    with RUNNING, RUNNING:
        batches = list(InterpBackend(100).prepare(shared).batches(tile))
    assert [(t0, n, g) for t0, n, g in batches][:2] == [(0, 400, 16), (400, 400, 16)]
    assert sum(n for _, n, _ in batches) == 1000
