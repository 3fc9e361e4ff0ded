"""Checked AST to IR: inlining, scalarisation and expansion of builtins.

The IR is scalar and has no calls, so this phase

* inlines every user function at each call: arguments are evaluated once,
  in order, into fresh locals; ``return`` inside an inlined body becomes a
  ``BREAK`` out of a labelled ``BLOCK`` after the result is assigned;
* scalarises vectors: a ``vec3`` variable is three f32 locals, a vector
  expression a list of scalar lanes, a ``vec4`` buffer or image element four
  lanes (0..3), a private or shared array of vectors an array with one more
  dimension;
* expands math builtins that have no IR op (clamp, mix, step, smoothstep,
  fract, mod, dot, cross, length, distance, normalize) into IR arithmetic;
* keeps C's evaluation rules: ``&&``, ``||`` and ``?:`` only evaluate what C
  would (``LAND``/``LOR``/``SELECT``, or an ``IF`` when a side needs
  statements, such as an inlined call); an expression's value is computed
  once even when a expansion uses it several times (it is spilled to a
  temporary local);
* turns ``for`` into ``LOOP`` with the step in the step block, so that
  ``continue`` runs it;
* folds constant expressions (the checker already computed their values).

Every IR node carries the source line it came from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from xv_core.errors import Diagnostic, SourceError, SourceSpan
from xv_core.ir import (
    BOOL as IR_BOOL, CONSTANT, F32 as IR_F32, I32 as IR_I32, LOCAL, MAX_DEPTH, MAX_NODES, PARAM,
    SHARED, VOID as IR_VOID, Decl, Kernel, Module, Node, Op, Type, verify_module,
)
from xv_dsl import ast
from xv_dsl.builtins import ATOMICS, BARRIER, MATH
from xv_dsl.checker import ARRAY, CONST, PARAM as SYM_PARAM, SPECIAL, VAR, CheckedProgram, \
    FunctionInfo, KernelInfo, Symbol
from xv_dsl.types import Ty

#: Lowering work (statements and expressions visited, inlining included)
#: beyond which a kernel is refused rather than expanded further.
MAX_WORK = 100_000

_TRIVIAL = frozenset({Op.CONST, Op.VAR, Op.SPECIAL, Op.LENGTH, Op.WIDTH, Op.HEIGHT})

_UNARY_BUILTINS = {
    "abs": Op.ABS, "sign": Op.SIGN, "floor": Op.FLOOR, "ceil": Op.CEIL, "round": Op.ROUND,
    "trunc": Op.TRUNC, "sqrt": Op.SQRT, "inversesqrt": Op.RSQRT, "exp": Op.EXP, "exp2": Op.EXP2,
    "log": Op.LOG, "log2": Op.LOG2, "sin": Op.SIN, "cos": Op.COS, "tan": Op.TAN, "asin": Op.ASIN,
    "acos": Op.ACOS,
}
_BINARY_BUILTINS = {"min": Op.MIN, "max": Op.MAX, "pow": Op.POW, "atan2": Op.ATAN2}
_ARITH = {"+": Op.ADD, "-": Op.SUB, "*": Op.MUL, "/": Op.DIV, "%": Op.MOD, "&": Op.BITAND,
          "|": Op.BITOR, "^": Op.BITXOR, "<<": Op.SHL, ">>": Op.SHR}
_COMPARE = {"==": Op.EQ, "!=": Op.NE, "<": Op.LT, "<=": Op.LE, ">": Op.GT, ">=": Op.GE}
_COMPOUND = {"+=": "+", "-=": "-", "*=": "*", "/=": "/", "%=": "%", "&=": "&", "|=": "|",
             "^=": "^", "<<=": "<<", ">>=": ">>"}


class _TooBig(Exception):
    pass


# --------------------------------------------------------------------------
# Bindings: what a source symbol is in the IR, in one inlining
# --------------------------------------------------------------------------


@attrs.frozen
class _Locals:
    """A scalar or vector held in IR locals, one per lane."""

    names: tuple[str, ...]
    type: Type  # of every lane


@attrs.frozen
class _Values:
    """A read-only value: constant or an argument that needed no copy."""

    nodes: tuple[Node, ...]


@attrs.frozen
class _Memory:
    """A buffer, image or array, by its IR name."""

    name: str
    ty: Ty  # source type: buffer<T>, image<T> or array


_Binding = _Locals | _Values | _Memory


@attrs.frozen
class _Place:
    """Somewhere a value can be read or written.

    ``kind`` is "locals" (``names`` per lane) or "buffer", "image", "array"
    (``name``, ``indices`` so far, ``lanes`` of the element selected).
    """

    kind: str
    names: tuple[str, ...] = ()
    name: str = ""
    indices: tuple[Node, ...] = ()
    lanes: tuple[int, ...] = (0,)
    lane_count: int = 1  # lanes of the memory element (4 for vec4 elements)
    type: Type = IR_F32
    dims: int = 0  # array dimensions still to index


@attrs.define
class _Frame:
    """One function body being inlined (or the kernel body)."""

    env: dict[Symbol, _Binding]
    ret_label: str | None = None
    ret_locals: _Locals | None = None
    loops: list[str] = attrs.Factory(list)


def ir_type(t: Ty) -> Type:
    """The IR type of one lane of a source value type."""
    if t.is_vec:
        return IR_F32
    return Type(t.kind)


def _zero(t: Type) -> Any:
    return {"bool": False, "i32": 0, "u32": 0}.get(t.kind, 0.0)


class _Namer:
    """Unique IR names within one kernel."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.next: dict[str, int] = {}  # next suffix to try per base (keeps naming linear)

    def reserve(self, name: str) -> None:
        self.used.add(name)

    def new(self, base: str) -> str:
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in base)[:100] or "_t"
        if base[0].isdigit():
            base = "_" + base
        name, n = base, self.next.get(base, 0)
        if n:
            name = f"{base}_{n}"
        while name in self.used:
            n += 1
            name = f"{base}_{n}"
        self.next[base] = n + 1
        self.used.add(name)
        return name


class _KernelLowering:
    def __init__(self, checked: CheckedProgram, info: KernelInfo):
        self.c = checked
        self.info = info
        self.namer = _Namer()
        self.decls: list[Decl] = []
        self.labels = 0
        self.work = 0
        self.frames: list[_Frame] = []
        self.break_uses: dict[str, int] = {}
        self.global_env: dict[Symbol, _Binding] = {}

    # ---- small helpers -----------------------------------------------------
    @property
    def frame(self) -> _Frame:
        return self.frames[-1]

    def tick(self) -> None:
        self.work += 1
        if self.work > MAX_WORK:
            raise _TooBig

    def label(self, base: str) -> str:
        self.labels += 1
        return f"{base}{self.labels}"

    def local(self, base: str, t: Type, shape: tuple[int, ...] = ()) -> str:
        name = self.namer.new(base)
        decl_t = Type("array", t.kind, shape) if shape else t
        self.decls.append(Decl(name, decl_t, LOCAL))
        return name

    def type_of(self, e: object) -> Ty:
        return self.c.types[id(e)]

    def spill(self, node: Node, out: list[Node], line: int, base: str = "_t") -> Node:
        """``node`` itself if it is cheap to repeat, else a temporary holding its value."""
        if node.op in _TRIVIAL:
            return node
        name = self.local(base, node.type)
        out.append(Node(Op.ASSIGN, IR_VOID, (node,), name, line))
        return Node(Op.VAR, node.type, (), name, line)

    def copy(self, node: Node, out: list[Node], line: int) -> Node:
        """A temporary holding ``node``'s value now (even a variable's)."""
        name = self.local("_t", node.type)
        out.append(Node(Op.ASSIGN, IR_VOID, (node,), name, line))
        return Node(Op.VAR, node.type, (), name, line)

    def spill_all(self, nodes: Sequence[Node], out: list[Node], line: int) -> list[Node]:
        return [self.spill(n, out, line) for n in nodes]

    def binding(self, sym: Symbol) -> _Binding:
        if sym in self.frame.env:  # a function body sees its own names and the globals
            return self.frame.env[sym]
        if sym in self.global_env:
            return self.global_env[sym]
        return self.bind_global(sym)

    def bind_global(self, sym: Symbol) -> _Binding:
        if sym.kind == CONST:
            b: _Binding = _Values((Node(Op.CONST, ir_type(sym.ty), (), sym.value),))
        elif sym.kind == ARRAY and sym.space == "const":
            name = self.namer.new(sym.name)
            assert sym.ty.elem is not None and sym.init is not None
            self.decls.append(Decl(name, Type("array", sym.ty.elem, sym.ty.shape), CONSTANT,
                                   tuple(sym.init)))
            b = _Memory(name, sym.ty)
        else:  # pragma: no cover - the checker resolves every name
            raise KeyError(sym.name)
        self.global_env[sym] = b
        return b

    # ======================================================================
    # Kernel
    # ======================================================================
    def lower(self) -> Kernel:
        k = self.info.node
        params: list[Decl] = []
        for p in self.info.params:
            self.namer.reserve(p.name)
        env: dict[Symbol, _Binding] = {}
        entry: list[Node] = []
        for p in self.info.params:
            t = p.ty
            if t.kind in ("buffer", "image"):
                params.append(Decl(p.name, Type(t.kind, t.elem), PARAM))
                env[p] = _Memory(p.name, t)
                continue
            params.append(Decl(p.name, Type(t.kind), PARAM))
            pnode = Node(Op.VAR, Type(t.kind), (), p.name, p.span.line)
            if p.assigned:  # parameters are read-only in the IR: work on a copy
                name = self.local(p.name, Type(t.kind))
                entry.append(Node(Op.ASSIGN, IR_VOID, (pnode,), name, p.span.line))
                env[p] = _Locals((name,), Type(t.kind))
            else:
                env[p] = _Values((pnode,))
        self.frames.append(_Frame(env))
        body: list[Node] = list(entry)
        self.stmts(k.body.stmts, body)
        self.frames.pop()
        return Kernel(k.name, tuple(params), tuple(self.decls),
                      Node.block(body, None, k.span.line), self.info.workgroup,
                      self.c.program.path)

    # ======================================================================
    # Statements
    # ======================================================================
    def stmts(self, stmts: Sequence[ast.Stmt], out: list[Node]) -> None:
        for s in stmts:
            self.stmt(s, out)

    def stmt(self, s: ast.Stmt, out: list[Node]) -> None:
        self.tick()
        line = s.span.line
        if isinstance(s, ast.Block):
            self.stmts(s.stmts, out)
        elif isinstance(s, ast.VarDecl):
            for d in s.declarators:
                self.declarator(d, out)
        elif isinstance(s, ast.Assign):
            self.assign(s.target, s.op, s.value, out, line)
        elif isinstance(s, ast.IncDec):
            self.assign(s.target, "+=" if s.op == "++" else "-=", None, out, line)
        elif isinstance(s, ast.ExprStmt):
            e = s.expr
            if isinstance(e, ast.Call):
                self.call(e, out, want_value=False)
            else:  # pragma: no cover - the checker refuses other expression statements
                self.expr(e, out)
        elif isinstance(s, ast.If):
            cond = self.expr(s.cond, out)[0]
            then: list[Node] = []
            self.stmt(s.then, then)
            other: list[Node] = []
            if s.otherwise is not None:
                self.stmt(s.otherwise, other)
            out.append(Node(Op.IF, IR_VOID, (cond, Node.block(then, None, line),
                                             Node.block(other, None, line)), None, line))
        elif isinstance(s, ast.While):
            self.loop(s.cond, s.body, None, out, line)
        elif isinstance(s, ast.For):
            if s.init is not None:
                self.stmt(s.init, out)
            self.loop(s.cond, s.body, s.step, out, line)
        elif isinstance(s, ast.Break):
            out.append(Node(Op.BREAK, IR_VOID, (), self.frame.loops[-1], line))
        elif isinstance(s, ast.Continue):
            out.append(Node(Op.CONTINUE, IR_VOID, (), self.frame.loops[-1], line))
        elif isinstance(s, ast.Return):
            self.return_stmt(s, out, line)
        elif isinstance(s, ast.Empty):
            pass
        else:  # pragma: no cover
            raise TypeError(type(s).__name__)

    def loop(self, cond: ast.Expr | None, body: ast.Stmt, step: ast.Stmt | None,
             out: list[Node], line: int) -> None:
        label = self.label("loop")
        pre: list[Node] = []
        if cond is None:
            c = Node(Op.CONST, IR_BOOL, (), True, line)
        else:
            c = self.expr(cond, pre)[0]
        self.frame.loops.append(label)
        body_out: list[Node] = []
        self.stmt(body, body_out)
        step_out: list[Node] = []
        if step is not None:
            self.stmt(step, step_out)
        self.frame.loops.pop()
        if pre:
            # The condition needs statements (an inlined call): evaluate it at the top
            # of every iteration and leave the loop when it is false.
            leave = Node(Op.IF, IR_VOID, (
                Node(Op.NOT, IR_BOOL, (c,), None, line),
                Node.block([Node(Op.BREAK, IR_VOID, (), label, line)], None, line),
                Node.block([], None, line)), None, line)
            body_out = pre + [leave] + body_out
            c = Node(Op.CONST, IR_BOOL, (), True, line)
        out.append(Node(Op.LOOP, IR_VOID, (c, Node.block(body_out, None, line),
                                           Node.block(step_out, None, line)), label, line))

    def return_stmt(self, s: ast.Return, out: list[Node], line: int) -> None:
        frame = self.frame
        if frame.ret_label is None:  # the kernel itself
            out.append(Node(Op.RETURN, IR_VOID, (), None, line))
            return
        if s.value is not None and frame.ret_locals is not None:
            lanes = self.expr(s.value, out)
            for name, v in zip(frame.ret_locals.names, lanes):
                out.append(Node(Op.ASSIGN, IR_VOID, (v,), name, line))
        out.append(Node(Op.BREAK, IR_VOID, (), frame.ret_label, line))
        self.break_uses[frame.ret_label] = self.break_uses.get(frame.ret_label, 0) + 1

    def declarator(self, d: ast.Declarator, out: list[Node]) -> None:
        sym = self.c.decls[id(d)]
        line = d.span.line
        if sym.kind == CONST:
            self.frame.env[sym] = _Values((Node(Op.CONST, ir_type(sym.ty), (), sym.value, line),))
            return
        if sym.kind == ARRAY:
            self.array_decl(sym, d, out)
            return
        t = ir_type(sym.ty)
        base = sym.name
        suffixes = ("x", "y", "z", "w")
        if sym.ty.is_vec:
            names = tuple(self.local(f"{base}_{suffixes[i]}", t) for i in range(sym.ty.lanes))
        else:
            names = (self.local(base, t),)
        if d.init is not None:
            assert not isinstance(d.init, ast.InitList)
            values = self.expr(d.init, out)
        else:
            values = [Node(Op.CONST, t, (), _zero(t), line)] * len(names)
        for name, v in zip(names, values):
            out.append(Node(Op.ASSIGN, IR_VOID, (v,), name, line))
        self.frame.env[sym] = _Locals(names, t)

    def array_decl(self, sym: Symbol, d: ast.Declarator, out: list[Node]) -> None:
        ty = sym.ty
        assert ty.elem is not None
        elem = Ty(ty.elem)
        lane_t = ir_type(elem)
        shape = ty.shape + ((elem.lanes,) if elem.is_vec else ())
        line = d.span.line
        if sym.space == "const":
            name = self.namer.new(sym.name)
            assert sym.init is not None
            self.decls.append(Decl(name, Type("array", lane_t.kind, shape), CONSTANT,
                                   tuple(sym.init)))
            self.frame.env[sym] = _Memory(name, ty)
            return
        space = SHARED if sym.space == "shared" else LOCAL
        name = self.namer.new(sym.name)
        self.decls.append(Decl(name, Type("array", lane_t.kind, shape), space))
        self.frame.env[sym] = _Memory(name, ty)
        if space == SHARED:
            return
        if d.init is not None:
            items = _flatten(d.init)
            for flat, item in enumerate(items):
                idx = _unflatten(flat, ty.shape)
                lanes = self.expr(item, out)
                for lane, v in enumerate(lanes):
                    index = [Node(Op.CONST, IR_I32, (), i, line) for i in idx]
                    if elem.is_vec:
                        index.append(Node(Op.CONST, IR_I32, (), lane, line))
                    out.append(Node(Op.ASTORE, IR_VOID, (*index, v), name, line))
            return
        # Private arrays start zeroed, every time their declaration runs.
        self.zero_fill(name, shape, lane_t, out, line)

    def zero_fill(self, name: str, shape: tuple[int, ...], t: Type, out: list[Node],
                  line: int) -> None:
        counters = [self.local("_i", IR_I32) for _ in shape]
        inner: list[Node] = [Node(Op.ASTORE, IR_VOID, (
            *(Node(Op.VAR, IR_I32, (), c, line) for c in counters),
            Node(Op.CONST, t, (), _zero(t), line)), name, line)]
        for counter, size in reversed(list(zip(counters, shape))):
            var = Node(Op.VAR, IR_I32, (), counter, line)
            label = self.label("zero")
            loop = Node(Op.LOOP, IR_VOID, (
                Node(Op.LT, IR_BOOL, (var, Node(Op.CONST, IR_I32, (), size, line)), None, line),
                Node.block(inner, None, line),
                Node.block([Node(Op.ASSIGN, IR_VOID, (
                    Node(Op.ADD, IR_I32, (var, Node(Op.CONST, IR_I32, (), 1, line)), None, line),),
                    counter, line)], None, line)), label, line)
            inner = [Node(Op.ASSIGN, IR_VOID, (Node(Op.CONST, IR_I32, (), 0, line),), counter,
                          line), loop]
        out.extend(inner)

    # ---- assignment ----------------------------------------------------------------
    def assign(self, target: ast.Expr, op: str, value: ast.Expr | None, out: list[Node],
               line: int) -> None:
        """``target op value``; a None value is the 1 of ``++`` and ``--``."""
        place = self.place(target, out)
        target_t = self.type_of(target)
        n = len(place.lanes) if place.kind != "locals" else len(place.names)
        compound = op != "="
        if n > 1 or compound:
            place = self.stable(place, out, line)
        if compound:
            old = self.read(place, line)
            if value is None:
                one_t = ir_type(target_t)
                rhs = [Node(Op.CONST, one_t, (), 1.0 if one_t.is_float else 1, line)]
                value_t = target_t
            else:
                rhs = self.expr(value, out)
                value_t = self.type_of(value)
            bop = _COMPOUND[op]
            values = self.arith(bop, old, rhs, target_t, value_t, target_t, line, out)
        else:
            assert value is not None
            values = self.expr(value, out)
        if n > 1:
            # Lanes are written one by one: a lane that reads what an earlier lane
            # writes (v = v.yx) must read the old value.
            written = self.place_names(place)
            values = [self.copy(v, out, line) if _reads(v) & written else v for v in values]
        self.write(place, values, out, line)

    def stable(self, place: _Place, out: list[Node], line: int) -> _Place:
        """``place`` with its indices in temporaries, for places used more than once."""
        if not place.indices:
            return place
        return attrs.evolve(place, indices=tuple(self.spill(i, out, line, "_idx")
                                                 for i in place.indices))

    @staticmethod
    def place_names(place: _Place) -> set[str]:
        return set(place.names) if place.kind == "locals" else {place.name}

    def write(self, place: _Place, values: Sequence[Node], out: list[Node], line: int) -> None:
        if place.kind == "locals":
            for name, v in zip(place.names, values):
                out.append(Node(Op.ASSIGN, IR_VOID, (v,), name, line))
            return
        for lane, v in zip(place.lanes, values):
            if place.kind == "buffer":
                out.append(Node(Op.STORE, IR_VOID, (*place.indices, v), (place.name, lane), line))
            elif place.kind == "image":
                out.append(Node(Op.ISTORE, IR_VOID, (*place.indices, v), (place.name, lane), line))
            else:
                idx = list(place.indices)
                if place.lane_count > 1:
                    idx.append(Node(Op.CONST, IR_I32, (), lane, line))
                out.append(Node(Op.ASTORE, IR_VOID, (*idx, v), place.name, line))

    def read(self, place: _Place, line: int) -> list[Node]:
        if place.kind == "locals":
            return [Node(Op.VAR, place.type, (), n, line) for n in place.names]
        out = []
        for lane in place.lanes:
            if place.kind == "buffer":
                out.append(Node(Op.LOAD, place.type, place.indices, (place.name, lane), line))
            elif place.kind == "image":
                out.append(Node(Op.ILOAD, place.type, place.indices, (place.name, lane), line))
            else:
                idx = list(place.indices)
                if place.lane_count > 1:
                    idx.append(Node(Op.CONST, IR_I32, (), lane, line))
                out.append(Node(Op.ALOAD, place.type, tuple(idx), place.name, line))
        return out

    def place(self, e: ast.Expr, out: list[Node]) -> _Place:
        """Where ``e`` (a variable, an element, a component) lives."""
        line = e.span.line
        if isinstance(e, ast.Name):
            b = self.binding(self.c.refs[id(e)])
            if isinstance(b, _Locals):
                return _Place("locals", names=b.names, type=b.type)
            if isinstance(b, _Memory):
                t = b.ty
                assert t.elem is not None
                elem = Ty(t.elem)
                lanes = elem.lanes
                return _Place(t.kind, name=b.name, lanes=tuple(range(lanes)), lane_count=lanes,
                              type=ir_type(elem), dims=len(t.shape) if t.kind == "array" else 0)
            raise TypeError("read-only value used as a place")  # pragma: no cover
        if isinstance(e, ast.Index):
            base_t = self.type_of(e.base)
            if base_t.is_vec:  # v[2]: a constant component
                base = self.place(e.base, out)
                k = int(self.c.consts[id(e.indices[0])])
                return _select(base, (k,))
            base = self.place(e.base, out)
            idx = tuple(self.expr(i, out)[0] for i in e.indices)
            return attrs.evolve(base, indices=base.indices + idx, dims=max(base.dims - len(idx), 0))
        if isinstance(e, ast.Member):
            base = self.place(e.base, out)
            return _select(base, _swizzle_lanes(e.name))
        raise TypeError(f"not a place: {type(e).__name__}")  # pragma: no cover

    # ======================================================================
    # Expressions: each returns its lanes (one node per scalar component)
    # ======================================================================
    def expr(self, e: ast.Expr, out: list[Node]) -> list[Node]:
        self.tick()
        t = self.type_of(e)
        line = e.span.line
        if id(e) in self.c.consts and t.is_scalar:
            return [Node(Op.CONST, ir_type(t), (), self.c.consts[id(e)], line)]
        if isinstance(e, ast.Name):
            sym = self.c.refs[id(e)]
            b = self.binding(sym)
            if isinstance(b, _Locals):
                return [Node(Op.VAR, b.type, (), n, line) for n in b.names]
            if isinstance(b, _Values):
                return list(b.nodes)
            raise TypeError(f"{sym.name} is not a value")  # pragma: no cover
        if isinstance(e, ast.Unary):
            return self.unary(e, out)
        if isinstance(e, ast.Binary):
            return self.binary(e, out)
        if isinstance(e, ast.Ternary):
            return self.ternary(e, out)
        if isinstance(e, ast.Call):
            return self.call(e, out, want_value=True)
        if isinstance(e, ast.Construct):
            return self.construct(e, out)
        if isinstance(e, ast.Index):
            base_t = self.type_of(e.base)
            if base_t.is_vec:
                lanes = self.expr(e.base, out)
                return [lanes[int(self.c.consts[id(e.indices[0])])]]
            return self.read(self.place(e, out), line)
        if isinstance(e, ast.Member):
            return self.member(e, out)
        raise TypeError(f"cannot lower {type(e).__name__}")  # pragma: no cover

    def member(self, e: ast.Member, out: list[Node]) -> list[Node]:
        line = e.span.line
        base_t = self.type_of(e.base)
        if base_t.kind == "builtin":
            assert isinstance(e.base, ast.Name)
            return [Node(Op.SPECIAL, IR_I32, (), f"{e.base.name}.{e.name}", line)]
        if base_t.kind in ("buffer", "image"):
            assert isinstance(e.base, ast.Name)
            b = self.binding(self.c.refs[id(e.base)])
            assert isinstance(b, _Memory)
            op = {"length": Op.LENGTH, "width": Op.WIDTH, "height": Op.HEIGHT}[e.name]
            return [Node(op, IR_I32, (), b.name, line)]
        lanes = self.expr(e.base, out)
        picked = _swizzle_lanes(e.name)
        if len(picked) > 1 and len(set(picked)) < len(picked):
            lanes = self.spill_all(lanes, out, line)
        return [lanes[i] for i in picked]

    def unary(self, e: ast.Unary, out: list[Node]) -> list[Node]:
        lanes = self.expr(e.operand, out)
        line = e.span.line
        if e.op == "+":
            return lanes
        op = {"-": Op.NEG, "!": Op.NOT, "~": Op.BITNOT}[e.op]
        return [Node(op, v.type, (v,), None, line) for v in lanes]

    def binary(self, e: ast.Binary, out: list[Node]) -> list[Node]:
        line = e.span.line
        if e.op in ("&&", "||"):
            return [self.logical(e, out)]
        left = self.expr(e.left, out)
        right = self.expr(e.right, out)
        lt, rt = self.type_of(e.left), self.type_of(e.right)
        if e.op in _COMPARE:
            op = _COMPARE[e.op]
            parts = [Node(op, IR_BOOL, (a, b), None, line) for a, b in zip(left, right)]
            result = parts[0]
            combine = Op.BITAND if e.op == "==" else Op.BITOR
            for p in parts[1:]:  # vectors: all components equal / any differs
                result = Node(combine, IR_BOOL, (result, p), None, line)
            return [result]
        return self.arith(e.op, left, right, lt, rt, self.type_of(e), line, out)

    def arith(self, op: str, left: list[Node], right: list[Node], lt: Ty, rt: Ty,
              result_t: Ty, line: int, out: list[Node]) -> list[Node]:
        """Component-wise ``left op right``, broadcasting a scalar side."""
        iop = _ARITH[op]
        if op in ("<<", ">>"):
            a, b = left[0], right[0]
            if b.type != a.type:  # the amount may be of the other integer type
                b = Node(Op.CAST, a.type, (b,), None, line)
            return [Node(iop, a.type, (a, b), None, line)]
        n = max(len(left), len(right))
        if len(left) < n:
            left = [self.spill(left[0], out, line)] * n
        if len(right) < n:
            right = [self.spill(right[0], out, line)] * n
        t = ir_type(result_t)
        return [Node(iop, t, (a, b), None, line) for a, b in zip(left, right)]

    def logical(self, e: ast.Binary, out: list[Node]) -> Node:
        line = e.span.line
        a = self.expr(e.left, out)[0]
        side: list[Node] = []
        b = self.expr(e.right, side)[0]
        op = Op.LAND if e.op == "&&" else Op.LOR
        if not side:
            return Node(op, IR_BOOL, (a, b), None, line)
        # The right side needs statements: run them only when C would evaluate it.
        t = self.local("_c", IR_BOOL)
        var = Node(Op.VAR, IR_BOOL, (), t, line)
        out.append(Node(Op.ASSIGN, IR_VOID, (a,), t, line))
        cond = var if op is Op.LAND else Node(Op.NOT, IR_BOOL, (var,), None, line)
        side.append(Node(Op.ASSIGN, IR_VOID, (b,), t, line))
        out.append(Node(Op.IF, IR_VOID, (cond, Node.block(side, None, line),
                                         Node.block([], None, line)), None, line))
        return var

    def ternary(self, e: ast.Ternary, out: list[Node]) -> list[Node]:
        line = e.span.line
        c = self.expr(e.cond, out)[0]
        then_out: list[Node] = []
        a = self.expr(e.then, then_out)
        else_out: list[Node] = []
        b = self.expr(e.otherwise, else_out)
        if not then_out and not else_out:
            if len(a) > 1:
                c = self.spill(c, out, line, "_c")
            return [Node(Op.SELECT, x.type, (c, x, y), None, line) for x, y in zip(a, b)]
        temps = [self.local("_s", x.type) for x in a]
        then_out += [Node(Op.ASSIGN, IR_VOID, (x,), n, line) for n, x in zip(temps, a)]
        else_out += [Node(Op.ASSIGN, IR_VOID, (y,), n, line) for n, y in zip(temps, b)]
        out.append(Node(Op.IF, IR_VOID, (c, Node.block(then_out, None, line),
                                         Node.block(else_out, None, line)), None, line))
        return [Node(Op.VAR, x.type, (), n, line) for n, x in zip(temps, a)]

    def construct(self, e: ast.Construct, out: list[Node]) -> list[Node]:
        line = e.span.line
        t = self.type_of(e)
        if t.is_scalar:
            v = self.expr(e.args[0], out)[0]
            target = Type(t.kind)
            if v.type == target:
                return [v]
            return [Node(Op.CAST, target, (v,), None, line)]
        lanes: list[Node] = []
        for a in e.args:
            lanes.extend(self.expr(a, out))
        if len(lanes) == 1:
            return [self.spill(lanes[0], out, line)] * t.lanes
        return lanes[: t.lanes]

    # ---- calls -------------------------------------------------------------------
    def call(self, e: ast.Call, out: list[Node], want_value: bool) -> list[Node]:
        line = e.span.line
        if e.name in self.c.functions:
            return self.inline(self.c.functions[e.name], e, out)
        if e.name == BARRIER:
            out.append(Node(Op.BARRIER, IR_VOID, (), None, line))
            return []
        if e.name in ATOMICS:
            return self.atomic(e, out, want_value)
        if e.name in MATH:
            return self.math(e, out)
        raise KeyError(e.name)  # pragma: no cover - the checker resolves every call

    def inline(self, info: FunctionInfo, e: ast.Call, out: list[Node]) -> list[Node]:
        line = e.span.line
        env: dict[Symbol, _Binding] = {}
        fname = info.node.name
        for sym, arg in zip(info.params, e.args):
            if sym.ty.kind in ("buffer", "image"):
                env[sym] = self.binding(self.c.refs[id(arg)])
                continue
            lanes = self.expr(arg, out)
            if not sym.assigned and all(v.op in _TRIVIAL for v in lanes):
                env[sym] = _Values(tuple(lanes))
                continue
            t = ir_type(sym.ty)
            names = tuple(self.local(f"{fname}_{sym.name}" + (f"_{'xyzw'[i]}" if len(lanes) > 1
                                                              else ""), t)
                          for i in range(len(lanes)))
            for name, v in zip(names, lanes):
                out.append(Node(Op.ASSIGN, IR_VOID, (v,), name, line))
            env[sym] = _Locals(names, t)
        ret_locals = None
        if info.ret.kind != "void":
            t = ir_type(info.ret)
            n = info.ret.lanes
            ret_locals = _Locals(tuple(self.local(f"{fname}_ret" + (f"_{'xyzw'[i]}" if n > 1
                                                                    else ""), t)
                                       for i in range(n)), t)
        label = self.label("ret")
        self.frames.append(_Frame(env, label, ret_locals))
        body: list[Node] = []
        self.stmts(info.node.body.stmts, body)
        self.frames.pop()
        if body and body[-1].op is Op.BREAK and body[-1].arg == label:
            body.pop()  # a return at the very end needs no jump
            self.break_uses[label] -= 1
        if self.break_uses.get(label, 0) > 0:
            out.append(Node.block(body, label, line))
        else:
            out.extend(body)
        if ret_locals is None:
            return []
        return [Node(Op.VAR, ret_locals.type, (), n, line) for n in ret_locals.names]

    def atomic(self, e: ast.Call, out: list[Node], want_value: bool) -> list[Node]:
        line = e.span.line
        place = self.place(e.args[0], out)
        values = [self.expr(a, out)[0] for a in e.args[1:]]
        result = None
        t = place.type
        if want_value:
            result = self.local("_old", t)
        kind = ATOMICS[e.name]
        out.append(Node(Op.ATOMIC, IR_VOID, (*place.indices, *values), (kind, place.name, result),
                        line))
        return [Node(Op.VAR, t, (), result, line)] if result else []

    def math(self, e: ast.Call, out: list[Node]) -> list[Node]:
        line = e.span.line
        name = e.name
        args = [self.expr(a, out) for a in e.args]
        # The generic type: the widest argument (vectors decide the lane count).
        n = max(len(a) for a in args)
        comp = ir_type(max((self.type_of(a) for a in e.args), key=lambda t: t.lanes))

        def lanes_of(a: list[Node]) -> list[Node]:
            return a if len(a) == n else [self.spill(a[0], out, line)] * n

        def k(value: float) -> Node:
            return Node(Op.CONST, comp, (), value if comp.is_float else int(value), line)

        def op2(op: Op, a: Node, b: Node) -> Node:
            return Node(op, comp, (a, b), None, line)

        def each(fn: Callable[..., Node], *arrays: list[Node]) -> list[Node]:
            return [fn(*xs) for xs in zip(*arrays)]

        if name in _UNARY_BUILTINS and len(args) == 1:
            op = _UNARY_BUILTINS[name]
            return [Node(op, v.type, (v,), None, line) for v in args[0]]
        if name == "atan":
            if len(args) == 1:
                return [Node(Op.ATAN, v.type, (v,), None, line) for v in args[0]]
            return each(lambda y, x: op2(Op.ATAN2, y, x), lanes_of(args[0]), lanes_of(args[1]))
        if name in _BINARY_BUILTINS:
            op = _BINARY_BUILTINS[name]
            return each(lambda a, b: op2(op, a, b), lanes_of(args[0]), lanes_of(args[1]))
        if name == "clamp":
            return each(lambda x, lo, hi: op2(Op.MIN, op2(Op.MAX, x, lo), hi),
                        *(lanes_of(a) for a in args))
        if name == "fract":
            xs = self.spill_all(args[0], out, line)
            return [op2(Op.SUB, x, Node(Op.FLOOR, comp, (x,), None, line)) for x in xs]
        if name == "mod":
            xs = self.spill_all(lanes_of(args[0]), out, line)
            ys = self.spill_all(lanes_of(args[1]), out, line)
            return [op2(Op.SUB, x, op2(Op.MUL, y, Node(Op.FLOOR, comp, (op2(Op.DIV, x, y),), None,
                                                       line)))
                    for x, y in zip(xs, ys)]
        if name == "mix":
            a_s = self.spill_all(lanes_of(args[0]), out, line)
            return [op2(Op.ADD, a, op2(Op.MUL, op2(Op.SUB, b, a), t))
                    for a, b, t in zip(a_s, lanes_of(args[1]), lanes_of(args[2]))]
        if name == "step":
            return [Node(Op.SELECT, comp, (Node(Op.LT, IR_BOOL, (x, edge), None, line), k(0.0),
                                           k(1.0)), None, line)
                    for edge, x in zip(lanes_of(args[0]), lanes_of(args[1]))]
        if name == "smoothstep":
            e0s = self.spill_all(lanes_of(args[0]), out, line)
            e1s = lanes_of(args[1])
            result = []
            for e0, e1, x in zip(e0s, e1s, lanes_of(args[2])):
                t = op2(Op.DIV, op2(Op.SUB, x, e0), op2(Op.SUB, e1, e0))
                t = self.spill(op2(Op.MIN, op2(Op.MAX, t, k(0.0)), k(1.0)), out, line)
                result.append(op2(Op.MUL, op2(Op.MUL, t, t), op2(Op.SUB, k(3.0),
                                                                  op2(Op.MUL, k(2.0), t))))
            return result
        if name in ("dot", "length", "distance", "normalize"):
            if name == "distance":
                vs = [op2(Op.SUB, a, b) for a, b in zip(args[0], args[1])]
            else:
                vs = args[0]
            if name == "dot":
                products = [op2(Op.MUL, a, b) for a, b in zip(args[0], args[1])]
                return [_sum(products, comp, line)]
            if len(vs) == 1 and name != "normalize":
                return [Node(Op.ABS, comp, (vs[0],), None, line)]
            if len(vs) == 1:
                return [Node(Op.SIGN, comp, (vs[0],), None, line)]
            vs = self.spill_all(vs, out, line)
            squares = _sum([op2(Op.MUL, v, v) for v in vs], comp, line)
            if name == "normalize":
                inv = self.spill(Node(Op.RSQRT, comp, (squares,), None, line), out, line)
                return [op2(Op.MUL, v, inv) for v in vs]
            return [Node(Op.SQRT, comp, (squares,), None, line)]
        if name == "cross":
            a = self.spill_all(args[0], out, line)
            b = self.spill_all(args[1], out, line)

            def term(i: int, j: int) -> Node:
                return op2(Op.SUB, op2(Op.MUL, a[i], b[j]), op2(Op.MUL, a[j], b[i]))
            return [term(1, 2), term(2, 0), term(0, 1)]
        raise KeyError(name)  # pragma: no cover


def _sum(nodes: list[Node], t: Type, line: int) -> Node:
    total = nodes[0]
    for n in nodes[1:]:
        total = Node(Op.ADD, t, (total, n), None, line)
    return total


def _select(place: _Place, picked: tuple[int, ...]) -> _Place:
    if place.kind == "locals":
        return attrs.evolve(place, names=tuple(place.names[i] for i in picked))
    return attrs.evolve(place, lanes=tuple(place.lanes[i] for i in picked))


def _swizzle_lanes(name: str) -> tuple[int, ...]:
    for letters in ("xyzw", "rgba", "stpq"):
        if all(c in letters for c in name):
            return tuple(letters.index(c) for c in name)
    raise KeyError(name)  # pragma: no cover - the checker validated it


def _reads(node: Node) -> set[str]:
    """Names of locals and memory a node reads."""
    out: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n.op is Op.VAR or n.op is Op.ALOAD:
            out.add(n.arg)
        elif n.op in (Op.LOAD, Op.ILOAD):
            out.add(n.arg[0])
        stack.extend(n.args)
    return out


def _flatten(init: ast.Expr | ast.InitList) -> list[ast.Expr]:
    if isinstance(init, ast.InitList):
        out: list[ast.Expr] = []
        for item in init.items:
            out.extend(_flatten(item))
        return out
    return [init]


def _unflatten(flat: int, shape: tuple[int, ...]) -> list[int]:
    idx = []
    for size in reversed(shape):
        idx.append(flat % size)
        flat //= size
    return idx[::-1]


def _measure(node: Node) -> tuple[int, int]:
    """(node count, depth) of an IR tree, iteratively."""
    count, depth = 0, 0
    stack = [(node, 1)]
    while stack:
        n, d = stack.pop()
        count += 1
        depth = max(depth, d)
        stack.extend((a, d + 1) for a in n.args)
    return count, depth


def lower(checked: CheckedProgram) -> Module:
    """Lower a checked program (without errors) into a verified IR module."""
    kernels = []
    path = checked.program.path
    for info in checked.kernels:
        k = info.node
        span = SourceSpan(path, k.name_span.line, k.name_span.col, k.name_span.end_col)
        try:
            kernel = _KernelLowering(checked, info).lower()
        except _TooBig:
            raise SourceError([Diagnostic(span, f"kernel '{k.name}' is too large once its "
                                                "functions are inlined",
                                          "call fewer functions, or call them in a loop")],
                              checked.text) from None
        count, depth = _measure(kernel.body)
        if count > MAX_NODES or depth > MAX_DEPTH:
            raise SourceError([Diagnostic(span, f"kernel '{k.name}' is too large or nests too "
                                                "deeply once its functions are inlined",
                                          "split it into simpler statements")], checked.text)
        kernels.append(kernel)
    module = Module(tuple(kernels), source=path)
    verify_module(module, path)
    return module
