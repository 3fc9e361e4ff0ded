"""The typed syntax tree of a .xvk program.

The parser builds these frozen nodes from the lark tree; every node carries
the :class:`~xv_core.errors.SourceSpan` of the text it came from, so every
later phase can point at the source.  Nodes hold syntax only: types and
name resolution live in the checker's side tables, keyed by node identity.
"""

from __future__ import annotations

from typing import Union

import attrs

from xv_core.errors import SourceSpan

# --------------------------------------------------------------------------
# Types as written
# --------------------------------------------------------------------------


@attrs.frozen
class TypeRef:
    """A type as written: ``f32``, ``vec3``, ``buffer<vec4>``, ``image<f32>``, ``void``.

    ``name`` is the scalar or vector name, ``"buffer"``, ``"image"`` or
    ``"void"``; ``elem`` is the element type of buffers and images.
    """

    span: SourceSpan
    name: str
    elem: str | None = None

    def __str__(self) -> str:
        return f"{self.name}<{self.elem}>" if self.elem else self.name


# --------------------------------------------------------------------------
# Expressions
# --------------------------------------------------------------------------


@attrs.frozen
class IntLit:
    """An integer literal; ``unsigned`` when written with a ``u`` suffix."""

    span: SourceSpan
    value: int
    unsigned: bool = False


@attrs.frozen
class FloatLit:
    span: SourceSpan
    value: float
    text: str


@attrs.frozen
class BoolLit:
    span: SourceSpan
    value: bool


@attrs.frozen
class Name:
    span: SourceSpan
    name: str


@attrs.frozen
class Unary:
    """``op`` is one of ``- + ! ~``."""

    span: SourceSpan
    op: str
    operand: Expr


@attrs.frozen
class Binary:
    """``op`` is a C binary operator; ``op_span`` locates the operator itself."""

    span: SourceSpan
    op: str
    left: Expr
    right: Expr
    op_span: SourceSpan


@attrs.frozen
class Ternary:
    span: SourceSpan
    cond: Expr
    then: Expr
    otherwise: Expr


@attrs.frozen
class Call:
    """A call by name: a user function, a math builtin, an atomic or ``barrier``."""

    span: SourceSpan
    name: str
    args: tuple[Expr, ...]
    name_span: SourceSpan


@attrs.frozen
class Construct:
    """A cast or a vector constructor: ``f32(i)``, ``vec3(v.xy, 1.0)``."""

    span: SourceSpan
    type: TypeRef
    args: tuple[Expr, ...]


@attrs.frozen
class Index:
    """``base[i]``, ``base[i][j]`` (nested) or ``image[x, y]`` (two indices)."""

    span: SourceSpan
    base: Expr
    indices: tuple[Expr, ...]


@attrs.frozen
class Member:
    """``base.name``: a swizzle, ``.length``/``.width``/``.height`` or a builtin's axis."""

    span: SourceSpan
    base: Expr
    name: str
    name_span: SourceSpan


Expr = Union[IntLit, FloatLit, BoolLit, Name, Unary, Binary, Ternary, Call, Construct, Index,
             Member]


@attrs.frozen
class InitList:
    """``{a, b, ...}``: the initialiser of an array."""

    span: SourceSpan
    items: tuple[Union[Expr, InitList], ...]


# --------------------------------------------------------------------------
# Statements
# --------------------------------------------------------------------------


@attrs.frozen
class Declarator:
    """One declared name: ``x``, ``a[4][4]``, ``w = 1.0``, ``W[3] = {1, 2, 1}``."""

    span: SourceSpan
    name: str
    dims: tuple[Expr, ...]
    init: Expr | InitList | None


@attrs.frozen
class VarDecl:
    """``[const] T a = ..., b;``; ``space`` is ``"local"``, ``"shared"`` or
    ``"const"`` (the latter also for global constants)."""

    span: SourceSpan
    type: TypeRef
    declarators: tuple[Declarator, ...]
    space: str


@attrs.frozen
class Assign:
    """``target op value`` with ``op`` one of ``= += -= *= /= %= &= |= ^= <<= >>=``."""

    span: SourceSpan
    target: Expr
    op: str
    value: Expr
    op_span: SourceSpan


@attrs.frozen
class IncDec:
    """``target++`` or ``target--`` (statements only)."""

    span: SourceSpan
    target: Expr
    op: str


@attrs.frozen
class ExprStmt:
    span: SourceSpan
    expr: Expr


@attrs.frozen
class Block:
    span: SourceSpan
    stmts: tuple[Stmt, ...]


@attrs.frozen
class If:
    span: SourceSpan
    cond: Expr
    then: Stmt
    otherwise: Stmt | None


@attrs.frozen
class For:
    span: SourceSpan
    init: VarDecl | Assign | IncDec | None
    cond: Expr | None
    step: Assign | IncDec | None
    body: Stmt


@attrs.frozen
class While:
    span: SourceSpan
    cond: Expr
    body: Stmt


@attrs.frozen
class Break:
    span: SourceSpan


@attrs.frozen
class Continue:
    span: SourceSpan


@attrs.frozen
class Return:
    span: SourceSpan
    value: Expr | None


@attrs.frozen
class Empty:
    span: SourceSpan


Stmt = Union[VarDecl, Assign, IncDec, ExprStmt, Block, If, For, While, Break, Continue, Return,
             Empty]


# --------------------------------------------------------------------------
# Top level
# --------------------------------------------------------------------------


@attrs.frozen
class Param:
    span: SourceSpan
    type: TypeRef
    name: str


@attrs.frozen
class Attribute:
    """``@name(args)``; only ``@workgroup`` exists."""

    span: SourceSpan
    name: str
    args: tuple[Expr, ...]


@attrs.frozen
class Function:
    """A user function; it is inlined at every call."""

    span: SourceSpan
    ret: TypeRef
    name: str
    params: tuple[Param, ...]
    body: Block
    name_span: SourceSpan
    attributes: tuple[Attribute, ...] = ()


@attrs.frozen
class KernelDef:
    """An entry point."""

    span: SourceSpan
    name: str
    params: tuple[Param, ...]
    body: Block
    name_span: SourceSpan
    attributes: tuple[Attribute, ...] = ()


Item = Union[VarDecl, Function, KernelDef]


@attrs.frozen
class Program:
    path: str
    items: tuple[Item, ...]


def children(node: object) -> tuple[object, ...]:
    """The AST nodes directly below ``node`` (for generic walks)."""
    out: list[object] = []
    for field in attrs.fields(type(node)):
        value = getattr(node, field.name)
        if field.name in ("span", "op_span", "name_span"):
            continue
        if isinstance(value, tuple):
            out.extend(v for v in value if attrs.has(type(v)))
        elif value is not None and attrs.has(type(value)) and not isinstance(value, SourceSpan):
            out.append(value)
    return tuple(out)
