"""The IR verifier: every rule a well-formed module obeys.

Backends may assume a verified module: names resolve to declarations of the
right space and type, operand types match, labels are in scope, sizes are
bounded.  Generated code is only ever built from verified IR.
"""

from __future__ import annotations

import math
import re

from xv_core.errors import IRError
from xv_core.ir.nodes import (
    ATOMIC_KINDS, BINARY, BIT_BINARY, COMPARE, CONSTANT, ELEMENTS, FLOAT_BINARY, FLOAT_UNARY,
    INT_BINARY, LOCAL, MAX_ARRAY_ELEMENTS, MAX_ARRAY_RANK, PARAM, SCALARS, SHARED, SPECIALS,
    STATEMENTS, BOOL, I32, VOID, Decl, Kernel, Module, Node, Op, Type,
)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")  # used with fullmatch: "$" admits "\n"
MAX_WORKGROUP = 1024
MAX_SHARED_BYTES = 1 << 20
_SIZES = {"bool": 1, "i32": 4, "u32": 4, "f32": 4, "f64": 8}


class _KernelVerifier:
    def __init__(self, kernel: Kernel, where: str, path: str):
        self.kernel = kernel
        self.where = where
        self.path = path
        self.decls: dict[str, Decl] = {}

    def fail(self, path: str, message: str) -> IRError:
        return IRError(message, where=f"{self.where}: {path}",
                       hint="recompile the kernel with vgpucc; .xvir files are not meant to be edited")

    # -- declarations ---------------------------------------------------------
    def check_decls(self) -> None:
        k = self.kernel
        if not isinstance(k.name, str) or not _NAME.fullmatch(k.name):
            raise self.fail(self.path + ".name", f"invalid kernel name {k.name!r}")
        if k.workgroup is not None:
            if any(n < 1 for n in k.workgroup) or math.prod(k.workgroup) > MAX_WORKGROUP:
                raise self.fail(self.path + ".workgroup",
                                f"workgroup {list(k.workgroup)} must be positive with at most "
                                f"{MAX_WORKGROUP} work items")
        shared_bytes = 0
        for group, decls in (("params", k.params), ("decls", k.decls)):
            for i, d in enumerate(decls):
                p = f"{self.path}.{group}[{i}]"
                if not _NAME.fullmatch(d.name):
                    raise self.fail(p + ".name", f"invalid name {d.name!r}")
                if d.name in self.decls:
                    raise self.fail(p + ".name", f"{d.name!r} is declared twice")
                self.check_decl_type(d, p, group == "params")
                if d.space == SHARED:
                    shared_bytes += math.prod(d.type.shape) * _SIZES[d.type.elem]
                self.decls[d.name] = d
        if shared_bytes > MAX_SHARED_BYTES:
            raise self.fail(self.path, f"{shared_bytes} bytes of shared memory is more than "
                                       f"{MAX_SHARED_BYTES}")

    def check_decl_type(self, d: Decl, p: str, is_param: bool) -> None:
        t = d.type
        expected_space = PARAM if is_param else (LOCAL, SHARED, CONSTANT)
        if (is_param and d.space != PARAM) or (not is_param and d.space not in expected_space):
            raise self.fail(p + ".space", f"space {d.space!r} is not allowed here")
        if t.kind in ("buffer", "image"):
            if not is_param or t.elem not in ELEMENTS:
                raise self.fail(p + ".type", f"{t} is only allowed as a kernel parameter")
        elif t.kind == "array":
            if is_param or t.elem not in SCALARS or not 1 <= len(t.shape) <= MAX_ARRAY_RANK:
                raise self.fail(p + ".type", f"invalid array type {t}")
            if any(n < 1 for n in t.shape) or math.prod(t.shape) > MAX_ARRAY_ELEMENTS:
                raise self.fail(p + ".type", f"array size {list(t.shape)} is out of range "
                                             f"(at most {MAX_ARRAY_ELEMENTS} elements)")
        elif t.kind not in SCALARS:
            raise self.fail(p + ".type", f"type {t} cannot be declared")
        if d.space in (SHARED, CONSTANT) and t.kind != "array":
            raise self.fail(p + ".type", f"{d.space} declarations must be arrays")
        if d.space == CONSTANT:
            if d.init is None or len(d.init) != math.prod(t.shape):
                raise self.fail(p + ".init", f"a constant array needs {math.prod(t.shape)} values")
            for v in d.init:
                if not _value_fits(v, t.elem):
                    raise self.fail(p + ".init", f"value {v!r} is not a {t.elem}")
        elif d.init is not None:
            raise self.fail(p + ".init", "only constant arrays have initialisers")

    def decl(self, name: object, path: str, kinds: tuple[str, ...], spaces: tuple[str, ...]) -> Decl:
        if not isinstance(name, str) or name not in self.decls:
            raise self.fail(path, f"reference to undeclared name {name!r}")
        d = self.decls[name]
        kind = "scalar" if d.type.is_scalar else d.type.kind
        if kind not in kinds or d.space not in spaces:
            raise self.fail(path, f"{name!r} is a {d.space} {d.type}, expected a {'/'.join(kinds)}")
        return d

    # -- nodes ------------------------------------------------------------------
    def same(self, node: Node, path: str, t: Type, what: str = "operand") -> None:
        if node.type != t:
            raise self.fail(path, f"{what} has type {node.type}, expected {t}")

    def arity(self, node: Node, path: str, n: int) -> None:
        if len(node.args) != n:
            raise self.fail(path, f"{node.op.value} takes {n} operands, got {len(node.args)}")

    def expr(self, node: Node, path: str) -> None:
        op, t = node.op, node.type
        if op in STATEMENTS:
            raise self.fail(path, f"statement {op.value} used as an expression")
        if not t.is_scalar:
            raise self.fail(path, f"expression of type {t}; expressions are scalars")
        for i, a in enumerate(node.args):
            self.expr(a, f"{path}[3][{i}]")
        args = node.args
        if op is Op.CONST:
            self.arity(node, path, 0)
            if not _value_fits(node.arg, t.kind):
                raise self.fail(path, f"constant {node.arg!r} is not a {t}")
        elif op is Op.VAR:
            self.arity(node, path, 0)
            d = self.decl(node.arg, path, ("scalar",), (PARAM, LOCAL))
            self.same(node, path, d.type, "variable")
        elif op is Op.SPECIAL:
            self.arity(node, path, 0)
            if node.arg not in SPECIALS:
                raise self.fail(path, f"unknown builtin {node.arg!r}")
            self.same(node, path, I32, "builtin")
        elif op is Op.LENGTH:
            self.arity(node, path, 0)
            self.decl(node.arg, path, ("buffer",), (PARAM,))
            self.same(node, path, I32, "length")
        elif op in (Op.WIDTH, Op.HEIGHT):
            self.arity(node, path, 0)
            self.decl(node.arg, path, ("image",), (PARAM,))
            self.same(node, path, I32, "size")
        elif op in (Op.LOAD, Op.ILOAD):
            kind = "buffer" if op is Op.LOAD else "image"
            d = self.memref(node.arg, path, kind)
            self.arity(node, path, 1 if op is Op.LOAD else 2)
            for i, a in enumerate(args):
                self.same(a, f"{path}[3][{i}]", I32, "index")
            self.same(node, path, _lane_type(d.type), "element")
        elif op is Op.ALOAD:
            d = self.decl(node.arg, path, ("array",), (LOCAL, SHARED, CONSTANT))
            self.arity(node, path, len(d.type.shape))
            for i, a in enumerate(args):
                self.same(a, f"{path}[3][{i}]", I32, "index")
            self.same(node, path, Type(d.type.elem), "element")
        elif op is Op.CAST:
            self.arity(node, path, 1)
        elif op in (Op.NEG, Op.ABS, Op.SIGN) or op in FLOAT_UNARY or op in (Op.NOT, Op.BITNOT):
            self.arity(node, path, 1)
            self.same(args[0], path + "[3][0]", t)
            if op in FLOAT_UNARY and not t.is_float:
                raise self.fail(path, f"{op.value} needs a float operand, got {t}")
            if op is Op.NOT and t != BOOL:
                raise self.fail(path, f"not needs a bool operand, got {t}")
            if op is Op.BITNOT and not t.is_int:
                raise self.fail(path, f"bitnot needs an integer operand, got {t}")
            if op in (Op.NEG, Op.ABS, Op.SIGN) and t == BOOL:
                raise self.fail(path, f"{op.value} needs a number, got bool")
        elif op in BINARY:
            self.arity(node, path, 2)
            self.same(args[0], path + "[3][0]", t)
            self.same(args[1], path + "[3][1]", t)
            if op in FLOAT_BINARY and not t.is_float:
                raise self.fail(path, f"{op.value} needs float operands, got {t}")
            if op in INT_BINARY and not t.is_int:
                raise self.fail(path, f"{op.value} needs integer operands, got {t}")
            if op in BIT_BINARY and t.is_float:
                raise self.fail(path, f"{op.value} needs integer or bool operands, got {t}")
            if op not in BIT_BINARY and t == BOOL:
                raise self.fail(path, f"{op.value} needs numbers, got bool")
        elif op in COMPARE:
            self.arity(node, path, 2)
            self.same(node, path, BOOL, "comparison")
            self.same(args[1], path + "[3][1]", args[0].type)
        elif op in (Op.LAND, Op.LOR):
            self.arity(node, path, 2)
            for i in range(3):
                target = node if i == 2 else args[i]
                self.same(target, path, BOOL, "logical operand")
        elif op is Op.SELECT:
            self.arity(node, path, 3)
            self.same(args[0], path + "[3][0]", BOOL, "condition")
            self.same(args[1], path + "[3][1]", t)
            self.same(args[2], path + "[3][2]", t)
        else:  # pragma: no cover - every Op is handled above
            raise self.fail(path, f"unexpected op {op.value}")

    def memref(self, arg: object, path: str, kind: str) -> Decl:
        if not isinstance(arg, tuple) or len(arg) != 2:
            raise self.fail(path, f"expected [{kind}, lane]")
        name, lane = arg
        d = self.decl(name, path, (kind,), (PARAM,))
        if not isinstance(lane, int) or isinstance(lane, bool) or not 0 <= lane < d.type.lanes:
            raise self.fail(path, f"lane {lane!r} is out of range for {d.type}")
        return d

    def stmt(self, node: Node, path: str, labels: dict[str, Op]) -> None:
        op = node.op
        if op not in STATEMENTS:
            raise self.fail(path, f"expression {op.value} used as a statement")
        if node.type != VOID:
            raise self.fail(path, f"statement {op.value} must have type void")
        args = node.args
        if op is Op.BLOCK:
            inner = labels
            if node.arg is not None:
                inner = self.new_label(node.arg, path, labels, Op.BLOCK)
            for i, s in enumerate(args):
                self.stmt(s, f"{path}[3][{i}]", inner)
            return
        if op is Op.IF:
            self.arity(node, path, 3)
            self.expr(args[0], path + "[3][0]")
            self.same(args[0], path + "[3][0]", BOOL, "condition")
            for i in (1, 2):
                self.body(args[i], f"{path}[3][{i}]", labels)
        elif op is Op.LOOP:
            self.arity(node, path, 3)
            inner = self.new_label(node.arg, path, labels, Op.LOOP)
            self.expr(args[0], path + "[3][0]")
            self.same(args[0], path + "[3][0]", BOOL, "condition")
            self.body(args[1], path + "[3][1]", inner)
            self.body(args[2], path + "[3][2]", inner)
        elif op in (Op.BREAK, Op.CONTINUE):
            self.arity(node, path, 0)
            target = labels.get(node.arg) if isinstance(node.arg, str) else None
            if target is None:
                raise self.fail(path, f"{op.value} to {node.arg!r}, which does not enclose it")
            if op is Op.CONTINUE and target is not Op.LOOP:
                raise self.fail(path, f"continue to {node.arg!r}, which is not a loop")
        elif op in (Op.RETURN, Op.BARRIER):
            self.arity(node, path, 0)
        elif op is Op.ASSIGN:
            self.arity(node, path, 1)
            d = self.decl(node.arg, path, ("scalar",), (LOCAL,))
            self.expr(args[0], path + "[3][0]")
            self.same(args[0], path + "[3][0]", d.type, "value")
        elif op in (Op.STORE, Op.ISTORE):
            kind = "buffer" if op is Op.STORE else "image"
            d = self.memref(node.arg, path, kind)
            n_idx = 1 if op is Op.STORE else 2
            self.arity(node, path, n_idx + 1)
            for i, a in enumerate(args):
                self.expr(a, f"{path}[3][{i}]")
            for i in range(n_idx):
                self.same(args[i], f"{path}[3][{i}]", I32, "index")
            self.same(args[-1], f"{path}[3][{n_idx}]", _lane_type(d.type), "value")
        elif op is Op.ASTORE:
            d = self.decl(node.arg, path, ("array",), (LOCAL, SHARED))
            self.arity(node, path, len(d.type.shape) + 1)
            for i, a in enumerate(args):
                self.expr(a, f"{path}[3][{i}]")
            for i in range(len(d.type.shape)):
                self.same(args[i], f"{path}[3][{i}]", I32, "index")
            self.same(args[-1], f"{path}[3][{len(args) - 1}]", Type(d.type.elem), "value")
        elif op is Op.ATOMIC:
            if not isinstance(node.arg, tuple) or len(node.arg) != 3:
                raise self.fail(path, "expected [kind, buffer, result]")
            kind, buf, result = node.arg
            if kind not in ATOMIC_KINDS:
                raise self.fail(path, f"unknown atomic {kind!r}")
            d = self.decl(buf, path, ("buffer",), (PARAM,))
            if d.type.elem not in ("i32", "u32", "f32"):
                raise self.fail(path, f"atomics need a buffer of i32, u32 or f32, got {d.type}")
            self.arity(node, path, 3 if kind == "cmpxchg" else 2)
            for i, a in enumerate(args):
                self.expr(a, f"{path}[3][{i}]")
            self.same(args[0], path + "[3][0]", I32, "index")
            for i in range(1, len(args)):
                self.same(args[i], f"{path}[3][{i}]", Type(d.type.elem), "value")
            if result is not None:
                r = self.decl(result, path, ("scalar",), (LOCAL,))
                if r.type != Type(d.type.elem):
                    raise self.fail(path, f"atomic result {result!r} is {r.type}, expected {d.type.elem}")

    def body(self, node: Node, path: str, labels: dict[str, Op]) -> None:
        if node.op is not Op.BLOCK:
            raise self.fail(path, f"expected a block, got {node.op.value}")
        self.stmt(node, path, labels)

    def new_label(self, label: object, path: str, labels: dict[str, Op], op: Op) -> dict[str, Op]:
        if not isinstance(label, str) or not _NAME.fullmatch(label):
            raise self.fail(path, f"invalid label {label!r}")
        if label in labels:
            raise self.fail(path, f"label {label!r} is already in use by an enclosing statement")
        return {**labels, label: op}


def _lane_type(t: Type) -> Type:
    return Type("f32") if t.elem == "vec4" else Type(t.elem)


def _value_fits(value: object, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "i32":
        return isinstance(value, int) and -(1 << 31) <= value < (1 << 31)
    if kind == "u32":
        return isinstance(value, int) and 0 <= value < (1 << 32)
    if kind in ("f32", "f64"):
        if not isinstance(value, (int, float)):
            return False
        try:
            as_float = float(value)
        except OverflowError:  # an integer beyond any float
            return False
        # A finite constant must stay finite in its type; inf and nan are written as such.
        limit = 3.4028234663852886e38 if kind == "f32" else 1.7976931348623157e308
        return not math.isfinite(as_float) and isinstance(value, float) or abs(as_float) <= limit
    return False


#: Python frames a tree walk may need per IR level (verifier, interpreter, code generators).
FRAMES_PER_LEVEL = 16


def ensure_recursion_headroom() -> None:
    """Verified IR may nest MAX_DEPTH levels, and every consumer of it walks the tree
    recursively: make sure Python's recursion limit admits that, once per process."""
    import sys

    from xv_core.ir.nodes import MAX_DEPTH

    needed = FRAMES_PER_LEVEL * MAX_DEPTH + 1000
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)


def verify_kernel(kernel: Kernel, where: str = "<ir>", path: str = "$") -> None:
    ensure_recursion_headroom()
    v = _KernelVerifier(kernel, where, path)
    v.check_decls()
    v.body(kernel.body, path + ".body", {})


def verify_module(module: Module, where: str = "<ir>") -> None:
    """Raise IRError for the first rule the module breaks."""
    names: set[str] = set()
    for i, k in enumerate(module.kernels):
        if k.name in names:
            raise IRError(f"kernel {k.name!r} is defined twice", where=f"{where}: $.kernels[{i}].name")
        names.add(k.name)
        verify_kernel(k, where, f"$.kernels[{i}]")
