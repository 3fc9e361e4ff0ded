"""A small builder for hand-written IR kernels, and a runner, for the tests of xv_cpu.

Expressions are :class:`E` wrappers with arithmetic operators (``a + b``,
``a * 2``); Python numbers are made constants of the other operand's type.
Comparisons are methods (``a.lt(b)``) so that ``==`` keeps its meaning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from xv_core.ir import (
    BOOL, CONSTANT, LOCAL, PARAM, SHARED, VOID, Decl, Kernel, Node, Op, Type, verify_kernel,
)
from xv_core.runtime.interfaces import Launch, Tile, TileWork

SOURCE = "tests/kernel.xvk"
#: The backend ``run`` uses (set per test by the ``each_backend`` fixture of conftest.py).
BACKEND = "interp"
#: Relative tolerance of float results of the jit against numpy (and so against interp)
#: for transcendental functions: libm and numpy's own SIMD routines may differ by an ulp.
JIT_RTOL = 4e-7


def exact_or_close(actual, expected, *, transcendental=True):
    """Floats equal on interp (which computes with numpy), within JIT_RTOL on the jit."""
    if BACKEND == "interp" or not transcendental:
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual, expected, rtol=JIT_RTOL, atol=0)


def current_backend(given=None):
    """The backend a test's kernels run on: ``given`` on interp, else the jit."""
    if BACKEND == "interp":
        from xv_cpu.interp import InterpBackend

        return given or InterpBackend()
    from xv_cpu.jit import JitBackend

    return JitBackend()


def T(text: str) -> Type:
    return Type.parse(text)


class E:
    """An expression node with operators."""

    def __init__(self, node: Node):
        self.node = node

    @property
    def type(self) -> Type:
        return self.node.type

    def _bin(self, op: Op, other: Any, swap: bool = False, type_: Type | None = None) -> E:
        o = lift(other, self.type)
        a, b = (o, self) if swap else (self, o)
        return E(Node(op, type_ or a.type, (a.node, b.node)))

    def __add__(self, o: Any) -> E: return self._bin(Op.ADD, o)
    def __radd__(self, o: Any) -> E: return self._bin(Op.ADD, o, True)
    def __sub__(self, o: Any) -> E: return self._bin(Op.SUB, o)
    def __rsub__(self, o: Any) -> E: return self._bin(Op.SUB, o, True)
    def __mul__(self, o: Any) -> E: return self._bin(Op.MUL, o)
    def __rmul__(self, o: Any) -> E: return self._bin(Op.MUL, o, True)
    def __truediv__(self, o: Any) -> E: return self._bin(Op.DIV, o)
    def __rtruediv__(self, o: Any) -> E: return self._bin(Op.DIV, o, True)
    def __mod__(self, o: Any) -> E: return self._bin(Op.MOD, o)
    def __and__(self, o: Any) -> E: return self._bin(Op.BITAND, o)
    def __or__(self, o: Any) -> E: return self._bin(Op.BITOR, o)
    def __xor__(self, o: Any) -> E: return self._bin(Op.BITXOR, o)
    def __lshift__(self, o: Any) -> E: return self._bin(Op.SHL, o)
    def __rshift__(self, o: Any) -> E: return self._bin(Op.SHR, o)
    def __neg__(self) -> E: return E(Node(Op.NEG, self.type, (self.node,)))

    def lt(self, o: Any) -> E: return self._bin(Op.LT, o, type_=BOOL)
    def le(self, o: Any) -> E: return self._bin(Op.LE, o, type_=BOOL)
    def gt(self, o: Any) -> E: return self._bin(Op.GT, o, type_=BOOL)
    def ge(self, o: Any) -> E: return self._bin(Op.GE, o, type_=BOOL)
    def eq(self, o: Any) -> E: return self._bin(Op.EQ, o, type_=BOOL)
    def ne(self, o: Any) -> E: return self._bin(Op.NE, o, type_=BOOL)

    def cast(self, to: str) -> E:
        return E(Node(Op.CAST, T(to), (self.node,)))


def lift(value: Any, type_: Type) -> E:
    if isinstance(value, E):
        return value
    if type_.kind == "bool":
        return E(Node.const(bool(value), type_))
    if type_.is_int:
        return E(Node.const(int(value), type_))
    return E(Node.const(float(value), type_))


def c(value: Any, t: str = "i32") -> E:
    return lift(value, T(t))


def var(name: str, t: str = "i32") -> E:
    return E(Node(Op.VAR, T(t), (), name))


def sp(name: str) -> E:
    """A builtin: sp("global_id.x")."""
    return E(Node(Op.SPECIAL, T("i32"), (), name))


def length(buf: str) -> E:
    return E(Node(Op.LENGTH, T("i32"), (), buf))


def width(img: str) -> E:
    return E(Node(Op.WIDTH, T("i32"), (), img))


def height(img: str) -> E:
    return E(Node(Op.HEIGHT, T("i32"), (), img))


def un(op: Op, a: E) -> E:
    return E(Node(op, a.type, (a.node,)))


def bin_(op: Op, a: E, b: Any) -> E:
    return a._bin(op, b)


def land(a: E, b: E) -> E:
    return E(Node(Op.LAND, BOOL, (a.node, b.node)))


def lor(a: E, b: E) -> E:
    return E(Node(Op.LOR, BOOL, (a.node, b.node)))


def select(cond: E, a: Any, b: Any) -> E:
    t = a.type if isinstance(a, E) else b.type
    a, b = lift(a, t), lift(b, t)
    return E(Node(Op.SELECT, t, (cond.node, a.node, b.node)))


def load(buf: str, index: E, t: str = "f32", lane: int = 0, line: int = 0) -> E:
    return E(Node(Op.LOAD, T(t), (index.node,), (buf, lane), line))


def iload(img: str, x: E, y: E, t: str = "f32", lane: int = 0, line: int = 0) -> E:
    return E(Node(Op.ILOAD, T(t), (x.node, y.node), (img, lane), line))


def aload(arr: str, *idx: E, t: str = "f32", line: int = 0) -> E:
    return E(Node(Op.ALOAD, T(t), tuple(lift(i, T("i32")).node for i in idx), arr, line))


# -- statements -----------------------------------------------------------------


def assign(name: str, value: E, line: int = 0) -> Node:
    return Node(Op.ASSIGN, VOID, (value.node,), name, line)


def store(buf: str, index: E, value: E, lane: int = 0, line: int = 0) -> Node:
    return Node(Op.STORE, VOID, (index.node, value.node), (buf, lane), line)


def istore(img: str, x: E, y: E, value: E, lane: int = 0, line: int = 0) -> Node:
    return Node(Op.ISTORE, VOID, (x.node, y.node, value.node), (img, lane), line)


def astore(arr: str, idx: Iterable[Any], value: E, line: int = 0) -> Node:
    nodes = tuple(lift(i, T("i32")).node for i in idx)
    return Node(Op.ASTORE, VOID, nodes + (value.node,), arr, line)


def atomic(kind: str, buf: str, index: E, *values: E, result: str | None = None,
           line: int = 0) -> Node:
    nodes = (index.node,) + tuple(v.node for v in values)
    return Node(Op.ATOMIC, VOID, nodes, (kind, buf, result), line)


def block(*stmts: Node, label: str | None = None, line: int = 0) -> Node:
    return Node.block(list(stmts), label, line)


def if_(cond: E, then: Iterable[Node], else_: Iterable[Node] = (), line: int = 0) -> Node:
    return Node(Op.IF, VOID, (cond.node, block(*then), block(*else_)), None, line)


def loop(label: str, cond: E, body: Iterable[Node], step: Iterable[Node] = (),
         line: int = 0) -> Node:
    return Node(Op.LOOP, VOID, (cond.node, block(*body), block(*step)), label, line)


def for_(label: str, name: str, start: Any, end: Any, body: Iterable[Node], step: Any = 1,
         t: str = "i32") -> list[Node]:
    """for (name = start; name < end; name += step) body"""
    i = var(name, t)
    return [assign(name, lift(start, T(t))),
            loop(label, i.lt(end), body, [assign(name, i + step)])]


def brk(label: str, line: int = 0) -> Node:
    return Node(Op.BREAK, VOID, (), label, line)


def cont(label: str, line: int = 0) -> Node:
    return Node(Op.CONTINUE, VOID, (), label, line)


def ret(line: int = 0) -> Node:
    return Node(Op.RETURN, VOID, (), None, line)


def barrier(line: int = 0) -> Node:
    return Node(Op.BARRIER, VOID, (), None, line)


# -- kernels --------------------------------------------------------------------------


def kernel(name: str, params: str, body: Iterable[Node], *, locals: str = "",
           shared: Mapping[str, str] | None = None,
           consts: Mapping[str, tuple[str, Any]] | None = None,
           workgroup: tuple[int, int, int] | None = None, source: str | None = SOURCE) -> Kernel:
    """params / locals: "f32 a, buffer<f32> x"; shared: {"s": "f32[256]"};
    consts: {"W": ("f32[5]", [1, 4, 6, 4, 1])}.  The kernel is verified."""

    def decls(text: str, space: str) -> tuple[Decl, ...]:
        out = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            t, _, n = part.rpartition(" ")
            out.append(Decl(n, T(t), space))
        return tuple(out)

    more = list(decls(locals, LOCAL))
    for n, t in (shared or {}).items():
        more.append(Decl(n, T(t), SHARED))
    for n, (t, values) in (consts or {}).items():
        ty = T(t)
        cast = float if ty.elem in ("f32", "f64") else (bool if ty.elem == "bool" else int)
        more.append(Decl(n, ty, CONSTANT, tuple(cast(v) for v in np.ravel(values))))
    k = Kernel(name, decls(params, PARAM), tuple(more), block(*body), workgroup, source)
    verify_kernel(k)
    return k


def run(kernel_: Kernel, args: Mapping[str, Any], *, grid: Any, block: Any,
        backend: Any = None, tile_groups: int | None = None) -> TileWork:
    """Run every tile of a launch (tiles of ``tile_groups`` groups; default one tile)."""
    grid = tuple(grid) + (1,) * (3 - len(grid)) if not isinstance(grid, int) else (grid, 1, 1)
    block = tuple(block) + (1,) * (3 - len(block)) if not isinstance(block, int) else (block, 1, 1)
    launch = Launch(grid, block)
    prepared = current_backend(backend).prepare(kernel_)
    per_tile = tile_groups or launch.groups
    work = TileWork()
    for i, first in enumerate(range(0, launch.groups, per_tile)):
        tile = Tile(i, launch, first, min(per_tile, launch.groups - first))
        work = work + prepared.run_tile(tile, args)
    return work
