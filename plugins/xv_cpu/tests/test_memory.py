"""Shared memory and barriers, atomics, images, private and constant arrays."""

import numpy as np
import pytest
from xv_cpu.interp import InterpBackend
from xv_cpu_irb import (
    aload, assign, astore, atomic, barrier, c, for_, height, if_, iload, istore, kernel, land, load,
    run, sp, store, var, width,
)
from xv_cpu_kernels import (
    block_sum_kernel, gauss5_kernel, gauss5_reference, histogram_kernel, matmul_kernel,
    tree_reference,
)

pytestmark = pytest.mark.usefixtures("each_backend")


@pytest.mark.parametrize("batch_items", [32768, 256, 1000])
def test_block_sum_tree_reduction_in_shared_memory(batch_items):
    k = block_sum_kernel()
    n = 256 * 9 + 77
    x = np.random.default_rng(3).random(n, dtype=np.float32)
    groups = 10
    partial = np.zeros(groups, np.float32)
    run(k, {"x": x, "partial": partial}, grid=groups, block=256,
        backend=InterpBackend(batch_items), tile_groups=4)
    np.testing.assert_array_equal(partial, tree_reference(x, groups))
    np.testing.assert_allclose(partial.sum(), x.sum(), rtol=1e-5)


@pytest.mark.parametrize("batch_items", [32768, 64, 200])
def test_tiled_matmul_with_barriers_inside_a_loop(batch_items):
    n = 32
    rng = np.random.default_rng(5)
    a = rng.integers(-4, 5, (n, n)).astype(np.float32)
    b = rng.integers(-4, 5, (n, n)).astype(np.float32)
    out = np.zeros(n * n, np.float32)
    run(matmul_kernel(), {"a": a.ravel(), "b": b.ravel(), "c": out, "n": np.int32(n)},
        grid=(n // 8, n // 8), block=(8, 8), backend=InterpBackend(batch_items), tile_groups=3)
    np.testing.assert_array_equal(out.reshape(n, n), a @ b)


@pytest.mark.parametrize("batch_items", [32768, 500])
def test_histogram_atomics_match_bincount(batch_items):
    rng = np.random.default_rng(11)
    values = np.concatenate([rng.normal(0.5, 0.2, 20000), [-5.0, 5.0]]).astype(np.float32)
    bins = np.zeros(16, np.int32)
    run(histogram_kernel(), {"values": values, "bins": bins, "lo": np.float32(0),
                             "hi": np.float32(1)},
        grid=-(-len(values) // 256), block=256, backend=InterpBackend(batch_items),
        tile_groups=7)
    b = np.floor((values - np.float32(0)) / np.float32(1) * np.float32(16))
    expected = np.bincount(np.clip(b, 0, 15).astype(np.int64), minlength=16)
    np.testing.assert_array_equal(bins, expected)
    assert bins.sum() == len(values)


@pytest.mark.parametrize("kind", ["add", "sub", "min", "max", "exchange"])
@pytest.mark.parametrize("t", ["i32", "u32", "f32"])
@pytest.mark.parametrize("spread", [1, 3, 1000])
@pytest.mark.parametrize("use_old", [True, False])
def test_atomics_return_old_values_in_work_item_order(kind, t, spread, use_old):
    # Every item applies op(target[i % spread], v[i]) in item order and records the old value;
    # float sums must be the sequential ones bit for bit, with or without old values.
    i = var("i")
    k = kernel("atom", f"buffer<{t}> target, buffer<{t}> v, buffer<{t}> old", [
        assign("i", sp("global_id.x")),
        atomic(kind, "target", i % spread, load("v", i, t), result="r" if use_old else None),
        store("old", i, var("r", t)),
    ], locals=f"i32 i, {t} r")
    n = 600
    dtype = {"i32": np.int32, "u32": np.uint32, "f32": np.float32}[t]
    rng = np.random.default_rng(7)
    v = (rng.integers(0, 50, n) if t != "f32" else rng.random(n) * 10).astype(dtype)
    target = np.full(spread, 20, dtype)
    old = np.zeros(n, dtype)
    ref_target = target.copy()
    ref_old = np.zeros(n, dtype)
    with np.errstate(over="ignore"):
        for j in range(n):
            e = j % spread
            ref_old[j] = ref_target[e]
            ref_target[e] = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b,
                             "min": min, "max": max, "exchange": lambda a, b: b}[kind](
                ref_target[e], v[j])
    run(k, {"target": target, "v": v, "old": old}, grid=n // 100, block=100)
    np.testing.assert_array_equal(old, ref_old if use_old else np.zeros(n, dtype))
    np.testing.assert_array_equal(target, ref_target)


@pytest.mark.parametrize("spread", [1, 4, 1000])
def test_compare_exchange_sequential_semantics(spread):
    # cmpxchg(target[i % spread], expected = i // 2, value = i): succeeds only when the
    # element happens to hold i // 2.
    i = var("i")
    k = kernel("cas", "buffer<i32> target, buffer<i32> old", [
        assign("i", sp("global_id.x")),
        atomic("cmpxchg", "target", i % spread, i / 2, i, result="r"),
        store("old", i, var("r")),
    ], locals="i32 i, i32 r")
    n = 400
    target = np.zeros(spread, np.int32)
    old = np.zeros(n, np.int32)
    ref, ref_old = target.copy(), np.zeros(n, np.int32)
    for j in range(n):
        e = j % spread
        ref_old[j] = ref[e]
        if ref[e] == j // 2:
            ref[e] = j
    run(k, {"target": target, "old": old}, grid=4, block=100)
    np.testing.assert_array_equal(old, ref_old)
    np.testing.assert_array_equal(target, ref)


def test_atomic_with_a_uniform_index_counts_every_item():
    k = kernel("count", "buffer<u32> counter", [atomic("add", "counter", c(0), c(1, "u32"))])
    counter = np.zeros(1, np.uint32)
    work = run(k, {"counter": counter}, grid=50, block=128, tile_groups=7)
    assert counter[0] == 50 * 128
    assert work.ops == 50 * 128


@pytest.mark.parametrize("shape", [(37, 50), (16, 16), (5, 3)])
def test_image_blur_with_clamped_borders(shape):
    src = np.random.default_rng(2).random(shape, dtype=np.float32)
    dst = np.zeros_like(src)
    h, w = shape
    run(gauss5_kernel(), {"src": src, "dst": dst}, grid=(-(-w // 16), -(-h // 16)),
        block=(16, 16), backend=InterpBackend(300), tile_groups=2)
    np.testing.assert_array_equal(dst, gauss5_reference(src))


def test_vec4_images_and_buffers_per_lane():
    # out[x, y] = (r, g, b, a) of img[x, y] swizzled to (b, g, r, 1); buffer<vec4> gets lane sums.
    x, y = var("x"), var("y")
    lanes = [iload("img", x, y, lane=k) for k in range(4)]
    k = kernel("vec4", "image<vec4> img, image<vec4> out, buffer<vec4> sums", [
        assign("x", sp("global_id.x")), assign("y", sp("global_id.y")),
        if_(land(x.lt(width("img")), y.lt(height("img"))), [
            istore("out", x, y, lanes[2], lane=0), istore("out", x, y, lanes[1], lane=1),
            istore("out", x, y, lanes[0], lane=2), istore("out", x, y, c(1.0, "f32"), lane=3),
            *[store("sums", y * width("img") + x,
                    load("sums", y * width("img") + x, lane=k) + lanes[k], lane=k)
              for k in range(4)],
        ]),
    ], locals="i32 x, i32 y")
    img = np.random.default_rng(4).random((6, 9, 4), dtype=np.float32)
    out = np.zeros_like(img)
    sums = np.ones((54, 4), np.float32)
    run(k, {"img": img, "out": out, "sums": sums}, grid=(3, 2), block=(4, 4))
    np.testing.assert_array_equal(out[..., 0], img[..., 2])
    np.testing.assert_array_equal(out[..., 2], img[..., 0])
    np.testing.assert_array_equal(out[..., 3], 1.0)
    np.testing.assert_array_equal(sums, img.reshape(54, 4) + 1)


def test_private_arrays_are_per_work_item():
    # Each item fills tmp[k] = i * k (k < 8), then reverses it through a data-dependent index.
    i, kk = var("i"), var("k")
    k = kernel("private", "buffer<i32> out", [
        assign("i", sp("global_id.x")),
        *for_("A", "k", 0, 8, [astore("tmp", [kk], i * kk)]),
        *for_("B", "k", 0, 8, [
            if_((i % 2).eq(0), [store("out", i * 8 + kk, aload("tmp", c(7) - kk, t="i32"))],
                [store("out", i * 8 + kk, aload("tmp", (kk + i) % 8, t="i32"))]),
        ]),
    ], locals="i32 i, i32 k, i32[8] tmp")
    out = np.zeros(40 * 8, np.int32)
    run(k, {"out": out}, grid=5, block=8, backend=InterpBackend(16))
    idx = np.arange(40)[:, None]
    kk_ = np.arange(8)[None, :]
    expected = np.where(idx % 2 == 0, idx * (7 - kk_), idx * ((kk_ + idx) % 8))
    np.testing.assert_array_equal(out.reshape(40, 8), expected)


def test_constant_arrays_with_uniform_and_varying_indices():
    i = var("i")
    k = kernel("consts", "buffer<f32> out", [
        assign("i", sp("global_id.x")),
        store("out", i, aload("M", i % 2, i % 3) + aload("M", c(1), c(2))),
    ], locals="i32 i", consts={"M": ("f32[2][3]", [[1, 2, 3], [4, 5, 6]])})
    out = np.zeros(12, np.float32)
    run(k, {"out": out}, grid=1, block=12)
    m = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    idx = np.arange(12)
    np.testing.assert_array_equal(out, m[idx % 2, idx % 3] + 6)


def test_shared_memory_is_per_workgroup_and_zeroed():
    # Each group counts its items into s[0] (in lockstep order), reads a neighbour's slot.
    lid = var("lid")
    k = kernel("shared", "buffer<i32> out", [
        assign("lid", sp("local_id.x")),
        astore("s", [lid + 1], lid * 10 + sp("group_id.x")),
        barrier(),
        store("out", sp("global_id.x"), aload("s", (lid + 1) % 5, t="i32")),
    ], locals="i32 lid", shared={"s": "i32[5]"})
    out = np.zeros(12, np.int32)
    run(k, {"out": out}, grid=3, block=4, backend=InterpBackend(8))
    lid_ = np.arange(12) % 4
    g = np.arange(12) // 4
    slot = (lid_ + 1) % 5
    expected = np.where(slot == 0, 0, (slot - 1) * 10 + g)
    np.testing.assert_array_equal(out, expected)


def test_images_too_large_for_int32_indexing_use_wide_indices(monkeypatch):
    # Images of 2**31 elements or more index in intp; force that path on a small image.
    from xv_cpu.interp import batch

    original = batch.Bindings.__init__

    def wide(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.small = {name: False for name in self.small}

    monkeypatch.setattr(batch.Bindings, "__init__", wide)
    src = np.random.default_rng(9).random((40, 33), dtype=np.float32)
    dst = np.zeros_like(src)
    run(gauss5_kernel(), {"src": src, "dst": dst}, grid=(3, 3), block=(16, 16))
    np.testing.assert_array_equal(dst, gauss5_reference(src))
    x = var("x")
    k = kernel("v4", "image<vec4> img, image<vec4> out", [
        assign("x", sp("global_id.x")),
        istore("out", x, c(1), iload("img", x, c(1), lane=2), lane=1),
    ], locals="i32 x")
    img = np.random.default_rng(10).random((3, 8, 4), dtype=np.float32)
    out = np.zeros_like(img)
    run(k, {"img": img, "out": out}, grid=1, block=8)
    np.testing.assert_array_equal(out[1, :, 1], img[1, :, 2])


@pytest.mark.parametrize("batch_items", [32768, 10])
def test_private_arrays_written_under_divergence_and_after_break(batch_items):
    # hist[k] counts digits of i in base 4 (loop with a per-item trip count and a break),
    # odd items then double one cell in a branch; the array survives every frame change.
    from xv_cpu_irb import brk, loop
    i, n, kk = var("i"), var("n"), var("k")
    k = kernel("digits", "buffer<i32> out", [
        assign("i", sp("global_id.x")),
        assign("n", i),
        loop("L", n.gt(0), [
            astore("hist", [n % 4], aload("hist", n % 4, t="i32") + 1),
            if_((n % 4).eq(3) & (i % 5).eq(0), [brk("L")]),
            assign("n", n / 4),
        ]),
        if_((i % 2).eq(1), [astore("hist", [i % 4], aload("hist", i % 4, t="i32") * 2)]),
        *for_("W", "k", 0, 4, [store("out", i * 4 + kk, aload("hist", kk, t="i32"))]),
    ], locals="i32 i, i32 n, i32 k, i32[4] hist")
    count = 100
    out = np.zeros(count * 4, np.int32)
    run(k, {"out": out}, grid=10, block=10, backend=InterpBackend(batch_items))
    expected = np.zeros((count, 4), np.int32)
    for item in range(count):
        m = item
        while m > 0:
            expected[item, m % 4] += 1
            if m % 4 == 3 and item % 5 == 0:
                break
            m //= 4
        if item % 2 == 1:
            expected[item, item % 4] *= 2
    np.testing.assert_array_equal(out.reshape(count, 4), expected)
