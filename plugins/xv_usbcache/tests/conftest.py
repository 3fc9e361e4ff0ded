"""Kernels built directly in IR, and a helper that writes a kernel repository."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from xv_core import ir
from xv_core.ir import F32, I32, Decl, Kernel, Module, Node, Op, Type, verify_kernel


def scale_ir(name: str = "scale", factor: float = 2.0) -> Kernel:
    """kernel NAME(buffer<f32> y) { i32 i = global_id.x; if (i < y.length) y[i] = y[i] * F; }"""
    buf = Type("buffer", "f32")
    i = Node(Op.VAR, I32, (), "i")
    value = Node(Op.MUL, F32, (Node(Op.LOAD, F32, (i,), ("y", 0)), Node.const(factor, F32)))
    body = Node.block([
        Node(Op.ASSIGN, args=(Node(Op.SPECIAL, I32, (), "global_id.x"),), arg="i"),
        Node(Op.IF, args=(
            Node(Op.LT, Type("bool"), (i, Node(Op.LENGTH, I32, (), "y"))),
            Node.block([Node(Op.STORE, args=(i, value), arg=("y", 0))]),
            Node.block([]),
        )),
    ])
    kernel = Kernel(name, (Decl("y", buf, "param"),), (Decl("i", I32, "local"),), body)
    verify_kernel(kernel)
    return kernel


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_repo(root: Path, kernels: dict[str, Kernel], *, manifest_extra: dict | None = None
              ) -> Path:
    """A repository at ``root``: one .xvir per kernel and a correct manifest."""
    root.mkdir(parents=True, exist_ok=True)
    entries = {}
    for name, kernel in kernels.items():
        file = root / f"{name}.xvir"
        ir.save(Module((kernel,)), file)
        entries[name] = {"file": file.name, "sha256": sha(file)}
    manifest = {"format": "xv-kernels", "version": 1, "kernels": entries}
    manifest.update(manifest_extra or {})
    (root / "xv-kernels.json").write_text(json.dumps(manifest, indent=2))
    return root / "xv-kernels.json"


@pytest.fixture
def repo(tmp_path):
    """A stick mounted at tmp_path/media/STICK with a repository in its 'kernels' folder."""
    return make_repo(tmp_path / "media" / "STICK" / "kernels",
                     {"scale": scale_ir(), "triple": scale_ir("triple", 3.0)})


@pytest.fixture
def lib():
    """The helpers above, for tests (test modules cannot import conftest under importlib mode)."""
    import types

    return types.SimpleNamespace(make_repo=make_repo, scale_ir=scale_ir, sha=sha)
