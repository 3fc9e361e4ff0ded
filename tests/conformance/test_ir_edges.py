"""IR that no front end emits but a ``.xvir`` file may hold, and the verifier accepts: every
backend must run it as the reference interpreter does, or the loader must refuse it; it must
never crash with a non-Xenovectra exception. The modules are written as JSON, as the files are,
and loaded through the public API (``fabric.kernel(path)``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xv_core.errors import IRError

GID = ["special", "i32", "global_id.x", [], 1]


def const(value: Any, type_: str) -> list[Any]:
    return ["const", type_, value, [], 1]


def write_module(tmp_path: Path, stmts: list[Any], params: list[tuple[str, str]],
                 decls: list[dict[str, Any]] = ()) -> Path:
    path = tmp_path / "edge.xvir"
    path.write_text(json.dumps({
        "format": "xvir", "version": 1, "source": "edge.xvk", "kernels": [{
            "name": "edge", "params": [{"name": n, "type": t, "space": "param"} for n, t in params],
            "decls": list(decls), "workgroup": None, "source": "edge.xvk",
            "body": ["block", "void", None, stmts, 1]}]}))
    return path


def store(buffer: str, index: list[Any], value: list[Any]) -> list[Any]:
    return ["store", "void", [buffer, 0], [index, value], 1]


def test_comparisons_of_bools(run, tmp_path):
    """``lt``/``gt`` on bools verify (comparisons take any scalar type): false < true, as
    numpy and the interp order them, not as a signed 1-bit integer would (true = -1)."""
    lt = ["lt", "bool", None, [["load", "bool", ["a", 0], [GID], 1],
                               ["load", "bool", ["b", 0], [GID], 1]], 1]
    ge = ["ge", "bool", None, lt[3], 1]
    path = write_module(tmp_path, [store("lt", GID, lt), store("ge", GID, ge)],
                        [("a", "buffer<bool>"), ("b", "buffer<bool>"), ("lt", "buffer<bool>"),
                         ("ge", "buffer<bool>")])
    a = np.array([False, False, True, True])
    b = np.array([False, True, False, True])
    out = run(str(path), {"a": a, "b": b, "lt": np.zeros(4, bool), "ge": np.zeros(4, bool)},
              global_size=4, block=4)
    np.testing.assert_array_equal(out["lt"], a < b)
    np.testing.assert_array_equal(out["ge"], a >= b)


def test_f32_constant_beyond_the_f32_range(run, tmp_path):
    """1e300 is no f32. Either the loader refuses it (IRError), or it runs as infinity, which
    is what the interp makes of it."""
    path = write_module(tmp_path, [store("o", GID, const(1e300, "f32")),
                                   store("o", ["add", "i32", None, [GID, const(4, "i32")], 1],
                                         const(-1e300, "f32"))],
                        [("o", "buffer<f32>")])
    try:
        with np.errstate(over="ignore"):
            out = run(str(path), {"o": np.zeros(8, np.float32)}, global_size=4, block=4)
    except IRError:
        return
    np.testing.assert_array_equal(out["o"], [np.inf] * 4 + [-np.inf] * 4)


@pytest.mark.parametrize("where", ["constant", "array initialiser"])
def test_integer_constant_beyond_the_float_range(run, tmp_path, where):
    """The verifier accepts any integer as an f32 constant; 10**400 has no float value. Either
    the loader refuses it (IRError) or it runs as infinity: anything else is a crash."""
    if where == "constant":
        value = const(10**400, "f32")
        path = write_module(tmp_path, [store("o", GID, value)], [("o", "buffer<f32>")])
    else:
        table = {"name": "T", "type": "f32[2]", "space": "const", "init": [1, 10**400]}
        value = ["aload", "f32", "T", [const(1, "i32")], 1]
        path = write_module(tmp_path, [store("o", GID, value)], [("o", "buffer<f32>")], [table])
    try:
        out = run(str(path), {"o": np.zeros(4, np.float32)}, global_size=4, block=4)
    except IRError:
        return
    np.testing.assert_array_equal(out["o"], [np.inf] * 4)


@pytest.mark.parametrize("levels", [100, 250])
def test_expression_nested_to_the_verifiers_limit(run, tmp_path, levels):
    """The verifier admits IR 256 levels deep (a store, then the negations): every backend must
    compile and run it, however it walks the tree."""
    value: list[Any] = ["load", "f32", ["x", 0], [GID], 1]
    for _ in range(levels):
        value = ["neg", "f32", None, [value], 1]
    path = write_module(tmp_path, [store("o", GID, value)], [("x", "buffer<f32>"),
                                                             ("o", "buffer<f32>")])
    x = np.arange(4, dtype=np.float32) + 0.5
    out = run(str(path), {"x": x, "o": np.zeros(4, np.float32)}, global_size=4, block=4)
    np.testing.assert_array_equal(out["o"], x if levels % 2 == 0 else -x)
