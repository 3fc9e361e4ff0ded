"""Loops run across work items in SIMD lanes.

LLVM vectorises the loop over a group's work items when the kernel's own loops inside it
have trip counts it knows (the tiled matmul's ``k`` loop, a blur's taps).  A loop whose trip
count differs per item -- an escape-time loop, an iteration to convergence -- stops it: each
item then runs its loop alone, one scalar dependency chain at a time (Mandelbrot's is a
multiply, a subtract and an add per iteration, ~10 cycles of latency for 10 instructions).

Such a loop runs here as whole-function vectorisation does it (ISPC, Intel's OpenCL CPU
runtime): :data:`LANES` consecutive work items of a row, one per vector lane, each local a
vector, with a mask of the lanes still looping.  The loop goes round while any lane is in it;
a lane's ``break`` clears its bit; an ``if`` runs both arms under complementary masks; an
assignment keeps the old value in lanes outside the mask.  The region is cut around the loop:
the statements before it run per item as before and leave the locals the loop (or what
follows) reads in per-row arrays, the loop runs lane-wise over the row, and the statements
after it run per item again from those arrays.

Only loops that need nothing else qualify (:func:`vector_loop`): statements that assign
scalar locals, ``if``, ``break`` and ``continue`` (not in a for loop's step); expressions of
arithmetic, comparisons, ``!``, casts (between ``i32`` and ``u32``, to ``f32``, from
``bool``), the lazy operators, locals, parameters and group values -- no memory access, no
integer division but by a constant no lane traps on, no ``return``, no inner loop.  Short
loops with constant trip counts are left to LLVM.  The code generator also keeps a loop per
item when the statements around it share a private array or both use atomics, and in a copy
of the region where a check before it could fail, or one after it while those before it
write memory or touch memory not proven in bounds (see ``Codegen._lane_split`` and
``_cannot_fail``).  The same cut, without a loop, splits a region before a scatter
(``Codegen._scatter_at``).  The results are those of the per-item code bit for bit: the
same IEEE operations, lane by lane.  Work is counted as interp counts it: each operation
once per lane whose mask is set where it is evaluated (``&&``, ``||`` and ``?:`` count their
operands only in the lanes that evaluate them).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from llvmlite import ir

from xv_core.ir import COMPARE, Node, Op
from xv_cpu.jit.analysis import walk

#: Work items per vector: 16 x 32 bits, two AVX2 registers (one AVX-512 register).  Two
#: registers' worth keeps two independent dependency chains in flight: Mandelbrot's escape
#: loop on one thread took 50 ms with 8 lanes, 42 with 16, 48 with 32 (medians of 7 in one
#: process; more lanes wait longer for their slowest item).
LANES = 16
#: Kinds of the locals a lane-wise loop carries, and of its expressions' values.
CARRIED = frozenset({"f32", "i32", "u32"})
KINDS = CARRIED | {"bool"}
_FLOAT_UNARY = {Op.NEG: None, Op.ABS: "llvm.fabs", Op.FLOOR: "llvm.floor",
                Op.CEIL: "llvm.ceil", Op.TRUNC: "llvm.trunc", Op.ROUND: "llvm.round",
                Op.SQRT: "llvm.sqrt", Op.EXP: "llvm.exp", Op.EXP2: "llvm.exp2",
                Op.LOG: "llvm.log", Op.LOG2: "llvm.log2", Op.SIN: "llvm.sin",
                Op.COS: "llvm.cos"}
_FLOAT_BINARY = {Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.MIN, Op.MAX}
_INT_BINARY = {Op.ADD, Op.SUB, Op.MUL, Op.MIN, Op.MAX, Op.BITAND, Op.BITOR, Op.BITXOR,
               Op.SHL, Op.SHR}
_INT_UNARY = {Op.NEG, Op.BITNOT, Op.ABS}
_BOOL_BINARY = {Op.BITAND, Op.BITOR, Op.BITXOR}
_GROUP_SPECIALS = ("group_id.", "group_size.", "num_groups.")
_I1, _I8, _I32, _I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
_F32 = ir.FloatType()
_MASK = ir.IntType(LANES)  # a mask's lanes as the bits of one integer
_ELEMENT = {"bool": _I1, "i32": _I32, "u32": _I32, "f32": _F32}


def vector_loop(stmts: list[Node], kind_of: Callable[[str], str | None],
                per_item: Collection[str], readable: Collection[str],
                uniform: Collection[str],
                short: Callable[[Node, Node | None], bool]) -> int | None:
    """The index in ``stmts`` of the first loop that can run lane-wise, or None.

    ``kind_of(name)``: the scalar kind of a parameter or local (None for anything else);
    ``per_item``: the locals a work item keeps for itself (the loop may assign those);
    ``readable``: per-item values the loop may also read (locals recomputed from ids);
    ``uniform``: names the loop may read as one value for every lane (parameters, group
    values); ``short(loop, before)``: a loop with a small constant trip count (left to
    LLVM)."""
    before = None
    for i, s in enumerate(stmts):
        if (s.op is Op.LOOP and not short(s, before)
                and _loop_ok(s, kind_of, per_item, readable, uniform)):
            return i
        before = s
    return None


def _loop_ok(loop: Node, kind_of: Callable[[str], str | None], per_item: Collection[str],
             readable: Collection[str], uniform: Collection[str]) -> bool:
    cond, body, step = loop.args

    def expr(n: Node) -> bool:
        if n.type.kind not in KINDS:
            return False
        op = n.op
        if op is Op.CONST or op in (Op.LENGTH, Op.WIDTH, Op.HEIGHT):
            return True
        if op is Op.VAR:
            if n.arg in uniform:
                return True
            return (n.arg in per_item or n.arg in readable) and kind_of(n.arg) in CARRIED
        if op is Op.SPECIAL:
            return str(n.arg).startswith(_GROUP_SPECIALS)
        if not all(expr(a) for a in n.args):
            return False
        src = n.args[0].type.kind if n.args else None
        if op in (Op.LAND, Op.LOR, Op.SELECT, Op.NOT) or op in COMPARE:
            return True
        if op is Op.CAST:
            return src == n.type.kind or {src, n.type.kind} == {"i32", "u32"} or (
                n.type.kind == "f32" and src in ("i32", "u32", "bool")) or (
                n.type.kind in ("i32", "u32") and src == "bool")
        if n.type.kind == "f32":
            return op in _FLOAT_UNARY or op in _FLOAT_BINARY
        if n.type.kind in ("i32", "u32"):
            return op in _INT_BINARY or op in _INT_UNARY or (
                op in (Op.DIV, Op.MOD) and _safe_divisor(n.args[1]))
        return op in _BOOL_BINARY

    def stmt(n: Node) -> bool:
        if n.op is Op.BLOCK:
            return n.arg is None and all(stmt(s) for s in n.args)
        if n.op is Op.ASSIGN:
            return n.arg in per_item and kind_of(n.arg) in CARRIED and expr(n.args[0])
        if n.op is Op.IF:
            return expr(n.args[0]) and stmt(n.args[1]) and stmt(n.args[2])
        return n.op in (Op.BREAK, Op.CONTINUE) and n.arg == loop.arg

    # (A continue in the step -- which .xvk never writes, an .xvir file may -- is left out.)
    return (expr(cond) and stmt(body) and stmt(step)
            and not any(n.op is Op.CONTINUE for n in walk(step)))


def _safe_divisor(n: Node) -> bool:
    """An integer divisor no lane can trap on: a constant other than 0 (and -1 in i32,
    whose INT_MIN / -1 traps on x86)."""
    if n.op is not Op.CONST or isinstance(n.arg, bool):
        return False
    v = int(n.arg) & 0xFFFFFFFF
    return v != 0 and (n.type.kind == "u32" or v != 0xFFFFFFFF)


def carried(loop: Node | None, suffix: list[Node], per_item: Collection[str],
            remat: Collection[str]) -> tuple[list[str], list[str], list[str]]:
    """The locals a lane-wise ``loop`` reads or assigns (its lanes' values), those of them it
    assigns, and the locals the statements after it read, each sorted; locals recomputed
    from ids (``remat``) are among the first when the loop reads them, never the last.
    (No loop: a region split before a scatter, which carries nothing across.)"""
    nodes = list(walk(loop)) if loop is not None else []
    used = {n.arg for n in nodes if n.op in (Op.VAR, Op.ASSIGN)}
    lanes = sorted(n for n in used if n in per_item or n in remat)
    assigned = sorted({n.arg for n in nodes if n.op is Op.ASSIGN})
    after = sorted({n.arg for s in suffix for n in walk(s) if n.op is Op.VAR}
                   & set(per_item) - set(remat))
    return lanes, assigned, after


class LaneLoop:
    """Emits one lane-wise loop for :data:`LANES` items of a row at a time (see the module
    docstring); ``cg`` is the :class:`~xv_cpu.jit.codegen.Codegen` emitting the kernel,
    whose helpers build the operations and whose counters take the work."""

    def __init__(self, cg: Any, loop: Node, lanes: list[str], assigned: list[str],
                 after: list[str], arrays: dict[str, ir.Value], alive: ir.Value):
        self.cg = cg
        self.loop = loop
        self.lanes = lanes
        self.stored = [n for n in assigned if n in after]  # what the loop leaves for later
        self.dead_after = set(assigned) - set(after)
        self.arrays = arrays  # per local: its row array (element pointer)
        self.alive = alive  # per item of the row: 1 once it reached the loop (i8)
        self.vars: dict[str, ir.Value] = {}
        self.lmask: ir.Value | None = None
        # Lanes that took a ``continue`` in the body so far (they run the step), and whether
        # the step is being emitted (a ``continue`` there goes to the condition).
        self.continued: ir.Value | None = None
        self.in_step = False
        self._pop: dict[tuple[int, int], Any] = {}

    # -- vectors and masks ---------------------------------------------------------
    @staticmethod
    def vtype(kind: str) -> ir.VectorType:
        return ir.VectorType(_ELEMENT[kind], LANES)

    def splat(self, value: ir.Value) -> ir.Value:
        b = self.cg.b
        t = ir.VectorType(value.type, LANES)
        one = b.insert_element(ir.Constant(t, ir.Undefined), value, ir.Constant(_I32, 0))
        return b.shuffle_vector(one, ir.Constant(t, ir.Undefined),
                                ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES))

    # Masks are kept as i32 lanes of all ones or zeros (what a vector compare gives): kept
    # as i1 lanes, LLVM packs them to 16 bits and back on every use.
    def wide(self, bits: ir.Value) -> ir.Value:
        """A mask from a vector of i1."""
        return self.cg.b.sext(bits, ir.VectorType(_I32, LANES))

    def bits(self, mask: ir.Value) -> ir.Value:
        return self.cg.b.icmp_signed("<", mask, ir.Constant(ir.VectorType(_I32, LANES),
                                                           [0] * LANES))

    def within(self, mask: ir.Value, bits: ir.Value, negate: bool = False) -> ir.Value:
        """The lanes of ``mask`` where ``bits`` is true (false when ``negate``)."""
        b = self.cg.b
        return b.and_(mask, self.wide(b.not_(bits) if negate else bits))

    def none(self) -> ir.Constant:
        return ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES)

    def any(self, mask: ir.Value) -> ir.Value:
        b = self.cg.b
        return b.icmp_unsigned("!=", b.bitcast(self.bits(mask), _MASK), ir.Constant(_MASK, 0))

    def count(self, n: int, mask: ir.Value) -> None:
        """Count ``n`` operations in every lane of ``mask``."""
        cg = self.cg
        if not cg.counting or n == 0:
            return
        b = cg.b
        key = (id(mask), id(b.block))
        lanes = self._pop.get(key)
        if lanes is None:
            ctpop = cg.intrinsic("llvm.ctpop", _MASK)
            lanes = b.zext(b.call(ctpop, [b.bitcast(self.bits(mask), _MASK)]), _I64)
            self._pop[key] = (lanes, mask)  # (the mask kept alive: its id stays its own)
        else:
            lanes = lanes[0]
        ptr = cg.counters[0]
        b.store(b.add(b.load(ptr), b.mul(lanes, ir.Constant(_I64, n))), ptr)

    def vector_intrinsic(self, name: str, t: ir.VectorType) -> ir.Function:
        cg = self.cg
        symbol = f"{name}.v{LANES}f32"
        fn = cg.module.globals.get(symbol)
        if fn is None:
            fn = ir.Function(cg.module, ir.FunctionType(t, [t]), symbol)
        return fn

    # -- the chunk -----------------------------------------------------------------
    def chunk(self, base: ir.Value, row_items: ir.Value) -> None:
        """Run the loop for items ``base .. base + LANES - 1`` of the row (i64), those of
        them below ``row_items`` (i64) that reached it."""
        cg = self.cg
        b = cg.b
        flags = ir.VectorType(_I8, LANES)
        alive = cg.tag(b.load(b.bitcast(b.gep(self.alive, [base]), flags.as_pointer()), align=1),
                       "lanes")
        index = b.add(self.splat(b.trunc(base, _I32)),
                      ir.Constant(ir.VectorType(_I32, LANES), list(range(LANES))))
        mask = self.wide(b.and_(b.icmp_unsigned("!=", alive, ir.Constant(flags, [0] * LANES)),
                                b.icmp_unsigned("<", index, self.splat(b.trunc(row_items, _I32)))))
        run, done = cg.new_block(), cg.new_block()
        b.cbranch(self.any(mask), run, done)
        b.position_at_end(run)
        for name in self.lanes:
            t = self.vtype(cg.decls[name].type.kind)
            with b.goto_block(cg.entry):
                slot = b.alloca(t)
            self.vars[name] = slot
            b.store(cg.tag(b.load(self._vptr(name, base, t), align=4), "lanes"), slot)
        with b.goto_block(cg.entry):
            self.lmask = b.alloca(ir.VectorType(_I32, LANES))
        b.store(mask, self.lmask)
        cond, body, step = self.loop.args
        head, inside, exit_ = cg.new_block(), cg.new_block(), cg.new_block()
        b.branch(head)
        b.position_at_end(head)
        self._pop = {}
        live = b.load(self.lmask)
        looping = self.within(live, self.expr(cond, live))
        b.store(looping, self.lmask)
        b.cbranch(self.any(looping), inside, exit_)
        b.position_at_end(inside)
        self._pop = {}
        self.continued = None
        finished = self.block(body.args, looping, True)
        if self.continued is not None:  # lanes that continued run the step too
            finished = b.or_(finished, self.continued)
        self.continued = None
        self.in_step = True
        self.block(step.args, finished, True)
        self.in_step = False
        b.branch(head)
        b.position_at_end(exit_)
        for name in self.stored:
            t = self.vtype(cg.decls[name].type.kind)
            cg.tag(b.store(b.load(self.vars[name]), self._vptr(name, base, t), align=4),
                   "lanes")
        b.branch(done)
        b.position_at_end(done)
        self._pop = {}

    def _vptr(self, name: str, base: ir.Value, t: ir.VectorType) -> ir.Value:
        b = self.cg.b
        return b.bitcast(b.gep(self.arrays[name], [base]), t.as_pointer())

    # -- statements: each returns the lanes still running after it -------------------
    def block(self, stmts: list[Node], mask: ir.Value, top: bool = False) -> ir.Value:
        for s in stmts:
            mask = self.stmt(s, mask, top)
        return mask

    def stmt(self, node: Node, mask: ir.Value, top: bool = False) -> ir.Value:
        """Emit ``node`` for the lanes of ``mask``; ``top``: it stands in the loop's body or
        step, not under an ``if`` of it (the lanes outside the mask have left the loop)."""
        cg = self.cg
        b = cg.b
        outer, cg.line = cg.line, node.line or cg.line
        try:
            if node.op is Op.BLOCK:
                return self.block(node.args, mask, top)
            if node.op is Op.ASSIGN:
                value = self.expr(node.args[0], mask)
                slot = self.vars[node.arg]
                if not (top and self.continued is None and node.arg in self.dead_after):
                    # (a local not read after the loop needs no old value in the lanes that
                    # have left it: nothing reads it there again)
                    value = b.select(self.bits(mask), value, b.load(slot))
                b.store(value, slot)
                return mask
            if node.op is Op.IF:
                c = self.expr(node.args[0], mask)
                then = self.block(node.args[1].args, self.within(mask, c))
                other = self.block(node.args[2].args, self.within(mask, c, negate=True))
                return b.or_(then, other)
            if node.op is Op.CONTINUE:
                # Out of the body to the step (or out of the step to the condition): the
                # lanes stay in the loop, and skip what follows.
                if not self.in_step:
                    self.continued = mask if self.continued is None else b.or_(
                        self.continued, mask)
                return self.none()
            assert node.op is Op.BREAK  # vector_loop admits nothing else
            b.store(b.and_(b.load(self.lmask), b.not_(mask)), self.lmask)
            return self.none()
        finally:
            cg.line = outer

    # -- expressions -------------------------------------------------------------
    def expr(self, node: Node, mask: ir.Value) -> ir.Value:
        """``node``'s value in every lane; its work counted in the lanes of ``mask``."""
        cg = self.cg
        b = cg.b
        op = node.op
        kind = node.type.kind
        if op is Op.CONST:
            return ir.Constant(self.vtype(kind), [cg.constant(node.arg, kind).constant] * LANES)
        if op is Op.VAR:
            slot = self.vars.get(node.arg)
            if slot is not None:
                return b.load(slot)
            return self.splat(cg.expr(node))  # a parameter or a group value
        if op in (Op.SPECIAL, Op.LENGTH, Op.WIDTH, Op.HEIGHT):
            return self.splat(cg.expr(node))
        if op is Op.LAND or op is Op.LOR:
            x = self.expr(node.args[0], mask)
            self.count(1, mask)
            if op is Op.LAND:
                return b.and_(x, self.expr(node.args[1], self.within(mask, x)))
            return b.or_(x, self.expr(node.args[1], self.within(mask, x, negate=True)))
        if op is Op.SELECT:
            c = self.expr(node.args[0], mask)
            self.count(1, mask)
            x = self.expr(node.args[1], self.within(mask, c))
            y = self.expr(node.args[2], self.within(mask, c, negate=True))
            return b.select(c, x, y)
        args = [self.expr(a, mask) for a in node.args]
        self.count(1, mask)
        src = node.args[0].type.kind
        if op is Op.NOT:
            return b.not_(args[0])
        if op is Op.CAST:
            if src == kind or {src, kind} == {"i32", "u32"}:
                return args[0]
            if kind == "f32":
                to = self.vtype("f32")
                return b.sitofp(args[0], to) if src == "i32" else b.uitofp(args[0], to)
            return b.zext(args[0], self.vtype(kind))  # bool -> i32/u32
        if op in COMPARE:
            return cg.compare(op, args[0], args[1], src)
        t = self.vtype(kind)
        if kind == "f32":
            if op is Op.NEG:
                return b.fneg(args[0])
            if op in _FLOAT_UNARY:
                return b.call(self.vector_intrinsic(_FLOAT_UNARY[op], t), args)
            return cg.binary(op, args[0], args[1], kind, node)
        zero = ir.Constant(t, [0] * LANES)
        if op is Op.NEG:
            return b.sub(zero, args[0])
        if op is Op.BITNOT:
            return b.xor(args[0], ir.Constant(t, [-1] * LANES))
        if op is Op.ABS:
            if kind == "u32":
                return args[0]
            return b.select(b.icmp_signed("<", args[0], zero), b.sub(zero, args[0]), args[0])
        if op in (Op.SHL, Op.SHR):
            amount = b.and_(args[1], ir.Constant(t, [31] * LANES))
            if op is Op.SHL:
                return b.shl(args[0], amount)
            return b.ashr(args[0], amount) if kind == "i32" else b.lshr(args[0], amount)
        if op in (Op.DIV, Op.MOD):  # by a constant no lane traps on (_safe_divisor)
            if kind == "u32":
                return b.udiv(*args) if op is Op.DIV else b.urem(*args)
            return b.sdiv(*args) if op is Op.DIV else b.srem(*args)
        return cg.binary(op, args[0], args[1], kind, node)




class LaneRegion:
    """A region cut around a lane-wise loop (see the module docstring): ``prefix`` runs per
    item and leaves what the loop and ``suffix`` read in the row arrays (:meth:`unreached`
    and :meth:`reached` around it), :meth:`row` runs the loop over the row, ``suffix`` runs
    per item from the arrays (:meth:`skip_unreached`, :meth:`reload`).  Without a ``loop``
    (a region split before a scatter) nothing runs between the two."""

    def __init__(self, cg: Any, prefix: list[Node], loop: Node | None, suffix: list[Node],
                 arrays: dict[str, ir.Value], alive: ir.Value, lanes: list[str],
                 assigned: list[str], after: list[str]):
        self.cg = cg
        self.prefix, self.suffix = prefix, suffix
        self.arrays = arrays
        self.alive = alive
        self.spilled = sorted(set(lanes) | set(after))
        self.after = after
        self.loop = (LaneLoop(cg, loop, lanes, assigned, after, arrays, alive)
                     if loop is not None else None)

    def unreached(self, lx: ir.Value, go: ir.Block, nxt: ir.Block) -> None:
        b = self.cg.b
        self.cg.tag(b.store(ir.Constant(_I8, 0), b.gep(self.alive, [lx])), "lanes")
        b.branch(go)

    def reached(self, lx: ir.Value) -> None:
        cg = self.cg
        b = cg.b
        for name in self.spilled:
            kind = cg.decls[name].type.kind
            remat = cg.plan.remat.get(name)
            if remat is not None:  # recomputed from ids: evaluated here, counted nowhere
                saved, cg.counting = cg.counting, False
                value = cg.expr(remat)
                cg.counting = saved
            else:
                value = b.load(cg.slots[name])
            cg.tag(b.store(cg.to_memory(value, kind), b.gep(self.arrays[name], [lx])), "lanes")
        cg.tag(b.store(ir.Constant(_I8, 1), b.gep(self.alive, [lx])), "lanes")

    def row(self, items: int | ir.Value) -> None:
        loop = self.loop
        if loop is None:
            return
        cg = self.cg
        b = cg.b
        n = ir.Constant(_I64, items) if isinstance(items, int) else items
        chunks = b.udiv(b.add(n, ir.Constant(_I64, LANES - 1)), ir.Constant(_I64, LANES))
        cg.counted_loop(chunks, lambda c: loop.chunk(
            b.mul(c, ir.Constant(_I64, LANES)), n))

    def skip_unreached(self, lx: ir.Value, go: ir.Block, nxt: ir.Block) -> None:
        b = self.cg.b
        flag = self.cg.tag(b.load(b.gep(self.alive, [lx])), "lanes")
        b.cbranch(b.icmp_unsigned("!=", flag, ir.Constant(_I8, 0)), go, nxt)

    def reload(self, lx: ir.Value) -> None:
        cg = self.cg
        b = cg.b
        for name in self.after:
            value = cg.tag(b.load(b.gep(self.arrays[name], [lx])), "lanes")
            b.store(cg.from_memory(value, cg.decls[name].type.kind), cg.slots[name])


__all__ = ["LANES", "LaneLoop", "LaneRegion", "carried", "vector_loop"]
