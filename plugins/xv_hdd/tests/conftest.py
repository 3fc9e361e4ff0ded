"""A saxpy kernel built directly in IR, and a stand-in for the runtime's ComponentContext."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from xv_core.ir import F32, I32, Decl, Kernel, Node, Op, Type, verify_kernel
from xv_core.runtime.interfaces import TileWork


def saxpy_ir() -> Kernel:
    """kernel saxpy(f32 a, buffer<f32> x, buffer<f32> y) { i32 i = global_id.x;
    if (i < x.length) { y[i] = a * x[i] + y[i]; } }"""
    buf = Type("buffer", "f32")
    i = Node(Op.VAR, I32, (), "i")
    value = Node(Op.ADD, F32, (
        Node(Op.MUL, F32, (Node(Op.VAR, F32, (), "a"), Node(Op.LOAD, F32, (i,), ("x", 0)))),
        Node(Op.LOAD, F32, (i,), ("y", 0)),
    ))
    body = Node.block([
        Node(Op.ASSIGN, args=(Node(Op.SPECIAL, I32, (), "global_id.x"),), arg="i"),
        Node(Op.IF, args=(
            Node(Op.LT, Type("bool"), (i, Node(Op.LENGTH, I32, (), "x"))),
            Node.block([Node(Op.STORE, args=(i, value), arg=("y", 0))]),
            Node.block([]),
        )),
    ])
    kernel = Kernel("saxpy", (Decl("a", F32, "param"), Decl("x", buf, "param"),
                              Decl("y", buf, "param")), (Decl("i", I32, "local"),), body)
    verify_kernel(kernel)
    return kernel


class NumpySaxpy:
    """A prepared saxpy that runs the work items of a tile with numpy (test double of a backend)."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.threads: set[str] = set()

    def run_tile(self, tile, args):
        self.threads.add(threading.current_thread().name)
        items = tile.launch.group_items
        lo = tile.first_group * items
        hi = min((tile.first_group + tile.group_count) * items, len(args["x"]))
        y = args["y"]
        y[lo:hi] = args["a"] * args["x"][lo:hi] + y[lo:hi]
        return TileWork(ops=2 * (hi - lo), bytes_read=8 * (hi - lo), bytes_written=4 * (hi - lo))


class FakeContext:
    def __init__(self, workdir):
        self.workdir = str(workdir)
        self.prepared: list[tuple[str, str]] = []
        self.last: NumpySaxpy | None = None

    def prepare(self, kernel, backend):
        self.prepared.append((kernel.name, backend))
        if self.last is None:
            self.last = NumpySaxpy(kernel)
        return self.last


@pytest.fixture
def saxpy():
    return saxpy_ir()


@pytest.fixture
def context(tmp_path):
    return FakeContext(tmp_path)


@pytest.fixture
def xy():
    rng = np.random.default_rng(1)
    return rng.random(1000, dtype=np.float32), rng.random(1000, dtype=np.float32)
