"""The types of the source language, as the checker sees them.

Scalars are the IR's five; vectors ``vec2 vec3 vec4`` hold f32 components
(the lowering scalarises them).  Two pseudo types stand for constants whose
type is still open: an integer or float literal expression takes the type
its context needs (``x * 2`` is f32 when ``x`` is), and is folded exactly
until then, the way Go treats untyped constants.
"""

from __future__ import annotations

import attrs

SCALARS = ("bool", "i32", "u32", "f32", "f64")
INTS = ("i32", "u32")
FLOATS = ("f32", "f64")
VECTORS = ("vec2", "vec3", "vec4")
ELEMENTS = SCALARS + ("vec4",)

INT_LIT = "integer constant"
FLOAT_LIT = "float constant"


@attrs.frozen
class Ty:
    """A source type.

    ``kind`` is a scalar or vector name, ``INT_LIT``/``FLOAT_LIT``,
    ``"buffer"``, ``"image"``, ``"array"``, ``"void"``, ``"builtin"`` (the
    ``global_id`` family, usable only through ``.x .y .z``) or ``"error"``
    (an expression already reported; it silences follow-up errors).
    ``elem`` is the element type of buffers, images and arrays, ``shape``
    the array's sizes.
    """

    kind: str
    elem: str | None = None
    shape: tuple[int, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.kind == "error"

    @property
    def is_scalar(self) -> bool:
        return self.kind in SCALARS

    @property
    def is_vec(self) -> bool:
        return self.kind in VECTORS

    @property
    def is_lit(self) -> bool:
        return self.kind in (INT_LIT, FLOAT_LIT)

    @property
    def is_int(self) -> bool:
        return self.kind in INTS

    @property
    def is_float(self) -> bool:
        return self.kind in FLOATS

    @property
    def is_numeric(self) -> bool:
        return self.kind in ("i32", "u32", "f32", "f64")

    @property
    def is_value(self) -> bool:
        """Something an expression can produce and a variable can hold."""
        return self.is_scalar or self.is_vec or self.is_lit

    @property
    def lanes(self) -> int:
        """Scalar components: 2-4 for vectors, 1 for scalars."""
        return int(self.kind[3]) if self.is_vec else 1

    @property
    def elem_ty(self) -> Ty:
        assert self.elem is not None
        return Ty(self.elem)

    def __str__(self) -> str:
        if self.kind in ("buffer", "image"):
            return f"{self.kind}<{self.elem}>"
        if self.kind == "array":
            return f"{self.elem}" + "".join(f"[{n}]" for n in self.shape)
        return self.kind


ERROR = Ty("error")
VOID = Ty("void")
BOOL = Ty("bool")
I32 = Ty("i32")
U32 = Ty("u32")
F32 = Ty("f32")
F64 = Ty("f64")
ILIT = Ty(INT_LIT)
FLIT = Ty(FLOAT_LIT)
BUILTIN = Ty("builtin")


def vec(n: int) -> Ty:
    return Ty(f"vec{n}")


def default_of(t: Ty) -> Ty:
    """The type a literal takes when nothing asks for another: i32 or f32."""
    if t.kind == INT_LIT:
        return I32
    if t.kind == FLOAT_LIT:
        return F32
    return t
