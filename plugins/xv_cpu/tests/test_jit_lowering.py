"""How the jit lowers kernels: modes, generated names and constants, work counts equal to
interp's, unchecked mode, atomics (native, compare-and-swap, privatised) on several threads."""

import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from xv_cpu_irb import (
    aload, assign, astore, atomic, barrier, brk, c, for_, if_, iload, kernel, land, length, load,
    loop, ret, run, select, sp, store, var,
)
from xv_cpu_kernels import (
    block_sum_kernel, gauss5_kernel, histogram_kernel, matmul_kernel, tree_reference,
)

from xv_core.runtime.interfaces import Launch, Tile
from xv_cpu.interp import InterpBackend
from xv_cpu.jit import JitBackend, UncheckedJitBackend
from xv_cpu.jit.analysis import plan_kernel
from xv_cpu.jit.codegen import Spec, generate


def test_modes():
    i = var("i")
    saxpy = kernel("saxpy", "buffer<f32> x", [assign("i", sp("global_id.x")),
                                              store("x", i, load("x", i))], locals="i32 i")
    assert plan_kernel(saxpy).mode == "single"
    assert plan_kernel(block_sum_kernel()).mode == "convergent"
    plan = plan_kernel(matmul_kernel())
    assert plan.mode == "convergent"
    # t is uniform and runs once per group; acc lives across barriers, once per item;
    # row, col, ly, lx are recomputed from the builtins wherever they are read.
    assert plan.group_vars == {"t"} and plan.context_vars == {"acc"}
    assert set(plan.remat) == {"row", "col", "ly", "lx"}
    lid, j = var("lid"), var("j")
    divergent = kernel("loop_break", "buffer<i32> out", [
        assign("lid", sp("local_id.x")),
        *for_("L", "j", 0, 4, [if_(j.eq(2) & lid.eq(3), [brk("L")]), barrier()]),
    ], locals="i32 lid, i32 j")
    plan = plan_kernel(divergent)
    assert plan.mode == "fallback"
    assert plan.why == "a barrier in a loop whose condition differs between items"
    branch = kernel("uniform_branch", "buffer<i32> out", [
        assign("g", sp("group_id.x")),
        if_((var("g") % 2).eq(0), [barrier(), store("out", sp("global_id.x"), var("g"))]),
    ], locals="i32 g")
    assert plan_kernel(branch).mode == "convergent"
    per_item = kernel("per_item_branch", "buffer<i32> out", [
        if_(sp("local_id.x").lt(3), [barrier()]),
    ])
    assert plan_kernel(per_item).mode == "fallback"


def test_generated_code_uses_generated_names_and_exact_constants():
    k = kernel("evil_kernel_name", "buffer<f32> evil_param_name, f32 scalar_param_name", [
        assign("secret_local_name", c(0.1, "f32") * var("scalar_param_name", "f32")),
        *for_("loop_label_name", "counter_name", 0, 3, [
            store("evil_param_name", var("counter_name"), var("secret_local_name", "f32")),
        ]),
    ], locals="f32 secret_local_name, i32 counter_name")
    text, meta = generate(k, plan_kernel(k), Spec((4, 1, 1)), "xv_tile_0")
    for name in ("evil", "secret", "scalar_param", "loop_label", "counter_name"):
        assert name not in text
    # 0.1 as the f32 the verifier checked, printed exactly (LLVM's hexadecimal double form).
    bits = struct.unpack("<Q", struct.pack("<d", float(np.float32(0.1))))[0]
    assert f"0x{bits:016x}" in text
    assert meta.symbol == "xv_tile_0"


@pytest.mark.parametrize("make, args, grid, block", [
    (gauss5_kernel, lambda r: {"src": r.random((40, 50), dtype=np.float32),
                               "dst": np.zeros((40, 50), np.float32)}, (4, 3), (16, 16)),
    (block_sum_kernel, lambda r: {"x": r.random(1000, dtype=np.float32),
                                  "partial": np.zeros(4, np.float32)}, (4,), (256,)),
    (matmul_kernel, lambda r: {"a": r.random(24 * 24, dtype=np.float32),
                               "b": r.random(24 * 24, dtype=np.float32),
                               "c": np.zeros(24 * 24, np.float32), "n": np.int32(24)},
     (3, 3), (8, 8)),
    (histogram_kernel, lambda r: {"values": r.random(3000, dtype=np.float32),
                                  "bins": np.zeros(16, np.int32), "lo": np.float32(0.1),
                                  "hi": np.float32(0.9)}, (12,), (256,)),
])
def test_results_and_counted_work_equal_interp(make, args, grid, block):
    k = make()
    interp_args = args(np.random.default_rng(5))
    jit_args = args(np.random.default_rng(5))
    w_interp = run(k, interp_args, grid=grid, block=block, backend=InterpBackend(),
                   tile_groups=2)
    prepared = JitBackend().prepare(k)
    launch = Launch(tuple(grid) + (1,) * (3 - len(grid)), tuple(block) + (1,) * (3 - len(block)))
    w_jit = None
    for first in range(0, launch.groups, 2):
        w = prepared.run_tile(Tile(first, launch, first, min(2, launch.groups - first)), jit_args)
        w_jit = w if w_jit is None else w_jit + w
    assert w_jit == w_interp
    for name in interp_args:
        np.testing.assert_array_equal(jit_args[name], interp_args[name])


def test_unchecked_mode_gives_the_same_results():
    n = 32
    rng = np.random.default_rng(2)
    a, b = rng.random(n * n, dtype=np.float32), rng.random(n * n, dtype=np.float32)
    c_checked, c_unchecked = np.zeros(n * n, np.float32), np.zeros(n * n, np.float32)
    prepared = JitBackend().prepare(matmul_kernel())
    fast = UncheckedJitBackend().prepare(matmul_kernel())
    launch = Launch((4, 4, 1), (8, 8, 1))
    prepared.run_tile(Tile(0, launch, 0, 16), {"a": a, "b": b, "c": c_checked, "n": np.int32(n)})
    fast.run_tile(Tile(0, launch, 0, 16), {"a": a, "b": b, "c": c_unchecked, "n": np.int32(n)})
    np.testing.assert_array_equal(c_checked, c_unchecked)
    np.testing.assert_allclose(c_checked.reshape(n, n), a.reshape(n, n) @ b.reshape(n, n),
                               rtol=1e-5)


def threaded(prepared, launch, args, tile_groups=1, threads=4):
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(prepared.run_tile,
                               Tile(i, launch, g, min(tile_groups, launch.groups - g)), args)
                   for i, g in enumerate(range(0, launch.groups, tile_groups))]
        for f in futures:
            f.result()


@pytest.mark.parametrize("kind, t, init, value, expected", [
    ("add", "f32", 0.0, 1.0, 64 * 100),  # compare-and-swap loop on the bits
    ("sub", "i32", 0, 3, -3 * 64 * 100),  # atomicrmw sub (the old value is used)
    ("max", "u32", 0, None, 64 * 100 - 1),  # atomicrmw umax
    ("min", "f32", 1e9, None, 0.0),
])
def test_native_atomics_from_many_threads(kind, t, init, value, expected):
    gid = sp("global_id.x")
    operand = c(value, t) if value is not None else gid.cast(t)
    k = kernel("atom", f"buffer<{t}> acc, buffer<{t}> old", [
        atomic(kind, "acc", c(0), operand, result="o"),
        store("old", gid, var("o", t)),
    ], locals=f"{t} o")
    dtype = {"f32": np.float32, "i32": np.int32, "u32": np.uint32}[t]
    acc = np.full(1, init, dtype)
    old = np.zeros(64 * 100, dtype)
    threaded(JitBackend().prepare(k), Launch((100, 1, 1), (64, 1, 1)),
             {"acc": acc, "old": old}, tile_groups=3)
    assert acc[0] == dtype(expected)
    if kind in ("add", "sub"):  # every item saw a distinct old value
        assert len(np.unique(old)) == len(old)


def test_privatised_histogram_from_many_threads_and_large_bins_unprivatised():
    values = np.random.default_rng(9).random(256 * 200).astype(np.float32)
    for nbins in (64, 100_000):  # the second has more bins than a tile has items per bin
        bins = np.zeros(nbins, np.int32)
        prepared = JitBackend().prepare(histogram_kernel())
        threaded(prepared, Launch((200, 1, 1), (256, 1, 1)),
                 {"values": values, "bins": bins, "lo": np.float32(0), "hi": np.float32(1)},
                 tile_groups=25)
        expected = np.bincount(np.clip((values * np.float32(nbins)).astype(int), 0, nbins - 1),
                               minlength=nbins)
        np.testing.assert_array_equal(bins, expected)
        specs = list(prepared._by_spec)
        assert [s.private for s in specs] == ([("bins",)] if nbins == 64 else [()])


def test_return_before_barriers_and_uniform_values_per_group():
    # Items past the end return before the barrier; the stride loop runs once per group.
    lid, n = var("lid"), var("n")
    k = kernel("ragged", "buffer<i32> out, i32 n", [
        assign("lid", sp("local_id.x")),
        if_(sp("global_id.x").ge(n), [ret()]),
        assign("s", c(1)),
        *for_("L", "r", 0, 3, [
            barrier(),
            assign("s", var("s") * 2),
        ]),
        store("out", sp("global_id.x"), lid + var("s")),
    ], locals="i32 lid, i32 s, i32 r")
    assert plan_kernel(k).group_vars >= {"s", "r"}
    out = np.full(40, -1, np.int32)
    run(k, {"out": out, "n": np.int32(37)}, grid=5, block=8, backend=JitBackend())
    np.testing.assert_array_equal(out, np.where(np.arange(40) < 37, np.arange(40) % 8 + 8, -1))


def test_block_sum_on_unchecked_jit():
    x = np.random.default_rng(4).random(256 * 6 + 100, dtype=np.float32)
    partial = np.zeros(7, np.float32)
    run(block_sum_kernel(), {"x": x, "partial": partial}, grid=7, block=256,
        backend=UncheckedJitBackend())
    np.testing.assert_array_equal(partial, tree_reference(x, 7))


def test_lengths_guard_loads():
    i = var("i")
    k = kernel("guarded", "buffer<f32> x, buffer<f32> y", [
        assign("i", sp("global_id.x")),
        if_(i.lt(length("x")), [store("y", i, load("x", i) * 2.0)]),
    ], locals="i32 i")
    x = np.arange(10, dtype=np.float32)
    y = np.zeros(10, np.float32)
    run(k, {"x": x, "y": y}, grid=1, block=64, backend=JitBackend())
    np.testing.assert_array_equal(y, x * 2)


@pytest.mark.parametrize("name, args, grid", [
    # 70 x 45: interior groups take the fast version (clamps are the identity, the
    # `if (x >= w || y >= h) return;` test is never taken), border groups the checked one.
    ("gauss5", lambda r: {"src": r.random((45, 70), dtype=np.float32),
                          "dst": np.zeros((45, 70), np.float32)}, (5, 3)),
    ("mandelbrot", lambda r: {"out": np.zeros((45, 70, 4), np.float32), "cx": np.float32(-0.5),
                              "cy": np.float32(0), "scale": np.float32(3),
                              "max_iter": np.int32(40)}, (5, 3)),
    ("block_sum", lambda r: {"x": r.random(1500, dtype=np.float32),
                             "partial": np.zeros(6, np.float32)}, (6,)),
])
def test_compiled_conformance_kernels_count_the_same_work_as_interp(name, args, grid):
    from pathlib import Path

    from xv_dsl import compile_file

    path = Path(__file__).resolve().parents[3] / "examples" / "kernels" / f"{name}.xvk"
    k = compile_file(path).kernels[0]
    block = k.workgroup or (16, 16, 1)
    a_interp, a_jit = args(np.random.default_rng(1)), args(np.random.default_rng(1))
    w_interp = run(k, a_interp, grid=grid, block=block, backend=InterpBackend())
    launch = Launch(tuple(grid) + (1,) * (3 - len(grid)), tuple(block))
    w_jit = JitBackend().prepare(k).run_tile(Tile(0, launch, 0, launch.groups), a_jit)
    assert w_jit == w_interp
    for key, value in a_interp.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_allclose(a_jit[key], value, rtol=4e-7, atol=1e-7)


def test_native_tiles_release_the_gil():
    # While a long tile runs natively on one thread, Python code keeps running on another:
    # the cpu component's workers run tiles in parallel on every core.
    import threading
    import time
    from pathlib import Path

    from xv_dsl import compile_file

    path = Path(__file__).resolve().parents[3] / "examples" / "kernels" / "mandelbrot.xvk"
    k = compile_file(path).kernels[0]
    out = np.zeros((128, 128, 4), np.float32)
    # Zoomed into the set: every pixel runs all its iterations.
    args = {"out": out, "cx": np.float32(-0.1), "cy": np.float32(0.0),
            "scale": np.float32(0.01), "max_iter": np.int32(20000)}
    prepared = JitBackend().prepare(k)
    launch = Launch((8, 8, 1), (16, 16, 1))
    prepared.run_tile(Tile(0, launch, 0, 1), args)  # compile first
    running = threading.Event()
    done = threading.Event()

    def native():
        running.set()
        prepared.run_tile(Tile(0, launch, 0, launch.groups), args)
        done.set()

    worker = threading.Thread(target=native)
    worker.start()
    running.wait()
    time.sleep(0.02)  # let the worker enter the native call
    counted = 0
    while not done.is_set() and counted < 200_000:
        counted += 1
    finished_first = done.is_set()
    worker.join()
    assert (out[..., :3] == 0).all()  # inside the set
    assert finished_first is False and counted == 200_000


@pytest.mark.parametrize("size", [4, 8192])  # on the stack, and in scratch memory
def test_private_arrays_zeroed_per_item_and_kept_across_barriers(size):
    lid = var("lid")
    k = kernel("priv", "buffer<f32> out", [
        assign("lid", sp("local_id.x")),
        # Before the barrier: a private array written at one slot per item (others stay 0).
        astore("p", [lid % size], lid.cast("f32") + 1.0),
        barrier(),
        # After it: read back (the array lives across the barrier, once per item).
        store("out", sp("global_id.x") * 2, aload("p", lid % size)),
        store("out", sp("global_id.x") * 2 + 1, aload("p", (lid + 1) % size)),
    ], locals=f"i32 lid, f32[{size}] p")
    expected = None
    for backend in (InterpBackend(), JitBackend()):
        out = np.full(2 * 3 * 8, -1.0, np.float32)
        run(k, {"out": out}, grid=3, block=8, backend=backend)
        expected = out if expected is None else expected
        np.testing.assert_array_equal(out, expected)
    lids = np.tile(np.arange(8), 3)
    np.testing.assert_array_equal(expected[0::2], lids + 1)
    np.testing.assert_array_equal(expected[1::2], 0)  # the other slots start zeroed


@pytest.mark.parametrize("backend", [JitBackend, InterpBackend])
@pytest.mark.parametrize("tile_groups", [1, 5, 7, 13, 60])
def test_group_ids_of_tiles_starting_anywhere_in_a_3d_grid(backend, tile_groups):
    # The jit steps a tile's group coordinates from its first group's (carrying x into y,
    # y into z): tiles that start and end mid-row and mid-plane must see every group's own.
    k = kernel("where", "buffer<i32> out", [
        assign("g", (sp("group_id.z") * 4 + sp("group_id.y")) * 3 + sp("group_id.x")),
        assign("i", sp("local_id.x") + 2 * (sp("local_id.y") + 2 * sp("local_id.z"))),
        store("out", var("g") * 8 + var("i"),
              sp("group_id.x") * 10000 + sp("group_id.y") * 100 + sp("group_id.z")),
    ], locals="i32 g, i32 i")
    grid, block = (3, 4, 5), (2, 2, 2)
    out = np.full(60 * 8, -1, np.int32)
    run(k, {"out": out}, grid=grid, block=block, backend=backend(), tile_groups=tile_groups)
    z, y, x = np.meshgrid(np.arange(5), np.arange(4), np.arange(3), indexing="ij")
    want = np.repeat((x * 10000 + y * 100 + z).reshape(-1), 8)
    np.testing.assert_array_equal(out, want)


def test_arguments_changed_between_tiles_are_seen():
    # Tiles on one thread, one after another: a new array, or a scalar that differs (even
    # -0.0 from 0.0), must be seen by the next tile.
    i = var("i")
    k = kernel("scale", "buffer<f32> x, buffer<f32> y, f32 a", [
        assign("i", sp("global_id.x")),
        store("y", i, c(1.0, "f32") / var("a", "f32") + load("x", i)),
    ], locals="i32 i")
    prepared = JitBackend().prepare(k)
    launch = Launch((2, 1, 1), (4, 1, 1))
    x, y, y2 = np.arange(8, dtype=np.float32), np.zeros(8, np.float32), np.zeros(8, np.float32)
    for a in (2.0, 2.0, 4.0, 0.0, -0.0):
        for first in (0, 1):
            prepared.run_tile(Tile(first, launch, first, 1),
                              {"x": x, "y": y, "a": np.float32(a)})
        with np.errstate(divide="ignore"):
            np.testing.assert_array_equal(y, np.float32(1.0) / np.float32(a) + x)
    prepared.run_tile(Tile(0, launch, 0, 2), {"x": x * 2, "y": y2, "a": np.float32(1.0)})
    np.testing.assert_array_equal(y2, 1.0 + x * 2)


def _spans(k, block, checked=True):
    from xv_cpu.jit.codegen import Codegen

    return Codegen(k, plan_kernel(k), Spec(block, checked), "xv_tile_0")._span_groups()


def test_which_kernels_run_groups_as_spans():
    i = var("i")
    saxpy = kernel("saxpy", "buffer<f32> x, buffer<f32> y", [
        assign("i", sp("global_id.x")),
        if_(i.lt(length("x")), [store("y", i, load("x", i) * 2.0 + load("y", i))]),
    ], locals="i32 i")
    assert _spans(saxpy, (256, 1, 1)) == 16  # 4096 items along x
    assert _spans(saxpy, (64, 1, 1)) == 64
    assert _spans(saxpy, (4096, 1, 1)) == 1  # one group is as wide as a span
    # Items that tell the groups of a row apart, or share memory, or meet at barriers: no.
    for what in ("local_id.x", "group_id.x"):
        k = kernel("k", "buffer<i32> out", [store("out", sp("global_id.x"), sp(what))])
        assert _spans(k, (8, 1, 1)) == 0
    k = kernel("k", "buffer<i32> out", [store("out", sp("global_id.x"), sp("group_id.y"))])
    assert _spans(k, (8, 1, 1)) == 512
    assert _spans(block_sum_kernel(), (256, 1, 1)) == 0
    # 2-D blocks: only when no check is left in the fast copy (a failing item is found in
    # group order): gauss5's accesses are all proven per span, a data-dependent index is not.
    from pathlib import Path

    from xv_dsl import compile_file

    examples = Path(__file__).resolve().parents[3] / "examples" / "kernels"
    for name in ("gauss5", "mandelbrot"):
        assert _spans(compile_file(examples / f"{name}.xvk").kernels[0], (16, 16, 1)) == 256
    # (the select-based clamps of this one are not proven in range: their loads keep checks)
    assert _spans(gauss5_kernel(), (16, 16, 1)) == 0
    gather = kernel("gather", "buffer<i32> idx, buffer<f32> x, buffer<f32> y", [
        assign("i", sp("global_id.y") * 8 + sp("global_id.x")),
        store("y", var("i"), load("x", load("idx", var("i"), "i32"))),
    ], locals="i32 i")
    assert _spans(gather, (4, 4, 1)) == 0
    assert _spans(gather, (4, 4, 1), checked=False) == 1024
    assert _spans(gather, (16, 1, 1)) == 256
    # The row's work counts must fit the 32-bit per-item counters: a long unrolled chain
    # inside a loop of 1000 iterations allows shorter spans.
    chain = var("acc", "f32")
    for _ in range(20):
        chain = chain * 1.5 + 0.25
    heavy = kernel("heavy", "buffer<f32> y", [
        assign("acc", c(0.0, "f32")),
        *for_("L", "k", 0, 1000, [assign("acc", chain)]),
        store("y", sp("global_id.x"), var("acc", "f32")),
    ], locals="f32 acc, i32 k")
    assert 0 < _spans(heavy, (8, 1, 1)) * 8 < 4096


@pytest.mark.parametrize("tile_groups", [None, 1, 3, 7, 40])
@pytest.mark.parametrize("grid, block, n", [
    ((40,), (8,), 317),  # 1-D, the last groups partly or wholly past the data
    ((5, 3), (8, 1), 100),  # 1-D blocks in a 2-D grid: spans stop at the end of each row
    ((6, 4), (4, 4), 24 * 16),
])
def test_spans_give_the_results_and_counted_work_of_interp(grid, block, n, tile_groups):
    # Global ids (the x one from a span's first group and the item's place in the span),
    # the guard against the data's end, a short loop, and the work counted: as on interp,
    # whichever way the tiles cut the rows.
    gx, gy = var("gx"), var("gy")
    k = kernel("ids", "buffer<i32> out, buffer<f32> x, buffer<f32> y", [
        assign("gx", sp("global_id.x")),
        assign("gy", sp("global_id.y")),
        assign("i", gy * (sp("num_groups.x") * sp("group_size.x")) + gx),
        if_(var("i").lt(length("x")), [
            store("out", var("i"), gx * 1000 + gy * 10 + sp("local_id.y")),
            assign("acc", load("x", var("i"))),
            *for_("L", "k", 0, 3, [assign("acc", var("acc", "f32") * 0.5 + 1.0)]),
            store("y", var("i"), var("acc", "f32")),
        ]),
    ], locals="i32 gx, i32 gy, i32 i, f32 acc, i32 k")
    assert _spans(k, tuple(block) + (1,) * (3 - len(block))) > 1
    works, outs = [], []
    for backend in (InterpBackend(), JitBackend(), UncheckedJitBackend()):
        args = {"out": np.full(n, -1, np.int32),
                "x": np.random.default_rng(3).random(n, dtype=np.float32),
                "y": np.zeros(n, np.float32)}
        works.append(run(k, args, grid=grid, block=block, backend=backend,
                         tile_groups=tile_groups))
        outs.append(args)
    assert works[1] == works[0] and works[2] == works[0]
    for got in outs[1:]:
        for name in ("out", "y"):
            np.testing.assert_array_equal(got[name], outs[0][name])
    assert (outs[0]["out"] >= 0).all()


def test_a_failing_item_in_a_span_is_the_one_found_without_spans():
    # Two items index out of bounds, in groups 1 and 3 of a 1-D span: the error names the
    # first in group order, as interp does, and says where.
    from xv_core.errors import KernelRuntimeError

    i = var("i")
    k = kernel("gather", "buffer<i32> idx, buffer<f32> x, buffer<f32> y", [
        assign("i", sp("global_id.x")),
        store("y", i, load("x", load("idx", i, "i32"), line=7)),
    ], locals="i32 i")
    assert _spans(k, (8, 1, 1)) > 1
    messages = []
    for backend in (InterpBackend(), JitBackend()):
        idx = np.arange(64, dtype=np.int32)
        idx[[13, 30]] = [64, -1]
        args = {"idx": idx, "x": np.zeros(64, np.float32), "y": np.zeros(64, np.float32)}
        with pytest.raises(KernelRuntimeError) as err:
            run(k, args, grid=8, block=8, backend=backend)
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert "x[64]" in messages[1] and "global_id=(13, 0, 0)" in messages[1]
    assert ":7" in messages[1]


def test_an_access_past_the_data_late_in_a_span_is_caught():
    # The span's one bounds test covers all its groups: item 60 of 64, in the span's last
    # group, writes past the end.
    from xv_core.errors import KernelRuntimeError

    i = var("i")
    k = kernel("copy", "buffer<f32> x, buffer<f32> y", [
        assign("i", sp("global_id.x")),
        store("y", i, load("x", i), line=4),
    ], locals="i32 i")
    assert _spans(k, (8, 1, 1)) > 1
    messages = []
    for backend in (InterpBackend(), JitBackend()):
        args = {"x": np.arange(64, dtype=np.float32), "y": np.zeros(60, np.float32)}
        with pytest.raises(KernelRuntimeError) as err:
            run(k, args, grid=8, block=8, backend=backend)
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert "y[60]" in messages[1] and "global_id=(60, 0, 0)" in messages[1]


def test_arguments_of_every_type_packed_as_interp_reads_them():
    # Numpy scalars of each parameter's type and arrays as the runtime passes them take the
    # jit's fast path; Python values (and anything else) are checked and converted the long
    # way; every way gives interp's results.
    x = sp("global_id.x")
    k = kernel("all", "f32 a, f64 b, i32 c, u32 d, bool e, buffer<f32> out, "
                      "image<vec4> img, buffer<f64> out64, buffer<u32> outu", [
        store("out", x, var("a", "f32") + iload("img", x, c(1), lane=2)),
        store("out64", x, var("b", "f64") * var("c").cast("f64")),
        store("outu", x, select(var("e", "bool"), var("d", "u32"), c(7, "u32"))),
    ])
    img = np.random.default_rng(0).random((3, 4, 4), dtype=np.float32)
    given = [
        {"a": np.float32(-0.0), "b": np.float64(2.5e300), "c": np.int32(-3),
         "d": np.uint32(4_000_000_000), "e": np.bool_(True)},
        {"a": 1.5, "b": -1e-300, "c": -(2**31), "d": 2**32 - 1, "e": False},
    ]
    for scalars in given:
        results = []
        for backend in (InterpBackend(), JitBackend()):
            args = {**scalars, "out": np.zeros(4, np.float32), "img": img.copy(),
                    "out64": np.zeros(4, np.float64), "outu": np.zeros(4, np.uint32)}
            run(k, args, grid=1, block=4, backend=backend)
            results.append(args)
        for name in ("out", "out64", "outu"):
            np.testing.assert_array_equal(results[1][name], results[0][name])
        np.testing.assert_array_equal(np.signbit(results[1]["out"]), np.signbit(results[0]["out"]))


@pytest.mark.parametrize("change, message", [
    (lambda a: a[::2], "must be a writable C-contiguous array"),
    (lambda a: a.astype(np.float64), "is a float64 array"),
    (lambda a: a.reshape(2, -1), "of shape (2, 8)"),
    (lambda a: np.frombuffer(a.tobytes(), np.float32), "must be a writable C-contiguous array"),
])
def test_arguments_the_jit_refuses_as_interp_does(change, message):
    from xv_core.errors import JobError

    k = kernel("copy", "buffer<f32> x, f32 s", [
        store("x", sp("global_id.x"), load("x", sp("global_id.x")) * var("s", "f32")),
    ])
    texts = []
    for backend in (InterpBackend(), JitBackend()):
        with pytest.raises(JobError) as err:
            run(k, {"x": change(np.ones(16, np.float32)), "s": np.float32(2)}, grid=1,
                block=16, backend=backend)
        texts.append(str(err.value))
    assert texts[0] == texts[1] and message in texts[1]
    with pytest.raises(JobError, match="needs argument 's'"):
        run(k, {"x": np.ones(16, np.float32)}, grid=1, block=16, backend=JitBackend())


def _peeled(k, block):
    from xv_cpu.jit.codegen import Codegen

    cg = Codegen(k, plan_kernel(k), Spec(block, True), "xv_tile_0")
    cg.generate()
    return cg.peeled


def test_skeleton_loops_with_constant_trip_counts_are_peeled():
    # The block sum's `for (stride = 128; stride > 0; stride /= 2)` with a barrier inside:
    # 8 iterations, each level a copy whose x range is a constant.  The tiled matmul's loop
    # runs n / 16 times for a parameter n: not peeled.
    assert _peeled(block_sum_kernel(), (256, 1, 1)) == [8]
    assert _peeled(matmul_kernel(), (8, 8, 1)) == [None]


@pytest.mark.parametrize("outer", [3, 40])  # peeled, and past PEEL_LIMIT (a loop as before)
def test_peeled_loops_give_the_results_and_counted_work_of_interp(outer):
    # Nested skeleton loops, an if on a group value, a group value changed in the body, a
    # bound from the block size: results and counted work as on interp, and the trip counts
    # predicted where they are constants.
    from xv_cpu.jit.codegen import PEEL_LIMIT

    i, j, a, lid = var("i"), var("j"), var("a"), var("lid")
    k = kernel("nest", "buffer<i32> out, i32 m", [
        assign("lid", sp("local_id.x")),
        assign("a", c(2)),
        assign("i", c(0)),
        loop("I", i.lt(outer), [
            if_(a.gt(0), [
                astore("s", [lid], aload("s", lid, t="i32") + i + 1),
                barrier(),
            ]),
            assign("j", i % 2),
            loop("J", j.lt(sp("group_size.x") / 4), [
                barrier(),
                assign("t", aload("s", (lid + 1) % 8, t="i32")),
                barrier(),  # (the neighbour's value is read before anyone writes)
                astore("s", [lid], aload("s", lid, t="i32") * 3 + var("t") + j),
                barrier(),
            ], [assign("j", j + 1)]),
            assign("a", a - 1),
        ], [assign("i", i + 1)]),
        # A loop whose bound is a parameter: never peeled.
        assign("j", c(0)),
        loop("K", j.lt(var("m")), [
            barrier(),
            astore("s", [lid], aload("s", lid, t="i32") + 1),
        ], [assign("j", j + 1)]),
        barrier(),
        store("out", sp("global_id.x"), aload("s", lid, t="i32")),
    ], locals="i32 lid, i32 a, i32 i, i32 j, i32 t", shared={"s": "i32[8]"})
    assert plan_kernel(k).mode == "convergent", plan_kernel(k).why
    peeled = _peeled(k, (8, 1, 1))
    if outer <= PEEL_LIMIT:
        # the outer loop; the inner loop in each copy and in the loop after them (nested
        # loops are not peeled); the parameter-bound loop
        assert peeled == [outer] + [None] * (outer + 2)
    else:
        assert peeled == [None, None, None]
    works, outs = [], []
    for backend in (InterpBackend(), JitBackend()):
        args = {"out": np.zeros(24, np.int32), "m": np.int32(3)}
        works.append(run(k, args, grid=3, block=8, backend=backend))
        outs.append(args["out"])
    assert works[1] == works[0]
    np.testing.assert_array_equal(outs[1], outs[0])
    assert outs[0].any()


def test_constant_group_values_follow_the_ir_semantics():
    from xv_core.ir import Node, Type
    from xv_cpu.jit.codegen import _const_eval

    def ev(e, **known):
        return _const_eval(e.node, known, (16, 4, 1))

    big = c(2**31 - 1)
    assert ev(c(-7) / 2) == -3 and ev(c(-7) % 2) == -1 and ev(c(7) % -2) == 1
    assert ev(c(-(2**31)) / -1) == -(2**31) and ev(big + 1) == -(2**31)
    assert ev(big * 2) == -2 and ev(sp("group_size.y") * 3) == 12
    assert ev(var("x").gt(3), x=5) is True and ev(var("x") + 1) is None
    assert ev(c(1) / var("z"), z=0) is None  # the division by zero is left to run time
    assert ev(sp("local_id.x") + 1) is None
    f = Node.const(1.5, Type.parse("f32"))
    assert _const_eval(f, {}, (1, 1, 1)) is None


def test_atomics_with_2d_blocks_see_the_items_in_group_order():
    # A span of 2-D groups runs its items row by row across the groups: the old values an
    # atomic returns, and the rounding of a float sum, would differ from interp's.
    gx, gy = sp("global_id.x"), sp("global_id.y")
    ticket = kernel("ticket", "buffer<i32> ctr, buffer<i32> out", [
        atomic("add", "ctr", c(0), c(1), result="t"),
        store("out", gy * 32 + gx, var("t")),
    ], locals="i32 t")
    fsum = kernel("fsum", "buffer<f32> x, buffer<f32> total", [
        atomic("add", "total", c(0), load("x", gy * 32 + gx)),
    ])
    assert _spans(ticket, (4, 2, 1)) == 0 and _spans(fsum, (4, 2, 1)) == 0
    assert _spans(ticket, (8, 1, 1)) > 1  # 1-D blocks: a span's order is the groups' order
    xs = np.ones(64, np.float32)
    xs[32 + 4] = 2.0 ** 25  # item (4, 1), in group 1's second row
    xs[8] = -(2.0 ** 25)  # item (8, 0), in group 2's first row
    for k, make, name in (
            (ticket, lambda: {"ctr": np.zeros(1, np.int32), "out": np.full(64, -1, np.int32)},
             "out"),
            (fsum, lambda: {"x": xs.copy(), "total": np.zeros(1, np.float32)}, "total")):
        got = []
        for backend in (InterpBackend(), JitBackend()):
            args = make()
            run(k, args, grid=(8, 1), block=(4, 2), backend=backend)
            got.append(args[name])
        np.testing.assert_array_equal(got[1], got[0])


def test_loops_that_move_their_own_counter_are_not_short():
    # Work in a short loop is counted in 32-bit per-item counters; a loop that resets its
    # counter, steps away from its bound or tests it with != may run long.
    from xv_cpu.jit.codegen import Codegen

    j, k = var("j"), var("k")

    def trips(cond, step, body=()):
        loop_ = loop("L", cond, list(body), [assign("k", step)])
        return Codegen._trips(loop_, assign("k", c(0)))

    assert trips(k.lt(10), k + 1) == 11
    assert trips(k.gt(-10), k - 2) == 11
    assert trips(k.lt(10), k + 1, [if_(j.lt(5), [assign("k", k - 1)])]) is None
    assert trips(k.lt(10), k - 1) is None  # away from the bound: wraps after 2**31 steps
    assert trips(k.ne(10), k + 3) is None  # steps over the bound
    assert trips(k.lt(10), k + 0) is None
    # and the work of such a loop is counted in full (interp's count)
    spin = kernel("spin", "buffer<i32> out", [
        assign("j", c(0)),
        assign("k", c(0)),
        loop("L", k.lt(1), [
            assign("j", j + 1),
            if_(j.lt(40), [assign("k", k - 1)]),
        ], [assign("k", k + 1)]),
        store("out", sp("global_id.x"), j),
    ], locals="i32 j, i32 k")
    works = []
    for backend in (InterpBackend(), JitBackend()):
        out = np.zeros(64, np.int32)
        works.append(run(spin, {"out": out}, grid=8, block=8, backend=backend))
        assert (out == 40).all()
    assert works[1] == works[0]


def test_peeling_stays_within_a_budget_and_off_nested_loops():
    # Loops inside a skeleton loop are not peeled (copies would multiply), and a loop whose
    # copies would pass PEEL_REGIONS copies of regions is not peeled either.
    from xv_cpu.jit.codegen import PEEL_LIMIT, PEEL_REGIONS

    lid = var("lid")

    def nest(depth, trips):
        body = [barrier(), assign("t", aload("s", (lid + 1) % 8, t="i32")), barrier(),
                astore("s", [lid], var("t") + lid), barrier()]
        names = []
        for d in range(depth):
            names.append(f"i{d}")
            body = for_(f"L{d}", f"i{d}", 0, trips, body)
        return kernel("nest", "buffer<i32> out", [
            assign("lid", sp("local_id.x")), *body, barrier(),
            store("out", sp("global_id.x"), aload("s", lid, t="i32")),
        ], locals="i32 lid, i32 t, " + ", ".join(f"i32 {n}" for n in names),
            shared={"s": "i32[8]"})

    assert _peeled(nest(1, 4), (8, 1, 1)) == [4]
    assert _peeled(nest(2, 4), (8, 1, 1)) == [4] + [None] * 5  # the copies' loops and the loop's
    # 12 iterations (within PEEL_LIMIT) of 3 regions each (two in the body, one in the
    # step) would add 36 region copies: more than the budget
    assert 12 <= PEEL_LIMIT and 12 * 3 > PEEL_REGIONS
    assert _peeled(nest(1, 10), (8, 1, 1)) == [10]
    assert _peeled(nest(1, 12), (8, 1, 1)) == [None]
    for k in (nest(2, 4), nest(1, 12)):
        outs = []
        for backend in (InterpBackend(), JitBackend()):
            out = np.zeros(16, np.int32)
            run(k, {"out": out}, grid=2, block=8, backend=backend)
            outs.append(out)
        np.testing.assert_array_equal(outs[1], outs[0])


def test_a_group_value_assigned_after_a_return_counts_for_the_live_items_only():
    # `s` is computed once per group (it bounds a barrier loop), but interp counts its
    # division for the items that have not returned before it: so does the jit.
    lid, s = var("lid"), var("s")
    k = kernel("t", "buffer<i32> out", [
        assign("lid", sp("local_id.x")), astore("sh", [lid], c(1)),
        if_(lid.ge(12), [ret()]),
        assign("s", sp("group_size.x") / 2),
        loop("L", s.gt(0), [barrier(), astore("sh", [lid], aload("sh", lid, t="i32") + 1)],
             [assign("s", s / 2)]),
        barrier(), store("out", sp("global_id.x"), aload("sh", lid, t="i32")),
    ], locals="i32 lid, i32 s", shared={"sh": "i32[16]"})
    plan = plan_kernel(k)
    assert plan.mode == "convergent" and "s" in plan.group_vars
    works, outs = [], []
    for backend in (InterpBackend(), JitBackend()):
        out = np.zeros(32, np.int32)
        works.append(run(k, {"out": out}, grid=2, block=16, backend=backend))
        outs.append(out)
    assert works[1] == works[0]
    np.testing.assert_array_equal(outs[1], outs[0])


def _proven_selects(k, block, checked=True):
    from xv_cpu.jit.codegen import Codegen

    cg = Codegen(k, plan_kernel(k), Spec(block, checked), "xv_tile_0")
    cg.generate()
    return cg.proven_selects


def test_selects_true_for_every_item_of_a_group_take_their_first_arm():
    # The block sum's `gid < x.length ? x[gid] : 0.0`: one test per group proves it true for
    # every item of a group inside the data, which then loads without the select (a plain
    # vector load); a condition on data is not proven.
    assert _proven_selects(block_sum_kernel(), (256, 1, 1)) == 1
    i = var("i")
    data = kernel("k", "buffer<f32> x, buffer<f32> y", [
        assign("i", sp("global_id.x")),
        store("y", i, select(load("x", i).lt(0.5), c(1.0, "f32"), 2.0)),
    ], locals="i32 i")
    assert _proven_selects(data, (64, 1, 1)) == 0


_SELECTS = {  # condition, its value for item i with local x lx, the first arm's index
    "i < x.length": (lambda i, lx: i.lt(length("x")), lambda i, lx, n, m: i < n, "i"),
    "m <= i": (lambda i, lx: var("m", "i32").le(i), lambda i, lx, n, m: m <= i, "lx"),
    "i > m": (lambda i, lx: i.gt(var("m", "i32")), lambda i, lx, n, m: i > m, "lx"),
    "lx >= m - 90": (lambda i, lx: lx.ge(var("m", "i32") - 90),
                     lambda i, lx, n, m: lx >= m - 90, "lx"),
}


@pytest.mark.parametrize("backend", [JitBackend, UncheckedJitBackend])
@pytest.mark.parametrize("cond", list(_SELECTS))
@pytest.mark.parametrize("grid, block, n, m", [
    ((9,), (32,), 260, 100),  # the last group partly past the data; m inside group 3
    ((4, 3), (8, 4), 12 * 32 - 20, 96),  # 2-D groups
])
def test_selects_proven_true_give_the_results_and_counted_work_of_interp(backend, cond, grid,
                                                                         block, n, m):
    # Groups where the condition holds for every item take the first arm alone, the others
    # the select per item: results and counted work as on interp (one select per kernel:
    # the facts of a region hold together or the fast version is not taken).
    i, lx = var("i"), var("lx")
    make, truth, arm = _SELECTS[cond]
    k = kernel("sel", "buffer<f32> x, buffer<f32> y, i32 m", [
        assign("lx", sp("local_id.x")),
        assign("i", sp("global_id.y") * (grid[0] * block[0]) + sp("global_id.x")),
        store("y", i, select(make(i, lx), load("x", var(arm)), -1.0)),
    ], locals="i32 i, i32 lx")
    rng = np.random.default_rng(7)
    size = int(np.prod(grid)) * int(np.prod(block))
    x = rng.random(n, dtype=np.float32)
    got = {"x": x.copy(), "y": np.zeros(size, np.float32), "m": np.int32(m)}
    want = {"x": x.copy(), "y": np.zeros(size, np.float32), "m": np.int32(m)}
    w_jit = run(k, got, grid=grid, block=block, backend=backend())
    w_interp = run(k, want, grid=grid, block=block, backend=InterpBackend())
    assert w_jit == w_interp
    idx = np.arange(size)
    local_x = (idx % (grid[0] * block[0])) % block[0]
    where = np.minimum(idx, n - 1) if arm == "i" else local_x
    ref = np.where(truth(idx, local_x, n, m), x[where], np.float32(-1.0))
    np.testing.assert_array_equal(got["y"], ref)
    np.testing.assert_array_equal(want["y"], ref)


@pytest.mark.parametrize("backend", [JitBackend, UncheckedJitBackend])
def test_conditions_with_lazy_operators_are_not_proven_and_count_as_interp(backend):
    # A select or && inside a select's condition or a guard's comparison evaluates only some
    # of its operands, so interp counts only those: such conditions stay per item (counting
    # every operation in them, as a proven condition is counted, would differ).
    i, m = var("i"), var("m")
    lazy = {
        "i < (m > 0 ? m : 0)": select(m.gt(0), m, c(0)),
        "i < (m > 0 ? m + 1 : m - 1)": select(m.gt(0), m + 1, m - 1),
        "i < (i32)(m > 0 && m > 1) * 1000": land(m.gt(0), m.gt(1)).cast("i32") * 1000,
    }
    for name, bound in lazy.items():
        for body in ([store("y", i, select(i.lt(bound), load("x", i), -1.0))],
                     [if_(i.ge(bound), [ret()]), store("y", i, load("x", i))]):
            k = kernel("lazy", "buffer<f32> x, buffer<f32> y, i32 m",
                       [assign("i", sp("global_id.x")), *body], locals="i32 i")
            got, want = ({"x": np.arange(64, dtype=np.float32), "y": np.zeros(64, np.float32),
                          "m": np.int32(100)} for _ in range(2))
            w_jit = run(k, got, grid=(2,), block=(32,), backend=backend())
            w_interp = run(k, want, grid=(2,), block=(32,), backend=InterpBackend())
            assert w_jit == w_interp, name
            np.testing.assert_array_equal(got["y"], want["y"])
