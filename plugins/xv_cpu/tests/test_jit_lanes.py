"""Loops whose trip count differs per work item, run across items in vector lanes
(``xv_cpu.jit.lanes``): the same results as interp and as the per-item code, bit for bit,
and the same counted work, for every construct such a loop may hold."""

import attrs
import numpy as np
import pytest

from xv_core.errors import KernelRuntimeError
from xv_core.ir import Node, Op, verify_kernel
from xv_core.plugins import load_plugins
from xv_cpu.interp import InterpBackend
from xv_cpu.jit import JitBackend, UncheckedJitBackend, codegen
from xv_cpu.jit.analysis import plan_kernel
from xv_cpu.jit.codegen import Codegen, Spec
from xv_cpu_irb import run

PLUGINS = load_plugins()


def compiled(source: str, name: str = "lanes.xvk"):
    (kernel,) = PLUGINS.frontend_for(name).compile(source, name).kernels
    return kernel


def lane_loops(kernel, block, checked=True) -> int:
    cg = Codegen(kernel, plan_kernel(kernel), Spec(block, checked), "xv_tile_0")
    cg.generate()
    return cg.lane_loops


ESCAPE = """
kernel escape(buffer<f32> cr, buffer<i32> out, buffer<f32> zs, i32 max_iter) {
    i32 gid = global_id.x;
    if (gid >= cr.length) {
        return;
    }
    f32 c = cr[gid];
    f32 z = 0.0;
    i32 n = 0;
    while (n < max_iter) {
        z = z * z + c;
        if (z > 2.0 || z < -2.0) {
            break;
        }
        n += 1;
    }
    out[gid] = n;
    zs[gid] = z;
}
"""

COLLATZ = """
kernel collatz(buffer<u32> start, buffer<i32> out) {
    i32 i = global_id.x;
    if (i >= start.length) {
        return;
    }
    u32 v = start[i];
    i32 s = 0;
    i32 odd = 0;
    i32 k = 0;
    while (v != 1u && s < 300) {
        s++;
        if ((v & 1u) == 0u) {
            v = v >> 1;
            continue;
        }
        v = v * 3u + 1u;
        odd += (s % 4 == 0) ? s % 3 + 2 : 1 - (s & 1);
        k = k + i32(v % 7u) - group_id.x * 3 + (-k / 5);
    }
    out[i] = s * 100000 + odd * 10 + (k & 7);
}
"""

FOR_LOOP = """
kernel forloop(buffer<i32> n, buffer<i32> out, i32 cap) {
    i32 i = global_id.x;
    i32 lim = n[i];
    i32 sum = 0;
    i32 k;
    for (k = 0; k < lim; k++) {
        if (k % 3 == 0) {
            continue;
        }
        if (sum > cap) {
            break;
        }
        sum += k;
    }
    out[i] = sum * 1000 + k;
}
"""

FLOATS = """
kernel floats(buffer<f32> x, buffer<f32> out) {
    i32 i = global_id.x;
    bool neg = x[i] < 0.0;
    f32 v = abs(x[i]);
    i32 n = 0;
    while (v > 1.5 && n < 50) {
        v = sqrt(v) + floor(v) * 0.125 - min(v, 0.25) + max(-v, -0.5);
        n++;
    }
    out[i] = neg ? -v : v + f32(n);
}
"""

# The loop's count is kept across a barrier (a later region reads it, not the statements
# after the loop in its own region).
BARRIER = """
@workgroup(16)
kernel halves(buffer<f32> x, buffer<f32> out) {
    shared f32 tmp[16];
    i32 l = local_id.x;
    i32 g = global_id.x;
    f32 v = x[g];
    i32 steps = 0;
    while (v > 1.0) {
        v = v * 0.5;
        steps++;
    }
    tmp[l] = v;
    barrier();
    out[g] = tmp[15 - l] + f32(steps);
}
"""


def _escape(rng, items):
    n = items - 5  # the last group partly past the data
    return {"cr": rng.uniform(-2.1, 0.4, n).astype(np.float32),
            "out": np.full(n, -7, np.int32), "zs": np.zeros(n, np.float32),
            "max_iter": np.int32(200)}


def _collatz(rng, items):
    n = items - 3
    return {"start": rng.integers(1, 5000, n).astype(np.uint32),
            "out": np.zeros(n, np.int32)}


def _for_loop(rng, items):
    return {"n": rng.integers(-2, 60, items).astype(np.int32), "out": np.zeros(items, np.int32),
            "cap": np.int32(150)}


def _floats(rng, items):
    x = (rng.standard_normal(items) * 100).astype(np.float32)
    x[::7] = np.float32(1.25)  # never enters the loop
    return {"x": x, "out": np.zeros(items, np.float32)}


def _barrier(rng, items):
    return {"x": (rng.random(items) * 300).astype(np.float32),
            "out": np.zeros(items, np.float32)}


CASES = {"escape": (ESCAPE, _escape), "collatz": (COLLATZ, _collatz),
         "for_loop": (FOR_LOOP, _for_loop), "floats": (FLOATS, _floats),
         "barrier": (BARRIER, _barrier)}


@pytest.mark.parametrize("name", list(CASES))
def test_loops_with_per_item_trip_counts_run_lane_wise(name):
    source, _ = CASES[name]
    block = (16, 1, 1) if name == "barrier" else (20, 1, 1)
    assert lane_loops(compiled(source), block) >= 1


def test_loops_that_need_more_than_lanes_offer_stay_per_item():
    # A load in the loop, a division by a value, an inner loop, a short loop of constant
    # trip count (LLVM vectorises the item loop around it): none runs lane-wise.
    for body in ("while (k < n) { k = k + x[k % x.length]; }",
                 "while (k < n) { k = k + 100 / (k + 1) + 1; }",
                 "while (k < n) { i32 j = 0; while (j < k) { j++; } k = k + j + 1; }",
                 "for (i32 j = 0; j < 8; j++) { k = k * 3 + j; }"):
        source = f"""
kernel k(buffer<i32> x, buffer<i32> out, i32 n) {{
    i32 i = global_id.x;
    i32 k = x[i];
    {body}
    out[i] = k;
}}
"""
        assert lane_loops(compiled(source), (64, 1, 1)) == 0, body


@pytest.mark.parametrize("backend", [JitBackend, UncheckedJitBackend])
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("grid, block, tile_groups", [
    ((7,), (20,), None),  # rows of 20 items: a chunk of 16 lanes and one of 4
    ((3,), (12,), 1),  # rows of 12: one chunk, partly past the row
    ((5,), (16,), 2),  # several tiles
    ((3, 2), (8, 2), 1),  # 2-D groups, a tile per group
])
def test_lane_wise_loops_give_the_results_and_counted_work_of_interp(monkeypatch, backend, name,
                                                                     grid, block, tile_groups):
    source, make = CASES[name]
    if name == "barrier":
        grid, block = (int(np.prod(grid)) * int(np.prod(block)) // 16,), (16,)
    kernel = compiled(source)
    items = int(np.prod(grid)) * int(np.prod(block))
    inputs = make(np.random.default_rng(5), items)
    results = {}
    for label, jit, lanes in (("interp", False, False), ("items", True, False),
                              ("lanes", True, True)):
        monkeypatch.setattr(codegen, "LANE_LOOPS", lanes)
        args = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
        work = run(kernel, args, grid=grid, block=block, tile_groups=tile_groups,
                   backend=backend() if jit else InterpBackend())
        results[label] = (work, args)
    for label in ("items", "lanes"):
        work, args = results[label]
        assert work == results["interp"][0], label
        for k, v in args.items():
            if isinstance(v, np.ndarray):
                np.testing.assert_array_equal(v, results["interp"][1][k], err_msg=f"{label} {k}")


def test_the_escape_loop_gives_what_numpy_gives():
    # The reference by other means: the escape loop in numpy, element by element in float32.
    kernel = compiled(ESCAPE)
    args = _escape(np.random.default_rng(1), 7 * 64)
    run(kernel, args, grid=7, block=64, backend=JitBackend())
    c = args["cr"]
    z = np.zeros_like(c)
    n = np.zeros(c.shape, np.int32)
    live = np.ones(c.shape, bool)
    for _ in range(int(args["max_iter"])):
        z = np.where(live, z * z + c, z)
        live &= ~((z > 2) | (z < -2))
        n += live
    np.testing.assert_array_equal(args["out"], n)
    np.testing.assert_array_equal(args["zs"], z)


def _same_as_interp(monkeypatch, kernel, inputs, grid, block):
    results = []
    for backend, lanes in ((InterpBackend, False), (JitBackend, True)):
        monkeypatch.setattr(codegen, "LANE_LOOPS", lanes)
        args = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
        results.append((run(kernel, args, grid=grid, block=block, backend=backend()), args))
    assert results[1][0] == results[0][0]
    for k, v in results[0][1].items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(results[1][1][k], v, err_msg=k)


def test_a_private_array_used_before_and_after_the_loop_keeps_the_loop_per_item(monkeypatch):
    # Such an array is one array reused by every item: the statements before the loop, run
    # for the whole row first, would leave only the last item's values in it.
    source = """
kernel k(buffer<f32> x, buffer<f32> out) {
    i32 i = global_id.x;
    if (i >= x.length) { return; }
    f32 pal[4] = {0.25, 0.5, 0.75, 1.0};
    f32 z = 0.0;
    f32 c = x[i];
    i32 n = 0;
    while (n < 50 && z < 4.0) { z = z * z + c; n++; }
    out[i] = pal[n % 4];
}
"""
    kernel = compiled(source)
    assert lane_loops(kernel, (16, 1, 1)) == 0
    x = np.linspace(-2.0, 0.5, 60, dtype=np.float32)
    _same_as_interp(monkeypatch, kernel, {"x": x, "out": np.zeros(60, np.float32)}, (4,), (16,))


def test_atomics_before_and_after_the_loop_keep_it_per_item_and_after_it_alone_do_not(
        monkeypatch):
    template = """
kernel k(buffer<i32> x, buffer<i32> hits, buffer<i32> out) {{
    i32 i = global_id.x;
    {before}
    i32 v = x[i];
    i32 s = 0;
    while (v > 1) {{ v = v / 2; s++; }}
    out[i] = s;
    atomic_add(hits[0], s);
}}
"""
    assert lane_loops(compiled(template.format(before="atomic_add(hits[0], 1);")),
                      (16, 1, 1)) == 0
    kernel = compiled(template.format(before=""))
    assert lane_loops(kernel, (16, 1, 1)) >= 1
    x = np.random.default_rng(3).integers(0, 5000, 64).astype(np.int32)
    _same_as_interp(monkeypatch, kernel, {"x": x, "hits": np.zeros(1, np.int32),
                                          "out": np.zeros(64, np.int32)}, (4,), (16,))


def test_a_failing_item_is_the_one_found_without_lanes(monkeypatch):
    # The statements before a lane-wise loop run for the whole row first: a copy of the
    # region where one of them may fail stays per item (with 10 values, items 10 and on fail
    # before the loop, item 0 after it: every item's read is checked, in item order).  Those
    # after it run per item, in item order, and may fail (with 16 values, items 0 and 3 fail
    # after the loop, in the copy that proves the reads in bounds and runs it lane-wise):
    # either way the first failing item in item order is reported, as by the per-item code.
    source = """
kernel k(buffer<i32> n, buffer<i32> out) {
    i32 g = global_id.x;
    i32 c = n[g];
    i32 s = 0;
    while (c > 0) { c = c - 1; s++; }
    out[s] = g;
}
"""
    kernel = compiled(source, "order.xvk")
    for size in (10, 16):
        n = np.zeros(size, np.int32)
        n[0], n[3] = 50, 60
        errors = []
        for lanes in (False, True):
            monkeypatch.setattr(codegen, "LANE_LOOPS", lanes)
            out = np.zeros(16, np.int32)
            with pytest.raises(KernelRuntimeError) as err:
                run(kernel, {"n": n.copy(), "out": out}, grid=1, block=16, backend=JitBackend())
            errors.append(str(err.value))
        assert errors[1] == errors[0]
        assert errors[1].startswith("order.xvk:7: out-of-bounds write out[50] by work item "
                                    "global_id=(0, 0, 0)")
    assert lane_loops(kernel, (16, 1, 1)) >= 1  # in the copy for groups proven in bounds


def test_an_unchecked_read_before_the_loop_stays_per_item_when_a_check_after_it_may_fail(
        monkeypatch):
    # jit-unchecked checks integer division by zero only. Item 0 divides by zero after the
    # loop; run lane-wise, the statements before the loop would first read a[] for every item
    # of the row, far out of bounds for item 1 -- which item order never reaches (it may
    # crash). So such a loop stays per item in the unchecked jit, and item 0's error is
    # reported as without lanes.
    kernel = compiled("""
kernel k(buffer<i32> a, buffer<i32> d, buffer<i32> out) {
    i32 i = global_id.x;
    i32 c = a[i * 300000000];
    i32 s = 0;
    while (c > 0) { c = c - 1; s++; }
    out[i] = s / d[i];
}
""", "unchecked.xvk")
    assert lane_loops(kernel, (16, 1, 1), checked=False) == 0
    assert lane_loops(compiled(ESCAPE), (16, 1, 1), checked=False) >= 1
    for lanes in (False, True):
        monkeypatch.setattr(codegen, "LANE_LOOPS", lanes)
        args = {"a": np.full(16, 3, np.int32), "d": np.zeros(16, np.int32),
                "out": np.zeros(16, np.int32)}
        with pytest.raises(KernelRuntimeError, match=r"^unchecked\.xvk:7: integer division by "
                                                     r"zero by work item global_id=\(0, 0, 0\)"):
            run(kernel, args, grid=1, block=16, backend=UncheckedJitBackend())


def test_a_continue_in_a_loops_step_keeps_the_loop_per_item(monkeypatch):
    # .xvk never puts a continue in a for loop's step, but an .xvir file may: the loop
    # stays per item, and gives interp's results.
    kernel = compiled("""
kernel k(buffer<i32> n, buffer<i32> out) {
    i32 i = global_id.x;
    if (i >= n.length) { return; }
    i32 c = n[i];
    i32 s = 0;
    i32 t = 0;
    for (s = 0; t < c && s < 100; ) {
        s = s + 1;
        if ((s & 1) == 0) { continue; }
        t = t + 1;
    }
    out[i] = s;
}
""")
    body = list(kernel.body.args)
    at = next(j for j, st in enumerate(body) if st.op is Op.LOOP)
    cond, inner, step = body[at].args
    body[at] = attrs.evolve(body[at], args=(cond, Node.block([], inner.arg),
                                            Node.block(list(inner.args), step.arg)))
    moved = attrs.evolve(kernel, body=attrs.evolve(kernel.body, args=tuple(body)))
    verify_kernel(moved)
    assert lane_loops(kernel, (16, 1, 1)) >= 1 and lane_loops(moved, (16, 1, 1)) == 0
    n = np.random.default_rng(2).integers(0, 30, 40).astype(np.int32)
    _same_as_interp(monkeypatch, moved, {"n": n, "out": np.zeros(40, np.int32)}, (3,), (16,))



# -- item loops split before a scatter (Codegen._scatter_at) ----------------------------------

def scatter_splits(kernel, block, private=()) -> int:
    cg = Codegen(kernel, plan_kernel(kernel), Spec(block, True, tuple(private)), "xv_tile_0")
    cg.generate()
    return cg.scatter_splits


HISTOGRAM = """
kernel hist(buffer<f32> values, buffer<i32> bins, buffer<i32> seen, f32 lo, f32 hi) {
    i32 i = global_id.x;
    if (i >= values.length) {
        return;
    }
    i32 nbins = bins.length;
    i32 b = i32(floor((values[i] - lo) / (hi - lo) * f32(nbins)));
    b = clamp(b, 0, nbins - 1);
    i32 old = atomic_add(bins[b], 1);
    seen[i] = old + b;
}
"""


def _split_and_whole(monkeypatch, kernel, inputs, grid, block, backend=JitBackend):
    """The kernel run split before its scatter and not: (work, outputs) of each."""
    results = []
    for split in (False, True):
        monkeypatch.setattr(codegen, "SCATTER_SPLIT", split)
        args = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
        results.append((run(kernel, args, grid=grid, block=block, backend=backend()), args))
    return results


@pytest.mark.parametrize("backend", [JitBackend, UncheckedJitBackend])
def test_a_histogram_splits_before_its_scatter_and_gives_the_per_item_results(monkeypatch,
                                                                            backend):
    # The bin is computed for the whole row as one vectorised loop, the atomic adds then run
    # per item in item order: the old values the atomics return are those of the per-item
    # code (and of interp), NaN and out-of-range values land in the end bins, and the last,
    # partial group's items past the end return before the split.
    kernel = compiled(HISTOGRAM)
    assert scatter_splits(kernel, (64, 1, 1)) >= 1
    assert scatter_splits(kernel, (64, 1, 1), private=("bins",)) >= 1
    values = np.random.default_rng(5).normal(0.5, 0.4, 1000).astype(np.float32)
    values[[3, 77, 500]] = [np.nan, np.inf, -np.inf]
    inputs = {"values": values, "bins": np.zeros(37, np.int32),
              "seen": np.full(1000, -1, np.int32), "lo": np.float32(0), "hi": np.float32(1)}
    (whole_work, whole), (split_work, split) = _split_and_whole(
        monkeypatch, kernel, inputs, (16,), (64,), backend)
    assert split_work == whole_work
    for name in ("bins", "seen"):
        np.testing.assert_array_equal(split[name], whole[name], err_msg=name)
    interp = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
    assert run(kernel, interp, grid=(16,), block=(64,), backend=InterpBackend()) == whole_work
    np.testing.assert_array_equal(split["bins"], interp["bins"])
    np.testing.assert_array_equal(split["seen"], interp["seen"])
    ref = np.clip(np.floor(values * np.float32(37)), -2**31, 2**31 - 1)
    ref = np.clip(np.where(np.isnan(ref), 0, ref), 0, 36).astype(np.int64)
    np.testing.assert_array_equal(split["bins"], np.bincount(ref, minlength=37))


def test_a_scatter_that_fails_is_found_in_the_item_that_fails_first(monkeypatch):
    # Without the clamp, items 5 and 9 scatter out of bounds: the split computes every
    # item's bin first, then scatters in item order, so item 5 is reported, as without it,
    # and the bins before it are counted as without it.
    kernel = compiled(HISTOGRAM.replace("b = clamp(b, 0, nbins - 1);", ""), "scatter.xvk")
    assert scatter_splits(kernel, (16, 1, 1)) >= 1
    values = np.full(16, 0.25, np.float32)
    values[[5, 9]] = [7.0, -3.0]
    errors, bins = [], []
    for split in (False, True):
        monkeypatch.setattr(codegen, "SCATTER_SPLIT", split)
        args = {"values": values.copy(), "bins": np.zeros(4, np.int32),
                "seen": np.zeros(16, np.int32), "lo": np.float32(0), "hi": np.float32(1)}
        with pytest.raises(KernelRuntimeError) as err:
            run(kernel, args, grid=1, block=16, backend=JitBackend())
        errors.append(str(err.value))
        bins.append(args["bins"])
    assert errors[1] == errors[0]
    assert errors[1].startswith("scatter.xvk:10: out-of-bounds atomic_add bins[28] by work item "
                                "global_id=(5, 0, 0)"), errors[1]
    np.testing.assert_array_equal(bins[1], bins[0])
    np.testing.assert_array_equal(bins[1], [0, 5, 0, 0])


@pytest.mark.parametrize("before, splits", [
    # Little work before the scatter: storing and reloading the locals would cost more.
    ("i32 b = i & 7;", False),
    # A store before the scatter: a later item's failure would leave it written.
    ("i32 b = i32(floor(x[i] * 7.5 + 0.25)) & 7; out[i] = b;", False),
    # A loop before it: the item loop would not vectorise anyway.
    ("i32 b = 0; for (i32 k = 0; k < i % 3; k++) { b = b + i32(floor(x[i] * 2.5)); } b = b & 7;",
     False),
    ("i32 b = i32(floor(x[i] * 7.5 + 0.25)) & 7;", True),
])
def test_only_a_scatter_after_enough_pure_work_splits(monkeypatch, before, splits):
    kernel = compiled(f"""
kernel k(buffer<f32> x, buffer<i32> bins, buffer<i32> out) {{
    i32 i = global_id.x;
    if (i >= x.length) {{ return; }}
    {before}
    atomic_add(bins[b], 1);
}}
""")
    assert (scatter_splits(kernel, (32, 1, 1)) > 0) == splits
    x = np.random.default_rng(8).random(100).astype(np.float32)
    inputs = {"x": x, "bins": np.zeros(8, np.int32), "out": np.zeros(100, np.int32)}
    (whole_work, whole), (split_work, split) = _split_and_whole(
        monkeypatch, kernel, inputs, (4,), (32,))
    assert split_work == whole_work
    for name in ("bins", "out"):
        np.testing.assert_array_equal(split[name], whole[name], err_msg=name)
    interp = {k: v.copy() for k, v in inputs.items()}
    run(kernel, interp, grid=(4,), block=(32,), backend=InterpBackend())
    np.testing.assert_array_equal(split["bins"], interp["bins"])
