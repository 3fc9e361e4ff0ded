"""Divergence: if/else, loops with per-item trip counts, break/continue/return, labelled blocks."""

import numpy as np
import pytest
from xv_cpu.interp import InterpBackend
from xv_cpu_irb import (
    Op, assign, bin_, block, brk, c, cont, for_, if_, kernel, land, length, load, loop, lor, ret,
    run, select, sp, store, var,
)

pytestmark = pytest.mark.usefixtures("each_backend")

BATCHES = [32768, 64, 7]  # one batch per tile, several, and batches splitting groups


def launch(kernel_, args, n, block_size=64, batch_items=32768, tile_groups=None):
    grid = -(-n // block_size)
    return run(kernel_, args, grid=grid, block=block_size, backend=InterpBackend(batch_items),
               tile_groups=tile_groups)


@pytest.mark.parametrize("batch_items", BATCHES)
def test_divergent_if_else_assigns_per_item(batch_items):
    i, v, r = var("i"), var("v", "f32"), var("r", "f32")
    k = kernel("branches", "buffer<f32> x, buffer<f32> out", [
        assign("i", sp("global_id.x")),
        if_(i.ge(length("x")), [ret()]),
        assign("v", load("x", i)),
        assign("r", c(0.0, "f32")),
        if_(v.gt(0.0), [assign("r", v * 2.0)], [
            if_(v.lt(-0.5), [assign("r", -v)], [assign("r", v + 10.0)]),
        ]),
        store("out", i, r + 1.0),
    ], locals="i32 i, f32 v, f32 r")
    x = np.random.default_rng(1).uniform(-1, 1, 1000).astype(np.float32)
    out = np.zeros_like(x)
    launch(k, {"x": x, "out": out}, len(x), batch_items=batch_items, tile_groups=3)
    expected = np.where(x > 0, x * 2, np.where(x < -0.5, -x, x + 10)).astype(np.float32) + 1
    np.testing.assert_array_equal(out, expected)


def collatz_kernel():
    i, n, steps = var("i"), var("n"), var("steps")
    return kernel("collatz", "buffer<i32> start, buffer<i32> out", [
        assign("i", sp("global_id.x")),
        if_(i.lt(length("start")), [
            assign("n", load("start", i, "i32")),
            assign("steps", c(0)),
            loop("L", n.ne(1), [
                if_((n % 2).eq(0), [assign("n", n / 2)], [assign("n", n * 3 + 1)]),
                assign("steps", steps + 1),
                if_(steps.ge(100), [brk("L")]),
            ]),
            store("out", i, steps),
        ]),
    ], locals="i32 i, i32 n, i32 steps")


def collatz_reference(start):
    out = []
    for n in start.tolist():
        steps = 0
        while n != 1:
            n = n // 2 if n % 2 == 0 else 3 * n + 1
            steps += 1
            if steps >= 100:
                break
        out.append(steps)
    return np.array(out, dtype=np.int32)


@pytest.mark.parametrize("batch_items", BATCHES)
def test_loop_with_per_item_trip_counts_and_break(batch_items):
    start = np.arange(1, 3001 if batch_items > 64 else 641, dtype=np.int32)
    out = np.zeros_like(start)
    launch(collatz_kernel(), {"start": start, "out": out}, len(start), batch_items=batch_items)
    np.testing.assert_array_equal(out, collatz_reference(start))


@pytest.mark.parametrize("batch_items", BATCHES)
def test_nested_loops_with_continue_and_break_to_outer_labels(batch_items):
    # for j in 0..i: if j % 3 == 0: continue outer-step; for k in 0..j: if k == 4: continue L1
    #   (skip rest of the outer body); if acc > 200: break L1 (leave outer loop); acc += k
    i, j, kk, acc = var("i"), var("j"), var("k"), var("acc")
    k = kernel("nested", "buffer<i32> out", [
        assign("i", sp("global_id.x")),
        assign("acc", c(0)),
        *for_("L1", "j", 0, i, [
            if_((j % 3).eq(0), [cont("L1")]),
            *for_("L2", "k", 0, j, [
                if_(kk.eq(4), [cont("L1")]),
                if_(acc.gt(200), [brk("L1")]),
                assign("acc", acc + kk),
            ]),
            assign("acc", acc + 1000),  # skipped whenever the inner loop reached k == 4
        ]),
        store("out", i, acc),
    ], locals="i32 i, i32 j, i32 k, i32 acc")

    def reference(i):
        acc = 0
        for j in range(i):
            if j % 3 == 0:
                continue
            skip = False
            for kk in range(j):
                if kk == 4:
                    skip = True
                    break
                if acc > 200:
                    return acc
                acc += kk
            if skip:
                continue
            acc += 1000
        return acc

    n = 320
    out = np.zeros(n, dtype=np.int32)
    launch(k, {"out": out}, n, block_size=32, batch_items=batch_items)
    np.testing.assert_array_equal(out, [reference(i) for i in range(n)])


@pytest.mark.parametrize("batch_items", BATCHES)
def test_break_out_of_labelled_block_and_early_return(batch_items):
    i = var("i")
    k = kernel("blocks", "buffer<i32> out, buffer<i32> flag", [
        assign("i", sp("global_id.x")),
        block(
            if_((i % 2).eq(0), [brk("B")]),
            store("out", i, c(1)),
            if_((i % 3).eq(0), [brk("B")]),
            store("out", i, c(2)),
            label="B",
        ),
        if_((i % 5).eq(0), [store("flag", i, c(7)), ret()]),
        store("flag", i, load("out", i, "i32") + 100),
    ], locals="i32 i")
    n = 128
    out = np.zeros(n, dtype=np.int32)
    flag = np.zeros(n, dtype=np.int32)
    launch(k, {"out": out, "flag": flag}, n, block_size=16, batch_items=batch_items)
    idx = np.arange(n)
    expected_out = np.where(idx % 2 == 0, 0, np.where(idx % 3 == 0, 1, 2))
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(flag, np.where(idx % 5 == 0, 7, expected_out + 100))


@pytest.mark.parametrize("batch_items", BATCHES)
def test_return_inside_loop_leaves_other_items_running(batch_items):
    i, j = var("i"), var("j")
    k = kernel("ret_loop", "buffer<i32> out", [
        assign("i", sp("global_id.x")),
        *for_("L", "j", 0, 50, [
            if_(j.eq(i), [store("out", i, j * 10), ret()]),
        ]),
        store("out", i, c(-1)),
    ], locals="i32 i, i32 j")
    n = 104
    out = np.zeros(n, dtype=np.int32)
    launch(k, {"out": out}, n, block_size=8, batch_items=batch_items)
    idx = np.arange(n)
    np.testing.assert_array_equal(out, np.where(idx < 50, idx * 10, -1))


def test_values_assigned_before_break_survive_the_loop():
    i, j, last = var("i"), var("j"), var("last")
    k = kernel("last", "buffer<i32> out", [
        assign("i", sp("global_id.x")),
        assign("last", c(-5)),
        *for_("L", "j", 0, 20, [
            assign("last", j * 2),
            if_(j.ge(i), [brk("L")]),
        ]),
        store("out", i, last + j * 1000),
    ], locals="i32 i, i32 j, i32 last")
    out = np.zeros(40, dtype=np.int32)
    launch(k, {"out": out}, 40, block_size=8)
    idx = np.arange(40)
    jj = np.minimum(idx, 20)
    expected = np.where(idx < 20, idx * 2, 38) + jj * 1000
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("batch_items", BATCHES)
def test_guarded_reads_never_touch_out_of_range(batch_items):
    # x has 10 elements but 64 items run: the && and ?: guards must keep the reads in range,
    # or the interpreter would raise an out-of-bounds error.
    i = var("i")
    inside = i.lt(length("x"))
    k = kernel("guards", "buffer<f32> x, buffer<f32> a, buffer<f32> b, buffer<i32> d", [
        assign("i", sp("global_id.x")),
        store("a", i, select(land(inside, load("x", i).gt(0.0)), c(1.0, "f32"), c(0.0, "f32"))),
        store("b", i, select(inside, load("x", select(inside, i, c(0))), c(-1.0, "f32"))),
        store("d", i, select(lor(i.ge(length("x")), load("x", i).lt(0.0)), c(1), c(0))),
    ], locals="i32 i")
    x = np.array([1, -2, 3, 0, 5, -6, 7, 8, -9, 10], dtype=np.float32)
    a, b = np.zeros(64, np.float32), np.zeros(64, np.float32)
    d = np.zeros(64, np.int32)
    launch(k, {"x": x, "a": a, "b": b, "d": d}, 64, block_size=16, batch_items=batch_items)
    pad = np.concatenate([x, np.zeros(54, np.float32)])
    inside = np.arange(64) < 10
    np.testing.assert_array_equal(a, (inside & (pad > 0)).astype(np.float32))
    np.testing.assert_array_equal(b, np.where(inside, pad, -1))
    np.testing.assert_array_equal(d, (~inside | (pad < 0)).astype(np.int32))


def test_division_by_zero_only_where_taken():
    # Items whose divisor is zero take the other branch: no error, and ?: the same.
    i, dv = var("i"), var("d")
    k = kernel("safe_div", "buffer<i32> num, buffer<i32> den, buffer<i32> q, buffer<i32> m", [
        assign("i", sp("global_id.x")),
        assign("d", load("den", i, "i32")),
        if_(dv.ne(0), [store("q", i, load("num", i, "i32") / dv)], [store("q", i, c(0))]),
        store("m", i, select(dv.eq(0), c(-1), load("num", i, "i32") % dv)),
        store("q", i, select(land(dv.ne(0), (c(100) / dv).gt(10)), c(1), c(0))
              + load("q", i, "i32")),
    ], locals="i32 i, i32 d")
    num = np.array([7, -7, 7, -7, 5, 0, 9, 100], dtype=np.int32)
    den = np.array([2, 2, -2, -2, 0, 3, 0, 7], dtype=np.int32)
    q, m = np.zeros(8, np.int32), np.zeros(8, np.int32)
    launch(k, {"num": num, "den": den, "q": q, "m": m}, 8, block_size=8)
    safe = np.where(den == 0, 1, den)
    trunc = np.trunc(num / safe).astype(np.int32)
    np.testing.assert_array_equal(q, np.where(den == 0, 0, trunc)
                                  + ((den != 0) & (np.trunc(100 / safe) > 10)))
    np.testing.assert_array_equal(m, np.where(den == 0, -1, np.fmod(num, safe)))


def test_uniform_conditions_and_loops_stay_uniform():
    # A loop bound by a scalar parameter and a branch on it: every item runs the same path.
    n_, j, acc = var("n"), var("j"), var("acc", "f32")
    k = kernel("uniform", "i32 n, buffer<f32> out", [
        assign("acc", c(0.0, "f32")),
        *for_("L", "j", 0, n_, [
            if_(n_.gt(3), [assign("acc", acc + j.cast("f32"))], [assign("acc", acc - 1.0)]),
        ]),
        store("out", sp("global_id.x"), acc),
    ], locals="i32 j, f32 acc")
    out = np.zeros(64, np.float32)
    work = launch(k, {"n": np.int32(10), "out": out}, 64, block_size=64)
    np.testing.assert_array_equal(out, np.full(64, 45.0, np.float32))
    # per item: 11 compares (j < n), 10 x (n > 3, cast, add) and 10 increments
    assert work.ops == 64 * (11 + 10 * 3 + 10)


def test_lazy_operators_evaluate_the_right_operand_only_where_needed():
    # Both sides are pure here, so the interpreter may evaluate them eagerly, but the op
    # count must still only include the items that needed the right operand.
    i = var("i")
    k = kernel("lazy_ops", "buffer<i32> out", [
        assign("i", sp("global_id.x")),
        store("out", i, select(land(i.lt(4), (i * 2).gt(2)), c(1), c(0))),
    ], locals="i32 i")
    out = np.zeros(16, np.int32)
    work = launch(k, {"out": out}, 16, block_size=16)
    np.testing.assert_array_equal(out, (np.arange(16) < 4) & (np.arange(16) * 2 > 2))
    # 16 x (lt, land, select) + 4 x (mul, gt)
    assert work.ops == 16 * 3 + 4 * 2


def test_bin_helper_unused_ops():
    # BITAND/BITOR on bool as non-lazy logic
    i = var("i")
    k = kernel("boolops", "buffer<i32> out", [
        assign("i", sp("global_id.x")),
        store("out", i, select(bin_(Op.BITXOR, i.lt(3), i.gt(1)), c(1), c(0))),
    ], locals="i32 i")
    out = np.zeros(8, np.int32)
    launch(k, {"out": out}, 8, block_size=8)
    idx = np.arange(8)
    np.testing.assert_array_equal(out, ((idx < 3) ^ (idx > 1)).astype(np.int32))


@pytest.mark.parametrize("batch_items", BATCHES)
def test_break_continue_and_labelled_block_in_one_loop_body(batch_items):
    # Per iteration j: items with (i + j) % 5 == 0 continue, those with j > i // 3 break,
    # items with (i * j) % 7 == 3 leave an inner labelled block early; the rest count.
    i, j, a, b = var("i"), var("j"), var("a"), var("b")
    k = kernel("mixed", "buffer<i32> out", [
        assign("i", sp("global_id.x")),
        assign("a", c(0)), assign("b", c(0)),
        *for_("L", "j", 0, 30, [
            assign("b", b + 1),
            if_(((i + j) % 5).eq(0), [cont("L")]),
            if_(j.gt(i / 3), [brk("L")]),
            block(
                if_(((i * j) % 7).eq(3), [brk("B")]),
                assign("a", a + j),
                label="B",
            ),
            assign("a", a + 1000),
        ]),
        store("out", i, a * 100 + b),
    ], locals="i32 i, i32 j, i32 a, i32 b")

    def reference(i):
        a = b = 0
        for j in range(30):
            b += 1
            if (i + j) % 5 == 0:
                continue
            if j > i // 3:
                break
            if (i * j) % 7 != 3:
                a += j
            a += 1000
        return a * 100 + b

    n = 96
    out = np.zeros(n, np.int32)
    launch(k, {"out": out}, n, block_size=32, batch_items=batch_items)
    np.testing.assert_array_equal(out, [reference(i) for i in range(n)])


@pytest.mark.parametrize("batch_items", BATCHES)
def test_items_leaving_a_loop_in_different_iterations_keep_their_values(batch_items):
    # Like mandelbrot: a per-item escape test breaks; state after the loop is per item.
    i, x, it = var("i"), var("x", "f32"), var("it")
    k = kernel("escape", "buffer<f32> seed, buffer<i32> iters, buffer<f32> last", [
        assign("i", sp("global_id.x")),
        assign("x", load("seed", i)),
        assign("it", c(0)),
        loop("L", it.lt(50), [
            assign("x", x * x + 0.25),
            if_(x.gt(2.0), [brk("L")]),
            assign("it", it + 1),
        ]),
        store("iters", i, it),
        store("last", i, x),
    ], locals="i32 i, f32 x, i32 it")
    seed = np.linspace(0, 1.2, 200).astype(np.float32)
    iters, last = np.zeros(200, np.int32), np.zeros(200, np.float32)
    launch(k, {"seed": seed, "iters": iters, "last": last}, 200, block_size=40,
           batch_items=batch_items)
    ref_it, ref_x = [], []
    for s in seed:
        x, it = np.float32(s), 0
        while it < 50:
            x = x * x + np.float32(0.25)
            if x > 2:
                break
            it += 1
        ref_it.append(it)
        ref_x.append(x)
    np.testing.assert_array_equal(iters, ref_it)
    np.testing.assert_array_equal(last, np.array(ref_x, np.float32))
