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
from typing import Any

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


class _Reader:
    """Rebuilds a Module from parsed JSON, checking shape as it goes."""

    def __init__(self, where: str):
        self.where = where
        self.count = 0

    def fail(self, path: str, message: str) -> IRError:
        return IRError(message, where=f"{self.where}: {path}",
                       hint="recompile the kernel with vgpucc; .xvir files are not meant to be edited")

    def expect(self, value: Any, kind: type | tuple[type, ...], path: str, what: str) -> Any:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(path, f"expected {what}, got {type(value).__name__}")
        return value

    def type_(self, value: Any, path: str) -> Type:
        self.expect(value, str, path, "a type name")
        try:
            return Type.parse(value)
        except ValueError as exc:
            raise self.fail(path, str(exc)) from None

    def node(self, value: Any, path: str, depth: int) -> Node:
        from xv_core.ir.nodes import MAX_DEPTH, MAX_NODES

        if depth > MAX_DEPTH:
            raise self.fail(path, f"nesting deeper than {MAX_DEPTH}")
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(path, f"more than {MAX_NODES} nodes")
        self.expect(value, list, path, "a node [op, type, arg, args, line]")
        if len(value) != 5:
            raise self.fail(path, f"a node has 5 fields, got {len(value)}")
        op_name, type_name, arg, args, line = value
        try:
            op = Op(self.expect(op_name, str, path + "[0]", "an op name"))
        except ValueError:
            raise self.fail(path + "[0]", f"unknown op {op_name!r}") from None
        type_ = self.type_(type_name, path + "[1]")
        self.expect(args, list, path + "[3]", "a list of operands")
        self.expect(line, int, path + "[4]", "a line number")
        if isinstance(arg, list):
            arg = tuple(arg)
        children = tuple(self.node(a, f"{path}[3][{i}]", depth + 1) for i, a in enumerate(args))
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
