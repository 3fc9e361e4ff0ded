"""The ALU: what each IR operation computes, on numpy values.

A value is either a numpy scalar (``np.generic``: the same for every work
item of a frame, a *uniform* value) or a 1-D array with one element per
work item.  Every function here takes and returns those two shapes only,
never a 0-d array, so callers can test ``type(v) is np.ndarray``.

Integer arithmetic wraps because numpy's fixed-width integers do; the
interpreter runs under ``np.errstate(all="ignore")`` so scalar overflow does
not warn.  The semantics the IR leaves to the backend are fixed here:

* float to integer conversion truncates toward zero, saturates at the
  target's range and gives 0 for NaN (as GPU conversion instructions do);
* ``MIN``/``MAX`` are ``a < b ? a : b`` / ``a > b ? a : b`` (equal operands, such as
  -0.0 and 0.0, give ``b``) and on floats propagate NaN (``np.minimum``/``np.maximum``);
* ``ROUND`` rounds half away from zero without the ``x + 0.5`` rounding error;
* integer ``DIV``/``MOD`` of ``INT_MIN`` by ``-1`` wrap to ``INT_MIN`` and 0.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from xv_core.ir import Op

Value = Any  # np.generic or a 1-D np.ndarray

DTYPES: dict[str, np.dtype[Any]] = {
    "bool": np.dtype(np.bool_),
    "i32": np.dtype(np.int32),
    "u32": np.dtype(np.uint32),
    "f32": np.dtype(np.float32),
    "f64": np.dtype(np.float64),
}


def scalar(value: object, kind: str) -> np.generic:
    """A Python value as the numpy scalar of IR type ``kind``."""
    return DTYPES[kind].type(value)


def _clip_ufunc() -> Callable[..., Any]:
    """numpy's clip ufunc.  ``np.clip`` is a Python function around it that costs several
    microseconds a call and converts its bounds; the interpreter's bounds already have the
    array's dtype.  Falls back to ``np.clip`` where numpy keeps the ufunc elsewhere."""
    umath = getattr(getattr(np, "_core", None), "umath", None)
    ufunc = getattr(umath, "clip", None)
    return ufunc if isinstance(ufunc, np.ufunc) else np.clip


#: ``CLIP(a, lo, hi, out=None)``: clip ``a`` to lo..hi (bounds of ``a``'s dtype).
CLIP = _clip_ufunc()


def fix(value: Any) -> Value:
    """Turn a 0-d array (from np.where and friends) back into a numpy scalar."""
    if type(value) is np.ndarray and value.ndim == 0:
        return value[()]
    return value


# --------------------------------------------------------------------------
# Unary operations
# --------------------------------------------------------------------------


def _round_half_away(x: Value) -> Value:
    t = np.trunc(x)
    # x - trunc(x) is exact, so the comparison with one half is too.  The result has x's sign,
    # a zero too (round(-0.3) is -0.0, as in C and on the jit; adding +0.0 would lose it).
    return fix(np.copysign(t + np.where(np.abs(x - t) >= 0.5, np.sign(x), x.dtype.type(0)), x))


def _rsqrt(x: Value) -> Value:
    return x.dtype.type(1) / np.sqrt(x)


# Each operation as (fn, ufunc): ``fn`` computes it on scalars and arrays alike and takes
# numpy's fast scalar path (``a + b`` on numpy scalars is ~30x faster than ``np.add(a, b)``);
# ``ufunc``, when not None, is the same operation as a ufunc, for computing in place (``out=``).
Unary = tuple[Callable[[Value], Value], "np.ufunc | None"]
Binary = tuple[Callable[[Value, Value], Value], "np.ufunc | None"]

_UNARY: dict[Op, Unary] = {
    Op.NEG: (operator.neg, np.negative),
    Op.NOT: (operator.invert, np.logical_not),  # ~ on bool is logical not
    Op.BITNOT: (operator.invert, np.invert),
    Op.ABS: (abs, np.absolute),
    Op.SIGN: (np.sign, np.sign),
    Op.FLOOR: (np.floor, np.floor),
    Op.CEIL: (np.ceil, np.ceil),
    Op.ROUND: (_round_half_away, None),
    Op.TRUNC: (np.trunc, np.trunc),
    Op.SQRT: (np.sqrt, np.sqrt),
    Op.RSQRT: (_rsqrt, None),
    Op.EXP: (np.exp, np.exp),
    Op.EXP2: (np.exp2, np.exp2),
    Op.LOG: (np.log, np.log),
    Op.LOG2: (np.log2, np.log2),
    Op.SIN: (np.sin, np.sin),
    Op.COS: (np.cos, np.cos),
    Op.TAN: (np.tan, np.tan),
    Op.ASIN: (np.arcsin, np.arcsin),
    Op.ACOS: (np.arccos, np.arccos),
    Op.ATAN: (np.arctan, np.arctan),
}


def unary(op: Op, kind: str) -> Unary:
    """How to compute unary ``op`` on values of IR type ``kind``."""
    if op is Op.ABS and kind == "u32":
        return (lambda a: a), None
    return _UNARY[op]


# --------------------------------------------------------------------------
# Binary operations
# --------------------------------------------------------------------------


BinaryFn = Callable[[Value, Value], Value]


def _shift(shift: BinaryFn, mask: np.generic) -> BinaryFn:
    def shift_masked(a: Value, b: Value) -> Value:
        return shift(a, b & mask)

    return shift_masked


def _min_max(ufunc: np.ufunc, pick_a: Callable[[Value, Value], bool]) -> BinaryFn:
    # min(a, b) is a < b ? a : b (max: a > b), so equal operands give b -- min(-0.0, 0.0) is
    # 0.0 -- as numpy's minimum/maximum on arrays and the jit's select give it.
    def min_max(a: Value, b: Value) -> Value:
        if type(a) is np.ndarray or type(b) is np.ndarray or a != a or b != b:
            return ufunc(a, b)  # arrays, or a NaN to propagate
        return a if pick_a(a, b) else b

    return min_max


_BINARY: dict[Op, Binary] = {
    Op.ADD: (operator.add, np.add),
    Op.SUB: (operator.sub, np.subtract),
    Op.MUL: (operator.mul, np.multiply),
    Op.DIV: (operator.truediv, np.divide),  # floats only; integers go through int_divmod
    Op.MOD: (np.fmod, np.fmod),  # floats only: C fmod, not Python's floored %
    Op.MIN: (_min_max(np.minimum, operator.lt), np.minimum),
    Op.MAX: (_min_max(np.maximum, operator.gt), np.maximum),
    Op.POW: (np.power, np.power),
    Op.ATAN2: (np.arctan2, np.arctan2),
    Op.BITAND: (operator.and_, np.bitwise_and),
    Op.BITOR: (operator.or_, np.bitwise_or),
    Op.BITXOR: (operator.xor, np.bitwise_xor),
    Op.EQ: (operator.eq, None),
    Op.NE: (operator.ne, None),
    Op.LT: (operator.lt, None),
    Op.LE: (operator.le, None),
    Op.GT: (operator.gt, None),
    Op.GE: (operator.ge, None),
}


def binary(op: Op, kind: str) -> Binary:
    """How to compute binary ``op`` (not integer DIV/MOD) on IR type ``kind``.

    For comparisons ``kind`` is the operands' type; they have no in-place form
    because their result is bool.
    """
    if op in (Op.SHL, Op.SHR):
        shift = operator.lshift if op is Op.SHL else operator.rshift
        return _shift(shift, scalar(31, kind)), None
    return _BINARY[op]


def int_divmod(op: Op, a: Value, b: Value) -> Value:
    """C integer division (truncating) or remainder (sign of the dividend).

    The divisor must be free of zeros: the caller checks, because only it
    knows which work item to blame.  Computed in int64 so that INT_MIN / -1
    does not trap and wraps back like every other i32 result.
    """
    dtype = (a if type(a) is np.ndarray else np.asarray(a)).dtype
    if dtype == np.uint32:
        return a // b if op is Op.DIV else a % b
    a64 = np.asarray(a, np.int64)
    b64 = np.asarray(b, np.int64)
    q = a64 // b64
    r = a64 - q * b64
    # Floor division rounds toward -inf; step back toward zero when the signs differ.
    q = q + ((r != 0) & ((a64 < 0) != (b64 < 0)))
    out = q if op is Op.DIV else a64 - q * b64
    return fix(out.astype(np.int32))


# --------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------


def cast(src: str, dst: str) -> Callable[[Value], Value]:
    """The function converting a value of IR type ``src`` to ``dst``."""
    if src == dst:
        return lambda a: a
    if dst == "bool":
        zero = scalar(0 if src != "bool" else False, src)
        return lambda a: np.not_equal(a, zero)
    to = DTYPES[dst]
    if src in ("f32", "f64") and dst in ("i32", "u32"):
        info = np.iinfo(to)
        lo, hi = np.float64(info.min), np.float64(info.max)

        def float_to_int(a: Value) -> Value:
            t = np.clip(np.trunc(np.asarray(a, np.float64)), lo, hi)
            return fix(np.where(np.isnan(t), 0.0, t).astype(to))

        return float_to_int
    # Integer to integer reinterprets modulo 2**32; the rest are exact or round to nearest.
    return lambda a: a.astype(to)


__all__ = ["CLIP", "DTYPES", "Value", "binary", "cast", "fix", "int_divmod", "scalar", "unary"]
