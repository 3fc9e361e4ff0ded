"""Constant folding with exactly the IR's semantics.

Typed constants fold as the IR computes at run time: integers wrap (two's
complement i32, modulo 2**32 u32), division truncates toward zero, ``%``
takes the sign of the dividend, shift amounts are taken modulo 32, f32 is
rounded to single precision.  Untyped literal expressions fold exactly
(bounded to 64 bits so that a hostile source cannot build huge numbers) and
are converted when their context gives them a type.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xv_dsl.types import FLOAT_LIT, INT_LIT

#: Untyped integer constants must stay below this magnitude.
UNTYPED_LIMIT = 1 << 64


class ConstError(Exception):
    """A constant expression that cannot be folded (overflow, division by zero)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def wrap(kind: str, value: Any) -> Any:
    """``value`` as a value of the scalar type ``kind`` (integers wrap)."""
    if kind == "bool":
        return bool(value)
    if kind == "i32":
        return ((int(value) + (1 << 31)) % (1 << 32)) - (1 << 31)
    if kind == "u32":
        return int(value) % (1 << 32)
    if kind == "f32":
        with np.errstate(all="ignore"):
            # The shortest decimal that rounds to the same f32 (0.33, not
            # 0.33000001311302185): exact for every backend, readable in --emit ir.
            return float(str(np.float32(value)))
    return float(value)


def fits(kind: str, value: int) -> bool:
    if kind == "i32":
        return -(1 << 31) <= value < (1 << 31)
    if kind == "u32":
        return 0 <= value < (1 << 32)
    return True


def convert_untyped(value: Any, lit_kind: str, to: str) -> Any:
    """An untyped constant given the type ``to`` by its context (implicitly).

    Raises ConstError when the value does not fit (Go's rule: ``u32 x = -1``
    is an error; write ``~0u`` or ``u32(-1)``).
    """
    if to in ("i32", "u32"):
        if lit_kind == FLOAT_LIT:
            raise ConstError(f"float constant {value!r} used as {to}")
        if not fits(to, value):
            hint = "write it with a u suffix, e.g. 0xFFFFFFFFu" if to == "i32" and value > 0 \
                else f"convert it explicitly: {to}({value})"
            raise ConstError(f"constant {value} does not fit in {to}", hint)
        return int(value)
    if to in ("f32", "f64"):
        result = wrap(to, float(value)) if lit_kind == FLOAT_LIT else wrap(to, _int_to_float(value))
        if math.isinf(result) and not math.isinf(float(value)):
            raise ConstError(f"constant {value} is too large for {to}")
        return result
    if to == "bool":
        raise ConstError(f"number {value} used as bool", "compare it, e.g. 'x != 0'")
    raise ConstError(f"constant used as {to}")  # pragma: no cover - callers check the kind


def _int_to_float(value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.copysign(math.inf, value)


def cast(value: Any, from_kind: str, to: str) -> Any:
    """An explicit conversion ``to(value)``, as the IR's CAST does it."""
    if from_kind in (INT_LIT, FLOAT_LIT):
        from_kind = "i32" if from_kind == INT_LIT else "f64"
        if isinstance(value, int) and to in ("i32", "u32"):
            return wrap(to, value)
    if to == "bool":
        return bool(value != 0)
    if from_kind == "bool":
        value = int(bool(value))
    if from_kind == "f32":  # the f32 itself, not the shortest decimal that stands for it
        value = float(np.float32(value))
    if to in ("i32", "u32"):
        if isinstance(value, float):
            # As at run time: toward zero, saturating at the type's range, NaN to 0.
            if math.isnan(value):
                return 0
            lo, hi = (-(1 << 31), (1 << 31) - 1) if to == "i32" else (0, (1 << 32) - 1)
            return lo if value <= lo else hi if value >= hi else int(value)
        return wrap(to, value)
    return wrap(to, value)


def unary(op: str, kind: str, v: Any) -> Any:
    if op == "+":
        return v
    if op == "!":
        return not v
    if kind == INT_LIT:
        result = -v if op == "-" else ~v
        return _check_untyped(result)
    if kind == FLOAT_LIT:
        return -v
    if op == "-":
        return wrap(kind, -v)
    return wrap(kind, ~v)  # '~'


_COMPARE = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def binary(op: str, kind: str, a: Any, b: Any) -> Any:
    """``a op b`` where both operands have the type ``kind`` (or are untyped)."""
    if op in _COMPARE:
        return _COMPARE[op](a, b)
    if op == "&&":
        return a and b
    if op == "||":
        return a or b
    if kind == "bool":
        return {"&": a and b, "|": a or b, "^": a != b}[op]
    if kind == INT_LIT:
        return _check_untyped(_int_op(op, a, b, untyped=True))
    if kind == FLOAT_LIT or kind == "f64":
        return _float_op(op, np.float64(a), np.float64(b), kind)
    if kind == "f32":
        return _float_op(op, np.float32(a), np.float32(b), kind)
    return wrap(kind, _int_op(op, a, b, untyped=False, kind=kind))


def _int_op(op: str, a: int, b: int, *, untyped: bool, kind: str = "i32") -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op in ("/", "%"):
        if b == 0:
            raise ConstError("division by zero in a constant expression")
        q = abs(a) // abs(b)
        if (a < 0) != (b < 0):
            q = -q
        return q if op == "/" else a - b * q
    if op == "&":
        return a & b
    if op == "|":
        return a | b
    if op == "^":
        return a ^ b
    if op in ("<<", ">>"):
        if untyped:
            if not 0 <= b < 64:
                raise ConstError(f"shift amount {b} is out of range for a constant")
            shift = b
        else:
            shift = b % 32
        if op == "<<":
            return a << shift
        if kind == "u32":
            return (a % (1 << 32)) >> shift
        return a >> shift  # arithmetic on i32 (and exact on untyped)
    raise ConstError(f"operator {op} does not apply to integers")  # pragma: no cover


def _float_op(op: str, a: Any, b: Any, kind: str) -> float:
    with np.errstate(all="ignore"):
        if op == "+":
            r = a + b
        elif op == "-":
            r = a - b
        elif op == "*":
            r = a * b
        elif op == "/":
            if kind == FLOAT_LIT and b == 0:
                raise ConstError("division by zero in a constant expression")
            r = a / b
        elif op == "%":
            if kind == FLOAT_LIT and b == 0:
                raise ConstError("division by zero in a constant expression")
            r = np.fmod(a, b)
        else:
            raise ConstError(f"operator {op} does not apply to floats")  # pragma: no cover
    result = float(r)
    if kind == FLOAT_LIT and not math.isfinite(result):
        raise ConstError("constant overflows")
    return result


def _check_untyped(value: int) -> int:
    if not -UNTYPED_LIMIT < value < UNTYPED_LIMIT:
        raise ConstError("constant is too large", "constants must fit in 64 bits")
    return value
