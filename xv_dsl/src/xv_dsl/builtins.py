"""The names the language predefines: work-item builtins, math, atomics.

The checker types calls against these tables and the lowering expands them;
keeping the tables in one place keeps the two phases (and the language
reference) in step.
"""

from __future__ import annotations

import attrs

#: ``global_id.x`` and friends: i32 per axis.
SPECIALS = ("global_id", "local_id", "group_id", "group_size", "num_groups")
#: Specials that are the same for every work item of a workgroup.
UNIFORM_SPECIALS = ("group_id", "group_size", "num_groups")


@attrs.frozen
class MathBuiltin:
    """A math function's signature.

    ``arity`` is the accepted argument counts.  All arguments share one
    "generic" type (a scalar or a vector); positions in ``broadcast`` may
    instead be a plain f32 when the generic type is a vector (GLSL's
    ``clamp(v, 0.0, 1.0)``).  ``floats`` means the generic type must be
    f32, f64 or a vector; otherwise integers are allowed too.  ``result``
    is ``"same"`` (the generic type), ``"scalar"`` (its component type) or
    ``"vec3"``.
    """

    arity: tuple[int, ...]
    floats: bool
    broadcast: tuple[int, ...] = ()
    result: str = "same"
    vectors_only: bool = False


MATH: dict[str, MathBuiltin] = {
    "abs": MathBuiltin((1,), floats=False),
    "sign": MathBuiltin((1,), floats=False),
    "min": MathBuiltin((2,), floats=False, broadcast=(1,)),
    "max": MathBuiltin((2,), floats=False, broadcast=(1,)),
    "clamp": MathBuiltin((3,), floats=False, broadcast=(1, 2)),
    "floor": MathBuiltin((1,), floats=True),
    "ceil": MathBuiltin((1,), floats=True),
    "fract": MathBuiltin((1,), floats=True),
    "round": MathBuiltin((1,), floats=True),
    "trunc": MathBuiltin((1,), floats=True),
    "sqrt": MathBuiltin((1,), floats=True),
    "inversesqrt": MathBuiltin((1,), floats=True),
    "exp": MathBuiltin((1,), floats=True),
    "exp2": MathBuiltin((1,), floats=True),
    "log": MathBuiltin((1,), floats=True),
    "log2": MathBuiltin((1,), floats=True),
    "sin": MathBuiltin((1,), floats=True),
    "cos": MathBuiltin((1,), floats=True),
    "tan": MathBuiltin((1,), floats=True),
    "asin": MathBuiltin((1,), floats=True),
    "acos": MathBuiltin((1,), floats=True),
    "atan": MathBuiltin((1, 2), floats=True),
    "atan2": MathBuiltin((2,), floats=True),
    "pow": MathBuiltin((2,), floats=True),
    "mod": MathBuiltin((2,), floats=True, broadcast=(1,)),
    "mix": MathBuiltin((3,), floats=True, broadcast=(2,)),
    "step": MathBuiltin((2,), floats=True, broadcast=(0,)),
    "smoothstep": MathBuiltin((3,), floats=True, broadcast=(0, 1)),
    "dot": MathBuiltin((2,), floats=True, result="scalar"),
    "length": MathBuiltin((1,), floats=True, result="scalar"),
    "distance": MathBuiltin((2,), floats=True, result="scalar"),
    "normalize": MathBuiltin((1,), floats=True),
    "cross": MathBuiltin((2,), floats=True, result="vec3", vectors_only=True),
}

#: Source name of each atomic and the IR's kind.
ATOMICS = {
    "atomic_add": "add",
    "atomic_sub": "sub",
    "atomic_min": "min",
    "atomic_max": "max",
    "atomic_exchange": "exchange",
    "atomic_compare_exchange": "cmpxchg",
}
ATOMIC_ELEMENTS = ("i32", "u32", "f32")

BARRIER = "barrier"

#: Every predefined function name (user functions may not reuse them).
FUNCTIONS = tuple(MATH) + tuple(ATOMICS) + (BARRIER,)

#: Swizzle letter sets; one swizzle uses letters of one set only.
SWIZZLE_SETS = ("xyzw", "rgba", "stpq")
