"""Runtime errors: exact texts naming the source line, the memory, the index and the work item."""

import numpy as np
import pytest
from xv_cpu.interp import InterpBackend
from xv_cpu_irb import (
    aload, assign, astore, barrier, brk, c, for_, if_, iload, istore, kernel, load, ret, run, sp,
    store, var,
)

from xv_core.errors import JobError, KernelRuntimeError

pytestmark = pytest.mark.usefixtures("each_backend")

HINT = " (hint: check the index, or guard the access with a bounds test)"


def error_of(kernel_, args, grid, block, **kw):
    with pytest.raises(KernelRuntimeError) as info:
        run(kernel_, args, grid=grid, block=block, **kw)
    return str(info.value)


def test_out_of_bounds_buffer_read_names_line_buffer_index_and_work_item():
    i = var("i")
    k = kernel("saxpy", "f32 a, buffer<f32> x, buffer<f32> y", [
        assign("i", sp("global_id.x"), line=3),
        store("y", i, var("a", "f32") * load("x", i, line=4) + load("y", i, line=4), line=4),
    ], locals="i32 i", source="examples/kernels/saxpy.xvk")
    x = np.ones(1000, np.float32)
    y = np.ones(1000, np.float32)
    text = error_of(k, {"a": np.float32(2), "x": x, "y": y}, grid=4, block=256)
    assert text == ("examples/kernels/saxpy.xvk:4: out-of-bounds read x[1000] by work item "
                    "global_id=(1000, 0, 0) in kernel 'saxpy': buffer 'x' has 1000 elements" + HINT)


def test_out_of_bounds_write_with_negative_index_in_a_later_tile():
    i = var("i")
    k = kernel("shift", "buffer<i32> out", [
        assign("i", sp("global_id.x")),
        if_(i.ge(300), [store("out", c(299) - i * 2, i, line=9)]),
    ], locals="i32 i")
    out = np.zeros(512, np.int32)
    text = error_of(k, {"out": out}, grid=8, block=64, tile_groups=2)
    # Item 300 writes out[-301]: the first offender in item order is reported.
    assert text == ("tests/kernel.xvk:9: out-of-bounds write out[-301] by work item "
                    "global_id=(300, 0, 0) in kernel 'shift': buffer 'out' has 512 elements" + HINT)


def test_out_of_bounds_image_access_names_both_coordinates():
    x, y = var("x"), var("y")
    k = kernel("img", "image<f32> src, image<f32> dst", [
        assign("x", sp("global_id.x")), assign("y", sp("global_id.y")),
        istore("dst", x, y, iload("src", x + 1, y, line=12), line=12),
    ], locals="i32 x, i32 y")
    src = np.zeros((8, 10), np.float32)
    dst = np.zeros((8, 10), np.float32)
    text = error_of(k, {"src": src, "dst": dst}, grid=(2, 2), block=(5, 4))
    assert text == ("tests/kernel.xvk:12: out-of-bounds read src[10, 0] by work item "
                    "global_id=(9, 0, 0) in kernel 'img': image 'src' is 10 wide and 8 high" + HINT)


def test_out_of_bounds_shared_private_and_constant_arrays():
    lid = var("lid")
    k = kernel("arrays", "buffer<f32> out", [
        assign("lid", sp("local_id.x")),
        astore("s", [lid / 4, lid % 4], c(1.0, "f32"), line=20),
        barrier(),
        store("out", sp("global_id.x"), aload("s", c(0), c(0))),
    ], locals="i32 lid", shared={"s": "f32[2][4]"})
    text = error_of(k, {"out": np.zeros(24, np.float32)}, grid=2, block=12)
    assert text == ("tests/kernel.xvk:20: out-of-bounds write s[2][0] by work item "
                    "global_id=(8, 0, 0) in kernel 'arrays': shared array 's' is f32[2][4]" + HINT)

    i = var("i")
    k = kernel("priv", "buffer<f32> out", [
        assign("i", sp("global_id.x")),
        astore("tmp", [i - 3], c(2.0, "f32"), line=7),
    ], locals="i32 i, f32[3] tmp")
    text = error_of(k, {"out": np.zeros(8, np.float32)}, grid=1, block=8)
    assert text == ("tests/kernel.xvk:7: out-of-bounds write tmp[-3] by work item "
                    "global_id=(0, 0, 0) in kernel 'priv': private array 'tmp' is f32[3]" + HINT)

    k = kernel("consts", "buffer<f32> out", [
        store("out", sp("global_id.x"), aload("W", sp("global_id.x"), line=2)),
    ], consts={"W": ("f32[5]", [1, 4, 6, 4, 1])})
    text = error_of(k, {"out": np.zeros(8, np.float32)}, grid=1, block=8)
    assert text == ("tests/kernel.xvk:2: out-of-bounds read W[5] by work item "
                    "global_id=(5, 0, 0) in kernel 'consts': constant array 'W' is f32[5]" + HINT)


def test_out_of_bounds_atomic_and_uniform_index():
    from xv_cpu_irb import atomic
    k = kernel("atom", "buffer<i32> bins", [atomic("add", "bins", c(4), c(1), line=6)])
    text = error_of(k, {"bins": np.zeros(4, np.int32)}, grid=1, block=3)
    assert text == ("tests/kernel.xvk:6: out-of-bounds atomic_add bins[4] by work item "
                    "global_id=(0, 0, 0) in kernel 'atom': buffer 'bins' has 4 elements" + HINT)


def test_work_item_is_named_with_all_three_coordinates():
    x, y = var("x"), var("y")
    k = kernel("grid2d", "buffer<f32> out", [
        assign("x", sp("global_id.x")), assign("y", sp("global_id.y")),
        store("out", y * 8 + x, c(1.0, "f32"), line=5),
    ], locals="i32 x, i32 y", source=None)
    text = error_of(k, {"out": np.zeros(60, np.float32)}, grid=(2, 4), block=(4, 2))
    assert text == ("<kernel grid2d>:5: out-of-bounds write out[60] by work item "
                    "global_id=(4, 7, 0) in kernel 'grid2d': buffer 'out' has 60 elements" + HINT)


def test_division_by_zero_names_the_work_item():
    i = var("i")
    k = kernel("div", "buffer<i32> out", [
        assign("i", sp("global_id.x")),
        store("out", i, c(100) / (c(5) - i), line=3),
    ], locals="i32 i")
    text = error_of(k, {"out": np.zeros(8, np.int32)}, grid=1, block=8)
    assert text == ("tests/kernel.xvk:3: integer division by zero by work item "
                    "global_id=(5, 0, 0) in kernel 'div' "
                    "(hint: guard the operation where the divisor can be 0)")
    k = kernel("mod", "i32 d, buffer<i32> out", [
        store("out", sp("global_id.x"), sp("global_id.x") % var("d"), line=4),
    ])
    text = error_of(k, {"d": np.int32(0), "out": np.zeros(8, np.int32)}, grid=1, block=8)
    assert text.startswith("tests/kernel.xvk:4: integer modulo by zero by work item "
                           "global_id=(0, 0, 0) in kernel 'mod'")


BARRIER_HINT = (" (hint: every work item of a workgroup that has not returned must reach the "
                "same barrier(); move it out of control flow that differs between work items)")


def test_barrier_reached_by_part_of_a_group_is_divergence():
    lid = var("lid")
    k = kernel("diverge", "buffer<f32> out", [
        assign("lid", sp("local_id.x")),
        if_(lid.lt(5), [barrier(line=8)]),
    ], locals="i32 lid")
    text = error_of(k, {"out": np.zeros(1, np.float32)}, grid=3, block=8)
    assert text == ("tests/kernel.xvk:8: barrier divergence in kernel 'diverge': only 5 of the 8 "
                    "work items of workgroup (0, 0, 0) that have not returned reached this "
                    "barrier()" + BARRIER_HINT)


def test_barrier_after_early_return_is_fine_but_break_before_barrier_in_loop_is_not():
    lid, j = var("lid"), var("j")
    ok = kernel("ret_then_barrier", "buffer<i32> out", [
        assign("lid", sp("local_id.x")),
        if_(lid.ge(6), [ret()]),
        barrier(),
        store("out", sp("global_id.x"), c(1)),
    ], locals="i32 lid")
    out = np.zeros(16, np.int32)
    run(ok, {"out": out}, grid=2, block=8)
    np.testing.assert_array_equal(out, np.tile([1] * 6 + [0] * 2, 2))

    bad = kernel("loop_break", "buffer<i32> out", [
        assign("lid", sp("local_id.x")),
        *for_("L", "j", 0, 4, [
            if_(j.eq(2) & lid.eq(3), [brk("L")]),
            barrier(line=14),
        ]),
    ], locals="i32 lid, i32 j")
    text = error_of(bad, {"out": np.zeros(16, np.int32)}, grid=(1, 2), block=8,
                    backend=InterpBackend(8))
    assert text == ("tests/kernel.xvk:14: barrier divergence in kernel 'loop_break': only 7 of "
                    "the 8 work items of workgroup (0, 0, 0) that have not returned reached this "
                    "barrier()" + BARRIER_HINT)


def test_barrier_in_a_branch_taken_by_whole_groups_is_fine():
    g = var("g")
    k = kernel("uniform_branch", "buffer<i32> out", [
        assign("g", sp("group_id.x")),
        if_((g % 2).eq(0), [barrier(), store("out", sp("global_id.x"), g)]),
    ], locals="i32 g")
    out = np.full(32, -1, np.int32)
    run(k, {"out": out}, grid=4, block=8)
    np.testing.assert_array_equal(out, np.where((np.arange(32) // 8) % 2 == 0,
                                                np.arange(32) // 8, -1))


def test_bad_arguments_are_job_errors():
    k = kernel("k", "f32 a, buffer<f32> x", [])
    with pytest.raises(JobError, match="kernel 'k' needs argument 'x'"):
        run(k, {"a": 1.0}, grid=1, block=1)
    with pytest.raises(JobError) as info:
        run(k, {"a": 1.0, "x": np.zeros(4, np.float64)}, grid=1, block=1)
    assert str(info.value) == ("kernel k: argument 'x' of kernel 'k' is a float64 array of shape "
                               "(4,), but the parameter is buffer<f32>")


def test_clamped_indices_skip_checks_but_never_wrongly():
    # min(max(v, 0), 4) is in range for a 5-element buffer; adding 10 afterwards (computed in
    # place into the same array) is not, and neither is a clamp from one side only.
    from xv_core.ir import Op
    from xv_cpu_irb import bin_
    v = sp("global_id.x") - 3
    clamped = bin_(Op.MIN, bin_(Op.MAX, v, c(0)), c(4))
    ok = kernel("ok", "buffer<i32> x, buffer<i32> out", [
        store("out", sp("global_id.x"), load("x", clamped, "i32")),
    ])
    x = np.arange(5, dtype=np.int32) * 10
    out = np.zeros(12, np.int32)
    run(ok, {"x": x, "out": out}, grid=1, block=12)
    np.testing.assert_array_equal(out, x[np.clip(np.arange(12) - 3, 0, 4)])
    for index, offender in ((clamped + 10, "x[10]"), (bin_(Op.MAX, v, c(0)), "x[5]"),
                            (bin_(Op.MIN, v, c(4)), "x[-3]"),
                            (bin_(Op.MIN, bin_(Op.MAX, v, c(0)), c(5)), "x[5]")):
        bad = kernel("bad", "buffer<i32> x, buffer<i32> out", [
            store("out", sp("global_id.x"), load("x", index, "i32"), line=3),
        ])
        text = error_of(bad, {"x": x, "out": np.zeros(12, np.int32)}, grid=1, block=12)
        assert text.startswith(f"tests/kernel.xvk:3: out-of-bounds read {offender} by work item")
    k = kernel("u", "u32 n, buffer<f32> x", [])
    with pytest.raises(JobError) as info:
        run(k, {"n": -1, "x": np.zeros(4, np.float32)}, grid=1, block=1)
    assert str(info.value) == "kernel u: argument 'n' of kernel 'u' must be a u32 (got -1)"
