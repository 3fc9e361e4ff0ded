"""The IR: serialisation round trip and the verifier's refusals."""

from __future__ import annotations

import copy
import json

import pytest

from xv_core import ir
from xv_core.errors import IRError
from xv_core.ir import BOOL, F32, I32, Decl, Kernel, Module, Node, Op, Type


def _saxpy() -> Module:
    i = Node(Op.VAR, I32, (), "i")
    x_i = Node(Op.LOAD, F32, (i,), ("x", 0))
    y_i = Node(Op.LOAD, F32, (i,), ("y", 0))
    a = Node(Op.VAR, F32, (), "a")
    body = Node.block([
        Node(Op.ASSIGN, args=(Node(Op.SPECIAL, I32, (), "global_id.x"),), arg="i", line=3),
        Node(Op.IF, args=(
            Node(Op.LT, BOOL, (i, Node(Op.LENGTH, I32, (), "x"))),
            Node.block([Node(Op.STORE, args=(i, Node(Op.ADD, F32, (Node(Op.MUL, F32, (a, x_i)), y_i))),
                             arg=("y", 0), line=5)]),
            Node.block([]),
        ), line=4),
    ])
    kernel = Kernel(
        "saxpy",
        (Decl("a", F32, "param"), Decl("x", Type("buffer", "f32"), "param"),
         Decl("y", Type("buffer", "f32"), "param")),
        (Decl("i", I32, "local"),),
        body,
    )
    return Module((kernel,), source="saxpy.xvk")


def _doc() -> dict:
    return ir.serial.module_to_json(_saxpy())


def _load(doc: dict) -> Module:
    return ir.loads(json.dumps(doc), "k.xvir")


def test_round_trip_is_exact():
    module = _saxpy()
    ir.verify_module(module)
    again = ir.loads(ir.dumps(module))
    assert again == module
    assert again.kernels[0].body.args[1].line == 4  # lines survive, for runtime errors


def test_save_is_atomic_and_load_verifies(tmp_path):
    path = tmp_path / "k.xvir"
    ir.save(_saxpy(), path)
    assert ir.load(path) == _saxpy()
    assert [p.name for p in tmp_path.iterdir()] == ["k.xvir"]


def test_text_form_is_readable():
    text = ir.module_text(_saxpy())
    assert "kernel saxpy(f32 a, buffer<f32> x, buffer<f32> y) {" in text
    assert "store y.0[%i] = add:f32(mul:f32(%a, load:f32 x.0[%i]), load:f32 y.0[%i])  ; line 5" in text


def _mutate(path: list, value) -> dict:
    doc = _doc()
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


BODY = ["kernels", 0, "body"]
STORE = BODY + [3, 1, 3, 1, 3, 0]  # the store inside the if


@pytest.mark.parametrize(
    "doc, message",
    [
        (_mutate(["version"], 99),
         "k.xvir: $.version: IR version 99 is not supported (this Xenovectra reads version 1) "
         "(hint: recompile the kernel source with this version's vgpucc)"),
        (_mutate(["format"], "elf"), "not an xvir file (format 'elf')"),
        (_mutate(STORE + [2], ["z", 0]), "$.kernels[0].body[3][1][3][1][3][0]: reference to "
                                         "undeclared name 'z'"),
        (_mutate(STORE + [2], ["a", 0]), "'a' is a param f32, expected a buffer"),
        (_mutate(STORE + [2], ["y", 3]), "lane 3 is out of range for buffer<f32>"),
        (_mutate(BODY + [3, 0, 3, 0, 1], "f32"), "builtin has type f32, expected i32"),
        (_mutate(BODY + [3, 0, 1], "f64"), "statement assign must have type void"),
        (_mutate(["kernels", 0, "decls", 0, "type"], "f32[4096][4096]"),
         "array size [4096, 4096] is out of range (at most 1048576 elements)"),
        (_mutate(["kernels", 0, "decls", 0, "type"], "i32[0]"), "array size [0] is out of range"),
        (_mutate(BODY + [0], "exec"), "unknown op 'exec'"),
        (_mutate(["kernels", 0, "workgroup"], [1024, 1024, 1]),
         "workgroup [1024, 1024, 1] must be positive with at most 1024 work items"),
        (_mutate(BODY + [3, 0], ["break", "void", "nowhere", [], 0]),
         "break to 'nowhere', which does not enclose it"),
        (_mutate(["kernels", 0, "params", 0, "name"], "x"), "'x' is declared twice"),
        (_mutate(["kernels", 0, "decls", 0], {"name": "i", "type": "i32", "space": "local",
                                              "code": "import os"}), "unknown keys ['code']"),
        (_mutate(["kernels", 0, "name"], "saxpy; rm -rf /"), "invalid kernel name"),
    ],
)
def test_verifier_refuses_malformed_files(doc, message):
    with pytest.raises(IRError) as err:
        _load(doc)
    assert message in str(err.value)
    assert str(err.value).startswith("k.xvir")


def test_not_json_and_deep_nesting_are_refused():
    with pytest.raises(IRError, match="not a valid .xvir file"):
        ir.loads(b"\x80\x04K.", "k.xvir")  # a pickle is data we refuse, never unpickle
    deep: list = ["block", "void", None, [], 0]
    for _ in range(400):
        deep = ["block", "void", None, [deep], 0]
    doc = _mutate(BODY, deep)
    with pytest.raises(IRError, match="nesting deeper than 256"):
        _load(doc)


def test_too_many_nodes_are_refused_before_any_is_built(monkeypatch):
    """Counted on the parsed JSON first: a file over the limit costs no node built (at the
    real limit, a million, building them took seconds), and the message names the body."""
    import xv_core.ir.nodes as nodes

    monkeypatch.setattr(nodes, "MAX_NODES", 100)
    built = []
    node = ir.serial._Reader.node
    monkeypatch.setattr(ir.serial._Reader, "node", lambda *a: built.append(a))
    doc = _mutate(BODY, ["block", "void", None, [["break", "void", None, [], 0]] * 100, 0])
    with pytest.raises(IRError) as err:
        _load(doc)
    assert str(err.value).startswith("k.xvir: $.kernels[0].body: more than 100 nodes")
    assert built == []
    # The reader keeps its own count as well, and stops at the node past the limit.
    monkeypatch.setattr(ir.serial._Reader, "node", node)
    monkeypatch.setattr(ir.serial, "_count_nodes", lambda value, limit: 0)
    with pytest.raises(IRError) as err:
        _load(doc)
    assert str(err.value).startswith("k.xvir: $.kernels[0].body[3][99]: more than 100 nodes")


def test_errors_deep_in_a_body_name_the_whole_path():
    """Paths are built only for messages, from the chain of operands."""
    inner: list = ["block", "void", None, [["nope", "void", None, [], 0]], 0]
    doc = _mutate(BODY, ["block", "void", None, [["block", "void", None, [], 0], inner], 0])
    with pytest.raises(IRError) as err:
        _load(doc)
    assert str(err.value).startswith(
        "k.xvir: $.kernels[0].body[3][1][3][0][0]: unknown op 'nope'")
    doc = _mutate(BODY, ["block", "void", None, [["block", "f33", None, [], 0]], 0])
    with pytest.raises(IRError) as err:
        _load(doc)
    assert str(err.value).startswith("k.xvir: $.kernels[0].body[3][0][1]: unknown type 'f33'")


def test_verified_copy_is_not_shared_with_the_file():
    doc = _doc()
    module = _load(copy.deepcopy(doc))
    assert ir.serial.module_to_json(module) == doc
