"""Barriers under control flow that differs between the work items of a group.

Every work item of a workgroup that has not returned must reach each
``barrier()``.  This pass rejects, at compile time, a barrier that sits
under control flow that provably depends on which work item runs it:

* a value *varies* inside a group if it depends on ``global_id`` or
  ``local_id``, on an atomic's result, on a private array or variable
  written with a varying value or under varying control; ``group_id``,
  ``group_size``, ``num_groups``, kernel parameters, constants, sizes and
  memory read at a uniform index do not vary;
* control is *divergent* inside an ``if``/``?:``/``&&``/``||`` whose
  condition varies, in a loop whose condition varies or which a work item
  may leave early (``break`` under divergent control), and after a
  ``continue`` or a function's ``return`` taken under divergent control;
* a kernel's own ``return`` does not make what follows divergent: work items
  that returned are excused from later barriers (the IR's rule).

The rules are syntactic, so a variable assigned the same value on both sides
of a varying ``if`` still counts as varying (move such an assignment out of
the ``if``).  Divergence the rules cannot see (a condition on data in shared
memory, say) is caught at run time by the backend.
"""

from __future__ import annotations

import attrs

from xv_core.errors import SourceSpan
from xv_dsl import ast
from xv_dsl.builtins import ATOMICS, BARRIER, UNIFORM_SPECIALS
from xv_dsl.checker import ARRAY, PARAM, SPECIAL, CheckedProgram, FunctionInfo, Symbol
from xv_dsl.diagnostics import Reporter

#: Why control is divergent: the span of the varying condition (None: uniform).
Div = SourceSpan | None
#: Statements and expressions visited before the analysis gives up (nested loops are
#: analysed to a fixed point, which a hostile source could make expensive); what it
#: could not prove is then left to the backend's run-time check.
MAX_WORK = 200_000


class _GiveUp(Exception):
    pass


@attrs.define
class _Frame:
    varying: set[Symbol]
    in_function: bool
    loop_depth: int = 0
    exits: list[int] = attrs.Factory(list)  # target depth of each break/continue/return seen
    ret_varying: bool = False
    loop_breaks: dict[int, Div] = attrs.Factory(dict)


class _Analysis:
    def __init__(self, checked: CheckedProgram, reporter: Reporter):
        self.c = checked
        self.r = reporter
        self.frames: list[_Frame] = []
        self.memo: dict[tuple[str, tuple[bool, ...], bool], bool] = {}
        self.work = 0

    def tick(self) -> None:
        self.work += 1
        if self.work > MAX_WORK:
            raise _GiveUp

    @property
    def f(self) -> _Frame:
        return self.frames[-1]

    # ---- expressions -----------------------------------------------------------
    def expr(self, e: object, div: Div) -> bool:
        """Whether ``e`` varies within a group; analyses calls made under ``div``."""
        self.tick()
        if id(e) in self.c.consts:
            return False
        if isinstance(e, ast.Name):
            sym = self.c.refs.get(id(e))
            return sym is not None and sym in self.f.varying
        if isinstance(e, ast.Member):
            if isinstance(e.base, ast.Name):
                sym = self.c.refs.get(id(e.base))
                if sym is not None and sym.kind == SPECIAL:
                    return sym.name not in UNIFORM_SPECIALS
                if sym is not None and sym.kind == PARAM and sym.ty.kind in ("buffer", "image"):
                    return False  # .length, .width, .height
            return self.expr(e.base, div)
        if isinstance(e, ast.Index):
            varying = any([self.expr(i, div) for i in e.indices])
            root = e.base
            while isinstance(root, ast.Index):
                varying = any([self.expr(i, div) for i in root.indices]) or varying
                root = root.base
            sym = self.c.refs.get(id(root)) if isinstance(root, ast.Name) else None
            if sym is not None and sym.kind == ARRAY and sym.space == "local":
                return varying or sym in self.f.varying
            if sym is None:
                return self.expr(root, div) or varying
            return varying or sym in self.f.varying
        if isinstance(e, ast.Binary):
            left = self.expr(e.left, div)
            if e.op in ("&&", "||"):
                right = self.expr(e.right, div or (e.left.span if left else None))
            else:
                right = self.expr(e.right, div)
            return left or right
        if isinstance(e, ast.Unary):
            return self.expr(e.operand, div)
        if isinstance(e, ast.Ternary):
            cond = self.expr(e.cond, div)
            inner = div or (e.cond.span if cond else None)
            a = self.expr(e.then, inner)
            b = self.expr(e.otherwise, inner)
            return cond or a or b
        if isinstance(e, ast.Construct):
            return any([self.expr(a, div) for a in e.args])
        if isinstance(e, ast.Call):
            return self.call(e, div)
        return False

    def call(self, e: ast.Call, div: Div) -> bool:
        if e.name == BARRIER:
            if div is not None:
                self.r.error(e.span, "barrier() under control flow that can differ between the "
                                     "work items of a workgroup",
                             f"the condition at line {div.line}:{div.col} depends on the work item"
                             " (local_id, global_id or values derived from them); every work "
                             "item of a group must reach the same barriers")
            return False
        args = [self.expr(a, div) for a in e.args]
        if e.name in ATOMICS:
            return True
        info = self.c.functions.get(e.name)
        if info is None:  # a math builtin
            return any(args)
        return self.inline(info, e, args, div)

    def inline(self, info: FunctionInfo, e: ast.Call, args: list[bool], div: Div) -> bool:
        key = (info.node.name, tuple(args), div is None)
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = True  # pessimistic while analysing (recursion is refused earlier)
        varying = {p for p, v in zip(info.params, args) if v}
        frame = _Frame(varying, in_function=True)
        self.frames.append(frame)
        self.block(info.node.body.stmts, div)
        self.frames.pop()
        self.memo[key] = frame.ret_varying
        return frame.ret_varying

    # ---- statements -----------------------------------------------------------
    def block(self, stmts: tuple[ast.Stmt, ...], div: Div) -> Div:
        for s in stmts:
            div = self.stmt(s, div)
        return div

    def mark(self, target: ast.Expr, varying: bool, div: Div) -> None:
        """An assignment to ``target``: its variable varies if the value or control does."""
        root = target
        index_varying = False
        while isinstance(root, (ast.Index, ast.Member)):
            if isinstance(root, ast.Index):
                index_varying = any([self.expr(i, div) for i in root.indices]) or index_varying
            root = root.base
        sym = self.c.refs.get(id(root)) if isinstance(root, ast.Name) else None
        if sym is None:
            return
        if sym.kind == ARRAY and sym.space == "shared":
            return  # one copy per group: it holds whatever was written last
        if sym.kind == PARAM and sym.ty.kind in ("buffer", "image"):
            return
        if varying or index_varying or div is not None:
            self.f.varying.add(sym)

    def stmt(self, s: ast.Stmt, div: Div) -> Div:
        self.tick()
        f = self.f
        if isinstance(s, ast.Block):
            return self.block(s.stmts, div)
        if isinstance(s, ast.VarDecl):
            for d in s.declarators:
                sym = self.c.decls.get(id(d))
                if sym is None:
                    continue
                init = d.init
                items = _flatten(init) if init is not None else []
                varying = any([self.expr(i, div) for i in items])
                if sym.space != "shared" and (varying or div is not None):
                    f.varying.add(sym)
            return div
        if isinstance(s, ast.Assign):
            value = self.expr(s.value, div)
            if s.op != "=":
                value = value or self.expr(s.target, div)
            self.mark(s.target, value, div)
            return div
        if isinstance(s, ast.IncDec):
            self.mark(s.target, self.expr(s.target, div), div)
            return div
        if isinstance(s, ast.ExprStmt):
            self.expr(s.expr, div)
            return div
        if isinstance(s, ast.If):
            cond = self.expr(s.cond, div)
            inner = div or (s.cond.span if cond else None)
            before = len(f.exits)
            after_then = self.stmt(s.then, inner)
            after_else = self.stmt(s.otherwise, inner) if s.otherwise is not None else inner
            exited = any(t <= f.loop_depth for t in f.exits[before:])
            if exited and inner is not None:
                return div or inner
            if after_then is not None and after_then is not inner:
                return div or after_then
            if after_else is not None and after_else is not inner:
                return div or after_else
            return div
        if isinstance(s, (ast.While, ast.For)):
            if isinstance(s, ast.For) and s.init is not None:
                div = self.stmt(s.init, div)
            self.loop(s, div)
            return div
        if isinstance(s, (ast.Break, ast.Continue)):
            f.exits.append(f.loop_depth)
            if isinstance(s, ast.Break) and div is not None:
                f.loop_breaks.setdefault(f.loop_depth, div)
            return div
        if isinstance(s, ast.Return):
            if s.value is not None and self.expr(s.value, div):
                f.ret_varying = True
            if f.in_function:
                f.exits.append(0)
                if div is not None:
                    f.ret_varying = True
            return div
        return div

    def loop(self, s: ast.While | ast.For, div: Div) -> None:
        f = self.f
        f.loop_depth += 1
        depth = f.loop_depth
        # Iterate to a fixed point: values carried around the loop may start varying
        # only on a later pass, and a divergent break makes the whole loop divergent.
        for _ in range(len(self.c.decls) + len(self.c.refs) + 2):
            snapshot = (len(f.varying), f.loop_breaks.get(depth))
            cond = self.expr(s.cond, div) if s.cond is not None else False
            inner = div or (s.cond.span if cond and s.cond is not None else None)
            inner = inner or f.loop_breaks.get(depth)
            self.stmt(s.body, inner)
            if isinstance(s, ast.For) and s.step is not None:
                self.stmt(s.step, inner)
            if (len(f.varying), f.loop_breaks.get(depth)) == snapshot:
                break
        f.loop_breaks.pop(depth, None)
        f.exits[:] = [t for t in f.exits if t < depth]
        f.loop_depth -= 1


def _flatten(init: object) -> list[object]:
    if isinstance(init, ast.InitList):
        out: list[object] = []
        for item in init.items:
            out.extend(_flatten(item))
        return out
    return [init]


def check_barriers(checked: CheckedProgram, reporter: Reporter) -> None:
    """Report every barrier that divergent control flow guards (the checker ran cleanly)."""
    analysis = _Analysis(checked, reporter)
    for info in checked.kernels:
        analysis.frames = [_Frame(set(), in_function=False)]
        analysis.memo.clear()
        analysis.work = 0
        try:
            analysis.block(info.node.body.stmts, None)
        except _GiveUp:
            continue
