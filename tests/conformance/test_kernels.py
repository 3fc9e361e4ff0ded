"""The conformance suite of the kernel language: every kernel in this folder (and the six of
``examples/kernels/``) run through the public API on every registered backend, in a one-tile and
a many-tiles geometry, and compared with a numpy reference.

How results are compared (and why):

* Integers, bools and anything computed from them: exactly (``assert_array_equal``).
* ``f32`` results of exactly rounded operations (``+ - * /``, ``floor ceil round trunc fract``,
  ``abs sign min max clamp mod %``, conversions, selects) on inputs chosen so that every
  intermediate is exactly representable (small multiples of 1/8, small integers): exactly. IEEE
  rounding of these operations is not a matter of taste, and with exact intermediates neither
  the order of evaluation nor a fused multiply-add can change a bit, so any disagreement is a
  real bug.
* ``f32`` results of short chains of rounded operations (``sqrt``, ``inversesqrt`` as
  ``1 / sqrt``, ``length``, ``normalize``, ``smoothstep``'s division, a division feeding a sum):
  ``F32_ROUNDED`` = rtol 1e-6. Each correctly rounded step contributes at most half an ulp
  (2**-24 ~ 6e-8 relative) and the chains here have at most four steps, so a conforming
  backend stays within about 2.4e-7; 1e-6 (~8 ulp) leaves room for a backend that contracts
  ``a * b + c`` into one rounding and catches any precision loss (f16, or a lost step).
* ``f32`` transcendental functions (``sin cos tan asin acos atan atan2 exp exp2 log log2
  pow``): ``F32_TRANSCENDENTAL`` = rtol 2e-6, atol 1e-6, against the exact value (computed in
  f64 from the same f32 inputs, then rounded to f32). Vectorised f32 libraries (numpy's SIMD
  loops, SLEEF, SVML) promise 1 to 4 ulp; GPU fast paths promise up to 8 (pow); 16 ulp
  (2e-6) covers them. The absolute term covers results that are close to zero (sin near pi,
  log near 1), where relative error is meaningless and the error is a few ulp of the
  arguments' magnitude (~1e-7 here).
* ``f64``: ``F64_ROUNDED`` = rtol 1e-14 for arithmetic chains (a few ulp at 2**-52 ~ 2.2e-16,
  and 1e-8 above what f32 arithmetic would give, so computing in f32 is caught);
  ``F64_TRANSCENDENTAL`` = rtol 1e-12, atol 1e-14 for libm functions (a few ulp, plus the
  error of composing two of them).

Atomics are checked with properties that hold in any order of the work items (the language
leaves the order unspecified, and tiles run concurrently): permutations of old values, one
winner of a compare-exchange, final values that are order independent (sums, min, max).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "kernels"

F32_ROUNDED = {"rtol": 1e-6, "atol": 0.0}
F32_TRANSCENDENTAL = {"rtol": 2e-6, "atol": 1e-6}
F64_ROUNDED = {"rtol": 1e-14, "atol": 0.0}
F64_TRANSCENDENTAL = {"rtol": 1e-12, "atol": 1e-14}

f32, f64, i32, u32 = np.float32, np.float64, np.int32, np.uint32
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def dyadic(r: np.random.Generator, shape, lo: float = -4.0, hi: float = 4.0,
           step: float = 0.125, nonzero: bool = False) -> np.ndarray:
    """Small multiples of ``step`` in [lo, hi]: every sum and product of a few of them is
    exact in f32, so references need no tolerance."""
    values = r.integers(round(lo / step), round(hi / step) + 1, shape) * step
    if nonzero:
        values[values == 0] = step
    return values.astype(f32)


def wrap32(values) -> np.ndarray:
    """Python integers (or int64 arrays) to i32 with two's complement wrap-around."""
    return ((np.asarray(values, dtype=object).astype(np.int64) + 2**31) % 2**32 - 2**31).astype(i32)


def c_div(a: int, b: int) -> int:
    """C integer division: truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def c_rem(a: int, b: int) -> int:
    return a - b * c_div(a, b)


def exact_f32(fn, *args) -> np.ndarray:
    """``fn`` evaluated in f64 on f32 inputs, rounded once to f32: the exact answer."""
    return np.asarray(fn(*(np.asarray(a, f64) for a in args))).astype(f32)


# ---------------------------------------------------------------------------------------------
# control flow and laziness
# ---------------------------------------------------------------------------------------------


def test_guards(run):
    r = rng(1)
    x = dyadic(r, 50, -2, 2, 0.25)
    d = r.integers(-5, 6, 40).astype(i32)
    flags, v, q = (np.full(60, -9, i32), np.full(60, -9, f32), np.full(60, -9, i32))
    out = run("guards.xvk", {"x": x, "d": d, "flags": flags, "v": v, "q": q},
              global_size=70, block=16)
    i = np.arange(60)
    inside = i < 50
    xs = np.where(inside, np.resize(x, 60), 0)
    want_flags = np.where(inside, (xs > 0) * 1 + (xs < 0) * 2, 2)
    want_v = np.where(inside, xs, -1).astype(f32)
    want_q = [c_div(100, int(d[k])) if k < 40 and d[k] != 0 else -7 for k in i]
    assert_array_equal(out["flags"], want_flags)
    assert_array_equal(out["v"], want_v)
    assert_array_equal(out["q"], want_q)


def test_lazy_calls(run):
    n = 50
    out = run("lazy_calls.xvk", {"hits": np.zeros(6, i32), "out": np.zeros(n, i32)},
              global_size=64, block=16)
    i = np.arange(n)
    even = i % 2 == 0
    assert_array_equal(out["hits"], [even.sum(), (~even).sum(), even.sum(), (~even).sum(),
                                     (i % 3 == 1).sum(), (i % 3 == 2).sum()])
    nested = np.choose(i % 3, [5, 4, 5])
    assert_array_equal(out["out"], np.where(even, 0, 1) * 1000 + even * 100 + 10 + nested)


def test_loops_divergent(run):
    n = rng(2).integers(0, 21, 70).astype(i32)
    out = run("loops_divergent.xvk", {"n": n, "out": np.zeros(70, i32)}, global_size=70, block=32)

    def ref(limit: int) -> int:
        total = count = 0
        for k in range(limit):
            if k % 3 == 0:
                continue
            if total > 40:
                break
            total += k
            count += 1
        return total * 1000 + count

    assert_array_equal(out["out"], [ref(int(v)) for v in n])


def test_while_collatz(run):
    start = rng(3).integers(1, 1000, 90).astype(u32)
    start[:3] = [1, 27, 97]
    out = run("while_collatz.xvk", {"start": start, "steps": np.zeros(90, i32)},
              global_size=90, block=32)

    def steps(v: int) -> int:
        s = 0
        while v != 1 and s < 500:
            v = v // 2 if v % 2 == 0 else 3 * v + 1
            s += 1
        return s

    assert_array_equal(out["steps"], [steps(int(v)) for v in start])
    assert out["steps"][1] == 111  # 27 takes the famous 111 steps


def test_nested_loops(run):
    out = run("nested_loops.xvk", {"out": np.zeros(45, i32), "limit": 150},
              global_size=45, block=8)

    def ref(i: int) -> int:
        acc = 0
        for a in range(6):
            if a == i % 6:
                continue
            b = 0
            while True:
                if b > a:
                    break
                if (a + b + i) % 4 != 0:
                    acc += a * 10 + b
                b += 1
            if acc > 150:
                break
        return acc

    assert_array_equal(out["out"], [ref(i) for i in range(45)])


def test_scan_barrier_loop(run):
    x = rng(4).integers(-10, 11, 150).astype(i32)
    out = run("scan_barrier_loop.xvk", {"x": x, "out": np.zeros(150, i32)}, global_size=150)
    padded = np.zeros(192, np.int64)
    padded[:150] = x
    want = np.cumsum(padded.reshape(3, 64), axis=1).ravel()[:150]
    assert_array_equal(out["out"], want)


def test_scan_across_batches(run):
    """Barriers and shared memory when one tile holds more workgroups than one batch of a
    batching backend (interp: 512 groups of 64)."""
    n = 600 * 64 - 5
    x = rng(40).integers(-10, 11, n).astype(i32)
    out = run("scan_barrier_loop.xvk", {"x": x, "out": np.zeros(n, i32)}, global_size=n)
    padded = np.zeros(600 * 64, np.int64)
    padded[:n] = x
    assert_array_equal(out["out"], np.cumsum(padded.reshape(600, 64), axis=1).ravel()[:n])


def test_if_chains(run):
    x = np.arange(-25, 35).astype(i32)
    out = run("if_chains.xvk", {"x": x, "out": np.zeros(60, i32)}, global_size=64, block=16)

    def ref(v: int) -> int:
        if v < -10:
            return 1
        if v < 0:
            return 2 if v % 2 == 0 else 3
        if v == 0:
            return 4
        if v > 10:
            return 5 if v > 20 else 6
        return 7 if v % 2 == 1 else 8

    assert_array_equal(out["out"], [ref(int(v)) for v in x])


def test_early_return(run):
    x = rng(5).integers(-5, 31, 40).astype(i32)
    x[:3] = [-1, 0, 6]
    out = run("early_return.xvk", {"x": x, "out": np.zeros(40, i32), "trace": np.zeros(40, i32)},
              global_size=48, block=16)
    want_out, want_trace = [], []
    for v in map(int, x):
        if v < 0:
            want_out.append(-1)
            want_trace.append(1)
            continue
        acc = 0
        for _ in range(10):
            acc += v
            if acc > 50:
                break
        want_out.append(acc if acc > 50 else -acc)
        want_trace.append(11 if acc > 50 else 111)
    assert_array_equal(out["out"], want_out)
    assert_array_equal(out["trace"], want_trace)


def test_nested_returns(run):
    x = np.concatenate([np.arange(-20, 30), [99, 100, 101, 120]]).astype(i32)
    n = len(x)
    out = run("nested_returns.xvk", {"x": x, "out": np.zeros(n, i32)}, global_size=n, block=16)

    def first_multiple(k: int, m: int) -> int:
        while k % m != 0:
            k += 1
        return k

    def classify(v: int) -> int:
        if v < 0:
            return -first_multiple(-v, 3)
        if v == 0:
            return 0
        if 1 <= v <= 4:
            return first_multiple(v * 10, 7)
        return v + first_multiple(v, 5)

    assert_array_equal(out["out"], [(100 if v > 100 else classify(v) * 2) + 1 for v in map(int, x)])


def test_statements(run):
    out = run("statements.xvk", {"out": np.zeros(20, i32)}, global_size=24, block=8)

    def ref(i: int) -> int:
        total, k = 0, 0
        while k < 10:
            if k % 2 != 0:
                if k > i:
                    break
                total += k
            k += 1
        while True:
            total = int(wrap32(total << 1))
            if total > 100 or total == 0:
                break
        total ^= 7
        total += 1
        total -= 1
        return total * 100 + 3 * 10 + k

    assert_array_equal(out["out"], [ref(i) for i in range(20)])


# ---------------------------------------------------------------------------------------------
# atomics
# ---------------------------------------------------------------------------------------------


def test_atomic_counter(run):
    n = 300
    start_u = 0xFFFFFF00
    out = run("atomic_counter.xvk", {
        "counter": np.array([5], i32), "old_i": np.zeros(n, i32),
        "ucounter": np.array([start_u], u32), "old_u": np.zeros(n, u32),
        "fcounter": np.array([-10.0], f32), "old_f": np.zeros(n, f32),
    }, global_size=n, block=64)
    assert out["counter"][0] == 5 + n
    assert_array_equal(np.sort(out["old_i"]), 5 + np.arange(n))
    assert out["ucounter"][0] == (start_u + 3 * n) % 2**32  # wrapped past zero
    assert_array_equal(np.sort(out["old_u"]), np.sort((start_u + 3 * np.arange(n)) % 2**32))
    assert out["fcounter"][0] == -10.0 + 0.5 * n
    assert_array_equal(np.sort(out["old_f"]), -10.0 + 0.5 * np.arange(n))


def test_atomic_counter_across_batches(run):
    """Enough work items that a backend working in batches (interp: 32768 items) needs
    several for one tile: the counter must not lose or repeat a value at batch edges."""
    n = 100_000
    out = run("atomic_counter.xvk", {
        "counter": np.zeros(1, i32), "old_i": np.zeros(n, i32),
        "ucounter": np.zeros(1, u32), "old_u": np.zeros(n, u32),
        "fcounter": np.zeros(1, f32), "old_f": np.zeros(n, f32),
    }, global_size=n, block=256)
    assert out["counter"][0] == n
    assert_array_equal(np.sort(out["old_i"]), np.arange(n))
    assert_array_equal(np.sort(out["old_u"]), 3 * np.arange(n))


def test_atomic_minmax_sub(run):
    r = rng(6)
    n = 200
    vals = r.choice(np.arange(-1000, 1001), n, replace=False).astype(i32)
    out = run("atomic_minmax_sub.xvk", {
        "vals": vals, "acc": np.array([0, 0, 7], i32), "old_min": np.zeros(n, i32),
        "old_max": np.zeros(n, i32), "old_sub": np.zeros(n, u32),
        "uacc": np.array([0xFFFFFFFF, 0, 10], u32), "facc": np.array([0, 0, 100], f32),
    }, global_size=n, block=32)
    lo = min(0, int(vals.min()))
    assert_array_equal(out["acc"], [lo, max(0, int(vals.max())), 7 - int(vals.sum())])
    flipped = vals.astype(u32) ^ u32(0x80000000)
    assert_array_equal(out["uacc"], [flipped.min(), flipped.max(), (10 - n) % 2**32])
    assert_array_equal(out["facc"], [min(0.0, vals.min() * 0.25), max(0.0, vals.max() * 0.25),
                                     100 - 0.75 * n])
    # What holds for the old values of atomic_min (and max) in every order: each is the
    # initial value or some item's value, none is beyond the final minimum, the first item
    # applied saw the initial value, and the item holding the minimum saw something larger.
    old = out["old_min"]
    assert set(old.tolist()) <= set(vals.tolist()) | {0}
    assert (old >= lo).all() and 0 in old
    assert old[np.argmin(vals)] > lo
    hi = max(0, int(vals.max()))
    old = out["old_max"]
    assert set(old.tolist()) <= set(vals.tolist()) | {0}
    assert (old <= hi).all() and 0 in old
    assert old[np.argmax(vals)] < hi
    # atomic_sub of 1 from every item: the old values are the counter's successive values,
    # wrapping below zero.
    assert_array_equal(np.sort(out["old_sub"]), np.sort((10 - np.arange(n)) % 2**32))


def test_atomic_xchg(run):
    n = 150
    out = run("atomic_xchg.xvk", {"slot": np.array([-5], i32), "olds": np.zeros(n, i32),
                                  "fslot": np.array([-1], f32), "fold": np.zeros(n, f32)},
              global_size=n, block=32)
    assert_array_equal(np.sort(np.append(out["olds"], out["slot"])),
                       np.sort(np.append(np.arange(1, n + 1), -5)))
    assert_array_equal(np.sort(np.append(out["fold"], out["fslot"])),
                       np.sort(np.append(np.arange(n) + 0.5, -1)).astype(f32))


def test_atomic_cas(run):
    n = 70
    out = run("atomic_cas.xvk", {
        "flag": np.zeros(1, i32), "seen_flag": np.full(n, -1, i32), "counter": np.zeros(1, u32),
        "tickets": np.full(n, 999, u32), "tries": np.zeros(n, i32),
    }, global_size=n, block=16)
    winners = np.flatnonzero(out["seen_flag"] == 0)
    assert len(winners) == 1
    assert out["flag"][0] == winners[0] + 1
    others = np.delete(out["seen_flag"], winners)
    assert (others == winners[0] + 1).all()
    assert out["counter"][0] == n
    assert_array_equal(np.sort(out["tickets"]), np.arange(n))
    assert ((out["tries"] >= 1) & (out["tries"] <= n)).all()


def test_stream_compact(run):
    x = dyadic(rng(7), 200, nonzero=True)
    out = run("stream_compact.xvk", {"x": x, "count": np.zeros(1, i32), "kept": np.zeros(200, f32),
                                     "from": np.full(200, -1, i32)},
              global_size=256, block=64)
    count = int(out["count"][0])
    positive = np.flatnonzero(x > 0)
    assert count == len(positive)
    assert_array_equal(np.sort(out["from"][:count]), positive)
    assert_array_equal(out["kept"][:count], x[out["from"][:count]])
    assert (out["from"][count:] == -1).all()


# ---------------------------------------------------------------------------------------------
# integers
# ---------------------------------------------------------------------------------------------


def test_u32_wrap(run):
    r = rng(8)
    a = r.integers(0, 2**32, 77, dtype=np.uint64).astype(u32)
    b = r.integers(0, 2**32, 77, dtype=np.uint64).astype(u32)
    a[:5] = [0, 1, 0xFFFFFFFF, 0x80000000, 12345]
    b[:5] = [0, 0xFFFFFFFF, 2, 0, 7]
    b[10:15] = [1, 2, 3, 0, 0x10000]
    out = run("u32_wrap.xvk", {"a": a, "b": b, "out": np.zeros(8 * 77, u32)},
              global_size=77, block=32)
    A, B = a.astype(np.uint64), b.astype(np.uint64)
    M = 2**32
    safe = np.where(B == 0, 1, B)
    h = np.full(77, 2166136261, np.uint64)
    for k in range(4):
        h = ((h ^ ((A >> np.uint64(8 * k)) & np.uint64(0xFF))) * np.uint64(16777619)) % M
    want = np.stack([(A + B) % M, (A - B) % M, (A * B) % M, np.where(B == 0, 0, A // safe),
                     np.where(B == 0, 0, A % safe), (M - A) % M, (M - 1 - A) % M, h], axis=1)
    assert_array_equal(out["out"].reshape(77, 8), want.astype(u32))


def test_i32_arith(run):
    r = rng(9)
    a = r.integers(-100, 101, 64).astype(i32)
    b = r.integers(-9, 10, 64).astype(i32)
    b[b == 0] = 3
    pairs = [(INT_MIN, -1), (INT_MIN, 1), (INT_MAX, -1), (-7, 2), (7, -2), (-7, -2), (7, 2),
             (INT_MAX, 2), (INT_MIN, 7), (-1, INT_MIN), (INT_MAX, INT_MAX), (65536, 65536)]
    a[: len(pairs)] = [p[0] for p in pairs]
    b[: len(pairs)] = [p[1] for p in pairs]
    out = run("i32_arith.xvk", {"a": a, "b": b, "out": np.zeros(6 * 64, i32)},
              global_size=64, block=16)
    want = [[c_div(x, y), c_rem(x, y), x + y, x - y, x * y, -x]
            for x, y in zip(map(int, a), map(int, b))]
    assert_array_equal(out["out"].reshape(64, 6), wrap32(want))
    assert out["out"][0] == INT_MIN  # INT_MIN / -1 wraps


def test_shifts(run):
    r = rng(10)
    n = 40
    a = r.integers(INT_MIN, INT_MAX, n, dtype=np.int64).astype(i32)
    u = r.integers(0, 2**32, n, dtype=np.uint64).astype(u32)
    s = np.resize(np.array([0, 1, 5, 31, 32, 33, 63, -1, -31, 100], i32), n)
    a[:4] = [-1, INT_MIN, 1, -256]
    out = run("shifts.xvk", {"a": a, "u": u, "s": s, "oi": np.zeros(4 * n, i32),
                             "ou": np.zeros(4 * n, u32)}, global_size=n, block=16)
    amount = (s.astype(np.int64) & 31).astype(np.int64)
    A, U = a.astype(np.int64), u.astype(np.uint64)
    want_i = np.stack([wrap32(A << amount), A >> amount, A >> amount,
                       (1 << (s.astype(np.int64) & 7)) | -16], axis=1)
    M = 2**32
    want_u = np.stack([(U << amount.astype(np.uint64)) % M, U >> amount.astype(np.uint64),
                       (U << amount.astype(np.uint64)) % M, np.ones(n, np.uint64)], axis=1)
    assert_array_equal(out["oi"].reshape(n, 4), want_i.astype(i32))
    assert_array_equal(out["ou"].reshape(n, 4), want_u.astype(u32))


def test_bitwise(run):
    r = rng(11)
    n = 33
    a = r.integers(INT_MIN, INT_MAX, n, dtype=np.int64).astype(i32)
    b = r.integers(INT_MIN, INT_MAX, n, dtype=np.int64).astype(i32)
    ua = r.integers(0, 2**32, n, dtype=np.uint64).astype(u32)
    ub = r.integers(0, 2**32, n, dtype=np.uint64).astype(u32)
    out = run("bitwise.xvk", {"a": a, "b": b, "ua": ua, "ub": ub, "oi": np.zeros(5 * n, i32),
                              "ou": np.zeros(4 * n, u32), "ob": np.zeros(4 * n, bool)},
              global_size=n, block=8)
    z = ((a & 0x0FF0) | (b & 3)) ^ -1
    assert_array_equal(out["oi"].reshape(n, 5), np.stack([a & b, a | b, a ^ b, ~a, z], axis=1))
    assert_array_equal(out["ou"].reshape(n, 4),
                       np.stack([ua & ub, ua | ub, ua ^ ub, ~ua ^ u32(0xFFFF0000)], axis=1))
    s, t = a > 0, b > 0
    assert_array_equal(out["ob"].reshape(n, 4), np.stack([s & t, s | t, s ^ t, ~s], axis=1))


def test_compound_assign(run):
    r = rng(12)
    n = 29
    bi = r.integers(-30, 31, n).astype(i32)
    bu = r.integers(0, 5, n).astype(u32)
    bf = dyadic(r, n, -8, 8)
    img = r.integers(0, 256, (2, n)).astype(i32)
    bv = dyadic(r, (n, 4))
    out = run("compound_assign.xvk", {"bi": bi, "bu": bu, "bf": bf, "img": img, "bv": bv,
                                      "calls": np.zeros(n, i32), "out": np.zeros(3 * n, i32)},
              global_size=n)
    want = []
    for i in range(n):
        v = i + 100 + 7 - 3
        v = (v * 5) // 2 % 97
        v = ((v & 0x7E) | 0x100) ^ 0x55
        v = (v << 3) >> 1
        v = v + 1 - 1 - 1
        want.append([v, i * 3 - 1, (i << 2) ^ 1])
    assert_array_equal(out["out"].reshape(n, 3), want)
    assert_array_equal(out["calls"], np.ones(n))  # the target's index was evaluated once
    assert_array_equal(out["bi"], [c_rem(int(v) + 10, 7) for v in bi])
    assert_array_equal(out["bu"], ((bu.astype(np.int64) - 1) % 2**32 >> 1) | 0x80000000)
    assert_array_equal(out["bf"], np.fmod(bf * f32(2.5) / f32(4) - f32(0.125), f32(3)))
    row1 = img[1] ^ 0xF0
    assert_array_equal(out["img"], np.stack([img[0] & row1, row1]))
    want_bv = bv.copy()
    want_bv[:, 3] *= 2
    want_bv[:, 0] += 2 + np.arange(n)
    want_bv[:, 2] -= 3.5
    assert_array_equal(out["bv"], want_bv)


def test_casts(run):
    f = np.array([1.7, -1.7, 0.0, 0.5, -0.5, 123456.8, -2.0e9, 2.0e9, 3.0e9, 1.0e-3, 16777217.0,
                  -1.0], f32)
    n = np.array([0, 1, -1, INT_MAX, INT_MIN, 7, -7, 16777217, 100, 3, 5, -2], i32)
    m = len(f)
    out = run("casts.xvk", {"f": f, "n": n, "oi": np.zeros(4 * m, i32), "ou": np.zeros(3 * m, u32),
                            "of": np.zeros(3 * m, f32), "od": np.zeros(m, f64)},
              global_size=m, block=8)
    # Saturation is test_casts_saturate's business: here only the values in range.
    trunc = np.trunc(f.astype(f64))
    in_i32 = (trunc >= INT_MIN) & (trunc <= INT_MAX)
    twice = np.trunc(f.astype(f64) * 2)
    in_i32_twice = (twice >= INT_MIN) & (twice <= INT_MAX)
    in_u32 = (trunc >= 0) & (trunc < 2**32)
    assert in_i32.sum() == m - 1 and in_u32.sum() == 9
    oi = out["oi"].reshape(m, 4)
    assert_array_equal(oi[in_i32, 0], trunc[in_i32].astype(i32))
    assert_array_equal(oi[:, 1], wrap32(n.astype(np.int64) * 3))
    assert_array_equal(oi[:, 2], (n != 0) * 1 + (f != 0) * 2)
    assert_array_equal(oi[in_i32_twice, 3], twice[in_i32_twice].astype(i32))
    assert_array_equal(out["ou"].reshape(m, 3)[in_u32, 0], trunc[in_u32].astype(u32))
    assert_array_equal(out["ou"].reshape(m, 3)[:, 1], n.view(u32))
    assert_array_equal(out["ou"].reshape(m, 3)[:, 2], n > 0)
    assert_array_equal(out["of"].reshape(m, 3), np.stack(
        [n.astype(f32), n.view(u32).astype(f32), (n > 0).astype(f32)], axis=1))
    assert_array_equal(out["od"], f.astype(f64) + n.astype(f64))
    assert out["of"][3 * 7] == 16777216.0  # 2**24 + 1 rounds to nearest even in f32


def test_casts_saturate(run):
    """Out-of-range and NaN conversions, as the interp backend defines them (saturate at the
    type's range, NaN to 0): every backend must agree with the reference interpreter."""
    f = np.array([3.0e9, -3.0e9, np.inf, -np.inf, np.nan, 5.0e9, -1.5, 4.5e9], f32)
    m = len(f)
    out = run("casts.xvk", {"f": f, "n": np.zeros(m, i32), "oi": np.zeros(4 * m, i32),
                            "ou": np.zeros(3 * m, u32), "of": np.zeros(3 * m, f32),
                            "od": np.zeros(m, f64)}, global_size=m, block=8)
    assert_array_equal(out["oi"].reshape(m, 4)[:, 0],
                       [INT_MAX, INT_MIN, INT_MAX, INT_MIN, 0, INT_MAX, -1, INT_MAX])
    assert_array_equal(out["ou"].reshape(m, 3)[:, 0],
                       [3000000000, 0, 2**32 - 1, 0, 0, 2**32 - 1, 0, 2**32 - 1])
    assert_array_equal(out["oi"].reshape(m, 4)[:, 2], [2] * m)  # NaN != 0.0 is true


def test_literals(run):
    out = run("literals.xvk", {"oi": np.zeros(7, i32), "ou": np.zeros(5, u32),
                               "of": np.zeros(8, f32)}, global_size=4, block=4)
    assert_array_equal(out["oi"], [271, 0, -3, -1, INT_MAX, INT_MIN, 11])
    assert_array_equal(out["ou"], [2**32 - 1, 2**32 - 1, 2**32 - 1, 7, 4000000000])
    assert_array_equal(out["of"], np.array([1.0, 0.5, 2e-3, 150.0, 0.5, 1.5, 3.0, 100.0], f32))


def test_scalar_params(run):
    out = run("scalar_params.xvk", {"out": np.zeros(20, f64), "b": True, "n": -3,
                                    "u": 4000000000, "f": 1.25, "d": 0.1},
              global_size=20, block=8)
    want = [f64(-3 + i) + f64(4000000000) * 2.0 + f64(2.5) + 0.1 + 0.5 for i in range(20)]
    assert_array_equal(out["out"], want)


def saturate(x: float, lo: int, hi: int) -> int:
    """Float to integer as the interp backend defines it: truncate, saturate, NaN to 0."""
    if math.isnan(x):
        return 0
    return int(min(max(math.trunc(x) if math.isfinite(x) else x, lo), hi))


@pytest.mark.parametrize("a, b, s, u, v, x", [
    (INT_MIN, -1, 33, 0xFFFFFFFF, 2, 0.49999997),
    (7, -2, -1, 1, 0xFFFFFFFF, 8388609.0),
    (3, 2, 32, 5, 6, 3.0e9),
    (-8, 3, 35, 7, 0, math.nan),
    (-7, 2, 0, 0x80000000, 3, -2.5),
], ids=["int-min", "shift-minus-one", "saturate", "nan", "halves"])
def test_uniform_ops(run, a, b, s, u, v, x):
    out = run("uniform_ops.xvk", {
        "bi": np.array([a, b, s], i32), "bu": np.array([u, v], u32), "bf": np.array([x], f32),
        "oi": np.zeros(18, i32), "ou": np.zeros(14, u32), "of": np.zeros(8, f32),
        "a": a, "b": b, "s": s, "u": u, "v": v, "x": x,
    }, global_size=4, block=4)
    xf = float(f32(x))
    amount = s & 31
    M = 2**32
    want_i = wrap32([a << amount, a >> amount, c_div(a, b), c_rem(a, b), a * a, -a,
                     saturate(xf, INT_MIN, INT_MAX), a + b, min(a, b) - max(a, s)])
    want_u = [(u << amount) % M, u >> amount, (u - v) % M, (u * v) % M, saturate(xf, 0, M - 1),
              (a % M) // max(v, 1), ~u % M]
    want_f = np.array([round_half_away(np.array([xf], f32))[0], u, a,
                       math.floor(xf) - math.trunc(xf) if math.isfinite(xf) else math.nan], f32)
    for row, where in enumerate(["parameters", "buffers"]):
        assert_array_equal(out["oi"][9 * row: 9 * row + 9], want_i, err_msg=where)
        assert_array_equal(out["ou"][7 * row: 7 * row + 7], want_u, err_msg=where)
        assert_array_equal(out["of"][4 * row: 4 * row + 4], want_f, err_msg=where)


def test_float_specials(run):
    x = np.array([0.0, -0.0, -1.0, np.inf, -np.inf, np.nan, 2.0, -1e-8, 0.75], f32)
    n = len(x)
    out = run("float_specials.xvk", {"x": x, "of": np.zeros(8 * n, f32),
                                     "ob": np.zeros(4 * n, bool)}, global_size=n, block=4)
    with np.errstate(all="ignore"):
        want = np.stack([x / (x - x), np.sqrt(x), np.log(x), np.minimum(x, f32(1)),
                         np.maximum(f32(1), x), np.sign(x), x - np.floor(x),
                         np.minimum(np.maximum(x, f32(0)), f32(1))], 1)
    assert_array_equal(out["of"].reshape(n, 8), want)
    assert_array_equal(out["ob"].reshape(n, 4), np.stack([x == x, x != x, x < 1, ~(x >= 1)], 1))
    assert out["of"][8 * 7 + 6] == 1.0  # fract(-1e-8) is x - floor(x), which rounds to 1


def test_calls_in_conditions(run):
    n = 6
    out = run("calls_in_conditions.xvk", {"bv": np.zeros((n, 4), f32),
                                          "img": np.ones((1, n, 4), f32),
                                          "out": np.zeros(n, i32), "calls": np.zeros(n, i32)},
              global_size=8)

    def next_multiple(k: int, m: int) -> int:
        return -(-k // m) * m

    want = []
    for i in range(n):
        total = 0
        k = 0
        while next_multiple(k, 3) < 10 + i:
            if k != 4:
                total += k
            k += 1
        lazy = next_multiple(i, 5) if i % 2 == 0 else -5
        want.append(total * 1000 + 30 * 10 + lazy)
    assert_array_equal(out["out"], want)
    assert_array_equal(out["calls"], np.where(np.arange(n) % 2 == 0, 4, 5))
    lid = np.arange(n) % 4
    assert_array_equal(out["bv"], np.stack([3 - lid, np.full(n, 2), np.zeros(n), np.zeros(n)], 1))
    assert_array_equal(out["img"][0], np.stack([np.full(n, 7), np.full(n, 8), np.arange(n),
                                                np.full(n, 2)], 1))


# ---------------------------------------------------------------------------------------------
# vectors and math
# ---------------------------------------------------------------------------------------------


def test_vec_swizzle(run):
    n = 21
    c = dyadic(rng(13), (n, 4))
    out = run("vec_swizzle.xvk", {"inp": c, "out": np.zeros((4 * n, 4), f32)},
              global_size=n, block=8)
    x, y, z, w = c.T
    want = np.stack([
        np.stack([y, x, w, x], 1),
        np.stack([z, y, x, z + x], 1),
        np.stack([x, -y, w, y], 1),
        np.stack([w, z, w, w], 1),
    ], axis=1).reshape(4 * n, 4)
    assert_array_equal(out["out"], want)


def test_vec_ops(run):
    r = rng(14)
    n = 24
    a = dyadic(r, (n, 4), nonzero=True)
    b = dyadic(r, (n, 4), nonzero=True)
    b[0] = a[0]
    b[1, :2] = a[1, :2]
    b[2, 2:] = a[2, 2:]
    out = run("vec_ops.xvk", {"a": a, "b": b, "out": np.zeros((8 * n, 4), f32),
                              "eq": np.zeros(n, i32)}, global_size=n, block=16)
    got = out["out"].reshape(n, 8, 4)
    w = ((a[:, :3] / f32(4) + b[:, :3]) * f32(0.5) - f32(1)) / np.array([2, 4, 8], f32)
    exact = [a + b, a - b, a * b, a / b, f32(2) * a - b * f32(0.5) + f32(1),
             np.concatenate([w, np.zeros((n, 1), f32)], 1),
             np.where((a[:, 0] > b[:, 0])[:, None], a, b)]
    for k, want in zip([0, 1, 2, 3, 4, 6, 7], exact):
        assert_array_equal(got[:, k], want, err_msg=f"row {k}")
    assert_allclose(got[:, 5], -a + f32(8) / b, **F32_ROUNDED)
    want_eq = ((a == b).all(1) * 1 + (a[:, :2] != b[:, :2]).any(1) * 2
               + (a[:, 2:] == b[:, 2:]).all(1) * 4)
    assert_array_equal(out["eq"], want_eq)
    assert out["eq"][0] == 5 and out["eq"][1] & 2 == 0 and out["eq"][2] & 4


def round_half_away(x: np.ndarray) -> np.ndarray:
    return (np.sign(x) * np.floor(np.abs(x.astype(f64)) + 0.5)).astype(x.dtype)


def test_math_basic(run):
    r = rng(15)
    n = 40
    x = dyadic(r, n, -4, 4)
    y = dyadic(r, n, -3, 3, 0.25, nonzero=True)
    x[:8] = [2.5, -2.5, 0.5, -0.5, 1.5, 0.0, -3.75, 3.0]
    ii = r.integers(-20, 21, n).astype(i32)
    ii[:4] = [0, -1, INT_MAX, 2**31 - 100]
    out = run("math_basic.xvk", {"x": x, "y": y, "of": np.zeros(13 * n, f32), "ii": ii,
                                 "oi": np.zeros(5 * n, i32), "ou": np.zeros(4 * n, u32)},
              global_size=n, block=16)
    want_f = np.stack([
        np.abs(x), np.sign(x), np.floor(x), np.ceil(x), x - np.floor(x), round_half_away(x),
        np.trunc(x), np.minimum(x, y), np.maximum(x, y), np.clip(x, -1.5, 2.25),
        x - y * np.floor(x / y), np.fmod(x, y),
        np.minimum(np.maximum(x, np.minimum(y, 0)), np.maximum(y, 0)),
    ], axis=1)
    assert_array_equal(out["of"].reshape(n, 13), want_f)
    assert_array_equal(out["of"].reshape(n, 13)[:2, 5], [3.0, -3.0])  # half away from zero
    assert_array_equal(out["oi"].reshape(n, 5), np.stack(
        [np.abs(ii), np.sign(ii), np.minimum(ii, 3), np.maximum(ii, -3), np.clip(ii, -10, 10)],
        axis=1))
    uu = ii.view(u32).astype(np.int64)
    assert_array_equal(out["ou"].reshape(n, 4), np.stack(
        [np.minimum(uu, 100), np.maximum(uu, 100), np.clip(uu, 5, 0x80000000),
         (uu + (uu != 0)) % 2**32], axis=1))


def test_math_transcendental(run):
    r = rng(16)
    n = 50
    pos = r.uniform(0.1, 10, n).astype(f32)
    sgn = r.uniform(-3, 3, n).astype(f32)
    unit = r.uniform(-0.99, 0.99, n).astype(f32)
    sgn[:2] = [np.float32(math.pi), 0]
    out = run("math_transcendental.xvk", {"pos": pos, "sgn": sgn, "unit": unit,
                                          "out": np.zeros(15 * n, f32)},
              global_size=n, block=16)
    p, s, u = (v.astype(f64) for v in (pos, sgn, unit))
    want = np.stack([np.sqrt(p), 1 / np.sqrt(p), p ** (s * 0.5), np.exp(s), np.exp2(s),
                     np.log(p), np.log2(p), np.sin(s), np.cos(s), np.tan(u), np.arcsin(u),
                     np.arccos(u), np.arctan(s), np.arctan2(s, u), np.arctan2(u, s)],
                    axis=1).astype(f32)
    got = out["out"].reshape(n, 15)
    assert_allclose(got[:, 0], want[:, 0], rtol=0.6e-7)  # sqrt is correctly rounded
    assert_allclose(got[:, 1], want[:, 1], **F32_ROUNDED)
    for k in range(2, 15):
        assert_allclose(got[:, k], want[:, k], **F32_TRANSCENDENTAL, err_msg=f"column {k}")


def test_math_interp(run):
    r = rng(17)
    n = 30
    a = dyadic(r, (n, 4))
    b = dyadic(r, (n, 4))
    t = (r.integers(0, 17, n) / 16).astype(f32)
    out = run("math_interp.xvk", {"a": a, "b": b, "t": t, "out": np.zeros((6 * n, 4), f32)},
              global_size=n, block=8)
    got = out["out"].reshape(n, 6, 4)
    s = t[:, None]

    def smooth(e0, e1, x):
        k = np.clip((x - e0) / (e1 - e0), 0, 1)
        return k * k * (3 - 2 * k)

    tv = np.stack([t, 1 - t, np.zeros(n, f32), np.ones(n, f32)], 1)
    assert_array_equal(got[:, 0], a + (b - a) * s)
    assert_array_equal(got[:, 1], a + (b - a) * tv)
    assert_array_equal(got[:, 2], np.where(a < 0.5, 0, 1))
    assert_array_equal(got[:, 3], np.where(a < b, 0, 1))
    assert_allclose(got[:, 4], smooth(f32(-1), f32(2), a), rtol=1e-6, atol=1e-7)
    last = np.stack([a[:, 0] + (b[:, 0] - a[:, 0]) * t,
                     np.where(f32(0.25) < t, 0, 1),  # step(s, 0.25) is 0.25 < s ? 0 : 1
                     smooth(f32(0), f32(1), t), smooth(a[:, 1], a[:, 1] + 2, b[:, 1])], 1)
    assert_allclose(got[:, 5], last, rtol=1e-6, atol=1e-7)


def test_math_geometry(run):
    r = rng(18)
    n = 26
    a = dyadic(r, (n, 4), -4, 4, 0.25, nonzero=True)
    b = dyadic(r, (n, 4), -4, 4, 0.25, nonzero=True)
    out = run("math_geometry.xvk", {"a": a, "b": b, "out": np.zeros(8 * n, f32),
                                    "vout": np.zeros((3 * n, 4), f32)},
              global_size=n, block=8)
    got = out["out"].reshape(n, 8)
    A, B = a.astype(f64), b.astype(f64)
    dot = (A * B).sum(1)
    assert_array_equal(got[:, 0], dot)  # every product and sum is exact
    assert_array_equal(got[:, 1], (A[:, :3] * B[:, :3]).sum(1))
    assert_array_equal(got[:, 2], (A[:, :2] * B[:, 2:]).sum(1))
    assert_array_equal(got[:, 7], A[:, 0] * B[:, 0])
    rounded = np.stack([np.linalg.norm(A, axis=1), np.linalg.norm(B[:, :2], axis=1),
                        np.linalg.norm(A[:, :3] - B[:, :3], axis=1),
                        np.abs(A[:, 3] - B[:, 3]) + np.abs(A[:, 2])], 1)
    assert_allclose(got[:, 3:7], rounded, **F32_ROUNDED)
    vout = out["vout"].reshape(n, 3, 4)
    assert_array_equal(vout[:, 0, :3], np.cross(A[:, :3], B[:, :3]))
    assert_array_equal(vout[:, 0, 3], 0)
    assert_allclose(vout[:, 1], A / np.linalg.norm(A, axis=1, keepdims=True), **F32_ROUNDED)
    assert_allclose(vout[:, 2, :2], B[:, :2] / np.linalg.norm(B[:, :2], axis=1, keepdims=True),
                    **F32_ROUNDED)
    assert_allclose(vout[:, 2, 2:], B[:, 2:] / np.linalg.norm(B[:, 2:], axis=1, keepdims=True),
                    **F32_ROUNDED)


def test_math_vector(run):
    r = rng(19)
    n = 30
    a = dyadic(r, (n, 4), -3, 3, 0.25)
    b = dyadic(r, (n, 4), -2.75, 2.75, 0.25)
    out = run("math_vector.xvk", {"a": a, "b": b, "out": np.zeros((12 * n, 4), f32)},
              global_size=n, block=16)
    got = out["out"].reshape(n, 12, 4)

    def mod(x, y):
        return x - y * np.floor(x / y)

    exact = [
        np.abs(a),
        np.sign(a) + np.floor(b),
        np.concatenate([np.ceil(a[:, :3]), a[:, 3:] - np.floor(a[:, 3:])], 1),
        np.clip(a, -1, 1),
        np.minimum(np.maximum(a, b), b + 1),
        np.minimum(a, f32(0.5)) + np.maximum(a, b),
        mod(a, f32(0.75)) + np.concatenate([mod(a[:, :2], b[:, :2] + 3),
                                            round_half_away(a[:, 2:])], 1),
    ]
    for k, want in enumerate(exact):
        assert_array_equal(got[:, k], want, err_msg=f"row {k}")
    zero = np.zeros((n, 1))
    assert_allclose(got[:, 7], np.sqrt(np.abs(a)) + np.concatenate([np.trunc(b[:, :3]), zero], 1),
                    **F32_ROUNDED)
    A, B = a.astype(f64), b.astype(f64)
    transcendental = [
        np.concatenate([np.sin(A[:, :2]), np.cos(B[:, :2])], 1),
        np.exp2(A) + np.concatenate([np.log2(np.abs(B[:, :3]) + 1), zero], 1),
        (np.abs(A) + 0.5) ** B + 1 / np.sqrt(np.abs(B) + 1),
        np.concatenate([np.arctan2(A[:, :2], B[:, :2]), np.exp(A[:, 2:3]),
                        np.log(np.abs(B[:, 3:]) + 1)], 1),
    ]
    for k, want in enumerate(transcendental, start=8):
        assert_allclose(got[:, k], want.astype(f32), **F32_TRANSCENDENTAL, err_msg=f"row {k}")


def test_f64_math(run):
    r = rng(20)
    n = 30
    x = r.uniform(-5, 5, n)
    x[:3] = [0.0, 1e-300, -4.5]
    k = 1.75
    out = run("f64_math.xvk", {"x": x, "out": np.zeros(10 * n, f64), "narrow": np.zeros(n, f32),
                               "k": k}, global_size=n, block=8)
    got = out["out"].reshape(n, 10)
    assert_allclose(got[:, 0], x * k + 0.1 + 0.2, **F64_ROUNDED)
    assert_array_equal(got[:, 1], x / 3.0)
    assert_array_equal(got[:, 2], np.sqrt(np.abs(x)))
    assert_array_equal(got[:, 6], np.trunc(x) + np.floor(x) + (x - np.floor(x)))
    assert_allclose(got[:, 7], x + (k - x) * 0.25 + np.clip(x, -1, 1), **F64_ROUNDED)
    assert_array_equal(got[:, 9], x.astype(f32).astype(f64))
    assert_array_equal(out["narrow"], (x * 1.0e-3).astype(f32))
    libm = np.stack([np.exp(x / 8.0), np.sin(x) + np.cos(x), (np.abs(x) + 1.0) ** 1.5,
                     np.arctan2(x, k) + np.log2(np.abs(x) + 1.0)], 1)
    assert_allclose(got[:, [3, 4, 5, 8]], libm, **F64_TRANSCENDENTAL)


def test_bools(run):
    r = rng(21)
    n = 30
    a = r.random(n) < 0.5
    nn = r.integers(-2, 3, n).astype(i32)
    mask = r.random((4, 8)) < 0.5
    out = run("bools.xvk", {"a": a, "n": nn, "mask": mask, "ob": np.zeros(6 * n, bool),
                            "oi": np.zeros(n, i32), "flip": True}, global_size=n, block=8)
    p, q = a, nn != 0
    rr = mask.ravel()[:n]
    assert_array_equal(out["ob"].reshape(n, 6),
                       np.stack([p & q, p | q, ~p, (p == q) == rr, ~(p ^ rr), q], 1))  # p != true
    assert_array_equal(out["oi"], p * 1 + q * 2 + rr * 4 + 8 + (q + 1) * 16)
    want_mask = mask.copy().ravel()
    want_mask[:n] = a
    assert_array_equal(out["mask"], want_mask.reshape(4, 8))


# ---------------------------------------------------------------------------------------------
# memory: functions, constants, shared and private arrays, images, vec4
# ---------------------------------------------------------------------------------------------


def test_func_buffers(run):
    r = rng(22)
    n = 40
    src = dyadic(r, n)
    dst = dyadic(r, n)
    out = run("func_buffers.xvk", {"src": src, "dst": dst, "img": np.zeros((6, 8), i32),
                                   "out": np.zeros(n, i32)}, global_size=n, block=16)
    i = np.arange(n)
    neighbours = src[np.maximum(i - 1, 0)] + src[np.minimum(i + 1, n - 1)]
    assert_array_equal(out["dst"], dst + (src * f32(2) + neighbours))
    img = np.zeros(48, i32)
    img[:n] = 100 + i
    assert_array_equal(out["img"], img.reshape(6, 8))
    assert_array_equal(out["out"], i + (i + 100) * 1000 + 100 + i)


def test_const_globals(run):
    n = 21
    out = run("const_globals.xvk", {"of": np.zeros(n, f32), "oi": np.zeros(n, i32),
                                    "ou": np.zeros(n, u32), "od": np.zeros(n, f64)},
              global_size=n)
    i = np.arange(n)
    primes = np.array([2, 3, 5, 7, 11, 13])
    m = np.array([[0.5, -1.0, 2.0], [4.0, 0.25, -8.0]], f32)
    u = np.array([0xFFFFFFFF, 1, 0x80000000], np.int64)
    assert_array_equal(out["oi"], primes[i % 6] + 2 * i + 16)
    assert_array_equal(out["of"], m[i % 2, i % 3] * f32(0.25))
    assert_array_equal(out["ou"], u[i % 3] & (31 + i))
    assert_array_equal(out["od"], (1.0e10 + 0.5) * i)
    assert out["od"][1] == 10000000000.5  # an f64 constant keeps its f64 value


def test_shared_transpose(run):
    rows, cols = 13, 21
    a = np.arange(rows * cols, dtype=f32)
    out = run("shared_transpose.xvk", {"a": a, "b": np.zeros(rows * cols, f32), "rows": rows,
                                       "cols": cols}, global_size=(cols, rows))
    assert_array_equal(out["b"].reshape(cols, rows), a.reshape(rows, cols).T)


def test_shared_reverse(run):
    x = np.arange(75, dtype=i32) * 3
    out = run("shared_reverse.xvk", {"x": x, "out": np.zeros(75, i32)}, global_size=75)
    padded = np.full(96, -1)
    padded[:75] = x
    assert_array_equal(out["out"], padded.reshape(3, 32)[:, ::-1].ravel()[:75])


def test_private_arrays(run):
    m = 13
    x = rng(23).integers(-50, 50, 8 * m).astype(i32)
    out = run("private_arrays.xvk", {"x": x, "sorted": np.zeros(8 * m, i32),
                                     "out": np.zeros(4 * m, i32)}, global_size=16, block=8)
    v = np.sort(x.reshape(m, 8), axis=1)
    assert_array_equal(out["sorted"], v.ravel())
    i = np.arange(m)
    grid = np.array([[[rr * 10 + c + v[k, (rr + c) % 8] for c in range(4)] for rr in range(3)]
                     for k in range(m)])
    pts_y = np.array([[2, 4, 6]] * m)
    pts_y[i, i % 3] = i
    want = np.stack([grid[:, 2, 3] + grid[i, i % 3, i % 4], pts_y.sum(1) + 3, 7 + i % 3,
                     np.full(m, 42)], 1)
    assert_array_equal(out["out"].reshape(m, 4), want)


def builtin_reference(global_size, block, linear_height: bool = True) -> np.ndarray:
    """What ``put`` writes: 15 values per work item at its linear global index."""
    grid = [-(-g // b) for g, b in zip(global_size, block)]
    w, h, d = (grid[k] * block[k] for k in range(3))
    out = np.zeros((w * h * d if linear_height else w, 15), i32)
    for z in range(d):
        for y in range(h):
            for x in range(w):
                g = (x, y, z)
                n = x + w * (y + (h if linear_height else 1) * z)
                out[n] = ([*g] + [g[k] % block[k] for k in range(3)]
                          + [g[k] // block[k] for k in range(3)] + list(block) + grid)
    return out.ravel()


@pytest.mark.parametrize("name, global_size, block", [
    ("ids3", (10, 3, 4), (4, 2, 2)),
    ("ids2", (20, 7, 1), (8, 4, 1)),
    ("ids1", (40, 1, 1), (16, 1, 1)),
], ids=["3d", "2d", "1d"])
def test_builtins(run, name, global_size, block):
    want = builtin_reference(global_size, block)
    out = run("builtins.xvk", {"out": np.full(len(want), -1, i32)}, name=name,
              global_size=global_size, block=None if name != "ids1" else block[0])
    assert_array_equal(out["out"], want)


def test_grid_edges(run):
    img = np.full((7, 13), -1, i32)
    out = run("grid_edges.xvk", {"img": img, "outside": np.zeros(1, i32)}, global_size=(13, 7),
              block=(4, 4))
    y, x = np.mgrid[0:7, 0:13]
    assert_array_equal(out["img"], x * 1000 + y)
    assert out["outside"][0] == 16 * 8 - 13 * 7


def test_image_clamp(run):
    src = rng(24).integers(0, 10, (13, 19)).astype(f32)
    out = run("image_clamp.xvk", {"src": src, "blur": np.zeros_like(src),
                                  "grad": np.zeros_like(src)}, global_size=(19, 13))
    p = np.pad(src, 3, mode="edge")
    box = sum(p[3 + dy: 16 + dy, 3 + dx: 22 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    assert_array_equal(out["blur"], box / f32(9))
    assert_array_equal(out["grad"], p[3:16, 6:25] - p[1:14, 3:22])


def test_image_vec4(run):
    h, w = 9, 11
    rgba = dyadic(rng(25), (h, w, 4), 0, 4)
    out = run("image_vec4.xvk", {"rgba": rgba, "gray": np.zeros((h, w), f32),
                                 "out": np.zeros((h, w, 4), f32)}, global_size=(w, h))
    assert_array_equal(out["gray"], rgba[..., 0] * 0.25 + rgba[..., 1] * 0.5 + rgba[..., 2] * 0.125)
    y, x = np.mgrid[0:h, 0:w]
    want = np.stack([rgba[..., 3], x + y * 0.5, rgba[..., 1], -2 * rgba[..., 0]], -1)
    assert_array_equal(out["out"], want)
    want_rgba = rgba.copy()
    want_rgba[..., 0] = rgba[:, ::-1, 2]
    assert_array_equal(out["rgba"], want_rgba)


def test_buffer_vec4(run):
    n = 37
    px = dyadic(rng(26), (n, 4))
    out = run("buffer_vec4.xvk", {"pixels": px, "out": np.zeros((n, 4), f32),
                                  "lanes": np.zeros(2 * n, f32)}, global_size=n, block=16)
    assert_array_equal(out["out"], px[:, [3, 1, 2, 0]] + [0, 0, 0, n])
    lanes = np.stack([px[:, 0] + px[:, 1], px[:, 2] * px[:, 3]], 1)
    assert_array_equal(out["lanes"], lanes.ravel())
    want = px.copy()
    want[:, 3] *= 2
    want[:, 1] = px[:, 0]
    assert_array_equal(out["pixels"], want)


def test_barrier_return(run):
    x = np.arange(40, dtype=i32) + 1
    out = run("barrier_return.xvk", {"x": x, "out": np.zeros(40, i32)}, global_size=40)
    want = []
    for gid in range(40):
        g, lid = divmod(gid, 16)
        live = min(16, 40 - 16 * g)
        want.append(2 * x[g * 16 + (lid + 1) % live] + 2 * x[gid])
    assert_array_equal(out["out"], want)


# ---------------------------------------------------------------------------------------------
# the six kernels of examples/kernels/ (issue 3), referenced where they live
# ---------------------------------------------------------------------------------------------


def test_example_saxpy(run):
    r = rng(30)
    n = 1000
    x, y = r.random(n, dtype=f32), r.random(n, dtype=f32)
    out = run(str(EXAMPLES / "saxpy.xvk"), {"a": 3.0, "x": x, "y": y}, global_size=n, block=256)
    assert_array_equal(out["y"], f32(3) * x + y)  # one multiply and one add, each rounded
    assert_array_equal(out["x"], x)


def test_example_gauss5(run):
    src = rng(31).integers(0, 256, (45, 70)).astype(f32)  # integers: every step exact
    out = run(str(EXAMPLES / "gauss5.xvk"), {"src": src, "dst": np.zeros_like(src)},
              global_size=(70, 45))
    w = np.array([1, 4, 6, 4, 1], f64)
    p = np.pad(src.astype(f64), 2, mode="edge")
    want = sum(w[dy] * w[dx] * p[dy: dy + 45, dx: dx + 70] for dy in range(5) for dx in range(5))
    assert_array_equal(out["dst"], (want / 256).astype(f32))


def test_example_matmul_tiled(run):
    r = rng(32)
    n = 32
    a = r.integers(-3, 4, (n, n)).astype(f32)
    b = r.integers(-3, 4, (n, n)).astype(f32)
    out = run(str(EXAMPLES / "matmul_tiled.xvk"), {"a": a.ravel(), "b": b.ravel(),
                                                    "c": np.zeros(n * n, f32), "n": n},
              global_size=(n, n))
    assert_array_equal(out["c"].reshape(n, n), a @ b)


def mandelbrot_reference(w: int, h: int, cx: float, cy: float, scale: float,
                         max_iter: int) -> np.ndarray:
    """The kernel's f32 operations in the kernel's order, vectorised over pixels; the
    palette's cos in f64 (rounded once)."""
    py, px = np.mgrid[0:h, 0:w]
    sx, sy = f32(w), f32(h)
    c_x = f32(cx) + f32(scale) * (px.astype(f32) - f32(0.5) * sx) / sy
    c_y = f32(cy) + f32(scale) * (py.astype(f32) - f32(0.5) * sy) / sy
    zx = np.zeros((h, w), f32)
    zy = np.zeros((h, w), f32)
    count = np.zeros((h, w), i32)
    active = np.ones((h, w), bool)
    for _ in range(max_iter):
        nx = zx * zx - zy * zy + c_x
        ny = f32(2) * zx * zy + c_y
        zx, zy = np.where(active, nx, zx), np.where(active, ny, zy)
        active &= ~(zx * zx + zy * zy > f32(4))
        count += active
    t = count.astype(f32) / f32(max_iter)
    out = np.zeros((h, w, 4), f32)
    for lane, offset in enumerate((0.0, 0.33, 0.67)):
        arg = f32(6.28318) * (t + f32(offset))
        palette = f32(0.5) + f32(0.5) * np.cos(arg.astype(f64)).astype(f32)
        out[..., lane] = np.where(count == max_iter, 0, palette)
    out[..., 3] = 1
    return out


def test_example_mandelbrot(run):
    w, h, max_iter = 40, 30, 64
    out = run(str(EXAMPLES / "mandelbrot.xvk"), {"out": np.zeros((h, w, 4), f32), "cx": -0.5,
                                                  "cy": 0.0, "scale": 3.0, "max_iter": max_iter},
              global_size=(w, h), block=(16, 16))
    want = mandelbrot_reference(w, h, -0.5, 0.0, 3.0, max_iter)
    # The escape counts come from exactly rounded f32 steps, so black (inside) must match
    # exactly; the colours carry cos's error, scaled by 0.5.
    assert_array_equal(out["out"][..., :3] == 0, want[..., :3] == 0)
    assert_allclose(out["out"], want, rtol=0, atol=F32_TRANSCENDENTAL["atol"])
    assert (out["out"][..., :3] == 0).all(-1).sum() > 100


def test_example_histogram(run):
    values = rng(33).normal(0.5, 0.3, 3000).astype(f32)
    out = run(str(EXAMPLES / "histogram.xvk"), {"values": values, "bins": np.zeros(20, i32),
                                                 "lo": 0.0, "hi": 1.0},
              global_size=3000, block=256)
    b = np.floor((values - f32(0)) / (f32(1) - f32(0)) * f32(20))
    assert_array_equal(out["bins"], np.bincount(np.clip(b, 0, 19).astype(int), minlength=20))


def test_example_block_sum(run):
    n = 256 * 3 + 100
    x = rng(34).random(n, dtype=f32)
    out = run(str(EXAMPLES / "block_sum.xvk"), {"x": x, "partial": np.zeros(4, f32)},
              global_size=n)
    s = np.zeros((4, 256), f32)
    s.ravel()[:n] = x
    stride = 128
    while stride > 0:  # the kernel's tree, level by level, in f32
        s[:, :stride] += s[:, stride: 2 * stride]
        stride //= 2
    assert_array_equal(out["partial"], s[:, 0])
