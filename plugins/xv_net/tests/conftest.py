"""Kernels built directly in IR, and one net component (a local cluster) shared by the tests."""

from __future__ import annotations

import types

import pytest

from xv_core.ir import BOOL, F32, I32, Decl, Kernel, Node, Op, Type, verify_kernel
from xv_core.runtime.interfaces import Launch, Tile


def _guarded(length_of: str, statements: list[Node]) -> Node:
    """i = global_id.x; if (i < LENGTH_OF.length) { statements }"""
    i = Node(Op.VAR, I32, (), "i")
    return Node.block([
        Node(Op.ASSIGN, args=(Node(Op.SPECIAL, I32, (), "global_id.x"),), arg="i"),
        Node(Op.IF, args=(Node(Op.LT, BOOL, (i, Node(Op.LENGTH, I32, (), length_of))),
                          Node.block(statements), Node.block([]))),
    ])


def saxpy_ir() -> Kernel:
    """y[i] = a * x[i] + y[i]"""
    i = Node(Op.VAR, I32, (), "i")
    value = Node(Op.ADD, F32, (
        Node(Op.MUL, F32, (Node(Op.VAR, F32, (), "a"), Node(Op.LOAD, F32, (i,), ("x", 0)))),
        Node(Op.LOAD, F32, (i,), ("y", 0)),
    ))
    buf = Type("buffer", "f32")
    kernel = Kernel("saxpy", (Decl("a", F32, "param"), Decl("x", buf, "param"),
                              Decl("y", buf, "param")), (Decl("i", I32, "local"),),
                    _guarded("x", [Node(Op.STORE, args=(i, value), arg=("y", 0))]))
    verify_kernel(kernel)
    return kernel


def histogram_ir() -> Kernel:
    """atomic_add(bins[keys[i]], 1)"""
    i = Node(Op.VAR, I32, (), "i")
    key = Node(Op.LOAD, I32, (i,), ("keys", 0))
    add = Node(Op.ATOMIC, args=(key, Node.const(1, I32)), arg=("add", "bins", None))
    buf = Type("buffer", "i32")
    kernel = Kernel("histogram", (Decl("keys", buf, "param"), Decl("bins", buf, "param")),
                    (Decl("i", I32, "local"),), _guarded("keys", [add]))
    verify_kernel(kernel)
    return kernel


def overrun_ir() -> Kernel:
    """y[i + 1] = 1.0 -- out of bounds for the last work item."""
    i = Node(Op.VAR, I32, (), "i")
    store = Node(Op.STORE, args=(Node(Op.ADD, I32, (i, Node.const(1, I32))), Node.const(1.0, F32)),
                 arg=("y", 0), line=3)
    kernel = Kernel("overrun", (Decl("y", Type("buffer", "f32"), "param"),),
                    (Decl("i", I32, "local"),), _guarded("y", [store]), source="overrun.xvk")
    verify_kernel(kernel)
    return kernel


def tiles(n_items: int, block: int, count: int) -> list[Tile]:
    launch = Launch((-(-n_items // block), 1, 1), (block, 1, 1))
    base, extra = divmod(launch.groups, count)
    out, first = [], 0
    for index in range(count):
        n = base + (index < extra)
        out.append(Tile(index, launch, first, n))
        first += n
    return out


class Context:
    def __init__(self, workdir="."):
        self.workdir = str(workdir)


@pytest.fixture
def lib():
    """The helpers above (test modules cannot import conftest under importlib mode)."""
    return types.SimpleNamespace(saxpy_ir=saxpy_ir, histogram_ir=histogram_ir,
                                 overrun_ir=overrun_ir, tiles=tiles, Context=Context)


@pytest.fixture(scope="module")
def net():
    from xv_net.component import NetComponent, NetOptions

    comp = NetComponent("node0", NetOptions(), Context())
    yield comp
    comp.close()
