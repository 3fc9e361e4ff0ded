"""Reading and writing ``.xvir`` files.

A ``.xvir`` file is JSON: a header (format, version, producer) and the
kernels.  Loading parses JSON (data only: nothing in a file is ever
evaluated), rebuilds the nodes and runs the verifier; anything malformed is
an :class:`~xv_core.errors.IRError` naming the file and the ``$.path`` of the
offending part.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Union

from xv_core.errors import IRError, XvError
from xv_core.ir.nodes import IR_FORMAT, IR_VERSION, Decl, Kernel, Module, Node, Op, Type
from xv_core.ir.verify import verify_module
from xv_core.replace import give_mode, replace_problem

#: A .xvir larger than this is refused before it is parsed.
MAX_FILE_BYTES = 64 << 20


def _node_to_json(node: Node) -> list[Any]:
    arg = list(node.arg) if isinstance(node.arg, tuple) else node.arg
    return [node.op.value, str(node.type), arg, [_node_to_json(a) for a in node.args], node.line]


def module_to_json(module: Module) -> dict[str, Any]:
    def decl(d: Decl) -> dict[str, Any]:
        out: dict[str, Any] = {"name": d.name, "type": str(d.type), "space": d.space}
        if d.init is not None:
            out["init"] = list(d.init)
        return out

    return {
        "format": IR_FORMAT,
        "version": module.version,
        "source": module.source,
        "kernels": [
            {
                "name": k.name,
                "params": [decl(p) for p in k.params],
                "decls": [decl(d) for d in k.decls],
                "workgroup": list(k.workgroup) if k.workgroup else None,
                "source": k.source,
                "body": _node_to_json(k.body),
            }
            for k in module.kernels
        ],
    }


def dumps(module: Module) -> str:
    return json.dumps(module_to_json(module), separators=(",", ":"))


def save(module: Module, path: str | os.PathLike[str]) -> None:
    """Write atomically: a failure leaves no half-written file behind."""
    path = Path(path)
    problem = replace_problem(path)
    if problem:
        raise XvError(f"cannot write {path}: {problem}", where=str(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        give_mode(fd, path)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(dumps(module))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: An op by its name in a file.
_OPS = {op.value: op for op in Op}

#: A node's path while it is read: the ``$.path`` text of a root, or (parent, operand index),
#: turned into text only for a message (building every node's path would cost time growing
#: with its depth).
_NodePath = Union[str, tuple[Any, int]]


def _path_text(path: _NodePath) -> str:
    parts = []
    while not isinstance(path, str):
        path, index = path
        parts.append(f"[3][{index}]")
    return path + "".join(reversed(parts))


def _count_nodes(value: Any, limit: int) -> int:
    """Nodes in a body as the reader would count them, stopping past ``limit``: so that a file
    over the limit is refused before its nodes are built."""
    stack, count = [value], 0
    while stack and count <= limit:
        node = stack.pop()
        count += 1
        if type(node) is list and len(node) == 5 and type(node[3]) is list:
            stack.extend(node[3])
    return count


class _Reader:
    """Rebuilds a Module from parsed JSON, checking shape as it goes."""

    def __init__(self, where: str):
        self.where = where
        self.count = 0
        self._types: dict[str, Type] = {}  # a type's text -> the (immutable) type

    def fail(self, path: str, message: str) -> IRError:
        return IRError(message, where=f"{self.where}: {path}",
                       hint="recompile the kernel with vgpucc; .xvir files are not meant to be edited")

    def expect(self, value: Any, kind: type | tuple[type, ...], path: str, what: str) -> Any:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(path, f"expected {what}, got {type(value).__name__}")
        return value

    def type_(self, value: Any, path: str) -> Type:
        if type(value) is str:
            known = self._types.get(value)
            if known is not None:
                return known
        self.expect(value, str, path, "a type name")
        try:
            parsed = Type.parse(value)
        except ValueError as exc:
            raise self.fail(path, str(exc)) from None
        self._types[value] = parsed
        return parsed

    def node(self, value: Any, path: _NodePath, depth: int) -> Node:
        from xv_core.ir.nodes import MAX_DEPTH, MAX_NODES

        if depth > MAX_DEPTH:
            raise self.fail(_path_text(path), f"nesting deeper than {MAX_DEPTH}")
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(_path_text(path), f"more than {MAX_NODES} nodes")
        if type(value) is not list or len(value) != 5:
            text = _path_text(path)
            self.expect(value, list, text, "a node [op, type, arg, args, line]")
            raise self.fail(text, f"a node has 5 fields, got {len(value)}")
        op_name, type_name, arg, args, line = value
        op = _OPS.get(op_name) if type(op_name) is str else None
        if op is None:
            text = _path_text(path) + "[0]"
            self.expect(op_name, str, text, "an op name")
            raise self.fail(text, f"unknown op {op_name!r}")
        type_ = self._types.get(type_name) if type(type_name) is str else None
        if type_ is None:
            type_ = self.type_(type_name, _path_text(path) + "[1]")
        if type(args) is not list:
            self.expect(args, list, _path_text(path) + "[3]", "a list of operands")
        if type(line) is not int:
            self.expect(line, int, _path_text(path) + "[4]", "a line number")
        if isinstance(arg, list):
            arg = tuple(arg)
        children = tuple([self.node(a, (path, i), depth + 1) for i, a in enumerate(args)])
        return Node(op, type_, children, arg, line)

    def decl(self, value: Any, path: str) -> Decl:
        self.expect(value, dict, path, "a declaration")
        extra = set(value) - {"name", "type", "space", "init"}
        if extra:
            raise self.fail(path, f"unknown keys {sorted(extra)}")
        init = value.get("init")
        if init is not None:
            init = tuple(self.expect(init, list, path + ".init", "a list of values"))
        return Decl(
            self.expect(value.get("name"), str, path + ".name", "a name"),
            self.type_(value.get("type"), path + ".type"),
            self.expect(value.get("space"), str, path + ".space", "a space"),
            init,
        )

    def kernel(self, value: Any, path: str) -> Kernel:
        self.expect(value, dict, path, "a kernel")
        extra = set(value) - {"name", "params", "decls", "workgroup", "source", "body"}
        if extra:
            raise self.fail(path, f"unknown keys {sorted(extra)}")
        params = self.expect(value.get("params"), list, path + ".params", "a list")
        decls = self.expect(value.get("decls"), list, path + ".decls", "a list")
        wg = value.get("workgroup")
        if wg is not None:
            self.expect(wg, list, path + ".workgroup", "a list of three sizes")
            if len(wg) != 3 or not all(isinstance(n, int) and not isinstance(n, bool) for n in wg):
                raise self.fail(path + ".workgroup", "expected three integer sizes")
            wg = tuple(wg)
        source = value.get("source")
        if source is not None:
            self.expect(source, str, path + ".source", "a path")
        return Kernel(
            name=self.expect(value.get("name"), str, path + ".name", "a name"),
            params=tuple(self.decl(p, f"{path}.params[{i}]") for i, p in enumerate(params)),
            decls=tuple(self.decl(d, f"{path}.decls[{i}]") for i, d in enumerate(decls)),
            body=self.node(value.get("body"), path + ".body", 0),
            workgroup=wg,
            source=source,
        )


def from_json(data: Any, where: str = "<ir>") -> Module:
    """Rebuild and verify a module from parsed JSON."""
    reader = _Reader(where)
    reader.expect(data, dict, "$", "a JSON object")
    if data.get("format") != IR_FORMAT:
        raise reader.fail("$.format", f"not an {IR_FORMAT} file (format {data.get('format')!r})")
    version = data.get("version")
    if type(version) is not int or version != IR_VERSION:  # True and 1.0 are not 1
        raise IRError(
            f"IR version {version!r} is not supported (this Xenovectra reads version {IR_VERSION})",
            where=f"{where}: $.version",
            hint="recompile the kernel source with this version's vgpucc",
        )
    extra = set(data) - {"format", "version", "source", "kernels"}
    if extra:
        raise reader.fail("$", f"unknown keys {sorted(extra)}")
    kernels = reader.expect(data.get("kernels"), list, "$.kernels", "a list of kernels")
    source = data.get("source")
    if source is not None:
        reader.expect(source, str, "$.source", "a path")
    from xv_core.ir.nodes import MAX_NODES

    count = 0
    for i, k in enumerate(kernels):
        if isinstance(k, dict):
            count += _count_nodes(k.get("body"), MAX_NODES - count)
            if count > MAX_NODES:
                raise reader.fail(f"$.kernels[{i}].body", f"more than {MAX_NODES} nodes")
    module = Module(tuple(reader.kernel(k, f"$.kernels[{i}]") for i, k in enumerate(kernels)),
                    version, source)
    verify_module(module, where)
    return module


def loads(text: str | bytes, where: str = "<ir>") -> Module:
    if len(text) > MAX_FILE_BYTES:
        raise IRError(f"file is larger than {MAX_FILE_BYTES >> 20} MiB", where=where)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise IRError(f"not a valid .xvir file: {exc}", where=where,
                      hint="recompile the kernel with vgpucc") from None
    return from_json(data, where)


def load(path: str | os.PathLike[str]) -> Module:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise IRError(f"file is larger than {MAX_FILE_BYTES >> 20} MiB", where=str(path))
        data = path.read_bytes()
    except OSError as exc:
        raise IRError(f"cannot read IR file: {exc.strerror}", where=str(path)) from None
    return loads(data, str(path))
