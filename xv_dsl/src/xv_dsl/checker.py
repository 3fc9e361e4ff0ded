"""Names and types: the checker.

:func:`check` walks the whole program, reports every problem it finds (not
just the first) and returns a :class:`CheckedProgram`: the AST plus side
tables the lowering reads, keyed by node identity -- the type of every
expression, the folded value of every constant expression, and the symbol
each name refers to.

Rules enforced here (see docs/language.md for the reference):

* integer and float literals take the type their context needs; literal
  expressions fold exactly and must fit the type they are given;
* ``i32`` and ``u32`` do not mix, integers and floats do not mix, f32 and
  f64 do not mix: each needs an explicit cast, and the error says so;
* vectors hold f32 and broadcast f32 scalars;
* functions cannot recurse; ``barrier()`` may not sit under control flow
  that differs between the work items of a group (see :mod:`uniformity`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import attrs

from xv_core.errors import SourceSpan
from xv_core.ir import MAX_ARRAY_ELEMENTS
from xv_dsl import ast, consteval
from xv_dsl.builtins import (
    ATOMIC_ELEMENTS, ATOMICS, BARRIER, FUNCTIONS, MATH, SPECIALS, SWIZZLE_SETS,
)
from xv_dsl.diagnostics import Reporter, closest, did_you_mean
from xv_dsl.types import (
    BOOL, BUILTIN, ELEMENTS, ERROR, F32, FLIT, FLOAT_LIT, I32, ILIT, INT_LIT, SCALARS, U32,
    VECTORS, VOID, Ty, default_of, vec,
)

MAX_WORKGROUP = 1024
MAX_SHARED_BYTES = 1 << 20
#: How deep calls may nest (every call is inlined; recursion is refused).
MAX_CALL_DEPTH = 256
MAX_NAME = 100
_SIZES = {"bool": 1, "i32": 4, "u32": 4, "f32": 4, "f64": 8}

# Symbol kinds.
VAR = "var"  # a local scalar or vector (also a function's value parameter)
PARAM = "param"  # a kernel parameter (scalar, buffer or image) or a function's buffer/image
CONST = "const"  # a compile-time scalar constant
ARRAY = "array"  # a private, shared or constant array
SPECIAL = "special"  # global_id & co


@attrs.define(eq=False)
class Symbol:
    """A declared name.  Identity matters: lowering maps symbols to IR names."""

    name: str
    kind: str
    ty: Ty
    span: SourceSpan
    space: str = "local"  # arrays: local, shared or const; params: kernel or function
    value: Any = None  # CONST: the folded value
    init: tuple[Any, ...] | None = None  # constant arrays: flattened values
    readonly: bool = False
    assigned: bool = False


@attrs.define(eq=False)
class FunctionInfo:
    node: ast.Function
    params: list[Symbol]
    ret: Ty
    calls: list[tuple[str, SourceSpan]] = attrs.Factory(list)


@attrs.define(eq=False)
class KernelInfo:
    node: ast.KernelDef
    params: list[Symbol]
    workgroup: tuple[int, int, int] | None = None
    shared_bytes: int = 0


@attrs.define
class CheckedProgram:
    """The AST and everything the checker learnt about it."""

    program: ast.Program
    text: str
    types: dict[int, Ty]
    consts: dict[int, Any]
    refs: dict[int, Symbol]
    decls: dict[int, Symbol]
    functions: dict[str, FunctionInfo]
    kernels: list[KernelInfo]
    globals: dict[str, Symbol]

    def type_of(self, e: object) -> Ty:
        return self.types[id(e)]


class Scope:
    def __init__(self, parent: Scope | None = None):
        self.parent = parent
        self.names: dict[str, Symbol] = {}

    def lookup(self, name: str) -> Symbol | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None

    def visible(self) -> Iterator[str]:
        scope: Scope | None = self
        while scope is not None:
            yield from scope.names
            scope = scope.parent


@attrs.define
class _Context:
    """Where a statement sits: in which function or kernel, how many loops deep."""

    owner: FunctionInfo | KernelInfo
    loops: int = 0

    @property
    def is_kernel(self) -> bool:
        return isinstance(self.owner, KernelInfo)


_ARITH = ("+", "-", "*", "/", "%")
_BITS = ("&", "|", "^")
_SHIFTS = ("<<", ">>")
_ORDER = ("<", "<=", ">", ">=")
_EQUALITY = ("==", "!=")
_LOGIC = ("&&", "||")
_COMPOUND = {"+=": "+", "-=": "-", "*=": "*", "/=": "/", "%=": "%", "&=": "&", "|=": "|",
             "^=": "^", "<<=": "<<", ">>=": ">>"}


def _a(t: object) -> str:
    """``t`` with its indefinite article: "an f32", "a u32", "a vec3"."""
    word = str(t)
    return ("an " if word[:1] in "aeiof" else "a ") + word


def _src(text_lines: list[str], span: SourceSpan) -> str | None:
    """The source text of a one-line span, for hints like ``f32(i)``."""
    if span.end_col is None or not 1 <= span.line <= len(text_lines):
        return None
    snippet = text_lines[span.line - 1][span.col - 1: span.end_col - 1]
    return snippet if 0 < len(snippet) <= 40 else None


class Checker:
    def __init__(self, program: ast.Program, text: str, reporter: Reporter):
        self.program = program
        self.text = text
        self.lines = text.split("\n")  # as the lexer counts lines (see Diagnostic.render)
        self.r = reporter
        self.types: dict[int, Ty] = {}
        self.consts: dict[int, Any] = {}
        self.refs: dict[int, Symbol] = {}
        self.decls: dict[int, Symbol] = {}
        self.functions: dict[str, FunctionInfo] = {}
        self.kernels: list[KernelInfo] = []
        self.globals = Scope()
        for name in SPECIALS:
            self.globals.names[name] = Symbol(name, SPECIAL, BUILTIN, SourceSpan("<builtin>", 0, 0),
                                              readonly=True)
        self.top_names: dict[str, SourceSpan] = {}
        # The function or kernel whose body is being checked (None for globals).
        self._owner: FunctionInfo | KernelInfo | None = None

    def error(self, span: SourceSpan, message: str, hint: str | None = None) -> None:
        self.r.error(span, message, hint)

    def text_of(self, e: object) -> str | None:
        return _src(self.lines, e.span)  # type: ignore[attr-defined]

    # ======================================================================
    # Program
    # ======================================================================
    def check(self) -> CheckedProgram:
        # Signatures first, so functions may be called before they are defined.
        for item in self.program.items:
            if isinstance(item, ast.Function):
                self.declare_function(item)
            elif isinstance(item, ast.KernelDef):
                self.declare_kernel(item)
        for item in self.program.items:
            if isinstance(item, ast.VarDecl):
                self.global_const(item)
        for info in self.kernels:  # after the constants: sizes may name them
            self.kernel_attributes(info)
        for item in self.program.items:
            if isinstance(item, ast.Function) and item.name in self.functions \
                    and self.functions[item.name].node is item:
                self.function_body(self.functions[item.name])
        for info in self.kernels:
            self.kernel_body(info)
        self.check_recursion()
        if not self.program.items or not self.kernels:
            if not self.r:
                self.error(SourceSpan(self.program.path, 1, 1), "no kernel in this file",
                           "declare one with 'kernel name(...) { ... }'")
        return CheckedProgram(self.program, self.text, self.types, self.consts, self.refs,
                              self.decls, self.functions, self.kernels, dict(self.globals.names))

    def claim_top_name(self, name: str, span: SourceSpan, what: str) -> bool:
        if name in SPECIALS or name in FUNCTIONS:
            self.error(span, f"'{name}' is a builtin name and cannot be redefined",
                       "choose another name")
            return False
        if len(name) > MAX_NAME:
            self.error(span, f"name is longer than {MAX_NAME} characters")
            return False
        if name in self.top_names:
            first = self.top_names[name]
            self.error(span, f"{what} '{name}' is already defined at line {first.line}")
            return False
        self.top_names[name] = span
        return True

    # ---- signatures --------------------------------------------------------
    def type_ref(self, t: ast.TypeRef, *, allow_void: bool = False) -> Ty:
        if t.name == "void":
            if not allow_void:
                self.error(t.span, "void is only a function's return type")
                return ERROR
            return VOID
        if t.name in ("buffer", "image"):
            if t.elem not in ELEMENTS:
                self.error(t.span, f"{t.name} elements are bool, i32, u32, f32, f64 or vec4, "
                                   f"not {t.elem}")
                return ERROR
            return Ty(t.name, t.elem)
        return Ty(t.name)

    def param_symbols(self, params: tuple[ast.Param, ...], *, kernel: bool) -> list[Symbol]:
        out: list[Symbol] = []
        seen: dict[str, ast.Param] = {}
        for p in params:
            ty = self.type_ref(p.type)
            if p.name in seen:
                self.error(p.span, f"parameter '{p.name}' is declared twice")
            elif p.name in SPECIALS or p.name in FUNCTIONS:
                self.error(p.span, f"'{p.name}' is a builtin name and cannot be a parameter",
                           "choose another name")
            elif len(p.name) > MAX_NAME:
                self.error(p.span, f"name is longer than {MAX_NAME} characters")
            if kernel and ty.is_vec:
                self.error(p.type.span, f"a kernel parameter cannot be {_a(ty)}",
                           "kernel parameters are scalars, buffers or images; pass the "
                           "components as separate f32 parameters")
                ty = ERROR
            seen[p.name] = p
            if ty.kind in ("buffer", "image"):
                sym = Symbol(p.name, PARAM, ty, p.span, "kernel" if kernel else "function",
                             readonly=True)
            elif kernel:
                sym = Symbol(p.name, PARAM, ty, p.span, "kernel")
            else:
                sym = Symbol(p.name, VAR, ty, p.span, "function")
            self.decls[id(p)] = sym
            out.append(sym)
        return out

    def declare_function(self, f: ast.Function) -> None:
        for a in f.attributes:
            self.error(a.span, f"@{a.name} applies to kernels only")
        ok = self.claim_top_name(f.name, f.name_span, "function")
        ret = self.type_ref(f.ret, allow_void=True)
        if ret.kind in ("buffer", "image"):
            self.error(f.ret.span, f"a function cannot return {_a(ret)}")
            ret = ERROR
        info = FunctionInfo(f, self.param_symbols(f.params, kernel=False), ret)
        if ok:
            self.functions[f.name] = info

    def declare_kernel(self, k: ast.KernelDef) -> None:
        self.claim_top_name(k.name, k.name_span, "kernel")
        self.kernels.append(KernelInfo(k, self.param_symbols(k.params, kernel=True)))

    def kernel_attributes(self, info: KernelInfo) -> None:
        for a in info.node.attributes:
            if a.name != "workgroup":
                hint = did_you_mean(a.name, ["workgroup"])
                self.error(a.span, f"unknown attribute @{a.name}", hint)
            elif info.workgroup is not None:
                self.error(a.span, "@workgroup is given twice")
            else:
                info.workgroup = self.workgroup(a)

    def workgroup(self, a: ast.Attribute) -> tuple[int, int, int] | None:
        if not 1 <= len(a.args) <= 3:
            self.error(a.span, f"@workgroup takes 1 to 3 sizes, got {len(a.args)}")
            return None
        sizes = [self.const_int(e, self.globals, "a workgroup size") for e in a.args]
        known = [s for s in sizes if s is not None]
        if len(known) != len(sizes):
            return None
        x, y, z = tuple(known) + (1,) * (3 - len(known))
        if min(x, y, z) < 1:
            self.error(a.span, "workgroup sizes must be positive")
            return None
        if x * y * z > MAX_WORKGROUP:
            self.error(a.span, f"a workgroup of {x * y * z} work items is more than "
                               f"{MAX_WORKGROUP}")
            return None
        return x, y, z

    # ---- constants -----------------------------------------------------------
    def const_int(self, e: ast.Expr, scope: Scope, what: str) -> int | None:
        t = self.expr(e, scope)
        if t.is_error:
            return None
        if t.kind == INT_LIT:
            self.coerce(e, I32)
        elif not t.is_int:
            self.error(e.span, f"{what} must be an integer, got {t}")
            return None
        if id(e) not in self.consts:
            self.error(e.span, f"{what} must be a constant expression",
                       "use literals and const globals")
            return None
        return int(self.consts[id(e)])

    def global_const(self, d: ast.VarDecl) -> None:
        for decl in d.declarators:
            if self.claim_top_name(decl.name, decl.span, "constant"):
                sym = self.const_decl(d, decl, self.globals)
                if sym is not None:
                    self.globals.names[decl.name] = sym

    def const_decl(self, d: ast.VarDecl, decl: ast.Declarator, scope: Scope) -> Symbol | None:
        """A ``const`` declaration; returns its symbol (None after an error)."""
        base = self.type_ref(d.type)
        if base.is_error:
            return None
        if not base.is_scalar:
            self.error(d.type.span, f"a constant cannot be {_a(base)}",
                       "constants are scalars or arrays of scalars")
            return None
        if decl.init is None:
            self.error(decl.span, f"constant '{decl.name}' needs a value")
            return None
        if decl.dims:
            shape = self.array_shape(decl, scope, base)
            if shape is None:
                return None
            values = self.array_init(decl.init, shape, base, scope, constant=True,
                                     name=decl.name)
            sym = Symbol(decl.name, ARRAY, Ty("array", base.kind, shape), decl.span, "const",
                         init=tuple(values) if values is not None else None, readonly=True)
            self.decls[id(decl)] = sym
            return sym if values is not None else None
        if isinstance(decl.init, ast.InitList):
            self.error(decl.init.span, "only arrays take {...} initialisers")
            return None
        t = self.value(decl.init, scope)
        if t.is_error:
            return None
        if not self.coerce(decl.init, base):
            self.mismatch(decl.init, t, base, f"initialise '{decl.name}'")
            return None
        if id(decl.init) not in self.consts:
            if scope is self.globals:
                self.error(decl.init.span, f"the value of constant '{decl.name}' must be a "
                                           "constant expression",
                           "use literals and other constants")
                return None
            return self.readonly_var(decl, base)
        sym = Symbol(decl.name, CONST, base, decl.span, "const", value=self.consts[id(decl.init)],
                     readonly=True)
        self.decls[id(decl)] = sym
        return sym

    def readonly_var(self, decl: ast.Declarator, ty: Ty) -> Symbol | None:
        """A const whose value is only known at run time: a read-only local (not global)."""
        sym = Symbol(decl.name, VAR, ty, decl.span, readonly=True)
        self.decls[id(decl)] = sym
        return sym

    def array_shape(self, decl: ast.Declarator, scope: Scope, base: Ty) -> tuple[int, ...] | None:
        if len(decl.dims) > 2:
            self.error(decl.span, "arrays have one or two dimensions")
            return None
        dims: list[int] = []
        for e in decl.dims:
            n = self.const_int(e, scope, "an array size")
            if n is None:
                return None
            if n < 1:
                self.error(e.span, f"array size must be positive, got {n}")
                return None
            dims.append(n)
        total = math.prod(dims) * base.lanes
        if total > MAX_ARRAY_ELEMENTS:
            self.error(decl.span, f"array '{decl.name}' has {total} elements, more than "
                                  f"{MAX_ARRAY_ELEMENTS}")
            return None
        return tuple(dims)

    def array_init(self, init: ast.Expr | ast.InitList, shape: tuple[int, ...], elem: Ty,
                   scope: Scope, *, constant: bool, name: str) -> list[Any] | None:
        """Check a ``{...}`` initialiser of the given shape; returns the flat values
        (constants) or the flat expressions, or None after an error."""
        if not isinstance(init, ast.InitList):
            self.error(init.span, f"array '{name}' needs a {{...}} initialiser")
            return None
        if len(init.items) != shape[0]:
            self.error(init.span, f"array '{name}' has {shape[0]} elements here but the "
                                  f"initialiser has {len(init.items)}")
            return None
        out: list[Any] = []
        ok = True
        for item in init.items:
            if len(shape) > 1:
                sub = self.array_init(item, shape[1:], elem, scope, constant=constant, name=name)
                if sub is None:
                    ok = False
                else:
                    out.extend(sub)
                continue
            if isinstance(item, ast.InitList):
                self.error(item.span, "too many braces: this array has one dimension here")
                ok = False
                continue
            t = self.value(item, scope)
            if t.is_error:
                ok = False
                continue
            if not self.coerce(item, elem):
                self.mismatch(item, t, elem, f"initialise an element of '{name}'")
                ok = False
                continue
            if constant:
                if id(item) not in self.consts:
                    self.error(item.span, "a constant array needs constant values",
                               "use literals and const globals")
                    ok = False
                    continue
                out.append(self.consts[id(item)])
            else:
                out.append(item)
        return out if ok else None

    # ======================================================================
    # Bodies
    # ======================================================================
    def function_body(self, info: FunctionInfo) -> None:
        scope = Scope(self.globals)
        for p, sym in zip(info.node.params, info.params):
            scope.names.setdefault(p.name, sym)
        ctx = _Context(info)
        self._owner = info
        self.block_items(info.node.body.stmts, scope, ctx)  # as in C: one scope with the params
        self._owner = None
        if info.ret.kind not in ("void", "error") and not _always_returns(info.node.body):
            self.error(info.node.name_span,
                       f"function '{info.node.name}' can reach its end without returning "
                       f"{_a(info.ret)}", "end every path with 'return <value>;'")

    def kernel_body(self, info: KernelInfo) -> None:
        scope = Scope(self.globals)
        for p, sym in zip(info.node.params, info.params):
            scope.names.setdefault(p.name, sym)
        self._owner = info
        self.block_items(info.node.body.stmts, scope, _Context(info))
        self._owner = None

    def block_items(self, stmts: tuple[ast.Stmt, ...], scope: Scope, ctx: _Context) -> None:
        for s in stmts:
            self.stmt(s, scope, ctx)

    def stmt(self, s: ast.Stmt, scope: Scope, ctx: _Context) -> None:
        if isinstance(s, ast.Block):
            self.block_items(s.stmts, Scope(scope), ctx)
        elif isinstance(s, ast.VarDecl):
            self.local_decl(s, scope, ctx)
        elif isinstance(s, ast.Assign):
            self.assign(s, scope)
        elif isinstance(s, ast.IncDec):
            self.incdec(s, scope)
        elif isinstance(s, ast.ExprStmt):
            self.expr_stmt(s, scope)
        elif isinstance(s, ast.If):
            self.condition(s.cond, scope, "if")
            self.stmt(s.then, Scope(scope), ctx)
            if s.otherwise is not None:
                self.stmt(s.otherwise, Scope(scope), ctx)
        elif isinstance(s, ast.For):
            inner = Scope(scope)
            if s.init is not None:
                self.stmt(s.init, inner, ctx)
            if s.cond is not None:
                self.condition(s.cond, inner, "for")
            if s.step is not None:
                self.stmt(s.step, inner, ctx)
            ctx.loops += 1
            self.stmt(s.body, Scope(inner), ctx)
            ctx.loops -= 1
        elif isinstance(s, ast.While):
            self.condition(s.cond, scope, "while")
            ctx.loops += 1
            self.stmt(s.body, Scope(scope), ctx)
            ctx.loops -= 1
        elif isinstance(s, (ast.Break, ast.Continue)):
            if ctx.loops == 0:
                word = "break" if isinstance(s, ast.Break) else "continue"
                self.error(s.span, f"'{word}' outside a loop")
        elif isinstance(s, ast.Return):
            self.return_stmt(s, scope, ctx)
        elif isinstance(s, ast.Empty):
            pass
        else:  # pragma: no cover - the parser builds nothing else
            raise TypeError(f"unexpected statement {type(s).__name__}")

    def condition(self, e: ast.Expr, scope: Scope, what: str) -> None:
        t = self.value(e, scope)
        if t.is_error or t == BOOL:
            return
        if t.is_lit:
            self.coerce(e, default_of(t))
        hint = None
        if t.is_numeric or t.is_lit:
            text = self.text_of(e)
            hint = f"compare explicitly, e.g. '{text or 'x'} != 0'"
        self.error(e.span, f"{what} condition must be bool, got {default_of(t)}", hint)

    def return_stmt(self, s: ast.Return, scope: Scope, ctx: _Context) -> None:
        if ctx.is_kernel:
            if s.value is not None:
                self.value(s.value, scope)
                self.error(s.value.span, "a kernel does not return a value",
                           "write results into a buffer or an image")
            return
        info = ctx.owner
        assert isinstance(info, FunctionInfo)
        ret = info.ret
        if s.value is None:
            if ret.kind not in ("void", "error"):
                self.error(s.span, f"function '{info.node.name}' must return {_a(ret)}")
            return
        t = self.value(s.value, scope)
        if t.is_error or ret.is_error:
            return
        if ret == VOID:
            self.error(s.value.span, f"function '{info.node.name}' returns nothing (void)",
                       f"declare it as '{default_of(t)} {info.node.name}(...)'")
            return
        if not self.coerce(s.value, ret):
            self.mismatch(s.value, t, ret, f"return from '{info.node.name}'")

    def expr_stmt(self, s: ast.ExprStmt, scope: Scope) -> None:
        e = s.expr
        t = self.expr(e, scope, allow_void=True)
        if isinstance(e, ast.Call):
            if t.is_lit:
                self.coerce(e, default_of(t))
            return
        if t.is_error:
            return
        hint = None
        if isinstance(e, ast.Binary) and e.op == "==":
            hint = "did you mean '=' (assignment)?"
        self.error(e.span, "this expression does nothing", hint)

    # ---- declarations ------------------------------------------------------------
    def local_decl(self, d: ast.VarDecl, scope: Scope, ctx: _Context) -> None:
        for decl in d.declarators:
            sym = self.local_declarator(d, decl, scope, ctx)
            if sym is None:
                continue
            if decl.name in scope.names:
                first = scope.names[decl.name]
                self.error(decl.span,
                           f"'{decl.name}' is already declared at line {first.span.line}",
                           "choose another name")
            elif decl.name in SPECIALS or decl.name in FUNCTIONS:
                self.error(decl.span, f"'{decl.name}' is a builtin name and cannot be redefined",
                           "choose another name")
            elif len(decl.name) > MAX_NAME:
                self.error(decl.span, f"name is longer than {MAX_NAME} characters")
            else:
                scope.names[decl.name] = sym

    def local_declarator(self, d: ast.VarDecl, decl: ast.Declarator, scope: Scope,
                         ctx: _Context) -> Symbol | None:
        if d.space == "const":
            return self.const_decl(d, decl, scope)
        base = self.type_ref(d.type)
        if base.is_error:
            return None
        if base.kind in ("buffer", "image"):
            self.error(d.type.span, f"a variable cannot be {_a(base)}",
                       "buffers and images are kernel or function parameters")
            return None
        if d.space == "shared":
            if not ctx.is_kernel:
                self.error(d.span, "shared arrays are declared in a kernel, not in a function",
                           "declare it in the kernel and pass values to the function")
                return None
            if not decl.dims:
                self.error(decl.span, "a shared variable must be an array",
                           f"declare it as 'shared {d.type} {decl.name}[N]'")
                return None
            if decl.init is not None:
                self.error(decl.init.span, "shared arrays cannot have initialisers",
                           "fill them in the kernel, then call barrier()")
                return None
        if decl.dims:
            shape = self.array_shape(decl, scope, base)
            if shape is None:
                return None
            sym = Symbol(decl.name, ARRAY, Ty("array", base.kind, shape), decl.span, d.space)
            if decl.init is not None:
                self.array_init(decl.init, shape, base, scope, constant=False, name=decl.name)
            if d.space == "shared":
                self.check_shared_size(ctx, sym, decl)
            self.decls[id(decl)] = sym
            return sym
        sym = Symbol(decl.name, VAR, base, decl.span)
        if decl.init is not None:
            if isinstance(decl.init, ast.InitList):
                self.error(decl.init.span, "only arrays take {...} initialisers")
            else:
                t = self.value(decl.init, scope)
                if not t.is_error and not self.coerce(decl.init, base):
                    self.mismatch(decl.init, t, base, f"initialise '{decl.name}'")
        self.decls[id(decl)] = sym
        return sym

    def check_shared_size(self, ctx: _Context, sym: Symbol, decl: ast.Declarator) -> None:
        owner = ctx.owner
        assert isinstance(owner, KernelInfo)
        ty = sym.ty
        assert ty.elem is not None
        owner.shared_bytes += math.prod(ty.shape) * Ty(ty.elem).lanes * _SIZES.get(ty.elem, 4)
        total = owner.shared_bytes
        if total > MAX_SHARED_BYTES:
            self.error(decl.span, f"shared arrays of this kernel take {total} bytes, more than "
                                  f"{MAX_SHARED_BYTES}")

    # ---- assignments -------------------------------------------------------------
    def assign(self, s: ast.Assign, scope: Scope) -> None:
        target_t = self.lvalue(s.target, scope)
        value_t = self.value(s.value, scope)
        if target_t is None or target_t.is_error or value_t.is_error:
            return
        if s.op == "=":
            if not self.coerce(s.value, target_t):
                self.mismatch(s.value, value_t, target_t, "assign", target=s.target)
            return
        op = _COMPOUND[s.op]
        result = self.binary_types(op, s.target, s.value, target_t, value_t, s.op_span)
        if result.is_error:
            return
        if result != target_t:
            target = self.text_of(s.target) or "the target"
            self.error(s.op_span, f"'{s.op}' would change '{target}' from {target_t} to {result}",
                       f"write it out: x = {result.kind}(...)")

    def incdec(self, s: ast.IncDec, scope: Scope) -> None:
        t = self.lvalue(s.target, scope)
        if t is None or t.is_error:
            return
        if not t.is_numeric:
            self.error(s.span, f"'{s.op}' needs an integer or float variable, got {t}")

    def lvalue(self, e: ast.Expr, scope: Scope) -> Ty | None:
        """Check ``e`` as an assignment target; returns its type (None after an error)."""
        t = self.expr(e, scope)
        if t.is_error:
            return None
        root, path_ok = self.lvalue_root(e)
        if root is None:
            self.error(e.span, "cannot assign to this expression",
                       "assign to a variable, an element or a component")
            return None
        sym = self.refs.get(id(root))
        if sym is None:
            return None
        if not path_ok:
            return None
        if sym.kind == CONST or (sym.kind == ARRAY and sym.space == "const") or (
                sym.kind == VAR and sym.readonly):
            self.error(e.span, f"cannot assign to '{sym.name}': it is const")
            return None
        if sym.kind == SPECIAL:
            self.error(e.span, f"'{sym.name}' is read-only")
            return None
        if root is e and sym.kind in (ARRAY, PARAM) and not t.is_value:
            what = "an array" if sym.kind == ARRAY else f"{sym.ty} '{sym.name}'"
            self.error(e.span, f"cannot assign to {what} as a whole",
                       "assign to its elements, e.g. a[i] = ...")
            return None
        if not t.is_value:
            self.error(e.span, f"cannot assign to {_a(t)}", "index it down to one element")
            return None
        sym.assigned = True
        return t

    def lvalue_root(self, e: ast.Expr) -> tuple[ast.Name | None, bool]:
        """The variable an assignment target writes into, and whether the path is writable."""
        ok = True
        while True:
            if isinstance(e, ast.Name):
                return e, ok
            if isinstance(e, ast.Index):
                e = e.base
            elif isinstance(e, ast.Member):
                base_t = self.types.get(id(e.base))
                if base_t is None or not base_t.is_vec:
                    if base_t is not None and not base_t.is_error:
                        self.error(e.name_span, f"cannot assign to .{e.name}")
                    root = e.base if isinstance(e.base, ast.Name) else None
                    return root, False
                if len(set(e.name)) != len(e.name):
                    self.error(e.name_span, f"swizzle .{e.name} repeats a component and cannot "
                                            "be assigned to")
                    ok = False
                e = e.base
            else:
                return None, ok

    # ======================================================================
    # Expressions
    # ======================================================================
    def record(self, e: object, t: Ty, value: Any = None, const: bool = False) -> Ty:
        self.types[id(e)] = t
        if const:
            self.consts[id(e)] = value
        return t

    def value(self, e: ast.Expr, scope: Scope) -> Ty:
        """Check ``e`` where a value (scalar or vector) is needed."""
        t = self.expr(e, scope)
        if t.is_error or t.is_value:
            return t
        if t == VOID:
            self.error(e.span, f"{self.text_of(e) or 'this call'} does not return a value")
        elif t.kind == "builtin":
            self.error(e.span, f"'{self.text_of(e)}' is a builtin with components .x, .y and .z",
                       f"write {self.text_of(e)}.x")
        elif t.kind == "array":
            self.error(e.span, f"an array ({t}) cannot be used as a value",
                       "index it down to one element")
        else:
            self.error(e.span, f"{_a(t)} cannot be used as a value",
                       "index it: x[i] for a buffer, img[x, y] for an image")
        self.types[id(e)] = ERROR
        return ERROR

    def expr(self, e: ast.Expr, scope: Scope, allow_void: bool = False) -> Ty:
        if isinstance(e, ast.IntLit):
            return self.int_lit(e)
        if isinstance(e, ast.FloatLit):
            if not math.isfinite(e.value):
                self.error(e.span, f"float constant {e.text} is out of range")
                return self.record(e, ERROR)
            return self.record(e, FLIT, e.value, True)
        if isinstance(e, ast.BoolLit):
            return self.record(e, BOOL, e.value, True)
        if isinstance(e, ast.Name):
            return self.name(e, scope)
        if isinstance(e, ast.Unary):
            return self.unary(e, scope)
        if isinstance(e, ast.Binary):
            return self.binary(e, scope)
        if isinstance(e, ast.Ternary):
            return self.ternary(e, scope)
        if isinstance(e, ast.Call):
            return self.call(e, scope)
        if isinstance(e, ast.Construct):
            return self.construct(e, scope)
        if isinstance(e, ast.Index):
            return self.index(e, scope)
        if isinstance(e, ast.Member):
            return self.member(e, scope)
        if isinstance(e, ast.InitList):
            self.error(e.span, "a {...} list is only an array initialiser")
            return ERROR
        raise TypeError(f"unexpected expression {type(e).__name__}")  # pragma: no cover

    def int_lit(self, e: ast.IntLit) -> Ty:
        if e.unsigned:
            if e.value >= 1 << 32:
                self.error(e.span, f"constant {e.value} does not fit in u32")
                return self.record(e, ERROR)
            return self.record(e, U32, e.value, True)
        if e.value >= consteval.UNTYPED_LIMIT:
            self.error(e.span, "integer constant is too large", "constants must fit in 64 bits")
            return self.record(e, ERROR)
        return self.record(e, ILIT, e.value, True)

    def name(self, e: ast.Name, scope: Scope) -> Ty:
        sym = scope.lookup(e.name)
        if sym is None:
            hint = did_you_mean(e.name, list(scope.visible()))
            if hint is None and e.name in self.functions:
                hint = f"'{e.name}' is a function: call it as {e.name}(...)"
            self.error(e.span, f"unknown name '{e.name}'", hint)
            return self.record(e, ERROR)
        self.refs[id(e)] = sym
        if sym.kind == CONST:
            return self.record(e, sym.ty, sym.value, True)
        return self.record(e, sym.ty)

    # ---- literal typing -----------------------------------------------------------
    def coerce(self, e: ast.Expr, target: Ty) -> bool:
        """Give ``e`` the type ``target`` if it has it or is a literal that converts;
        False (and nothing reported) when it cannot."""
        t = self.types.get(id(e), ERROR)
        if t.is_error or target.is_error or t == target:
            return True
        if not t.is_lit or not target.is_scalar or target == BOOL:
            return False
        if t.kind == FLOAT_LIT and target.is_int:
            return False
        self.retype(e, target)
        return True

    def retype(self, e: ast.Expr, target: Ty) -> None:
        t = self.types[id(e)]
        if id(e) in self.consts:
            try:
                value = consteval.convert_untyped(self.consts[id(e)], t.kind, target.kind)
            except consteval.ConstError as exc:
                self.error(e.span, exc.message, exc.hint)
                self.types[id(e)] = ERROR
                del self.consts[id(e)]
                return
            self.record(e, target, value, True)
            return
        # Literal-typed but not constant: a ?: between literals, or a shift of one.
        int_only = (isinstance(e, ast.Binary) and e.op in _BITS + _SHIFTS) or (
            isinstance(e, ast.Unary) and e.op == "~")
        if int_only and not target.is_int:
            op = e.op  # type: ignore[union-attr]
            self.error(e.span,
                       f"'{op}' needs integers, but here its operands would become {target}",
                       f"convert the result explicitly: {target.kind}({self.text_of(e) or '...'})")
            self.types[id(e)] = ERROR
            return
        if isinstance(e, ast.Ternary):
            self.retype(e.then, target)
            self.retype(e.otherwise, target)
        elif isinstance(e, ast.Binary) and e.op in _SHIFTS:
            self.retype(e.left, target)
        elif isinstance(e, ast.Binary):
            self.retype(e.left, target)
            self.retype(e.right, target)
        elif isinstance(e, ast.Unary):
            self.retype(e.operand, target)
        self.types[id(e)] = target

    def default(self, e: ast.Expr) -> Ty:
        """Settle a literal-typed expression on its default type (i32 or f32)."""
        t = self.types.get(id(e), ERROR)
        if t.is_lit:
            self.coerce(e, default_of(t))
            return self.types[id(e)]
        return t

    def mismatch(self, e: ast.Expr, got: Ty, want: Ty, doing: str,
                 target: ast.Expr | None = None) -> None:
        """Report that ``e`` (of type ``got``) cannot be used where ``want`` is needed."""
        if got.is_error or want.is_error:
            return
        text = self.text_of(e) or "..."
        hint = None
        if got.kind == FLOAT_LIT and want.is_int:
            msg = f"cannot {doing}: a float constant is not {_a(want)}"
            hint = f"convert it explicitly: {want.kind}({text})"
        elif got.is_lit and want.is_vec:
            msg = f"cannot {doing}: {_a(want)} needs a vector, got a number"
            hint = f"build one: {want.kind}({text})"
        elif (got.is_scalar or got.is_lit) and want.is_scalar and got != BOOL and want != BOOL:
            got_t = default_of(got)
            what = "mixing integers and floats" if got_t.is_int != want.is_int \
                else f"mixing {got_t} and {want}"
            msg = f"cannot {doing}: {what} needs an explicit cast ({got_t} to {want})"
            hint = f"write {want.kind}({text})"
        else:
            msg = f"cannot {doing}: expected {want}, got {default_of(got)}"
            if got.is_vec and want.is_scalar:
                hint = f"take a component, e.g. {text}.x"
        if target is not None and doing == "assign":
            t_text = self.text_of(target) or "the target"
            msg = msg.replace("cannot assign:", f"cannot assign to '{t_text}':")
        self.error(e.span, msg, hint)

    # ---- operators -------------------------------------------------------------------
    def unary(self, e: ast.Unary, scope: Scope) -> Ty:
        t = self.value(e.operand, scope)
        if t.is_error:
            return self.record(e, ERROR)
        op = e.op
        ok = {
            "-": t.is_numeric or t.is_vec or t.is_lit,
            "+": t.is_numeric or t.is_vec or t.is_lit,
            "!": t == BOOL,
            "~": t.is_int or t.kind == INT_LIT,
        }[op]
        if not ok:
            need = {"-": "a number or vector", "+": "a number or vector", "!": "a bool",
                    "~": "an integer"}[op]
            hint = "use '!' for bool" if op == "~" and t == BOOL else (
                "compare instead, e.g. 'x == 0'" if op == "!" and t.is_numeric else None)
            self.error(e.span, f"'{op}' needs {need}, got {t}", hint)
            return self.record(e, ERROR)
        if id(e.operand) in self.consts:
            try:
                value = consteval.unary(op, t.kind, self.consts[id(e.operand)])
            except consteval.ConstError as exc:
                self.error(e.span, exc.message, exc.hint)
                return self.record(e, ERROR)
            return self.record(e, t, value, True)
        return self.record(e, t)

    def binary(self, e: ast.Binary, scope: Scope) -> Ty:
        lt = self.value(e.left, scope)
        rt = self.value(e.right, scope)
        t = self.binary_types(e.op, e.left, e.right, lt, rt, e.op_span)
        if t.is_error:
            return self.record(e, ERROR)
        if id(e.left) in self.consts and id(e.right) in self.consts:
            # Fold in the operands' common type (the left one's, after coercion).
            operand_t = t if t.is_lit or e.op in _SHIFTS else self.types[id(e.left)]
            try:
                value = consteval.binary(e.op, operand_t.kind, self.consts[id(e.left)],
                                         self.consts[id(e.right)])
            except consteval.ConstError as exc:
                self.error(e.op_span, exc.message, exc.hint)
                return self.record(e, ERROR)
            if operand_t.is_scalar and t.is_scalar and not (e.op in _ORDER + _EQUALITY):
                value = consteval.wrap(t.kind, value)
            return self.record(e, t, value, True)
        return self.record(e, t)

    def binary_types(self, op: str, left: ast.Expr, right: ast.Expr, lt: Ty, rt: Ty,
                     span: SourceSpan) -> Ty:
        """The type of ``left op right``; coerces literal operands and reports mistakes."""
        if lt.is_error or rt.is_error:
            return ERROR
        if op in _LOGIC:
            for side, t in ((left, lt), (right, rt)):
                if t != BOOL:
                    hint = f"compare explicitly, e.g. '{self.text_of(side) or 'x'} != 0'" \
                        if t.is_numeric or t.is_lit else None
                    self.error(side.span, f"'{op}' needs bool operands, got {default_of(t)}", hint)
                    return ERROR
            return BOOL
        if op in _SHIFTS:
            return self.shift_types(op, left, right, lt, rt, span)
        common = self.common_type(op, left, right, lt, rt, span)
        if common.is_error:
            return ERROR
        if op in _EQUALITY or op in _ORDER:
            if op in _ORDER and not (common.is_numeric or common.is_lit):
                self.error(span, f"'{op}' compares numbers, not {common}",
                           "compare vector components one by one" if common.is_vec else None)
                return ERROR
            if common.is_lit and (id(left) not in self.consts or id(right) not in self.consts):
                # Compared at run time: both sides settle on one default type.
                self.coerce(left, default_of(common))
                self.coerce(right, default_of(common))
            return BOOL
        if op in _BITS:
            if not (common.is_int or common.kind == INT_LIT or common == BOOL):
                self.error(span, f"'{op}' needs integer or bool operands, got {common}",
                           "use '&&' and '||' for conditions" if common.is_float else None)
                return ERROR
            return common
        # arithmetic
        if common == BOOL:
            self.error(span, f"'{op}' needs numbers, got bool")
            return ERROR
        if op == "%" and common.is_vec:
            self.error(span, "'%' does not apply to vectors", "use mod(a, b)")
            return ERROR
        return common

    def shift_types(self, op: str, left: ast.Expr, right: ast.Expr, lt: Ty, rt: Ty,
                    span: SourceSpan) -> Ty:
        for t in (lt, rt):
            if not (t.is_int or t.kind == INT_LIT):
                self.error(span, f"'{op}' needs integer operands, got {t}")
                return ERROR
        if lt.is_lit and rt.is_lit:
            if id(left) not in self.consts or id(right) not in self.consts:
                self.coerce(right, I32)  # the amount of a run-time shift: any integer type
            return ILIT
        if rt.is_lit:
            self.coerce(right, lt if lt.is_int else I32)
        if lt.is_lit:
            # The shifted constant takes its type from the context, like other literals.
            return ILIT
        return lt

    def common_type(self, op: str, left: ast.Expr, right: ast.Expr, lt: Ty, rt: Ty,
                    span: SourceSpan) -> Ty:
        """The one type both operands get (vectors broadcast f32 scalars)."""
        if lt.is_lit and rt.is_lit:
            # Still untyped (even when not constant, as with ``c ? 1 : 2``): the context
            # decides later, and retype() pushes the type down to the literals.
            return Ty(INT_LIT if lt.kind == rt.kind == INT_LIT else FLOAT_LIT)
        if lt.is_lit or rt.is_lit:
            lit, lit_t, other_t = (left, lt, rt) if lt.is_lit else (right, rt, lt)
            target = F32 if other_t.is_vec else other_t
            if self.coerce(lit, target):
                return other_t if other_t.is_vec else target
            other = right if lit is left else left
            if lit_t.kind == FLOAT_LIT and other_t.is_int:
                text = self.text_of(other) or "x"
                self.error(span, f"cannot mix {other_t} and a float constant in '{op}'",
                           f"write an integer constant, or convert the other side: f32({text})")
            else:
                self.error(span, f"'{op}' cannot combine {other_t} with a number")
            return ERROR
        if lt == rt:
            return lt
        if lt.is_vec and rt == F32:
            return lt
        if rt.is_vec and lt == F32:
            return rt
        self.report_mix(op, left, right, lt, rt, span)
        return ERROR

    def report_mix(self, op: str, left: ast.Expr, right: ast.Expr, lt: Ty, rt: Ty,
                   span: SourceSpan) -> None:
        if lt.is_vec and rt.is_vec:
            self.error(span, f"cannot mix {lt} and {rt} in '{op}'",
                       "use a swizzle to match the sizes, e.g. v.xy")
            return
        if BOOL in (lt, rt):
            self.error(span, f"cannot mix {lt} and {rt} in '{op}'")
            return
        if lt.is_vec or rt.is_vec:
            scalar_side, scalar_t = (right, rt) if lt.is_vec else (left, lt)
            text = self.text_of(scalar_side) or "x"
            self.error(span, f"cannot mix {lt} and {rt} in '{op}'",
                       f"vector components are f32: convert explicitly, e.g. f32({text})")
            return
        # Two different scalar types: say which cast would do.
        if lt.is_int != rt.is_int:
            int_side, float_t = (left, rt) if lt.is_int else (right, lt)
            text = self.text_of(int_side) or "x"
            self.error(span, f"cannot mix {lt} and {rt} in '{op}': integers and floats need an "
                             f"explicit cast", f"convert one side, e.g. {float_t.kind}({text})")
            return
        text = self.text_of(right) or "x"
        self.error(span, f"cannot mix {lt} and {rt} in '{op}': they need an explicit cast",
                   f"convert one side, e.g. {lt.kind}({text})")

    def ternary(self, e: ast.Ternary, scope: Scope) -> Ty:
        ct = self.value(e.cond, scope)
        if not ct.is_error and ct != BOOL:
            text = self.text_of(e.cond) or "x"
            self.error(e.cond.span, f"the condition of '?:' must be bool, got {default_of(ct)}",
                       f"compare explicitly, e.g. '{text} != 0'" if ct.is_numeric or ct.is_lit
                       else None)
            ct = ERROR
        a = self.value(e.then, scope)
        b = self.value(e.otherwise, scope)
        if a.is_error or b.is_error or ct.is_error:
            return self.record(e, ERROR)
        if a.is_lit and b.is_lit:
            t = ILIT if a.kind == b.kind == INT_LIT else FLIT
            if id(e.cond) in self.consts and id(e.then) in self.consts \
                    and id(e.otherwise) in self.consts:
                chosen = e.then if self.consts[id(e.cond)] else e.otherwise
                value = self.consts[id(chosen)]
                return self.record(e, t, float(value) if t == FLIT else value, True)
            if t == FLIT:  # make both branches float constants
                for side in (e.then, e.otherwise):
                    if self.types[id(side)].kind == INT_LIT:
                        self.types[id(side)] = FLIT
                        self.consts[id(side)] = float(self.consts[id(side)])
            return self.record(e, t)
        if a.is_lit:
            if not self.coerce(e.then, b):
                self.mismatch(e.then, a, b, "choose between the branches of '?:'")
                return self.record(e, ERROR)
            a = b
        elif b.is_lit:
            if not self.coerce(e.otherwise, a):
                self.mismatch(e.otherwise, b, a, "choose between the branches of '?:'")
                return self.record(e, ERROR)
            b = a
        if a != b:
            self.error(e.span, f"the branches of '?:' have different types: {a} and {b}",
                       "convert one of them explicitly")
            return self.record(e, ERROR)
        if all(id(x) in self.consts for x in (e.cond, e.then, e.otherwise)):
            chosen = e.then if self.consts[id(e.cond)] else e.otherwise
            return self.record(e, a, self.consts[id(chosen)], True)
        return self.record(e, a)

    # ---- calls -------------------------------------------------------------------------
    def call(self, e: ast.Call, scope: Scope) -> Ty:
        name = e.name
        if name in self.functions:
            return self.user_call(e, self.functions[name], scope)
        if name in MATH:
            return self.math_call(e, scope)
        if name in ATOMICS:
            return self.atomic_call(e, scope)
        if name == BARRIER:
            for a in e.args:
                self.expr(a, scope)
            if e.args:
                self.error(e.span, "barrier() takes no arguments")
            return self.record(e, VOID)
        for a in e.args:
            self.expr(a, scope)
        if any(k.node.name == name for k in self.kernels):
            self.error(e.name_span, f"'{name}' is a kernel and cannot be called",
                       "move the shared code into a function")
        elif scope.lookup(name) is not None:
            self.error(e.name_span, f"'{name}' is not a function")
        elif name in SCALARS + VECTORS:  # pragma: no cover - the grammar makes these casts
            self.error(e.name_span, f"'{name}' is a type")
        else:
            hint = did_you_mean(name, list(self.functions) + list(FUNCTIONS))
            self.error(e.name_span, f"unknown function '{name}'", hint)
        return self.record(e, ERROR)

    def user_call(self, e: ast.Call, info: FunctionInfo, scope: Scope) -> Ty:
        owner = self._owner
        if isinstance(owner, FunctionInfo):
            owner.calls.append((info.node.name, e.name_span))
        params = info.params
        if len(e.args) != len(params):
            for a in e.args:
                self.expr(a, scope)
            self.error(e.span, f"'{e.name}' takes {len(params)} argument"
                               f"{'s' if len(params) != 1 else ''}, got {len(e.args)}")
            return self.record(e, ERROR)
        ok = True
        for i, (a, p) in enumerate(zip(e.args, params), 1):
            if p.ty.kind in ("buffer", "image"):
                t = self.expr(a, scope)
                if t.is_error:
                    ok = False
                elif t != p.ty:
                    self.error(a.span, f"argument {i} of '{e.name}' must be {_a(p.ty)}, got {t}")
                    ok = False
                continue
            t = self.value(a, scope)
            if t.is_error or p.ty.is_error:
                ok = False
            elif not self.coerce(a, p.ty):
                self.mismatch(a, t, p.ty, f"pass argument {i} ('{p.name}') of '{e.name}'")
                ok = False
        return self.record(e, info.ret if ok else ERROR)

    def math_call(self, e: ast.Call, scope: Scope) -> Ty:
        spec = MATH[e.name]
        types = [self.value(a, scope) for a in e.args]
        if len(e.args) not in spec.arity:
            counts = " or ".join(str(n) for n in spec.arity)
            self.error(e.span, f"'{e.name}' takes {counts} argument"
                               f"{'s' if spec.arity != (1,) else ''}, got {len(e.args)}")
            return self.record(e, ERROR)
        if any(t.is_error for t in types):
            return self.record(e, ERROR)
        # The generic type: the first argument that is not a literal, except
        # broadcast positions, whose scalars do not decide a vector's size.
        gen: Ty | None = None
        for i, t in enumerate(types):
            if not t.is_lit and (i not in spec.broadcast or gen is None and t.is_vec):
                gen = t
                break
        if gen is None:
            gen = next((t for t in types if not t.is_lit), None)
        if gen is None:
            gen = F32 if spec.floats or any(t.kind == FLOAT_LIT for t in types) else I32
        if spec.floats and gen.is_int:
            text = self.text_of(e.args[types.index(gen)]) or "x"
            self.error(e.span, f"'{e.name}' needs float arguments, got {gen}",
                       f"convert explicitly: {e.name}(f32({text}))")
            return self.record(e, ERROR)
        if not (gen.is_numeric or gen.is_vec):
            self.error(e.span, f"'{e.name}' needs numbers, got {gen}")
            return self.record(e, ERROR)
        if spec.vectors_only and gen != vec(3):
            self.error(e.span, f"'{e.name}' takes two vec3, got {gen}")
            return self.record(e, ERROR)
        for i, (a, t) in enumerate(zip(e.args, types)):
            allowed = [gen]
            if i in spec.broadcast and gen.is_vec:
                allowed.append(F32)
            if t in allowed:
                continue
            target = F32 if gen.is_vec else gen
            if t.is_lit and self.coerce(a, target):
                continue
            if t.is_lit:
                self.mismatch(a, t, target, f"pass argument {i + 1} of '{e.name}'")
            else:
                text = self.text_of(a) or "x"
                hint = f"convert explicitly, e.g. {gen.kind}({text})" if gen.is_scalar else None
                self.error(a.span, f"arguments of '{e.name}' must have one type: {gen} and {t}",
                           hint)
            return self.record(e, ERROR)
        if spec.result == "scalar":
            return self.record(e, F32 if gen.is_vec else gen)
        if spec.result == "vec3":
            return self.record(e, vec(3))
        return self.record(e, gen)

    def atomic_call(self, e: ast.Call, scope: Scope) -> Ty:
        n = 3 if ATOMICS[e.name] == "cmpxchg" else 2
        if len(e.args) != n:
            for a in e.args:
                self.expr(a, scope)
            self.error(e.span, f"'{e.name}' takes {n} arguments, got {len(e.args)}")
            return self.record(e, ERROR)
        target = e.args[0]
        t = self.expr(target, scope)
        values = [self.value(a, scope) for a in e.args[1:]]
        if t.is_error or any(v.is_error for v in values):
            return self.record(e, ERROR)
        base_t = self.types.get(id(target.base)) if isinstance(target, ast.Index) else None
        if base_t is None or base_t.kind != "buffer":
            hint = "atomics work on buffer elements, not on shared or private arrays" \
                if base_t is not None and base_t.kind == "array" else None
            self.error(target.span, f"the first argument of '{e.name}' must be a buffer element, "
                                    "such as bins[i]", hint)
            return self.record(e, ERROR)
        if t.kind not in ATOMIC_ELEMENTS:
            self.error(target.span, f"atomics work on buffers of i32, u32 or f32, not {base_t}")
            return self.record(e, ERROR)
        for i, (a, v) in enumerate(zip(e.args[1:], values), 2):
            if not self.coerce(a, t):
                self.mismatch(a, v, t, f"pass argument {i} of '{e.name}'")
                return self.record(e, ERROR)
        return self.record(e, t)

    def construct(self, e: ast.Construct, scope: Scope) -> Ty:
        target = self.type_ref(e.type)
        types = [self.value(a, scope) for a in e.args]
        if target.is_error or any(t.is_error for t in types):
            return self.record(e, ERROR)
        if target.kind in ("buffer", "image"):
            self.error(e.span, f"cannot construct {_a(target)}")
            return self.record(e, ERROR)
        if target.is_scalar:
            if len(e.args) != 1:
                self.error(e.span, f"{target}(...) converts one value, got {len(e.args)}")
                return self.record(e, ERROR)
            a, t = e.args[0], types[0]
            if t.is_vec:
                self.error(e.span, f"cannot convert {t} to {target}",
                           f"take a component, e.g. {self.text_of(a) or 'v'}.x")
                return self.record(e, ERROR)
            if id(a) in self.consts:
                value = consteval.cast(self.consts[id(a)], t.kind, target.kind)
                if t.is_lit and target.kind != "bool":
                    # An untyped constant converts directly: no run-time cast needed.
                    self.coerce_cast(a, t, target)
                return self.record(e, target, value, True)
            if t.is_lit:
                self.default(a)
            return self.record(e, target)
        # vectors
        n = target.lanes
        if len(types) == 1 and (types[0] == F32 or types[0].is_lit):
            if not self.coerce(e.args[0], F32):
                self.mismatch(e.args[0], types[0], F32, f"build {_a(target)}")
                return self.record(e, ERROR)
            return self.record(e, target)
        if len(types) == 1 and types[0].is_vec and types[0].lanes >= n:
            return self.record(e, target)
        total = 0
        for a, t in zip(e.args, types):
            if t.is_vec:
                total += t.lanes
                continue
            if t == F32 or self.coerce(a, F32):
                total += 1
                continue
            text = self.text_of(a) or "x"
            self.error(a.span, f"{target} components are f32, got {default_of(t)}",
                       f"convert explicitly: f32({text})")
            return self.record(e, ERROR)
        if total != n:
            self.error(e.span, f"{target} needs {n} components, got {total}")
            return self.record(e, ERROR)
        return self.record(e, target)

    def coerce_cast(self, a: ast.Expr, t: Ty, target: Ty) -> None:
        """Type the literal operand of a constant cast (its value is folded anyway)."""
        kind = target.kind if target.is_int == (t.kind == INT_LIT) else default_of(t).kind
        value = self.consts[id(a)]
        try:
            folded = consteval.convert_untyped(value, t.kind, kind)
        except consteval.ConstError:
            folded = consteval.cast(value, t.kind, kind)
        self.record(a, Ty(kind), folded, True)

    # ---- indexing and members ------------------------------------------------------------
    def index_value(self, e: ast.Expr, scope: Scope) -> bool:
        t = self.value(e, scope)
        if t.is_error:
            return False
        if t == I32 or self.coerce(e, I32):
            return self.types[id(e)] == I32
        text = self.text_of(e) or "i"
        hint = f"convert explicitly: i32({text})" if t.is_numeric else None
        self.error(e.span, f"an index must be i32, got {default_of(t)}", hint)
        return False

    def index(self, e: ast.Index, scope: Scope) -> Ty:
        base_t = self.expr(e.base, scope)
        ok = all([self.index_value(i, scope) for i in e.indices])
        if base_t.is_error or not ok:
            return self.record(e, ERROR)
        n = len(e.indices)
        if base_t.kind == "buffer":
            if n != 1:
                self.error(e.span, f"a buffer takes one index, got {n}")
                return self.record(e, ERROR)
            return self.record(e, base_t.elem_ty)
        if base_t.kind == "image":
            if n != 2:
                self.error(e.span, f"an image takes two coordinates, img[x, y]; got {n}")
                return self.record(e, ERROR)
            return self.record(e, base_t.elem_ty)
        if base_t.kind == "array":
            shape = base_t.shape
            if n > len(shape):
                self.error(e.span, f"{base_t} has {len(shape)} dimension"
                                   f"{'s' if len(shape) > 1 else ''}, got {n} indices")
                return self.record(e, ERROR)
            for i, size in zip(e.indices, shape):
                if id(i) in self.consts and not 0 <= self.consts[id(i)] < size:
                    self.error(i.span, f"index {self.consts[id(i)]} is out of bounds for {base_t}")
                    return self.record(e, ERROR)
            rest = shape[n:]
            assert base_t.elem is not None
            return self.record(e, Ty("array", base_t.elem, rest) if rest else base_t.elem_ty)
        if base_t.is_vec:
            if n != 1:
                self.error(e.span, f"{_a(base_t)} takes one index")
                return self.record(e, ERROR)
            i = e.indices[0]
            if id(i) not in self.consts:
                self.error(i.span, "a vector component index must be a constant",
                           "use a swizzle such as v.x, or a ?: chain")
                return self.record(e, ERROR)
            if not 0 <= self.consts[id(i)] < base_t.lanes:
                self.error(i.span, f"index {self.consts[id(i)]} is out of bounds for {base_t}")
                return self.record(e, ERROR)
            return self.record(e, F32)
        self.error(e.span, f"{_a(default_of(base_t))} cannot be indexed")
        return self.record(e, ERROR)

    def member(self, e: ast.Member, scope: Scope) -> Ty:
        base_t = self.expr(e.base, scope)
        if base_t.is_error:
            return self.record(e, ERROR)
        name = e.name
        if base_t.kind == "builtin":
            if name in ("x", "y", "z"):
                return self.record(e, I32)
            self.error(e.name_span, f"'{self.text_of(e.base)}' has components .x, .y and .z, "
                                    f"not .{name}")
            return self.record(e, ERROR)
        members = {"buffer": ("length",), "image": ("width", "height")}.get(base_t.kind)
        if members is not None:
            if name in members:
                return self.record(e, I32)
            self.error(e.name_span, f"{base_t} has no member '{name}'",
                       did_you_mean(name, members)
                       or f"it has {', '.join('.' + m for m in members)}")
            return self.record(e, ERROR)
        if base_t.is_vec:
            return self.swizzle(e, base_t)
        if base_t.is_lit or base_t.is_scalar:
            self.error(e.name_span, f"{_a(default_of(base_t))} has no member '{name}'")
        else:
            self.error(e.name_span, f"{base_t} has no member '{name}'")
        return self.record(e, ERROR)

    def swizzle(self, e: ast.Member, base_t: Ty) -> Ty:
        name = e.name
        letters = next((s for s in SWIZZLE_SETS if all(c in s for c in name)), None)
        if letters is None or len(name) > 4:
            if all(any(c in s for s in SWIZZLE_SETS) for c in name) and len(name) <= 4:
                self.error(e.name_span, f"swizzle .{name} mixes letters of xyzw, rgba and stpq",
                           "use one set per swizzle")
            else:
                self.error(e.name_span, f"{base_t} has no component '{name}'",
                           f"components are {', '.join('.' + c for c in 'xyzw'[:base_t.lanes])}"
                           f" (or rgba, stpq)")
            return self.record(e, ERROR)
        for c in name:
            if letters.index(c) >= base_t.lanes:
                self.error(e.name_span, f"{base_t} has no component '{c}'",
                           f"{_a(base_t)} has {', '.join('.' + x for x in letters[:base_t.lanes])}")
                return self.record(e, ERROR)
        return self.record(e, F32 if len(name) == 1 else vec(len(name)))

    # ======================================================================
    # Recursion
    # ======================================================================
    def check_recursion(self) -> None:
        """Report each recursion once, at a call that closes it (one cycle of each group of
        functions that call each other), and call chains more than :data:`MAX_CALL_DEPTH`
        functions deep (every call is inlined), once, at the call that goes past it.

        One depth-first search over the call graph, each function visited once: linear in
        the calls (it used to restart from every function and cap chains at 1,000)."""
        reported: set[frozenset[str]] = set()
        depth: dict[str, int] = {}  # finished functions: the longest chain they start
        too_deep: tuple[SourceSpan, int, str] | None = None
        for start in self.functions:
            if start in depth:
                continue
            on_path: dict[str, int] = {start: 0}  # function -> its index in path
            path = [start]
            stack: list[tuple[str, int]] = [(start, 0)]
            while stack:
                fn, i = stack.pop()
                calls = self.functions[fn].calls
                if i < len(calls):
                    stack.append((fn, i + 1))
                    callee, span = calls[i]
                    if callee in on_path:
                        cycle = path[on_path[callee]:]
                        key = frozenset(cycle)
                        if key not in reported:
                            reported.add(key)
                            chain = " -> ".join(cycle + [callee])
                            what = f"'{callee}' calls itself" if len(cycle) == 1 \
                                else f"recursive call: {chain}"
                            self.error(span, f"{what}; functions cannot be recursive",
                                       "kernels have no call stack: rewrite the recursion as "
                                       "a loop")
                    elif callee in self.functions and callee not in depth:
                        on_path[callee] = len(path)
                        path.append(callee)
                        stack.append((callee, 0))
                    continue
                # All of fn's calls are done: the longest chain it starts.
                longest = 1 + max((depth.get(c, 0) for c, _ in calls if c not in on_path),
                                  default=0)
                depth[fn] = longest
                if longest > MAX_CALL_DEPTH and too_deep is None:
                    deepest = max(((depth.get(c, 0), span) for c, span in calls
                                   if c not in on_path), key=lambda t: t[0])
                    too_deep = (deepest[1], longest, fn)
                del on_path[fn]
                path.pop()
        if too_deep is not None and not reported:  # (along a recursion depth means nothing)
            span, longest, fn = too_deep
            self.error(span, f"calls nest {longest} functions deep from '{fn}', more than "
                       f"{MAX_CALL_DEPTH}",
                       "every call is inlined: use fewer levels of helper functions")


def _always_returns(s: ast.Stmt) -> bool:
    """Whether every path through ``s`` ends in a return (or loops forever)."""
    if isinstance(s, ast.Return):
        return True
    if isinstance(s, ast.Block):
        return any(_always_returns(x) for x in s.stmts)
    if isinstance(s, ast.If):
        return s.otherwise is not None and _always_returns(s.then) and _always_returns(s.otherwise)
    if isinstance(s, (ast.While, ast.For)):
        cond = s.cond
        forever = cond is None or (isinstance(cond, ast.BoolLit) and cond.value)
        return forever and not _breaks(s.body)
    return False


def _breaks(s: ast.Stmt) -> bool:
    """Whether ``s`` contains a break of the loop it is the body of."""
    if isinstance(s, ast.Break):
        return True
    if isinstance(s, ast.Block):
        return any(_breaks(x) for x in s.stmts)
    if isinstance(s, ast.If):
        return _breaks(s.then) or (s.otherwise is not None and _breaks(s.otherwise))
    return False


def check(program: ast.Program, text: str, reporter: Reporter) -> CheckedProgram:
    """Check ``program``; problems go to ``reporter`` (the caller raises)."""
    checker = Checker(program, text, reporter)
    return checker.check()
