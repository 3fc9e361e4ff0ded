"""Checking kernel arguments against a kernel's parameters.

Shared by the Python API (errors name the parameter) and the job runner
(errors carry the ``$.steps[i].args.name`` path), so both say the same
thing about the same mistake.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from xv_core.ir import Kernel, Type
from xv_core.runtime.interfaces import DTYPES

_INT_RANGES = {"i32": (-(1 << 31), (1 << 31) - 1), "u32": (0, (1 << 32) - 1)}


@attrs.frozen
class BufferShape:
    """What the checker needs to know of a buffer argument."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]


@attrs.frozen
class ArgProblem:
    param: str | None  # the parameter (or argument) the problem is about; None for the call
    message: str
    hint: str | None = None


def signature(kernel: Kernel) -> str:
    params = ", ".join(f"{p.type} {p.name}" for p in kernel.params)
    return f"{kernel.name}({params})"


class _LazySignature:
    __slots__ = ("kernel",)

    def __init__(self, kernel: Kernel):
        self.kernel = kernel

    def __str__(self) -> str:
        return signature(self.kernel)


def dtype_name(dtype: np.dtype[Any]) -> str:
    for name, dt in DTYPES.items():
        if dt == dtype and name != "vec4":
            return name
    return str(dtype)


def describe(shape: BufferShape) -> str:
    return f"{dtype_name(shape.dtype)} array of shape {list(shape.shape)}"


#: What each parameter type takes, by its kind and whether its elements are vec4.
LAYOUTS = {
    ("buffer", False): "a 1-D array",
    ("buffer", True): "an array of shape (n, 4)",
    ("image", False): "a 2-D array (height, width)",
    ("image", True): "an array of shape (height, width, 4)",
}


def rank_problem(shape: tuple[int, ...]) -> tuple[str, str] | None:
    """(message, hint) when no parameter could take an array of ``shape`` (its dimensions
    are not 1 to 3), else None."""
    if 1 <= len(shape) <= 3:
        return None
    return (f"a buffer has 1 to 3 dimensions, got {len(shape)} (shape {list(shape)})",
            "buffer<T> takes " + LAYOUTS[("buffer", False)] + ", buffer<vec4> "
            + LAYOUTS[("buffer", True)] + ", image<T> " + LAYOUTS[("image", False)]
            + ", image<vec4> " + LAYOUTS[("image", True)])


def fits(t: Type, shape: BufferShape) -> str | None:
    """Why ``shape`` cannot be passed as a parameter of type ``t`` (None if it can)."""
    want = DTYPES[t.elem]  # type: ignore[index]
    vec4 = t.elem == "vec4"
    rank = (1 if t.kind == "buffer" else 2) + (1 if vec4 else 0)
    if shape.dtype != want:
        return f"{t} needs {dtype_name(want)} elements, got {describe(shape)}"
    if len(shape.shape) != rank or (vec4 and shape.shape[-1] != 4):
        return f"{t} needs {LAYOUTS[(t.kind, vec4)]}, got {describe(shape)}"
    return None


def check_args(kernel: Kernel, args: Mapping[str, Any]) -> list[ArgProblem]:
    """Every problem with ``args`` for ``kernel``; buffer arguments are BufferShape."""
    problems: list[ArgProblem] = []
    sig = _LazySignature(kernel)  # only built for a message
    for p in kernel.params:
        if p.name not in args:
            problems.append(ArgProblem(None, f"missing argument {p.name!r} for kernel {sig}"))
            continue
        value = args[p.name]
        if p.type.kind in ("buffer", "image"):
            if not isinstance(value, BufferShape):
                problems.append(ArgProblem(p.name, f"parameter {p.name!r} is {p.type}, got the "
                                           f"scalar {value!r}", hint="pass the name of a buffer"))
                continue
            why = fits(p.type, value)
            if why:
                problems.append(ArgProblem(p.name, f"buffer {value.name!r} does not fit parameter "
                                           f"{p.name!r}: {why}"))
        else:
            why = scalar_problem(p.type.kind, value)
            if why:
                problems.append(ArgProblem(p.name, f"parameter {p.name!r} is {p.type}, {why}"))
    for name in args:
        if kernel.param(name) is None:
            problems.append(ArgProblem(name, f"kernel {sig} has no parameter {name!r}"))
    return problems


_F32_LARGEST = float(np.finfo(np.float32).max)
#: Finite values from this one up round to infinity in f32 (half a step past the largest, a
#: tie that rounds to the even neighbour: infinity).
_F32_MAX = _F32_LARGEST + 2.0 ** (127 - 24)


def scalar_problem(kind: str, value: Any) -> str | None:
    if isinstance(value, BufferShape):
        return f"got buffer {value.name!r}"
    if isinstance(value, np.generic):
        value = value.item()
    if kind == "bool":
        return None if isinstance(value, bool) else f"got {value!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"got {value!r}"
    if kind in ("f32", "f64") and isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            return f"got {value}, too large for a floating-point number"
    if kind == "f32" and math.isfinite(value) and abs(value) >= _F32_MAX:
        # (what rounds to the largest f32 is fine; past it the value would become infinite)
        return f"got {value!r}, outside the f32 range (at most {_F32_LARGEST:.9g} either way)"
    if kind in _INT_RANGES:
        if not isinstance(value, int):
            return f"got the float {value!r} (write an integer)"
        lo, hi = _INT_RANGES[kind]
        if not lo <= value <= hi:
            return f"got {value}, outside {lo}..{hi}"
    return None


def scalar_value(kind: str, value: Any) -> np.generic:
    """The numpy scalar a backend receives for a checked scalar argument."""
    return DTYPES[kind].type(value)
