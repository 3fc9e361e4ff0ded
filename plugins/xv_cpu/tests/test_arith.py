"""Integer and float semantics, on per-item values (arrays) and on uniform values (scalars)."""

import numpy as np
import pytest
from xv_cpu_irb import E, Node, T, assign, c, exact_or_close, kernel, load, run, sp, store, var

from xv_core.ir import Op

pytestmark = pytest.mark.usefixtures("each_backend")

I32_EDGES = np.array([0, 1, -1, 2, -2, 7, -7, 3, -3, 2**31 - 1, -2**31, 123456789, -987654321],
                     dtype=np.int32)
U32_EDGES = np.array([0, 1, 2, 3, 7, 2**31, 2**32 - 1, 4000000000, 123456789], dtype=np.uint32)


def binary_kernel(op, t, out_t=None):
    i = var("i")
    a = load("a", i, t)
    b = load("b", i, t)
    node = E(Node(op, T(out_t or t), (a.node, b.node)))
    return kernel("bin", f"buffer<{t}> a, buffer<{t}> b, buffer<{out_t or t}> out", [
        assign("i", sp("global_id.x")),
        store("out", i, node),
    ], locals="i32 i")


def uniform_binary_kernel(op, t, out_t=None):
    node = E(Node(op, T(out_t or t), (var("a", t).node, var("b", t).node)))
    return kernel("ubin", f"{t} a, {t} b, buffer<{out_t or t}> out", [
        store("out", sp("global_id.x"), node),
    ])


def apply(op, t, a, b, out_t=None):
    """Run op on arrays (one item per pair) and on scalars (one launch per pair): both agree."""
    dtype = np.dtype({"i32": np.int32, "u32": np.uint32, "f32": np.float32, "f64": np.float64,
                      "bool": np.bool_}[out_t or t])
    out = np.zeros(len(a), dtype)
    run(binary_kernel(op, t, out_t), {"a": a, "b": b, "out": out}, grid=1, block=len(a))
    uk = uniform_binary_kernel(op, t, out_t)
    for k in range(len(a)):
        one = np.zeros(2, dtype)
        run(uk, {"a": a[k], "b": b[k], "out": one}, grid=1, block=2)
        assert one[0] == out[k] or (np.isnan(one[0]) and np.isnan(out[k])), (op, a[k], b[k])
        assert one[1] == one[0] or np.isnan(one[0])
    return out


def pairs(values):
    a, b = np.meshgrid(values, values)
    return a.ravel(), b.ravel()


def test_i32_wraps():
    a, b = pairs(I32_EDGES)
    with np.errstate(over="ignore"):
        for op, ref in ((Op.ADD, a + b), (Op.SUB, a - b), (Op.MUL, a * b)):
            np.testing.assert_array_equal(apply(op, "i32", a, b), ref)


def test_u32_wraps():
    a, b = pairs(U32_EDGES)
    with np.errstate(over="ignore"):
        for op, ref in ((Op.ADD, a + b), (Op.SUB, a - b), (Op.MUL, a * b)):
            np.testing.assert_array_equal(apply(op, "u32", a, b), ref)
    assert apply(Op.SUB, "u32", np.array([0], np.uint32), np.array([1], np.uint32))[0] == 2**32 - 1


def c_div(a, b):
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def test_i32_division_truncates_and_modulo_takes_the_sign_of_the_dividend():
    a, b = pairs(I32_EDGES)
    keep = b != 0
    a, b = a[keep], b[keep]
    wrap = lambda v: np.array(v, dtype=np.int64).astype(np.int32)  # noqa: E731
    q = wrap([c_div(int(x), int(y)) for x, y in zip(a, b)])
    r = wrap([int(x) - c_div(int(x), int(y)) * int(y) for x, y in zip(a, b)])
    np.testing.assert_array_equal(apply(Op.DIV, "i32", a, b), q)
    np.testing.assert_array_equal(apply(Op.MOD, "i32", a, b), r)
    # The classic cases, and INT_MIN / -1 wrapping instead of trapping.
    small = np.array([7, -7, 7, -7, -2**31], np.int32), np.array([2, 2, -2, -2, -1], np.int32)
    np.testing.assert_array_equal(apply(Op.DIV, "i32", *small), [3, -3, -3, 3, -2**31])
    np.testing.assert_array_equal(apply(Op.MOD, "i32", *small), [1, -1, 1, -1, 0])


def test_u32_division_and_modulo():
    a, b = pairs(U32_EDGES)
    keep = b != 0
    a, b = a[keep], b[keep]
    np.testing.assert_array_equal(apply(Op.DIV, "u32", a, b), a // b)
    np.testing.assert_array_equal(apply(Op.MOD, "u32", a, b), a % b)


def test_shifts_take_amount_mod_32_arithmetic_on_i32_logical_on_u32():
    a = np.array([1, -8, -8, 1, 2**30, -1, 5], np.int32)
    s = np.array([31, 1, 33, 32, 1, 31, 64 + 2], np.int32)
    np.testing.assert_array_equal(apply(Op.SHL, "i32", a, s),
                                  np.left_shift(a, s & 31))
    np.testing.assert_array_equal(apply(Op.SHR, "i32", a, s), [0, -4, -4, 1, 2**29, -1, 1])
    u = a.astype(np.uint32)
    su = s.astype(np.uint32)
    np.testing.assert_array_equal(apply(Op.SHR, "u32", u, su),
                                  [0, (2**32 - 8) >> 1, (2**32 - 8) >> 1, 1, 2**29, 1, 1])


def test_bitwise_and_comparisons():
    a, b = pairs(I32_EDGES[:6])
    np.testing.assert_array_equal(apply(Op.BITAND, "i32", a, b), a & b)
    np.testing.assert_array_equal(apply(Op.BITXOR, "i32", a, b), a ^ b)
    np.testing.assert_array_equal(apply(Op.LT, "i32", a, b, "bool"), a < b)
    ua, ub = pairs(U32_EDGES[:6])
    np.testing.assert_array_equal(apply(Op.GE, "u32", ua, ub, "bool"), ua >= ub)


def test_f32_is_single_precision():
    a = np.array([16777216.0, 0.1, 1e30, 3.0], np.float32)
    b = np.array([1.0, 0.2, 1e30, 7.0], np.float32)
    np.testing.assert_array_equal(apply(Op.ADD, "f32", a, b), a + b)
    assert apply(Op.ADD, "f32", a[:1], b[:1])[0] == 16777216.0  # 2**24 + 1 rounds back in f32
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(apply(Op.MUL, "f32", a, b), a * b)  # 1e60 overflows to inf
    np.testing.assert_array_equal(apply(Op.DIV, "f32", a, b), a / b)
    a64 = a.astype(np.float64)
    assert apply(Op.ADD, "f64", a64[:1], np.array([1.0]))[0] == 16777217.0


def test_float_mod_is_fmod_and_pow_atan2_min_max():
    a = np.array([5.5, -5.5, 5.5, -5.5, 1.0], np.float32)
    b = np.array([2.0, 2.0, -2.0, -2.0, 3.0], np.float32)
    np.testing.assert_array_equal(apply(Op.MOD, "f32", a, b), np.fmod(a, b))
    np.testing.assert_array_equal(apply(Op.MIN, "f32", a, b), np.minimum(a, b))
    np.testing.assert_array_equal(apply(Op.MAX, "i32", a.astype(np.int32), b.astype(np.int32)),
                                  np.maximum(a.astype(np.int32), b.astype(np.int32)))
    pa, pb = np.abs(a), b
    # Transcendental: the jit calls the C library, numpy its own SIMD routines (on AVX-512
    # its atan2 differs from glibc's by an ulp: 1.2220254 against the correctly rounded
    # 1.2220253 for atan2(5.5, 2)).
    exact_or_close(apply(Op.POW, "f32", pa, pb), np.power(pa, pb))
    exact_or_close(apply(Op.ATAN2, "f32", a, b), np.arctan2(a, b))


def unary_run(op, t, values, out_t=None):
    i = var("i")
    x = load("a", i, t)
    node = E(Node(op, T(out_t or t), (x.node,)))
    dtype = {"i32": np.int32, "u32": np.uint32, "f32": np.float32, "f64": np.float64,
             "bool": np.bool_}[out_t or t]
    k = kernel("un", f"buffer<{t}> a, buffer<{out_t or t}> out",
               [assign("i", sp("global_id.x")), store("out", i, node)], locals="i32 i")
    out = np.zeros(len(values), dtype)
    run(k, {"a": values, "out": out}, grid=1, block=len(values))
    # And uniform: the scalar path must agree.
    uk = kernel("uun", f"{t} a, buffer<{out_t or t}> out",
                [store("out", sp("global_id.x"), E(Node(op, T(out_t or t), (var("a", t).node,))))])
    for k_, v in enumerate(values):
        one = np.zeros(1, dtype)
        run(uk, {"a": v, "out": one}, grid=1, block=1)
        assert one[0] == out[k_] or (np.isnan(one[0]) and np.isnan(out[k_])), (op, v)
    return out


def test_round_is_half_away_from_zero():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, -0.49999997, 2.4, -2.6, 8388609.0],
                 np.float32)
    np.testing.assert_array_equal(unary_run(Op.ROUND, "f32", x),
                                  [1, 2, 3, -1, -2, -3, 0, -0.0, 2, -3, 8388609.0])


@pytest.mark.parametrize("t", ["f32", "f64"])
def test_round_keeps_the_sign_of_a_zero(t):
    """round(-0.3) is -0.0 (as C's round and numpy's), on every backend alike."""
    x = np.array([-0.0, -0.3, -0.49, 0.0, 0.3, -0.7], np.dtype(np.float32 if t == "f32" else
                                                            np.float64))
    got = unary_run(Op.ROUND, t, x)
    np.testing.assert_array_equal(got, [0, 0, 0, 0, 0, -1])
    assert np.signbit(got).tolist() == [True, True, True, False, False, True]


def test_cast_float_to_int_truncates_and_saturates():
    x = np.array([1.9, -1.9, 0.5, -0.5, 3e9, -3e9, np.nan, 2147483520.0], np.float32)
    np.testing.assert_array_equal(unary_run(Op.CAST, "f32", x, "i32"),
                                  [1, -1, 0, 0, 2**31 - 1, -2**31, 0, 2147483520])
    np.testing.assert_array_equal(unary_run(Op.CAST, "f32", x, "u32"),
                                  [1, 0, 0, 0, 3000000000, 0, 0, 2147483520])


def _saturated(x, dst):
    """The reference: truncation toward zero, saturating at the target's range, NaN to 0."""
    lo, hi = (-2**31, 2**31 - 1) if dst == "i32" else (0, 2**32 - 1)
    out = [0 if np.isnan(v) else int(min(max(np.trunc(np.float64(v)), lo), hi)) for v in x]
    return np.array(out, np.int64).astype(np.int32 if dst == "i32" else np.uint32)


@pytest.mark.parametrize("src", ["f32", "f64"])
@pytest.mark.parametrize("dst", ["i32", "u32"])
def test_float_to_int_saturates_at_every_edge_in_vector_and_scalar_code(src, dst):
    # Each side of every limit the float type can hold: the jit clamps, converts and selects
    # (code LLVM vectorises), which must give llvm.fptosi.sat's (and interp's) results.
    ft = np.float32 if src == "f32" else np.float64
    edges = [0.0, -0.0, 0.5, -0.5, 0.99999994, -0.99999994, 1.0, -1.0, 1.9, -1.9, 3e9, -3e9,
             2.0**31, -2.0**31, 2.0**32, 2.0**40, -2.0**40, np.inf, -np.inf, np.nan,
             2147483520.0, -2147483904.0, 4294967040.0, 2147483647.0, 2147483647.5,
             -2147483648.5, -2147483649.0, 4294967295.0, 4294967295.5, 4294967296.0]
    x = np.array(edges, ft)
    want = _saturated(x, dst)
    np.testing.assert_array_equal(unary_run(Op.CAST, src, x, dst), want)
    # The same values over 64 work items, in several orders: the item loop is vectorised.
    many = np.concatenate([np.roll(x, k) for k in range(3)])[:64]
    np.testing.assert_array_equal(unary_run_many(Op.CAST, src, many, dst), _saturated(many, dst))


def unary_run_many(op, t, values, out_t):
    """``op`` on one item per value (one workgroup), without the uniform cross-check."""
    i = var("i")
    node = E(Node(op, T(out_t), (load("a", i, t).node,)))
    k = kernel("unm", f"buffer<{t}> a, buffer<{out_t}> out",
               [assign("i", sp("global_id.x")), store("out", i, node)], locals="i32 i")
    out = np.zeros(len(values), {"i32": np.int32, "u32": np.uint32}[out_t])
    run(k, {"a": values, "out": out}, grid=1, block=len(values))
    return out


def test_casts_between_ints_bools_and_floats():
    i = np.array([-1, 0, 5, -2**31], np.int32)
    np.testing.assert_array_equal(unary_run(Op.CAST, "i32", i, "u32"), i.astype(np.uint32))
    np.testing.assert_array_equal(unary_run(Op.CAST, "i32", i, "bool"), i != 0)
    np.testing.assert_array_equal(unary_run(Op.CAST, "i32", i, "f32"), i.astype(np.float32))
    b = np.array([True, False])
    np.testing.assert_array_equal(unary_run(Op.CAST, "bool", b, "i32"), [1, 0])
    np.testing.assert_array_equal(unary_run(Op.CAST, "bool", b, "f32"), [1.0, 0.0])
    u = np.array([2**32 - 1, 7], np.uint32)
    np.testing.assert_array_equal(unary_run(Op.CAST, "u32", u, "i32"), [-1, 7])


@pytest.mark.parametrize("op, ref", [
    (Op.NEG, np.negative), (Op.ABS, np.abs), (Op.SIGN, np.sign), (Op.FLOOR, np.floor),
    (Op.CEIL, np.ceil), (Op.TRUNC, np.trunc), (Op.SQRT, np.sqrt), (Op.EXP, np.exp),
    (Op.EXP2, np.exp2), (Op.LOG, np.log), (Op.LOG2, np.log2), (Op.SIN, np.sin), (Op.COS, np.cos),
    (Op.TAN, np.tan), (Op.ATAN, np.arctan),
])
def test_float_unary_functions_in_single_precision(op, ref):
    x = np.array([0.25, 1.0, 2.5, 10.0, -3.75, 0.0], np.float32)
    with np.errstate(all="ignore"):
        # The jit calls libm, which may differ from numpy's own routines in the last bit.
        exact_or_close(unary_run(op, "f32", x), ref(x),
                       transcendental=op not in (Op.NEG, Op.ABS, Op.SIGN, Op.FLOOR, Op.CEIL,
                                                 Op.TRUNC, Op.SQRT))


def test_rsqrt_asin_acos_and_integer_unary():
    x = np.array([0.25, 1.0, 4.0], np.float32)
    np.testing.assert_allclose(unary_run(Op.RSQRT, "f32", x), 1 / np.sqrt(x), rtol=1e-7)
    y = np.array([-1.0, 0.0, 0.5], np.float32)
    exact_or_close(unary_run(Op.ASIN, "f32", y), np.arcsin(y))
    exact_or_close(unary_run(Op.ACOS, "f32", y), np.arccos(y))
    i = np.array([5, -5, -2**31, 0], np.int32)
    np.testing.assert_array_equal(unary_run(Op.NEG, "i32", i), [-5, 5, -2**31, 0])
    np.testing.assert_array_equal(unary_run(Op.ABS, "i32", i), [5, 5, -2**31, 0])
    np.testing.assert_array_equal(unary_run(Op.BITNOT, "i32", i), ~i)
    np.testing.assert_array_equal(unary_run(Op.SIGN, "i32", i), [1, -1, -1, 0])
    np.testing.assert_array_equal(unary_run(Op.NEG, "u32", np.array([1], np.uint32)), [2**32 - 1])
    np.testing.assert_array_equal(unary_run(Op.NOT, "bool", np.array([True, False])),
                                  [False, True])


def test_constants_keep_their_type():
    # u32 constant arithmetic on uniform values wraps too.
    k = kernel("consts", "buffer<u32> out", [
        store("out", sp("global_id.x"), c(4000000000, "u32") + c(500000000, "u32")),
    ])
    out = np.zeros(1, np.uint32)
    run(k, {"out": out}, grid=1, block=1)
    assert out[0] == (4500000000 % 2**32)


@pytest.mark.parametrize("t", ["i32", "f32"])
def test_min_max_and_clamps_in_every_operand_shape(t):
    # Arrays and uniform values on either side, and clamps written both ways round, also with
    # lo > hi (where max(min(a, hi), lo) is lo but min(max(a, lo), hi) is hi) and NaN.
    from xv_cpu_irb import bin_
    dtype = np.int32 if t == "i32" else np.float32
    a = np.array([-7, -1, 0, 3, 5, 9, 12, 40], dtype)
    if t == "f32":
        a[1] = np.nan
    i = var("i")
    x = load("a", i, t)
    lo, hi = var("lo", t), var("hi", t)
    exprs = [
        bin_(Op.MIN, x, hi), bin_(Op.MAX, lo, x), bin_(Op.MIN, x, x * 2),
        bin_(Op.MIN, bin_(Op.MAX, x, lo), hi), bin_(Op.MIN, hi, bin_(Op.MAX, lo, x)),
        bin_(Op.MAX, bin_(Op.MIN, x, hi), lo), bin_(Op.MAX, lo, bin_(Op.MIN, hi, x + 1)),
        bin_(Op.MIN, bin_(Op.MAX, x, x - 3), hi), bin_(Op.MIN, bin_(Op.MAX, lo, hi), x),
    ]
    k = kernel("mm", f"buffer<{t}> a, buffer<{t}> out, {t} lo, {t} hi", [
        assign("i", sp("global_id.x")),
        *[store("out", i * len(exprs) + e, ex) for e, ex in enumerate(exprs)],
    ], locals="i32 i")
    for lo_v, hi_v in ((0, 10), (10, 0), (3, 3)) + (((np.nan, 5),) if t == "f32" else ()):
        lo_s, hi_s = dtype(lo_v), dtype(hi_v)
        out = np.zeros(len(a) * len(exprs), dtype)
        run(k, {"a": a, "out": out, "lo": lo_s, "hi": hi_s}, grid=1, block=len(a))
        mn, mx = np.minimum, np.maximum
        expected = np.stack([
            mn(a, hi_s), mx(lo_s, a), mn(a, a * 2),
            mn(mx(a, lo_s), hi_s), mn(hi_s, mx(lo_s, a)),
            mx(mn(a, hi_s), lo_s), mx(lo_s, mn(hi_s, a + 1)),
            mn(mx(a, a - 3), hi_s), mn(np.full_like(a, mx(lo_s, hi_s)), a),
        ], axis=1).ravel()
        np.testing.assert_array_equal(out, expected, err_msg=f"lo={lo_v} hi={hi_v}")
