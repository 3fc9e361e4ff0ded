"""From verified IR to LLVM IR: one native function per kernel and specialisation.

The function runs a tile (a run of workgroups) and has the C signature::

    int32_t tile(int64_t *args, int64_t first_group, int64_t group_count,
                 int64_t *grid, uint8_t *scratch, int64_t *out)

``args`` holds, per kernel parameter in order, one slot for a scalar (its bits), two for
a buffer (address, elements) and three for an image (address, width, height).  ``grid``
is the launch's grid in groups, then a *stop word*: read before each workgroup (and each
span), when the host has made it non-zero the function returns 2 at once (an interrupted
dispatch; the work counters are then not written).  ``scratch`` is zeroed-on-demand
working memory of :attr:`KernelMeta.scratch_bytes` (shared arrays, values kept per work item across
barriers, large private arrays).  ``out`` receives the work counters (operations, bytes
read, bytes written) and, when the function returns 1, the failing *site* and its
values (see :class:`KernelMeta`).

Nothing from the IR is pasted as text: the module is built with ``llvmlite.ir``, every
name in it is generated (``%".12"``, ``@c0``), and constants are built from numbers the
verifier has checked (``ir.Constant`` prints floats as exact hexadecimal).

Lowering (see docs/jit.md): in ``single`` mode (no barrier) the body is one loop over the
work items of each group; in ``convergent`` mode the body is cut at barriers into regions,
each region a loop over the items, the statements with barriers inside run once per group
with conditions evaluated once per group, and locals that live across regions are kept in
per-item context arrays.  Work-item loops have the block size as constant trip counts, so
LLVM unrolls and vectorises the kernel's own inner loops inside them.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Collection
from typing import Any

import attrs
from llvmlite import ir

from xv_core.ir import (
    BINARY, COMPARE, CONSTANT, LOCAL, SHARED, UNARY, Decl, Kernel, Node, Op,
)
from xv_cpu.jit.analysis import Plan, Region, walk
from xv_cpu.jit.lanes import LANES, LaneRegion, carried, vector_loop

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
I128 = ir.IntType(128)
F32, F64 = ir.FloatType(), ir.DoubleType()
VALUE = {"bool": I1, "i32": I32, "u32": I32, "f32": F32, "f64": F64}
MEMORY = {"bool": I8, "i32": I32, "u32": I32, "f32": F32, "f64": F64, "vec4": F32}
SIZE = {"bool": 1, "i32": 4, "u32": 4, "f32": 4, "f64": 8, "vec4": 4}
FUNCTION = ir.FunctionType(I32, [I64.as_pointer(), I64, I64, I64.as_pointer(),
                                 I8.as_pointer(), I64.as_pointer()])
#: Private arrays up to this size live on the stack (where LLVM can keep them in registers).
STACK_ARRAY_BYTES = 16384
ALIGN = 64

# Slots of ``out``.
OUT_OPS, OUT_READ, OUT_WRITTEN, OUT_SITE, OUT_INDEX, OUT_GID = 0, 1, 2, 3, 4, 7
OUT_SLOTS = 10

_LIBM = {Op.TAN: "tan", Op.ASIN: "asin", Op.ACOS: "acos", Op.ATAN: "atan"}
_INTRINSIC = {Op.FLOOR: "llvm.floor", Op.CEIL: "llvm.ceil", Op.TRUNC: "llvm.trunc",
              Op.ROUND: "llvm.round", Op.SQRT: "llvm.sqrt", Op.EXP: "llvm.exp",
              Op.EXP2: "llvm.exp2", Op.LOG: "llvm.log", Op.LOG2: "llvm.log2",
              Op.SIN: "llvm.sin", Op.COS: "llvm.cos"}
_ICMP = {Op.EQ: "==", Op.NE: "!=", Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">="}
_ALU = UNARY | BINARY | COMPARE | {Op.CAST}
_ACCESSES = {Op.LOAD, Op.STORE, Op.ILOAD, Op.ISTORE, Op.ALOAD, Op.ASTORE, Op.ATOMIC}


@attrs.frozen
class Spec:
    """What a compiled function is specialised for, besides the kernel itself."""

    block: tuple[int, int, int]
    checked: bool = True
    private: tuple[str, ...] = ()  # buffers whose atomics run on a per-tile private copy


@attrs.frozen
class Site:
    """A place that can fail at run time.  ``kind``: ``oob`` or ``div``."""

    kind: str
    where: str
    name: str = ""  # the memory (oob) or "division"/"modulo" (div)
    access: str = ""  # read, write, atomic_add, ...
    dims: int = 1


@attrs.frozen
class KernelMeta:
    """What running the compiled function needs besides its address."""

    symbol: str
    scratch_bytes: int
    sites: tuple[Site, ...]


#: Marks the loop over the x of the work items.  LLVM unrolls small constant-trip loops
#: fully before it vectorises, and then vectorises the loop around (over y, with strided
#: accesses); kept rolled, the x loop itself is vectorised, with contiguous accesses,
#: around the kernel's own loops, which are unrolled (the tiled matmul's k loop).
_ROLLED = "xv.rolled"
#: An index that a clamp keeps in range whenever the memory is not empty.
_CLAMPED = "clamped"
KEEP_ROLLED = True
#: Vector iterations of the x loop LLVM keeps in flight at once (``llvm.loop.interleave``):
#: its cost model picks 1 for a loop of a group's 256 items, which leaves a loop that only
#: streams memory waiting on one load at a time (saxpy ran at 0.71x a plain numba loop on
#: one thread; with 4, 0.93x; the ALU chain 0.83x -> 1.15x of numba on two).
INTERLEAVE = 4
#: A *span* runs this many work items along x at most (several workgroups of one row of the
#: grid as one loop nest; see :meth:`Codegen._span_groups`).
SPAN_X_ITEMS = 4096
#: Iterations of a skeleton loop peeled at most, and copies of regions peeling may add to a
#: kernel (see :meth:`Codegen._peel_trips`).
PEEL_LIMIT = 16
PEEL_REGIONS = 32
#: Loops whose trip count differs per item run across work items in vector lanes
#: (:mod:`xv_cpu.jit.lanes`); False emits them per item (tests compare the two).
LANE_LOOPS = True
#: A region whose items compute an index, then scatter to it (a histogram's bin, then its
#: atomic add) runs as two item loops over the row: the computation, which LLVM vectorises,
#: then the scatter, per item in item order (see :meth:`Codegen._scatter_at`); False keeps
#: one item loop (tests compare the two).
SCATTER_SPLIT = True
#: Operations the statements before a scatter need for the split to pay: storing and
#: reloading the locals costs a little per item (an atomic add whose only work before it is
#: ``if (i >= n) return;`` ran 30% slower split; the histogram's bin, ~10 operations, 2.2x
#: faster, on one thread).
SCATTER_MIN_OPS = 4


def _loop_ids(text: str) -> str:
    """Turn the ``_ROLLED`` marker into LLVM loop metadata (a distinct, self-referencing
    node, which llvmlite.ir cannot build) that disables unrolling of the loop and asks for
    :data:`INTERLEAVE` interleaved vector iterations."""
    marker = f'!{{ !"{_ROLLED}" }}'
    lines = text.split("\n")
    numbers = [int(ln[1:ln.index(" ")]) for ln in lines
               if ln.startswith("!") and ln[1:2].isdigit() and " = " in ln]
    option = f"!{max(numbers, default=0) + 1}"
    interleave = f"!{max(numbers, default=0) + 2}"
    for k, line in enumerate(lines):
        name, sep, value = line.partition(" = ")
        if sep and value.strip() == marker and name[1:].isdigit():
            lines[k] = f"{name} = distinct !{{ {name}, {option}, {interleave} }}"
            lines.append(f'{option} = !{{ !"llvm.loop.unroll.disable" }}')
            lines.append(f'{interleave} = !{{ !"llvm.loop.interleave.count", i32 {INTERLEAVE} }}')
    return "\n".join(lines)


class _Item:
    """The work item whose code is being emitted."""

    def __init__(self, local: tuple[ir.Value, ir.Value, ir.Value], wi: ir.Value,
                 ret: ir.Block):
        self.local = local  # i32 local ids
        self.wi = wi  # i64 linear item within the group
        self.ret = ret  # where RETURN goes


class Codegen:
    def __init__(self, kernel: Kernel, plan: Plan, spec: Spec, symbol: str):
        self.kernel = kernel
        self.plan = plan
        self.spec = spec
        self.decls: dict[str, Decl] = {d.name: d for d in kernel.all_decls()}
        self.scalars = {p.name for p in kernel.params if p.type.is_scalar}
        self.file = kernel.source or f"<kernel {kernel.name}>"
        self.line = 0
        self.items = math.prod(spec.block)
        # The x extent of the item loops: the block's, or in a span (several groups along x
        # run as one loop nest, see _span_groups) n groups' worth, and n (i64 values).
        self.xext: int | ir.Value = spec.block[0]
        self.span_n: ir.Value | None = None
        self.module = ir.Module(name="xv")
        self.fn = ir.Function(self.module, FUNCTION, name=symbol)
        self.symbol = symbol
        self.sites: list[Site] = []
        self.item: _Item | None = None
        self.mult: ir.Value | None = None  # group level: counts multiply by live items
        self.proven: set[int] = set()  # accesses whose bounds a region's pre-check proved
        self.identity: set[int] = set()  # clamps proven to change nothing
        # Inside per-item loops that may run long, work is counted in 64 bits directly
        # (such loops are not vectorised across items, so the wide adds cost nothing more).
        self.wide = 0
        self.never: set[int] = set()  # `if (...) return;` proven not taken
        self.always: set[int] = set()  # `c ? a : b` whose c is proven true
        self._before: Node | None = None  # the statement before the one being emitted
        # The values assigned to each local (None for one that an atomic also writes).
        self._assigned: dict[str, list[Node] | None] = {}
        for n in walk(kernel.body):
            if n.op is Op.ASSIGN:
                got = self._assigned.setdefault(n.arg, [])
                if got is not None:
                    got.append(n.args[0])
            elif n.op is Op.ATOMIC and n.arg[2] is not None:
                self._assigned[n.arg[2]] = None
        self._counter_reads = self._find_counters(kernel)
        # Group values known as constants where the skeleton is being emitted (None: not
        # known), to peel skeleton loops whose trip count they fix (_peel_trips).
        self.known: dict[str, int | bool | None] = {}
        self.peeled: list[int | None] = []  # per skeleton loop emitted, the iterations peeled
        self.proven_selects = 0  # selects emitted in a fast version that takes their 1st arm
        self.lane_loops = 0  # loops emitted lane-wise (xv_cpu.jit.lanes), in every copy
        self.scatter_splits = 0  # item loops split before a scatter (_scatter_at), likewise
        self._lane_arrays: dict[int, tuple[dict[str, ir.Value], ir.Value]] = {}
        self.count_only: set[int] = set()  # the current region's (Region.count_only)
        self._loop_depth = 0  # skeleton loops around the code being emitted
        self._peel_budget = PEEL_REGIONS
        self.counting = True
        self._intrinsics: dict[tuple[str, ir.Type], ir.Function] = {}

    # ------------------------------------------------------------------------------
    # helpers
    # ------------------------------------------------------------------------------
    def new_block(self, name: str = "") -> ir.Block:
        return self.fn.append_basic_block(name)

    def dead(self) -> None:
        """After a terminator: continue emitting into a fresh (unreachable) block."""
        self.b.position_at_end(self.new_block())

    def terminated(self) -> bool:
        return self.b.block.is_terminated

    def intrinsic(self, name: str, t: ir.Type, args: int = 1) -> ir.Function:
        key = (name, t)
        fn = self._intrinsics.get(key)
        if fn is None:
            fn = self.module.declare_intrinsic(name, [t], ir.FunctionType(t, [t] * args))
            self._intrinsics[key] = fn
        return fn

    def libm(self, name: str, t: ir.Type, args: int = 1) -> ir.Function:
        sym = name + ("f" if t == F32 else "")
        key = (sym, t)
        fn = self._intrinsics.get(key)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(t, [t] * args), sym)
            self._intrinsics[key] = fn
        return fn

    def count(self, slot: int, n: int) -> None:
        """Count work: per work item into 32-bit counters (cheap in vectorised loops),
        which :meth:`flush` adds to the tile's 64-bit totals after each row of items and
        in every per-item loop that may run long; at group level straight into the totals,
        once per live item."""
        if not self.counting or n == 0:
            return
        if self.item is not None and not self.wide:
            ptr = self.item_counters[slot]
            self.b.store(self.b.add(self.b.load(ptr), ir.Constant(I32, n)), ptr)
            return
        ptr = self.counters[slot]
        amount: ir.Value = ir.Constant(I64, n)
        if self.mult is not None and self.item is None:
            amount = self.b.mul(amount, self.mult)
        self.b.store(self.b.add(self.b.load(ptr), amount), ptr)

    def flush(self) -> None:
        b = self.b
        for total, part in zip(self.counters, self.item_counters):
            b.store(b.add(b.load(total), b.zext(b.load(part), I64)), total)
            b.store(ir.Constant(I32, 0), part)

    @staticmethod
    def short_loop(node: Node, before: Node | None) -> bool:
        """A counted loop of at most 1024 iterations, counting those of the short loops
        inside it (``k = 0; while (k < 16) {...; k = k + 1}``; no other loops inside): its
        work fits the 32-bit counters."""
        return Codegen._trips(node, before) is not None

    @staticmethod
    def _trips(node: Node, before: Node | None) -> int | None:
        """The most iterations of a short loop and the short loops inside it, or None."""

        def small_const(n: Node) -> bool:
            return (n.op is Op.CONST and n.type.kind == "i32" and not isinstance(n.arg, bool)
                    and abs(int(n.arg)) <= 1024)

        cond, body, step = node.args
        if cond.op not in (Op.LT, Op.LE, Op.GT, Op.GE, Op.NE):
            return None
        var, bound = cond.args
        if var.op is not Op.VAR or not small_const(bound):
            return None
        if before is None or before.op is not Op.ASSIGN or before.arg != var.arg \
                or not small_const(before.args[0]):
            return None
        if len(step.args) != 1 or step.args[0].op is not Op.ASSIGN or step.args[0].arg != var.arg:
            return None
        inc = step.args[0].args[0]
        if not (inc.op in (Op.ADD, Op.SUB) and inc.args[0].op is Op.VAR
                and inc.args[0].arg == var.arg and small_const(inc.args[1])):
            return None
        # The counter moves towards its bound by a nonzero step each iteration, and only the
        # step moves it: otherwise the loop may run long (or forever).
        delta = int(inc.args[1].arg) * (1 if inc.op is Op.ADD else -1)
        if cond.op is Op.NE or delta == 0 or (delta > 0) != (cond.op in (Op.LT, Op.LE)):
            return None
        for n in walk(body):
            if (n.op is Op.ASSIGN and n.arg == var.arg) or (
                    n.op is Op.ATOMIC and n.arg[2] == var.arg):
                return None
        trips = abs(int(bound.arg) - int(before.args[0].arg)) + 1
        inner = 1
        for block in (n for n in walk(body) if n.op is Op.BLOCK):
            prev = None
            for s in block.args:
                if s.op is Op.LOOP:
                    t = Codegen._trips(s, prev)
                    if t is None:
                        return None
                    inner = max(inner, t)
                prev = s
        total = trips * inner
        return total if total <= 1024 else None

    def where(self, node: Node) -> str:
        line = node.line or self.line
        return f"{self.file}:{line}" if line else self.file

    def site(self, site: Site) -> int:
        self.sites.append(site)
        return len(self.sites) - 1

    def check(self, ok: ir.Value, site: int, values: list[ir.Value]) -> None:
        """Branch to a failure exit for ``site`` unless ``ok``; ``values`` (i32) go to out."""
        fail = self.new_block()
        cont = self.new_block()
        br = self.b.cbranch(ok, cont, fail)
        br.set_metadata("prof", self._unlikely_true())
        self.b.position_at_end(fail)
        out = self.fn.args[5]
        self.b.store(ir.Constant(I64, site), self.b.gep(out, [ir.Constant(I64, OUT_SITE)]))
        for k, v in enumerate(values):
            self.b.store(self.b.sext(v, I64), self.b.gep(out, [ir.Constant(I64, OUT_INDEX + k)]))
        for a in range(3):
            self.b.store(self.b.sext(self.global_id(a), I64),
                         self.b.gep(out, [ir.Constant(I64, OUT_GID + a)]))
        self.b.ret(ir.Constant(I32, 1))
        self.b.position_at_end(cont)

    def _unlikely_true(self) -> Any:
        # Weights are (taken, not taken) for the (true, false) successors: ok is likely.
        return self.module.add_metadata([ir.MetaDataString(self.module, "branch_weights"),
                                         ir.Constant(I32, 1 << 20), ir.Constant(I32, 1)])

    def counted_loop(self, n: int | ir.Value, body: Callable[[ir.Value], None],
                     at_least_once: bool = False, keep_rolled: bool = False) -> None:
        """for i in range(n): body(i)  (i64).  ``keep_rolled``: LLVM must not unroll the
        loop fully (see :data:`_ROLLED`)."""
        if isinstance(n, int):
            if n <= 0:
                return
            if n == 1:
                body(ir.Constant(I64, 0))
                return
            at_least_once = True
            n = ir.Constant(I64, n)
        pre = self.b.block
        head = self.new_block()
        latch = self.new_block()
        done = self.new_block()
        if at_least_once:
            self.b.branch(head)
        else:
            self.b.cbranch(self.b.icmp_signed(">", n, ir.Constant(I64, 0)), head, done)
        self.b.position_at_end(head)
        i = self.b.phi(I64)
        i.add_incoming(ir.Constant(I64, 0), pre)
        body(i)
        if not self.terminated():
            self.b.branch(latch)
        self.b.position_at_end(latch)
        nxt = self.b.add(i, ir.Constant(I64, 1))
        i.add_incoming(nxt, latch)
        br = self.b.cbranch(self.b.icmp_signed("<", nxt, n), head, done)
        if keep_rolled and KEEP_ROLLED:
            br.set_metadata("llvm.loop", self.module.add_metadata(
                [ir.MetaDataString(self.module, _ROLLED)]))
        self.b.position_at_end(done)

    # ------------------------------------------------------------------------------
    # the function
    # ------------------------------------------------------------------------------
    def generate(self) -> tuple[str, KernelMeta]:
        fn = self.fn
        args_p, first, count, grid_p, scratch, out = fn.args
        self.entry = fn.append_basic_block("entry")
        self.b = b = ir.IRBuilder(self.entry)
        self.counters = [b.alloca(I64) for _ in range(3)]
        for c in self.counters:
            b.store(ir.Constant(I64, 0), c)
        self.item_counters = [b.alloca(I32) for _ in range(3)]
        for c in self.item_counters:
            b.store(ir.Constant(I32, 0), c)
        self.slots: dict[str, ir.Value] = {}
        for d in self.kernel.decls:
            if d.space == LOCAL and d.type.is_scalar:
                self.slots[d.name] = b.alloca(VALUE[d.type.kind])
        self.ndone = b.alloca(I64)
        self.grid = [b.trunc(b.load(b.gep(grid_p, [ir.Constant(I64, a)])), I32) for a in range(3)]
        self.stop_word = b.gep(grid_p, [ir.Constant(I64, 3)])
        self._unpack(args_p)
        self._constants()
        self._layout(scratch)
        # The group loop.
        gx64 = b.load(b.gep(grid_p, [ir.Constant(I64, 0)]))
        gy64 = b.load(b.gep(grid_p, [ir.Constant(I64, 1)]))

        def group(g: ir.Value) -> None:
            lin = b.add(first, g)
            x = b.urem(lin, gx64)
            rest = b.udiv(lin, gx64)
            y = b.urem(rest, gy64)
            z = b.udiv(rest, gy64)
            self.group = [b.trunc(v, I32) for v in (x, y, z)]
            self._stop_point()
            self._group_start()
            if self.plan.mode == "single":
                self.region(Region(list(self.kernel.body.args)), single=True)
            else:
                self.skeleton(self.kernel.body)

        span = self._span_groups()
        if span > 1:
            self._span_loop(first, count, gx64, gy64, span)
        else:
            self.counted_loop(count, group)
        for k in range(3):
            b.store(b.load(self.counters[k]), b.gep(out, [ir.Constant(I64, k)]))
        b.ret(ir.Constant(I32, 0))
        meta = KernelMeta(self.symbol, self.scratch_bytes, tuple(self.sites))
        return _loop_ids(str(self.module)), meta

    def _stop_point(self) -> None:
        """Return 2 when the host has set the stop word (an interrupted dispatch): read with
        an atomic load, which LLVM keeps in the loop."""
        b = self.b
        word = b.load_atomic(self.stop_word, "monotonic", 8)
        go, stop = self.new_block(), self.new_block()
        br = b.cbranch(b.icmp_signed("==", word, ir.Constant(I64, 0)), go, stop)
        br.set_metadata("prof", self._unlikely_true())
        b.position_at_end(stop)
        b.ret(ir.Constant(I32, 2))
        b.position_at_end(go)

    def _span_groups(self) -> int:
        """How many workgroups of a row of the grid may run as one *span*, or 0.

        A kernel without barriers or shared arrays that never asks for ``local_id.x`` or
        ``group_id.x`` cannot tell consecutive groups of a row apart from one group n times
        as wide: its items are independent and see only global ids.  Such groups run as one
        loop nest whose x loop covers all n groups (one row of n * block.x items), with one
        test of the region's facts (bounds and the like) for the span instead of one per
        group: a memory-bound kernel (saxpy's 256-item groups) streams without stopping at
        every group, and a blur's rows vectorise over the span's width.  Capped so that an
        item row's work counts fit the 32-bit per-item counters (:meth:`_item_count_bound`)."""
        if self.plan.mode != "single" or any(d.space == SHARED for d in self.kernel.decls):
            return 0
        for n in walk(self.kernel.body):
            if n.op is Op.SPECIAL and n.arg in ("local_id.x", "group_id.x"):
                return 0
        body = list(self.kernel.body.args)
        _, by, bz = self.spec.block
        if by * bz > 1 and (not self._never_fails(body)
                            or any(n.op is Op.ATOMIC for n in walk(self.kernel.body))):
            # A span runs its items row by row across its groups, not group by group: a
            # failing item must not be found in another order than without spans, nor
            # atomics see the items in another order (the old values they return, the
            # rounding of float sums).
            return 0
        per_item = self._item_count_bound(body)
        row = min(SPAN_X_ITEMS, ((1 << 31) - 1) // max(1, per_item))
        return row // self.spec.block[0]

    def _never_fails(self, stmts: list[Node]) -> bool:
        """Whether the fast copy of a region of ``stmts`` has no check left that could fail:
        no integer division, and (when checked) every access among those proven once per
        group or span (:meth:`_provable`)."""
        proven = {id(n) for n, _ in self._provable(stmts)} if self.spec.checked else set()
        for s in stmts:
            for n in walk(s):
                if n.op in (Op.DIV, Op.MOD) and n.type.is_int:
                    return False
                if self.spec.checked and n.op in _ACCESSES and id(n) not in proven:
                    return False
        return True

    def _item_count_bound(self, stmts: list[Node]) -> int:
        """An upper bound on what one work item adds to a 32-bit counter before the row's
        flush: every node counted at most 16 (bytes; an access counts 8 at most) plus 1,
        times the iterations of the short loops around it; loops that may run long count
        in 64 bits (see :meth:`count`)."""
        total = 0
        before = None
        for s in stmts:
            if s.op is Op.LOOP:
                trips = self._trips(s, before)
                if trips is not None:
                    total += trips * 17 * sum(1 for _ in walk(s))
            elif s.op is Op.BLOCK:
                total += self._item_count_bound(list(s.args))
            elif s.op is Op.IF:
                total += (17 * sum(1 for _ in walk(s.args[0]))
                          + self._item_count_bound(list(s.args[1].args))
                          + self._item_count_bound(list(s.args[2].args)))
            else:
                total += 17 * sum(1 for _ in walk(s))
            before = s
        return total

    def _span_loop(self, first: ir.Value, count: ir.Value, gx: ir.Value, gy: ir.Value,
                   span: int) -> None:
        """The tile's groups as spans: runs of at most ``span`` consecutive groups of one row
        of the grid, each run as one group ``span_n`` times as wide (see _span_groups)."""
        b = self.b
        zero = ir.Constant(I64, 0)
        pre = b.block
        head, done = self.new_block(), self.new_block()
        b.cbranch(b.icmp_signed(">", count, zero), head, done)
        b.position_at_end(head)
        g = b.phi(I64)
        g.add_incoming(zero, pre)
        lin = b.add(first, g)
        x = b.urem(lin, gx)
        rest = b.udiv(lin, gx)
        y = b.urem(rest, gy)
        z = b.udiv(rest, gy)

        def smaller(p: ir.Value, q: ir.Value) -> ir.Value:
            return b.select(b.icmp_signed("<", p, q), p, q)

        one = ir.Constant(I64, 1)
        n = smaller(smaller(b.sub(count, g), b.sub(gx, x)), ir.Constant(I64, span))
        # The first and the last group of a row run alone: the items near the grid's edges
        # are those whose facts fail (a blur's clamps at the image border, a guard against
        # the data's end), and a span whose facts fail runs group by group.
        inner = b.sub(b.sub(gx, x), one)
        n = smaller(n, b.select(b.icmp_signed("<", inner, one), one, inner))
        n = b.select(b.icmp_unsigned("==", x, ir.Constant(I64, 0)), one, n)
        self.group = [b.trunc(v, I32) for v in (x, y, z)]
        self.span_n = n
        self.xext = b.mul(n, ir.Constant(I64, self.spec.block[0]))
        self._stop_point()
        self._group_start()
        self.region(Region(list(self.kernel.body.args)), single=True)
        self.span_n, self.xext = None, self.spec.block[0]
        nxt = b.add(g, n)
        g.add_incoming(nxt, b.block)
        b.cbranch(b.icmp_signed("<", nxt, count), head, done)
        b.position_at_end(done)

    def _per_group(self, items: Callable[[], None]) -> None:
        """Emit ``items`` for each group of the current span in turn (a span whose facts do
        not all hold: the checks then find a failing item in group order, as without
        spans)."""
        b = self.b
        group, xext, n = self.group, self.xext, self.span_n
        assert n is not None

        def one(j: ir.Value) -> None:
            self.group = [b.add(group[0], b.trunc(j, I32)), group[1], group[2]]
            self.xext, self.span_n = self.spec.block[0], None
            items()

        self.counted_loop(n, one)
        self.group, self.xext, self.span_n = group, xext, n

    def _unpack(self, args_p: ir.Value) -> None:
        b = self.b
        self.params: dict[str, ir.Value] = {}
        self.mem: dict[str, tuple[ir.Value, ...]] = {}  # buffer: (ptr, len); image: (ptr, w, h)
        slot = 0

        def word() -> ir.Value:
            nonlocal slot
            v = b.load(b.gep(args_p, [ir.Constant(I64, slot)]))
            slot += 1
            return v

        for p in self.kernel.params:
            t = p.type
            if t.is_scalar:
                w = word()
                if t.kind == "bool":
                    self.params[p.name] = b.icmp_unsigned("!=", w, ir.Constant(I64, 0))
                elif t.kind in ("i32", "u32"):
                    self.params[p.name] = b.trunc(w, I32)
                elif t.kind == "f32":
                    self.params[p.name] = b.bitcast(b.trunc(w, I32), F32)
                else:
                    self.params[p.name] = b.bitcast(w, F64)
            else:
                ptr = b.inttoptr(word(), MEMORY[t.elem].as_pointer())
                if t.kind == "buffer":
                    self.mem[p.name] = (ptr, word())
                else:
                    self.mem[p.name] = (ptr, word(), word())

    def _constants(self) -> None:
        self.const_arrays: dict[str, ir.GlobalVariable] = {}
        for i, d in enumerate(d for d in self.kernel.decls if d.space == CONSTANT):
            t = MEMORY[d.type.elem]
            n = math.prod(d.type.shape)
            at = ir.ArrayType(t, n)
            values = [self.constant(v, d.type.elem, memory=True) for v in d.init or ()]
            g = ir.GlobalVariable(self.module, at, f"c{i}")
            g.global_constant = True
            g.linkage = "internal"
            g.initializer = ir.Constant(at, values)
            self.const_arrays[d.name] = g

    def _layout(self, scratch: ir.Value) -> None:
        """Offsets in scratch: shared arrays, context arrays, large private arrays, done flags."""
        b = self.b
        offset = 0

        def take(nbytes: int) -> int:
            nonlocal offset
            at = offset
            offset += -(-nbytes // ALIGN) * ALIGN
            return at

        def ptr(at: int, t: ir.Type) -> ir.Value:
            return b.bitcast(b.gep(scratch, [ir.Constant(I64, at)]), t.as_pointer())

        self.shared: dict[str, ir.Value] = {}
        self.context: dict[str, ir.Value] = {}
        self.private: dict[str, ir.Value] = {}
        self.group_zero: list[tuple[ir.Value, int]] = []  # (i8* start, bytes) zeroed per group
        self.item_zero: list[tuple[ir.Value, int]] = []  # private arrays zeroed per item
        start = take(0)
        for d in self.kernel.decls:
            if d.space == SHARED:
                self.shared[d.name] = ptr(take(math.prod(d.type.shape) * SIZE[d.type.elem]),
                                          MEMORY[d.type.elem])
        for name in sorted(self.plan.context_vars):
            d = self.decls[name]
            elem = d.type.kind if d.type.is_scalar else d.type.elem
            size = 1 if d.type.is_scalar else math.prod(d.type.shape)
            self.context[name] = ptr(take(self.items * size * SIZE[elem]), MEMORY[elem])
        self.done: ir.Value | None = None
        if self.plan.mode == "convergent" and self.plan.has_return:
            self.done = ptr(take(self.items), I8)
        group_bytes = offset - start
        if group_bytes:
            self.group_zero.append((b.gep(scratch, [ir.Constant(I64, start)]), group_bytes))
        for d in self.kernel.decls:
            if d.space == LOCAL and d.type.kind == "array" and d.name not in self.context:
                nbytes = math.prod(d.type.shape) * SIZE[d.type.elem]
                t = MEMORY[d.type.elem]
                if nbytes <= STACK_ARRAY_BYTES:
                    with b.goto_block(self.entry):
                        arr = b.alloca(t, math.prod(d.type.shape))
                    arr.align = 16
                else:
                    arr = ptr(take(nbytes), t)
                self.private[d.name] = arr
                self.item_zero.append((b.bitcast(arr, I8.as_pointer()), nbytes))
        self._scratch_end = offset
        self.scratch_bytes = max(offset, ALIGN)
        self._alias_scopes()

    def scratch_array(self, nbytes: int, t: ir.Type) -> ir.Value:
        """A pointer to ``nbytes`` more of scratch (for regions emitted after the layout)."""
        at = self._scratch_end
        self._scratch_end += -(-nbytes // ALIGN) * ALIGN
        self.scratch_bytes = max(self._scratch_end, ALIGN)
        b = self.b
        with b.goto_block(self.entry):
            return b.bitcast(b.gep(self.fn.args[4], [ir.Constant(I64, at)]), t.as_pointer())

    def _lane_loop_at(self, stmts: list[Node], own: Collection[str]) -> int | None:
        """Where in ``stmts`` the first loop that runs lane-wise stands (``own``: the
        per-item locals of the region), or None."""
        if not LANE_LOOPS:
            return None
        uniform = {p.name for p in self.kernel.params if p.type.is_scalar} | self.plan.group_vars

        def kind_of(name: str) -> str | None:
            d = self.decls.get(name)
            return d.type.kind if d is not None and d.type.is_scalar else None

        return vector_loop(stmts, kind_of, own, set(self.plan.remat), uniform, self.short_loop)

    def _may_lane(self) -> bool:
        """Whether any region may hold a loop that runs lane-wise (every per-item local
        taken as the region's: more than any region has), or split before a scatter."""
        own = {d.name for d in self.kernel.decls if d.space == LOCAL and d.type.is_scalar}
        own -= self.plan.group_vars | set(self.plan.remat)
        regions = ([list(self.kernel.body.args)] if self.plan.mode == "single" else
                   [r.stmts for pieces in self.plan.pieces.values() for r in pieces
                    if isinstance(r, Region)])
        return any(self._lane_loop_at(stmts, own) is not None
                   or self._scatter_at(stmts) is not None for stmts in regions)

    def _lane_split(self, stmts: list[Node], per_item: list[str]) -> LaneRegion | None:
        """The region cut around its first loop that runs lane-wise, or else before a
        scatter (:meth:`_scatter_at`), or None (see :mod:`xv_cpu.jit.lanes`)."""
        remat = set(self.plan.remat)
        own = [n for n in per_item if n not in remat]
        at = self._lane_loop_at(stmts, own)
        loop = None if at is None else stmts[at]
        if at is None:
            at = self._scatter_at(stmts)
            if at is None:
                return None
        prefix, suffix = stmts[:at], stmts[at + (loop is not None):]
        private = set(self._private_names())
        if _arrays_used(prefix) & _arrays_used(suffix) & private:
            # A private array not kept per item is one array reused by every item: the items'
            # statements before the loop, all run first, would leave the last one's values.
            return None
        if _has(prefix, Op.ATOMIC) and _has(suffix, Op.ATOMIC):
            # Atomics would see the items in another order (the old values they return).
            return None
        lanes, assigned, after = carried(loop, suffix, own, remat)
        # Locals kept for later regions are read after the loop too (stored after the
        # statements that follow it, from each item's values).
        after = sorted(set(after) | (set(own) & set(self.context)))
        key = id(stmts[at])
        made = self._lane_arrays.get(key)
        if made is None:
            span = self._span_groups()
            row = self.spec.block[0] * max(1, span) + LANES
            arrays = {}
            for name in sorted(set(lanes) | set(after)):
                kind = self.decls[name].type.kind
                arrays[name] = self.scratch_array(row * SIZE[kind], MEMORY[kind])
            made = self._lane_arrays[key] = (arrays, self.scratch_array(row, I8))
        return LaneRegion(self, prefix, loop, suffix, made[0], made[1], lanes, assigned, after)

    def _scatter_at(self, stmts: list[Node]) -> int | None:
        """Where a region splits before a scatter: the first statement with an atomic, when
        the statements before it compute something (:data:`SCATTER_MIN_OPS` operations) and
        write only the item's own locals -- no loop, no store, no atomic.  Those then run
        for the whole row first, as one loop LLVM vectorises (no scatter stops it), and
        leave the locals the rest reads in row arrays; the rest runs per item, in item
        order."""
        if not SCATTER_SPLIT:
            return None
        for at, s in enumerate(stmts):
            if _has([s], Op.ATOMIC):
                nodes = _nodes(stmts[:at])
                if any(n.op in (Op.LOOP, Op.STORE, Op.ISTORE, Op.ASTORE, Op.ATOMIC)
                       for n in nodes):
                    return None
                ops = sum(1 for n in nodes if n.op in _ALU)
                return at if ops >= SCATTER_MIN_OPS else None
        return None

    def _cannot_fail(self, stmts: list[Node]) -> bool:
        """Whether no check in ``stmts`` can fail in the copy being emitted: every access
        proven in bounds (or unchecked), integers divided by nonzero constants only.  The
        statements before a lane-wise loop (or a scatter) run for the whole row first, so a
        failure there could be found in another item than in item order (see x_loop in
        :meth:`region`)."""
        for s in stmts:
            for n in walk(s):
                if n.op in (Op.DIV, Op.MOD) and n.type.is_int and not (
                        n.args[1].op is Op.CONST and int(n.args[1].arg) & 0xFFFFFFFF):
                    return False
                if self.spec.checked and n.op in _ACCESSES and id(n) not in self.proven:
                    return False
        return True

    def _alias_scopes(self) -> None:
        """Scoped no-alias metadata: scratch objects (shared, context, private arrays, done
        flags) never overlap each other or the arguments' memory, which LLVM cannot see
        through one scratch pointer; without it, vectorised loops need run-time overlap
        checks.  Buffers and images may overlap each other (one array passed twice)."""
        m = self.module
        domain = m.add_metadata([ir.MetaDataString(m, "xv.memory")])
        objects = ([("buffers", None)] + [(f"s.{n}", None) for n in sorted(self.shared)]
                   + [(f"x.{n}", None) for n in sorted(self.context)]
                   + [(f"p.{n}", None) for n in sorted(self.private)] + [("done", None)]
                   + ([("lanes", None)] if self._may_lane() else []))
        scopes = {name: m.add_metadata([ir.MetaDataString(m, name), domain])
                  for name, _ in objects}
        self._scope: dict[str, tuple[Any, Any]] = {}
        for name, scope in scopes.items():
            others = [s for n, s in scopes.items() if n != name]
            self._scope[name] = (m.add_metadata([scope]), m.add_metadata(others))

    def tag(self, inst: Any, obj: str) -> Any:
        """Mark a load or store with the memory object it touches (see _alias_scopes)."""
        scope = self._scope.get(obj)
        if scope is not None:
            inst.set_metadata("alias.scope", scope[0])
            inst.set_metadata("noalias", scope[1])
        return inst

    def memset(self, start: ir.Value, nbytes: int) -> None:
        fn = self.module.declare_intrinsic("llvm.memset", [I8.as_pointer(), I64])
        self.b.call(fn, [start, ir.Constant(I8, 0), ir.Constant(I64, nbytes), ir.Constant(I1, 0)])

    def _group_start(self) -> None:
        b = self.b
        self.known = {}
        for start, nbytes in self.group_zero:
            self.memset(start, nbytes)
        b.store(ir.Constant(I64, 0), self.ndone)
        for name in self.plan.group_vars:
            slot = self.slots[name]
            b.store(ir.Constant(slot.type.pointee, None), slot)

    # ------------------------------------------------------------------------------
    # the skeleton (convergent mode): runs once per group
    # ------------------------------------------------------------------------------
    def live(self) -> ir.Value:
        if isinstance(self.xext, int):
            items: ir.Value = ir.Constant(I64, self.items)
        else:
            _, by, bz = self.spec.block
            items = self.b.mul(self.xext, ir.Constant(I64, by * bz))
        return self.b.sub(items, self.b.load(self.ndone))

    def group_expr(self, node: Node) -> ir.Value:
        """A uniform expression evaluated once for the group; counted once per live item."""
        saved, self.mult = self.mult, self.live()
        try:
            return self.expr(node)
        finally:
            self.mult = saved

    def skeleton(self, block: Node) -> None:
        for piece in self.plan.pieces[id(block)]:
            if isinstance(piece, Region):
                self.region(piece)
                continue
            node = piece
            outer, self.line = self.line, node.line or self.line
            if node.op is Op.BLOCK:
                self.skeleton(node)
            elif node.op is Op.IF:
                c = self.group_expr(node.args[0])
                then, other, merge = self.new_block(), self.new_block(), self.new_block()
                self.b.cbranch(c, then, other)
                known = dict(self.known)
                self.b.position_at_end(then)
                self.skeleton(node.args[1])
                self.b.branch(merge)
                self.known = known
                self.b.position_at_end(other)
                self.skeleton(node.args[2])
                self.b.branch(merge)
                self.b.position_at_end(merge)
                self._forget(node)
            elif node.op is Op.LOOP:
                exit_ = self.new_block()
                # The iterations constant group values predict are peeled: each a copy of
                # the body with its own test, where LLVM folds the values (the block sum's
                # `stride`: each level's item loop gets its constant trip count).  The loop
                # itself follows, for whatever the prediction missed.
                trips = self._peel_trips(node) if not self._loop_depth else None
                self.peeled.append(trips)
                self._loop_depth += 1
                for _ in range(trips or 0):
                    c = self.group_expr(node.args[0])
                    then = self.new_block()
                    self.b.cbranch(c, then, exit_)
                    self.b.position_at_end(then)
                    self.skeleton(node.args[1])
                    self.skeleton(node.args[2])
                self._forget(node)
                head, body = self.new_block(), self.new_block()
                self.b.branch(head)
                self.b.position_at_end(head)
                c = self.group_expr(node.args[0])
                self.b.cbranch(c, body, exit_)
                self.b.position_at_end(body)
                self.skeleton(node.args[1])
                self.skeleton(node.args[2])
                self.b.branch(head)
                self.b.position_at_end(exit_)
                self._loop_depth -= 1
                self._forget(node)
            self.line = outer

    # ------------------------------------------------------------------------------
    # regions: a loop over the work items of the group
    # ------------------------------------------------------------------------------
    def _forget(self, node: Node) -> None:
        """Group values assigned anywhere in ``node`` are no longer known constants."""
        for n in walk(node):
            if n.op is Op.ASSIGN and n.arg in self.plan.group_vars:
                self.known[n.arg] = None

    def _peel_trips(self, loop: Node) -> int | None:
        """How many iterations a skeleton loop runs, when the group values it depends on are
        constants here and its body changes them by constant arithmetic only (the block
        sum's ``for (stride = 128; stride > 0; stride /= 2)``); None otherwise, or past
        :data:`PEEL_LIMIT`, or when the copies would take the kernel's code past
        :data:`PEEL_REGIONS` copies of regions.  Loops inside a skeleton loop are not peeled
        (nested copies multiply).  A prediction only: the peeled copies keep their tests."""
        state = dict(self.known)

        def block(node: Node) -> bool:
            for piece in self.plan.pieces.get(id(node), ()):
                if isinstance(piece, Region):
                    for s in piece.hoisted:
                        state[s.arg] = _const_eval(s.args[0], state, self.spec.block)
                elif piece.op is Op.BLOCK:
                    if not block(piece):
                        return False
                elif piece.op is Op.IF:
                    c = _const_eval(piece.args[0], state, self.spec.block)
                    if c is None or not block(piece.args[1] if c else piece.args[2]):
                        return False
                elif piece.op is Op.LOOP and run(piece) is None:
                    return False
            return True

        def run(node: Node) -> int | None:
            for trips in range(PEEL_LIMIT + 1):
                c = _const_eval(node.args[0], state, self.spec.block)
                if c is None:
                    return None
                if not c:
                    return trips
                if not (block(node.args[1]) and block(node.args[2])):
                    return None
            return None

        trips = run(loop)
        if not trips:
            return trips
        regions = sum(1 for n in walk(loop) for piece in self.plan.pieces.get(id(n), ())
                      if isinstance(piece, Region))
        if trips * regions > self._peel_budget:
            return None
        self._peel_budget -= trips * regions
        return trips

    def region(self, region: Region, single: bool = False) -> None:
        self.count_only = region.count_only
        for s in region.hoisted:
            outer, self.line = self.line, s.line or self.line
            # (one after a statement that may return counts per item, where it stands)
            saved, self.counting = self.counting, self.counting and id(s) not in self.count_only
            value = self.group_expr(s.args[0])
            self.counting = saved
            self.b.store(value, self.slots[s.arg])
            self.known[s.arg] = _const_eval(s.args[0], self.known, self.spec.block)
            self.line = outer
        if not region.stmts:
            return
        names: set[str] = set()
        for s in region.stmts:
            for n in walk(s):
                if n.op in (Op.VAR, Op.ASSIGN):
                    names.add(n.arg)
                elif n.op is Op.ATOMIC and n.arg[2] is not None:
                    names.add(n.arg[2])
        per_item = sorted(n for n in names if n in self.slots and n not in self.plan.group_vars)
        in_context = [n for n in per_item if n in self.context]
        fresh = [n for n in per_item if n not in self.context]
        assigned = sorted({n.arg for s in region.stmts for n in walk(s) if n.op is Op.ASSIGN}
                          | {n.arg[2] for s in region.stmts for n in walk(s)
                             if n.op is Op.ATOMIC and n.arg[2] is not None})
        saved_out = [n for n in assigned if n in self.context]
        used_arrays = {n.arg for s in region.stmts for n in walk(s)
                       if n.op in (Op.ALOAD, Op.ASTORE)}
        zero_arrays = [(p, nb) for (p, nb), name in zip(self.item_zero, self._private_names())
                       if name in used_arrays]
        bx, by, bz = self.spec.block
        b = self.b

        def item(lx: ir.Value, ly: ir.Value, lz: ir.Value, stmts: list[Node] | None = None,
                 start: Callable[[ir.Value, ir.Block, ir.Block], None] | None = None,
                 end: Callable[[ir.Value], None] | None = None) -> None:
            """One item's statements (``body``, or ``stmts``); ``start(lx, go, next)`` runs
            first and branches to ``go`` (on with the item) or ``next`` (the next item);
            ``end(lx)`` runs after the statements when the item did not return."""
            xext = self.xext if isinstance(self.xext, ir.Value) else ir.Constant(I64, bx)
            wi = b.add(lx, b.mul(xext, b.add(ly, b.mul(ir.Constant(I64, by), lz))))
            nxt = self.new_block()
            ret = self.new_block()
            if start is not None:
                go = self.new_block()
                start(lx, go, nxt)
                b.position_at_end(go)
            if self.done is not None:
                flag = self.tag(b.load(b.gep(self.done, [wi])), "done")
                go = self.new_block()
                b.cbranch(b.icmp_unsigned("!=", flag, ir.Constant(I8, 0)), nxt, go)
                b.position_at_end(go)
            for name in fresh:
                slot = self.slots[name]
                b.store(ir.Constant(slot.type.pointee, None), slot)
            for start_, nbytes in zero_arrays:
                self.memset(start_, nbytes)
            for name in in_context:
                value = self.tag(b.load(b.gep(self.context[name], [wi])), f"x.{name}")
                b.store(self.from_memory(value, self.decls[name].type.kind), self.slots[name])
            self.item = _Item((b.trunc(lx, I32), b.trunc(ly, I32), b.trunc(lz, I32)), wi, ret)
            if lanes is not None and stmts is lanes.suffix:
                lanes.reload(lx)
            before = None
            for s in (body if stmts is None else stmts):
                self._before = before
                self.stmt(s, {})
                before = s
            if not self.terminated():
                if end is not None:
                    end(lx)
                for name in saved_out:
                    value = self.to_memory(b.load(self.slots[name]), self.decls[name].type.kind)
                    self.tag(b.store(value, b.gep(self.context[name], [wi])), f"x.{name}")
                b.branch(nxt)
            b.position_at_end(ret)
            if self.done is not None:
                self.tag(b.store(ir.Constant(I8, 1), b.gep(self.done, [wi])), "done")
                b.store(b.add(b.load(self.ndone), ir.Constant(I64, 1)), self.ndone)
            b.branch(nxt)
            b.position_at_end(nxt)
            self.item = None

        body: list[Node] = list(region.stmts)
        x_bound = None
        guard = self._x_guard(body)
        if guard is not None:
            # ``if (local_id.x < n) {...}`` as the whole region: the x loop runs over the
            # items that pass the test only (tree reductions, ``if (lid == 0)``).  The test
            # is still counted once per live item, as interp evaluates it.
            x_bound = self._x_bound(guard[0], guard[1], guard[2], guard[4])
            body = [guard[3]]

        lanes = self._lane_split(body, per_item) if guard is None else None

        def x_loop(ly: ir.Value, lz: ir.Value) -> None:
            if lanes is not None and self._cannot_fail(lanes.prefix) and (
                    self._cannot_fail(lanes.suffix) or (
                        not _has_writes(lanes.prefix, self.shared)
                        and all(id(n) in self.proven for n in _nodes(lanes.prefix)
                                if n.op in _ACCESSES))):
                # The statements before the lane-wise loop per item, the loop lane-wise over
                # the row, the statements after it per item (see xv_cpu.jit.lanes).  Those
                # before it run for the whole row first: none may fail (the failure would be
                # found in another item than in item order).  When a check after it may fail,
                # those before it must also write no memory (it would be left written for
                # items after the failing one) and touch only memory proven in bounds (an
                # unchecked copy would otherwise read, for the items after the failing one,
                # what item order never reaches: out of bounds, it may crash).
                if lanes.loop is None:
                    self.scatter_splits += 1
                else:
                    self.lane_loops += 1
                self.counted_loop(self.xext, lambda lx: item(
                    lx, ly, lz, lanes.prefix, lanes.unreached, lanes.reached), keep_rolled=True)
                self.flush()
                lanes.row(self.xext)
                self.counted_loop(self.xext, lambda lx: item(
                    lx, ly, lz, lanes.suffix, lanes.skip_unreached), keep_rolled=True)
            elif x_bound is None:
                self.counted_loop(self.xext, lambda lx: item(lx, ly, lz), keep_rolled=True)
            else:
                lo, hi = self._x_window(*x_bound)
                self.counted_loop(b.sub(hi, lo), lambda i: item(b.add(lo, i), ly, lz),
                                  keep_rolled=True)
            self.flush()

        def items() -> None:
            self.counted_loop(bz, lambda lz: self.counted_loop(by, lambda ly: x_loop(ly, lz)))

        provable = self._provable(region.stmts) if self.spec.checked else []
        clamps = self._identity_clamps(region.stmts)
        guards = self._never_guards(region.stmts)
        selects = self._always_selects(region.stmts)
        if not (provable or clamps or guards or selects):
            items()
            return
        facts = provable + clamps + guards + selects

        def checked_items() -> None:
            # Two versions of the item loop: without the checks of the accesses whose
            # indices are affine in the work item, when one test per group proves every
            # item's index in range, and with every check otherwise (where the failing item
            # is found).  A span whose test fails runs group by group, each group with its
            # own test (a blur's spans that hold the image's border: only the border groups
            # take the checked version).
            fast, slow, merge = self.new_block(), self.new_block(), self.new_block()
            b.cbranch(self._in_bounds(facts), fast, slow)
            b.position_at_end(fast)
            self.proven = {id(node) for node, _ in provable}
            self.identity = {id(node) for node, _ in clamps}
            self.never = {id(node) for node, _ in guards}
            self.always = {id(node) for node, _ in selects}
            items()
            self.proven, self.identity, self.never, self.always = set(), set(), set(), set()
            b.branch(merge)
            b.position_at_end(slow)
            if self.span_n is None:
                items()
            else:
                self._per_group(checked_items)
            b.branch(merge)
            b.position_at_end(merge)

        checked_items()

    def _x_offset(self, node: Node) -> Node | None:
        """``node`` as local_id.x + c for a group value c: c as a node (CONST 0 for the
        local id itself), else None.  Only local and global ids (and locals recomputed from
        them) qualify, so that the sum cannot wrap: a global id is less than 2**31."""
        if node.op is Op.VAR and node.arg in self.plan.remat:
            return self._x_offset(self.plan.remat[node.arg])
        if node.op is Op.SPECIAL and node.arg == "local_id.x":
            return Node.const(0, node.type)
        if node.op is Op.SPECIAL and node.arg == "global_id.x":
            return node  # the base is computed from the group id (see _x_window)
        return None

    def _x_guard(self, stmts: list[Node]) -> tuple[Op, Node, bool, Node, Node] | None:
        """(comparison, bound, x on the left, then block, offset) when the region is one
        ``if`` without else comparing local_id.x (or global_id.x) with a group value."""
        # Assignments of recomputed locals without arithmetic can go: nothing reads the
        # locals (reads recompute them) and they count no work.
        stmts = [s for s in stmts if not (
            s.op is Op.ASSIGN and s.arg in self.plan.remat
            and not any(n.op in _ALU for n in walk(s.args[0])))]
        if len(stmts) != 1 or stmts[0].op is not Op.IF or stmts[0].args[2].args:
            return None
        cond = stmts[0].args[0]
        if cond.op not in (Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ) or cond.args[0].type.kind != "i32":
            return None
        for k in (0, 1):
            offset = self._x_offset(cond.args[k])
            if offset is not None and self._pure_group(cond.args[1 - k]):
                return cond.op, cond.args[1 - k], k == 0, stmts[0].args[1], offset
        return None

    def _x_bound(self, op: Op, bound_node: Node, x_left: bool,
                 offset: Node) -> tuple[Op, ir.Value, bool]:
        """The guard's bound, evaluated (and the test counted) once per group or span:
        (comparison with x on the left, bound, whether x is the global id)."""
        u = self.b.sext(self.group_expr(bound_node), I64)
        saved, self.mult = self.mult, self.live()
        self.count(OUT_OPS, 1)  # the comparison, once per live item
        self.mult = saved
        if not x_left:  # u < x is x > u, and so on
            op = {Op.LT: Op.GT, Op.LE: Op.GE, Op.GT: Op.LT, Op.GE: Op.LE}.get(op, op)
        return op, u, offset.op is Op.SPECIAL

    def _x_window(self, op: Op, u: ir.Value, global_x: bool) -> tuple[ir.Value, ir.Value]:
        """The local x range [lo, hi) of the items of the current group (or span) that pass
        the guard (see _x_bound)."""
        b = self.b
        if global_x:  # global_id.x = group_id.x * block.x + local_id.x
            base = b.mul(b.sext(self.group[0], I64), ir.Constant(I64, self.spec.block[0]))
            u = b.sub(u, base)
        one = ir.Constant(I64, 1)
        n = self.xext if isinstance(self.xext, ir.Value) else ir.Constant(I64, self.xext)
        zero = ir.Constant(I64, 0)
        lo, hi = {Op.LT: (zero, u), Op.LE: (zero, b.add(u, one)), Op.EQ: (u, b.add(u, one)),
                  Op.GE: (u, n), Op.GT: (b.add(u, one), n)}[op]

        def clamp(v: ir.Value) -> ir.Value:
            v = b.select(b.icmp_signed("<", v, zero), zero, v)
            return b.select(b.icmp_signed(">", v, n), n, v)

        lo, hi = clamp(lo), clamp(hi)
        return lo, b.select(b.icmp_signed("<", hi, lo), lo, hi)

    # ------------------------------------------------------------------------------
    # accesses proven in bounds once per group
    # ------------------------------------------------------------------------------
    def _provable(self, stmts: list[Node]) -> list[tuple[Node, list[tuple[Any, Any]]]]:
        """Checked accesses of a region whose every index is affine in the work item's
        local id, with the bound of each index: [(node, [(affine form, bound)])]."""
        out = []
        for s in stmts:
            for n in walk(s):
                op = n.op
                if op in (Op.LOAD, Op.STORE, Op.ATOMIC):
                    name = n.arg[1] if op is Op.ATOMIC else n.arg[0]
                    pairs = [(n.args[0], ("len", name))]
                elif op in (Op.ILOAD, Op.ISTORE):
                    pairs = [(n.args[0], ("width", n.arg[0])), (n.args[1], ("height", n.arg[0]))]
                elif op in (Op.ALOAD, Op.ASTORE):
                    decl = self.decls[n.arg]
                    idx = n.args if op is Op.ALOAD else n.args[:-1]
                    pairs = [(i, ("dim", d)) for i, d in zip(idx, decl.type.shape)]
                else:
                    continue
                forms = [(self._affine(i) or self._clamped(i, bound), bound) for i, bound in pairs]
                if all(f is not None for f, _ in forms):
                    out.append((n, forms))
        return out

    def _clamped(self, node: Node, bound: tuple[str, Any]) -> Any:
        """``min(max(e, 0), size - 1)`` (either way round) where size is the very bound
        the index is checked against, directly or through a local that is only ever
        assigned such a clamp (and so starts at 0): in range whenever size >= 1.  Returns
        a marker for :meth:`_in_bounds`, else None."""
        if node.op is Op.VAR and node.arg in self.decls and self.decls[node.arg].space == LOCAL:
            rhs = self._assigned.get(node.arg)
            if not rhs or any(node.arg in {n.arg for n in walk(r) if n.op is Op.VAR}
                              for r in rhs):
                return None  # never assigned, written by an atomic, or self-referential
            if all(self._clamped(r, bound) is not None for r in rhs):
                return _CLAMPED
            return None
        if node.op not in (Op.MIN, Op.MAX) or node.type.kind != "i32":
            return None
        inner_op = Op.MAX if node.op is Op.MIN else Op.MIN
        for k in (0, 1):
            inner, outer_arg = node.args[k], node.args[1 - k]
            if inner.op is not inner_op:
                continue
            for j in (0, 1):
                lim = inner.args[1 - j]
                lo, hi = (lim, outer_arg) if node.op is Op.MIN else (outer_arg, lim)
                if self._is_const(lo, 0) and self._is_size_minus_one(hi, bound):
                    return _CLAMPED
        return None

    @staticmethod
    def _is_const(node: Node, value: int) -> bool:
        return node.op is Op.CONST and not isinstance(node.arg, bool) and node.arg == value

    def _is_size_minus_one(self, node: Node, bound: tuple[str, Any]) -> bool:
        what, arg = bound
        if what == "dim":
            return self._is_const(node, arg - 1)
        if node.op is not Op.SUB or not self._is_const(node.args[1], 1):
            return False
        size = node.args[0]
        op = {"len": Op.LENGTH, "width": Op.WIDTH, "height": Op.HEIGHT}[what]
        return size.op is op and size.arg == arg

    def _affine(self, node: Node) -> Any:
        """``node`` as base + sum(coeff[a] * local_id[a]) + sum(q * k) when it is one, else
        None, where each k is a counter of a short loop around the read, with a known range:
        a function emitting (base, coeffs, [(q, lo, hi)]) as exact i128 values at group
        level.  The i32 arithmetic of the kernel wraps, but add, sub, mul and neg are ring
        operations modulo 2**32, so a value whose exact range lies within i32 (an index in
        [0, bound) with bound < 2**31, say) is that value in i32 too."""
        op = node.op
        if node.type.kind != "i32":
            return None
        zero = ir.Constant(I128, 0)
        if op is Op.SPECIAL:
            what, _, axis = node.arg.partition(".")
            a = "xyz".index(axis)
            if what in ("local_id", "global_id"):
                def special() -> Any:
                    coeffs = [zero, zero, zero]
                    coeffs[a] = ir.Constant(I128, 1)
                    base = zero
                    if what == "global_id":
                        base = self.b.mul(self.b.sext(self.group[a], I128),
                                          ir.Constant(I128, self.spec.block[a]))
                    return base, coeffs, []

                return special
        if op is Op.VAR and id(node) in self._counter_reads:
            lo, hi = self._counter_reads[id(node)]

            def counter() -> Any:
                return zero, [zero, zero, zero], [(ir.Constant(I128, 1), lo, hi)]

            return counter
        if op is Op.VAR and node.arg in self.plan.remat:
            return self._affine(self.plan.remat[node.arg])
        if self._pure_group(node):
            def uniform() -> Any:
                saved, self.counting = self.counting, False
                try:
                    return self.b.sext(self.expr(node), I128), [zero, zero, zero], []
                finally:
                    self.counting = saved

            return uniform
        if op in (Op.ADD, Op.SUB):
            x, y = self._affine(node.args[0]), self._affine(node.args[1])
            if x is None or y is None:
                return None
            def add() -> Any:
                combine = self.b.add if op is Op.ADD else self.b.sub
                (bx, cx, ex), (by, cy, ey) = x(), y()
                ey = ey if op is Op.ADD else [(self.b.sub(zero, q), lo, hi) for q, lo, hi in ey]
                return combine(bx, by), [combine(p, q) for p, q in zip(cx, cy)], ex + ey

            return add
        if op is Op.NEG:
            x = self._affine(node.args[0])
            if x is None:
                return None

            def neg() -> Any:
                bx, cx, ex = x()
                return (self.b.sub(zero, bx), [self.b.sub(zero, q) for q in cx],
                        [(self.b.sub(zero, q), lo, hi) for q, lo, hi in ex])

            return neg
        if op is Op.MUL:
            for k in (0, 1):
                if self._pure_group(node.args[k]):
                    scale, other = self._affine(node.args[k]), self._affine(node.args[1 - k])
                    if other is None:
                        return None

                    def mul(scale: Any = scale, other: Any = other) -> Any:
                        s_base, _, _ = scale()
                        bx, cx, ex = other()
                        return (self.b.mul(s_base, bx), [self.b.mul(s_base, q) for q in cx],
                                [(self.b.mul(s_base, q), lo, hi) for q, lo, hi in ex])

                    return mul
        return None

    def _range(self, form: Any) -> tuple[ir.Value, ir.Value]:
        """Exact (i128) minimum and maximum of an affine form over the group's items and
        the ranges of its loop counters."""
        b = self.b
        zero = ir.Constant(I128, 0)
        base, coeffs, extra = form()
        lo = hi = base
        last_x: int | ir.Value = self.spec.block[0] - 1
        if isinstance(self.xext, ir.Value):  # a span: n groups along x
            last_x = b.sext(b.sub(self.xext, ir.Constant(I64, 1)), I128)
        terms = ([(coeffs[0], 0, last_x)]
                 + [(q, 0, self.spec.block[a] - 1) for a, q in enumerate(coeffs) if a]
                 + extra)
        for q, t_lo, t_hi in terms:
            p = b.mul(q, ir.Constant(I128, t_lo)) if t_lo else zero
            if isinstance(t_hi, ir.Value):
                r = b.mul(q, t_hi)
            else:
                r = b.mul(q, ir.Constant(I128, t_hi)) if t_hi else zero
            less = b.icmp_signed("<", p, r)
            lo = b.add(lo, b.select(less, p, r))
            hi = b.add(hi, b.select(less, r, p))
        return lo, hi

    def _find_counters(self, kernel: Kernel) -> dict[int, tuple[int, int]]:
        """Reads of loop counters with a known range, by id of the VAR node: a local
        assigned only ``k = c0`` just before ``while (k < c1 or k <= c1) {...; k += s}``
        (s > 0, constants small) and read nowhere else than in that loop."""
        reads: dict[int, tuple[int, int]] = {}
        all_reads: dict[str, set[int]] = {}
        for n in walk(kernel.body):
            if n.op is Op.VAR:
                all_reads.setdefault(n.arg, set()).add(id(n))
        for block in (n for n in walk(kernel.body) if n.op is Op.BLOCK):
            for before, loop in zip(block.args, block.args[1:]):
                if loop.op is not Op.LOOP or not self.short_loop(loop, before):
                    continue
                cond, body, step = loop.args
                name = before.arg
                inc = step.args[0].args[0]
                if (cond.op not in (Op.LT, Op.LE) or inc.op is not Op.ADD
                        or int(inc.args[1].arg) <= 0 or cond.args[0].arg != name
                        or len(self._assigned.get(name) or ()) != 2):
                    continue
                inside = {id(n) for n in walk(loop) if n.op is Op.VAR and n.arg == name}
                if inside != all_reads.get(name, set()):
                    continue
                lo = int(before.args[0].arg)
                hi = int(cond.args[1].arg) - (1 if cond.op is Op.LT else 0)
                for n in walk(body):
                    if n.op is Op.VAR and n.arg == name:
                        reads[id(n)] = (lo, max(lo, hi))
        return reads

    def _pure_group(self, node: Node) -> bool:
        """The same value for the whole group, computable up front without any effect or
        failure: no memory reads, no integer division, no per-item locals or builtins."""
        for n in walk(node):
            op = n.op
            if op in (Op.LOAD, Op.ILOAD, Op.ALOAD):
                return False
            if op in (Op.DIV, Op.MOD) and n.type.is_int:
                return False
            if op is Op.VAR and n.arg not in self.scalars and n.arg not in self.plan.group_vars:
                return False
            if op is Op.SPECIAL and n.arg.startswith(("local_id.", "global_id.")):
                return False
        return True

    def _in_bounds(self, provable: list[tuple[Node, list[tuple[Any, Any]]]]) -> ir.Value:
        """True when every listed fact holds for every item of the group: an access in
        range, a clamp that changes nothing, a guard that no item takes."""
        b = self.b
        ok: ir.Value = ir.Constant(I1, 1)
        zero = ir.Constant(I128, 0)
        i32_min, i32_max = ir.Constant(I128, -(1 << 31)), ir.Constant(I128, (1 << 31) - 1)
        for node, forms in provable:
            for form, (what, arg) in forms:
                if form is _CLAMPED:
                    if what != "dim":
                        ok = b.and_(ok, b.icmp_signed(">=", self._size(what, arg),
                                                      ir.Constant(I64, 1)))
                    continue
                lo, hi = self._range(form)
                if what == "never":  # a comparison false for every item: arg is its op
                    ok = b.and_(ok, b.and_(b.icmp_signed(">=", lo, i32_min),
                                           b.icmp_signed("<=", hi, i32_max)))
                    lo2, hi2 = self._range(arg[1])
                    ok = b.and_(ok, b.and_(b.icmp_signed(">=", lo2, i32_min),
                                           b.icmp_signed("<=", hi2, i32_max)))
                    # a - b over the group: the comparison's op decides what must hold
                    d_lo, d_hi = b.sub(lo, hi2), b.sub(hi, lo2)
                    fails = {Op.GE: b.icmp_signed("<", d_hi, zero),
                             Op.GT: b.icmp_signed("<=", d_hi, zero),
                             Op.LT: b.icmp_signed(">=", d_lo, zero),
                             Op.LE: b.icmp_signed(">", d_lo, zero)}[arg[0]]
                    ok = b.and_(ok, fails)
                    continue
                if what == "dim":
                    bound = ir.Constant(I128, arg)
                elif what == "identity":  # clamp(e, 0, size - 1) == e
                    bound = b.zext(self._size(*arg), I128)
                else:
                    bound = b.zext(self._size(what, arg), I128)
                ok = b.and_(ok, b.and_(b.icmp_signed(">=", lo, zero),
                                       b.icmp_signed("<", hi, bound)))
        return ok

    def _size(self, what: str, name: str) -> ir.Value:
        mem = self.mem[name]
        return {"len": mem[1], "width": mem[1], "height": mem[-1]}[what]

    def _identity_clamps(self, stmts: list[Node]) -> list[tuple[Node, list[tuple[Any, Any]]]]:
        """Clamps ``min(max(e, 0), size - 1)`` of the region whose e is affine: where
        every item's e is in [0, size - 1] the fast version uses e itself, which keeps
        accesses through it contiguous (a blur's taps inside the image)."""
        out = []
        for s in stmts:
            for n in walk(s):
                if n.op not in (Op.MIN, Op.MAX) or n.type.kind != "i32":
                    continue
                hit = self._clamp_parts(n)
                if hit is None:
                    continue
                e, size = hit
                form = self._affine(e)
                if form is not None:
                    out.append((n, [(form, ("identity", size))]))
        return out

    def _clamp_parts(self, node: Node) -> tuple[Node, tuple[str, str]] | None:
        """(e, (size kind, memory)) of ``min(max(e, 0), SIZE - 1)`` either way round."""
        inner_op = Op.MAX if node.op is Op.MIN else Op.MIN
        sizes = {Op.LENGTH: "len", Op.WIDTH: "width", Op.HEIGHT: "height"}
        for k in (0, 1):
            inner, outer_arg = node.args[k], node.args[1 - k]
            if inner.op is not inner_op:
                continue
            for j in (0, 1):
                e, lim = inner.args[j], inner.args[1 - j]
                lo, hi = (lim, outer_arg) if node.op is Op.MIN else (outer_arg, lim)
                if (self._is_const(lo, 0) and hi.op is Op.SUB and self._is_const(hi.args[1], 1)
                        and hi.args[0].op in sizes):
                    return e, (sizes[hi.args[0].op], hi.args[0].arg)
        return None

    def _never_guards(self, stmts: list[Node]) -> list[tuple[Node, list[tuple[Any, Any]]]]:
        """Top-level ``if (a || b || ...) return;`` of the region whose every operand
        compares affine values: where no item of the group takes it, the fast version
        leaves the test out (and counts its operations, all evaluated)."""
        out = []
        for s in stmts:
            if s.op is not Op.IF or s.args[2].args or [n.op for n in s.args[1].args] != [
                    Op.RETURN]:
                continue
            facts = []
            stack = [s.args[0]]
            while stack:
                c = stack.pop()
                if c.op is Op.LOR:
                    stack.extend(c.args)
                    continue
                if (c.op not in (Op.LT, Op.LE, Op.GT, Op.GE) or c.args[0].type.kind != "i32"
                        or not _eager(c)):
                    facts = None
                    break
                fa, fb = self._affine(c.args[0]), self._affine(c.args[1])
                if fa is None or fb is None:
                    facts = None
                    break
                facts.append((fa, ("never", (c.op, fb))))
            if facts:
                out.append((s, facts))
        return out

    def _always_selects(self, stmts: list[Node]) -> list[tuple[Node, list[tuple[Any, Any]]]]:
        """Selects ``c ? a : b`` of the region whose ``c`` compares affine values: where
        every item of the group finds ``c`` true, the fast version takes ``a`` alone (and
        counts ``c``'s operations, all evaluated) -- a guard against the data's end such as
        ``gid < x.length ? x[gid] : 0.0`` becomes a plain (vector) load.  ``c`` true for
        every item is its negation never true: the same fact as :meth:`_never_guards`'."""
        negate = {Op.LT: Op.GE, Op.LE: Op.GT, Op.GT: Op.LE, Op.GE: Op.LT}
        out = []
        for s in stmts:
            for n in walk(s):
                if n.op is not Op.SELECT:
                    continue
                c = n.args[0]
                if c.op not in negate or c.args[0].type.kind != "i32" or not _eager(c):
                    continue
                fa, fb = self._affine(c.args[0]), self._affine(c.args[1])
                if fa is not None and fb is not None:
                    out.append((n, [(fa, ("never", (negate[c.op], fb)))]))
        return out

    def _private_names(self) -> list[str]:
        return [d.name for d in self.kernel.decls
                if d.space == LOCAL and d.type.kind == "array" and d.name not in self.context]

    # ------------------------------------------------------------------------------
    # values
    # ------------------------------------------------------------------------------
    def constant(self, value: Any, kind: str, memory: bool = False) -> ir.Constant:
        """An IR constant from a number the verifier has checked."""
        if kind == "bool":
            return ir.Constant(I8 if memory else I1, 1 if value else 0)
        if kind in ("i32", "u32"):
            v = int(value) & 0xFFFFFFFF
            return ir.Constant(I32, v - (1 << 32) if v >= 1 << 31 else v)
        f = float(value)
        if kind in ("f32", "vec4"):
            f = struct.unpack("<f", struct.pack("<f", f))[0] if math.isfinite(f) else f
            return ir.Constant(F32, f)
        return ir.Constant(F64, f)

    def from_memory(self, v: ir.Value, kind: str) -> ir.Value:
        if kind == "bool":
            return self.b.icmp_unsigned("!=", v, ir.Constant(I8, 0))
        return v

    def to_memory(self, v: ir.Value, kind: str) -> ir.Value:
        if kind == "bool":
            return self.b.zext(v, I8)
        return v

    def local_id(self, a: int) -> ir.Value:
        if self.item is None:
            return ir.Constant(I32, 0)  # group level: errors are blamed on the first item
        return self.item.local[a]

    def global_id(self, a: int) -> ir.Value:
        return self.b.add(self.b.mul(self.group[a], ir.Constant(I32, self.spec.block[a])),
                          self.local_id(a))

    def special(self, name: str) -> ir.Value:
        what, _, axis = name.partition(".")
        a = "xyz".index(axis)
        if what == "local_id":
            return self.local_id(a)
        if what == "group_id":
            return self.group[a]
        if what == "group_size":
            return ir.Constant(I32, self.spec.block[a])
        if what == "num_groups":
            return self.grid[a]
        return self.global_id(a)

    # ------------------------------------------------------------------------------
    # expressions
    # ------------------------------------------------------------------------------
    def expr(self, node: Node) -> ir.Value:
        op = node.op
        b = self.b
        kind = node.type.kind
        if op is Op.CONST:
            return self.constant(node.arg, kind)
        if op is Op.VAR:
            name = node.arg
            if name in self.params:
                return self.params[name]
            if name in self.plan.remat and self.item is not None:
                saved, self.counting = self.counting, False
                try:
                    return self.expr(self.plan.remat[name])
                finally:
                    self.counting = saved
            return b.load(self.slots[name])
        if op is Op.SPECIAL:
            return self.special(node.arg)
        if op is Op.LENGTH:
            return b.trunc(self.mem[node.arg][1], I32)
        if op is Op.WIDTH:
            return b.trunc(self.mem[node.arg][1], I32)
        if op is Op.HEIGHT:
            return b.trunc(self.mem[node.arg][2], I32)
        if op is Op.LOAD:
            return self.load(node)
        if op is Op.ILOAD:
            return self.iload(node)
        if op is Op.ALOAD:
            return self.aload(node)
        if op is Op.LAND or op is Op.LOR:
            return self.logical(node)
        if op is Op.SELECT:
            return self.select(node)
        if op is Op.CAST:
            a = self.expr(node.args[0])
            self.count(OUT_OPS, 1)
            return self.cast(a, node.args[0].type.kind, kind)
        if op in UNARY:
            a = self.expr(node.args[0])
            self.count(OUT_OPS, 1)
            return self.unary(op, a, kind)
        if op in COMPARE:
            x = self.expr(node.args[0])
            y = self.expr(node.args[1])
            self.count(OUT_OPS, 1)
            return self.compare(op, x, y, node.args[0].type.kind)
        if id(node) in self.identity:  # proven: clamp(e, 0, size - 1) is e for the group
            e, _ = self._clamp_parts(node)
            value = self._identity_operands(node, e)
            return value
        if op in BINARY:
            x = self.expr(node.args[0])
            y = self.expr(node.args[1])
            self.count(OUT_OPS, 1)
            return self.binary(op, x, y, kind, node)
        raise AssertionError(f"unexpected expression {op}")  # the verifier rules this out

    def _identity_operands(self, node: Node, e: Node) -> ir.Value:
        """A clamp proven to change nothing: evaluate e, and count what the clamp counts
        (its two operations and those of its bounds, which are pure)."""
        value = self.expr(e)
        saved = self.counting
        self.count(OUT_OPS, sum(1 for n in walk(node) if n.op in _ALU)
                   - sum(1 for n in walk(e) if n.op in _ALU))
        self.counting = saved
        return value

    def cast(self, a: ir.Value, src: str, dst: str) -> ir.Value:
        b = self.b
        if src == dst or {src, dst} == {"i32", "u32"}:
            return a
        if dst == "bool":
            if src in ("f32", "f64"):
                return b.fcmp_unordered("!=", a, ir.Constant(VALUE[src], 0.0))
            return b.icmp_unsigned("!=", a, ir.Constant(VALUE[src], 0))
        if src == "bool":
            return b.zext(a, I32) if dst in ("i32", "u32") else b.uitofp(a, VALUE[dst])
        if src in ("i32", "u32"):
            if dst in ("f32", "f64"):
                return b.sitofp(a, VALUE[dst]) if src == "i32" else b.uitofp(a, VALUE[dst])
        if src in ("f32", "f64"):
            if dst in ("i32", "u32"):
                return self._float_to_int(a, src, dst)
            return b.fpext(a, F64) if dst == "f64" else b.fptrunc(a, F32)
        raise AssertionError(f"cast {src} -> {dst}")

    def _float_to_int(self, a: ir.Value, src: str, dst: str) -> ir.Value:
        """``llvm.fpto[su]i.sat`` (truncation toward zero, saturating, NaN to 0) as compares
        and selects around a conversion of a value clamped into range: the same result for
        every input, and code LLVM vectorises with the loop around it (on x86 it scalarises
        the intrinsic, a branch per lane: a histogram's bin index ran at half speed)."""
        b = self.b
        t = VALUE[src]
        signed = dst == "i32"
        lo, top = (-2.0 ** 31, 2.0 ** 31) if signed else (0.0, 2.0 ** 32)
        # The largest value below ``top`` the float type holds (f32: 2**31 - 128, 2**32 - 256).
        hi = top - (2.0 ** (7 if signed else 8) if src == "f32" else 1.0)
        c = b.select(b.fcmp_ordered(">", a, ir.Constant(t, lo)), a, ir.Constant(t, lo))
        c = b.select(b.fcmp_ordered("<", c, ir.Constant(t, hi)), c, ir.Constant(t, hi))
        r = b.fptosi(c, I32) if signed else b.fptoui(c, I32)
        r = b.select(b.fcmp_ordered(">=", a, ir.Constant(t, top)),
                     ir.Constant(I32, 2 ** 31 - 1 if signed else 2 ** 32 - 1), r)
        return b.select(b.fcmp_unordered("uno", a, a), ir.Constant(I32, 0), r)

    def unary(self, op: Op, a: ir.Value, kind: str) -> ir.Value:
        b = self.b
        t = VALUE[kind]
        flt = kind in ("f32", "f64")
        if op is Op.NEG:
            return b.fneg(a) if flt else b.sub(ir.Constant(t, 0), a)
        if op is Op.NOT:
            return b.xor(a, ir.Constant(I1, 1))
        if op is Op.BITNOT:
            return b.xor(a, ir.Constant(t, -1))
        if op is Op.ABS:
            if flt:
                return b.call(self.intrinsic("llvm.fabs", t), [a])
            if kind == "u32":
                return a
            negative = b.icmp_signed("<", a, ir.Constant(t, 0))
            return b.select(negative, b.sub(ir.Constant(t, 0), a), a)
        if op is Op.SIGN:
            zero = ir.Constant(t, 0.0 if flt else 0)
            if flt:
                one, minus = ir.Constant(t, 1.0), ir.Constant(t, -1.0)
                # numpy: 1 above zero, -1 below, 0 for either zero, NaN for NaN.
                r = b.select(b.fcmp_ordered("==", a, zero), zero, a)
                r = b.select(b.fcmp_ordered("<", a, zero), minus, r)
                return b.select(b.fcmp_ordered(">", a, zero), one, r)
            if kind == "u32":
                return b.zext(b.icmp_unsigned("!=", a, zero), I32)
            pos = b.zext(b.icmp_signed(">", a, zero), I32)
            neg = b.zext(b.icmp_signed("<", a, zero), I32)
            return b.sub(pos, neg)
        if op is Op.RSQRT:
            return b.fdiv(ir.Constant(t, 1.0), b.call(self.intrinsic("llvm.sqrt", t), [a]))
        if op in _INTRINSIC:
            return b.call(self.intrinsic(_INTRINSIC[op], t), [a])
        if op in _LIBM:
            return b.call(self.libm(_LIBM[op], t), [a])
        raise AssertionError(f"unexpected unary {op}")

    def compare(self, op: Op, x: ir.Value, y: ir.Value, kind: str) -> ir.Value:
        b = self.b
        if kind in ("f32", "f64"):
            if op is Op.NE:
                return b.fcmp_unordered("!=", x, y)
            return b.fcmp_ordered(_ICMP[op], x, y)
        if kind == "i32":
            return b.icmp_signed(_ICMP[op], x, y)
        return b.icmp_unsigned(_ICMP[op], x, y)

    def binary(self, op: Op, x: ir.Value, y: ir.Value, kind: str, node: Node) -> ir.Value:
        b = self.b
        t = VALUE[kind]
        flt = kind in ("f32", "f64")
        if op is Op.ADD:
            return b.fadd(x, y) if flt else b.add(x, y)
        if op is Op.SUB:
            return b.fsub(x, y) if flt else b.sub(x, y)
        if op is Op.MUL:
            return b.fmul(x, y) if flt else b.mul(x, y)
        if op in (Op.DIV, Op.MOD):
            if flt:
                return b.fdiv(x, y) if op is Op.DIV else b.frem(x, y)
            return self.int_divmod(op, x, y, kind, node)
        if op in (Op.MIN, Op.MAX):
            if flt:
                # numpy's minimum/maximum: NaN in either operand gives NaN.
                pick = b.fcmp_ordered("<" if op is Op.MIN else ">", x, y)
                pick = b.or_(pick, b.fcmp_unordered("uno", x, x))
                return b.select(pick, x, y)
            cmp = b.icmp_signed if kind == "i32" else b.icmp_unsigned
            return b.select(cmp("<" if op is Op.MIN else ">", x, y), x, y)
        if op is Op.POW:
            return b.call(self.intrinsic("llvm.pow", t, 2), [x, y])
        if op is Op.ATAN2:
            return b.call(self.libm("atan2", t, 2), [x, y])
        if op is Op.BITAND:
            return b.and_(x, y)
        if op is Op.BITOR:
            return b.or_(x, y)
        if op is Op.BITXOR:
            return b.xor(x, y)
        if op in (Op.SHL, Op.SHR):
            amount = b.and_(y, ir.Constant(I32, 31))
            if op is Op.SHL:
                return b.shl(x, amount)
            return b.ashr(x, amount) if kind == "i32" else b.lshr(x, amount)
        raise AssertionError(f"unexpected binary {op}")

    def int_divmod(self, op: Op, x: ir.Value, y: ir.Value, kind: str, node: Node) -> ir.Value:
        b = self.b
        what = "division" if op is Op.DIV else "modulo"
        site = self.site(Site("div", self.where(node), what))
        self.check(b.icmp_unsigned("!=", y, ir.Constant(I32, 0)), site, [])
        if kind == "u32":
            return b.udiv(x, y) if op is Op.DIV else b.urem(x, y)
        # INT_MIN / -1 traps on x86: divide by 1 instead and fix the result (it wraps).
        minus = b.icmp_signed("==", y, ir.Constant(I32, -1))
        safe = b.select(minus, ir.Constant(I32, 1), y)
        if op is Op.DIV:
            return b.select(minus, b.sub(ir.Constant(I32, 0), x), b.sdiv(x, safe))
        return b.select(minus, ir.Constant(I32, 0), b.srem(x, safe))

    def logical(self, node: Node) -> ir.Value:
        b = self.b
        x = self.expr(node.args[0])
        self.count(OUT_OPS, 1)
        start = b.block
        rhs, merge = self.new_block(), self.new_block()
        if node.op is Op.LAND:
            b.cbranch(x, rhs, merge)
        else:
            b.cbranch(x, merge, rhs)
        b.position_at_end(rhs)
        y = self.expr(node.args[1])
        rhs_end = b.block
        b.branch(merge)
        b.position_at_end(merge)
        phi = b.phi(I1)
        phi.add_incoming(x, start)
        phi.add_incoming(y, rhs_end)
        return phi

    def select(self, node: Node) -> ir.Value:
        b = self.b
        if id(node) in self.always:
            # Proven true for every item: the condition's operations are counted as
            # evaluated (they are pure: affine comparisons), the select's too.
            self.count(OUT_OPS, sum(1 for n in walk(node.args[0]) if n.op in _ALU) + 1)
            self.proven_selects += 1
            return self.expr(node.args[1])
        c = self.expr(node.args[0])
        self.count(OUT_OPS, 1)
        then, other, merge = self.new_block(), self.new_block(), self.new_block()
        b.cbranch(c, then, other)
        b.position_at_end(then)
        x = self.expr(node.args[1])
        then_end = b.block
        b.branch(merge)
        b.position_at_end(other)
        y = self.expr(node.args[2])
        other_end = b.block
        b.branch(merge)
        b.position_at_end(merge)
        phi = b.phi(VALUE[node.type.kind])
        phi.add_incoming(x, then_end)
        phi.add_incoming(y, other_end)
        return phi

    # ------------------------------------------------------------------------------
    # memory
    # ------------------------------------------------------------------------------
    def _in_range(self, index: ir.Value, bound: ir.Value) -> ir.Value:
        """0 <= index < bound for an i32 index and an i64 bound."""
        return self.b.icmp_unsigned("<", self.b.sext(index, I64), bound)

    def buffer_ptr(self, node: Node, name: str, lane: int, index: ir.Value,
                   access: str) -> ir.Value:
        b = self.b
        ptr, length = self.mem[name]
        if self.spec.checked and id(node) not in self.proven:
            site = self.site(Site("oob", self.where(node), name, access))
            self.check(self._in_range(index, length), site, [index])
        lanes = self.decls[name].type.lanes
        flat = b.sext(index, I64)
        if lanes != 1:
            flat = b.add(b.mul(flat, ir.Constant(I64, lanes)), ir.Constant(I64, lane))
        return b.gep(ptr, [flat])

    def image_ptr(self, node: Node, name: str, lane: int, x: ir.Value, y: ir.Value,
                  access: str) -> ir.Value:
        b = self.b
        ptr, w, h = self.mem[name]
        if self.spec.checked and id(node) not in self.proven:
            site = self.site(Site("oob", self.where(node), name, access, 2))
            self.check(b.and_(self._in_range(x, w), self._in_range(y, h)), site, [x, y])
        lanes = self.decls[name].type.lanes
        flat = b.add(b.mul(b.sext(y, I64), w), b.sext(x, I64))
        if lanes != 1:
            flat = b.add(b.mul(flat, ir.Constant(I64, lanes)), ir.Constant(I64, lane))
        return b.gep(ptr, [flat])

    def array_ptr(self, node: Node, name: str, indices: list[ir.Value],
                  access: str) -> tuple[ir.Value, str]:
        b = self.b
        decl = self.decls[name]
        shape = decl.type.shape
        if self.spec.checked and id(node) not in self.proven:
            site = self.site(Site("oob", self.where(node), name, access, len(shape)))
            ok = None
            for i, dim in zip(indices, shape):
                c = b.icmp_unsigned("<", i, ir.Constant(I32, dim))
                ok = c if ok is None else b.and_(ok, c)
            self.check(ok, site, indices)
        lin: ir.Value = b.sext(indices[0], I64)
        for i, dim in zip(indices[1:], shape[1:]):
            lin = b.add(b.mul(lin, ir.Constant(I64, dim)), b.sext(i, I64))
        if decl.space == CONSTANT:
            return b.gep(self.const_arrays[name], [ir.Constant(I64, 0), lin]), ""
        if decl.space == SHARED:
            return b.gep(self.shared[name], [lin]), f"s.{name}"
        if name in self.context:
            row = b.mul(self.item.wi, ir.Constant(I64, math.prod(shape)))
            return b.gep(self.context[name], [b.add(row, lin)]), f"x.{name}"
        return b.gep(self.private[name], [lin]), f"p.{name}"

    def load(self, node: Node) -> ir.Value:
        name, lane = node.arg
        index = self.expr(node.args[0])
        ptr = self.buffer_ptr(node, name, lane, index, "read")
        self.count(OUT_READ, SIZE[node.type.kind])
        return self.from_memory(self.tag(self.b.load(ptr), "buffers"), node.type.kind)

    def iload(self, node: Node) -> ir.Value:
        name, lane = node.arg
        x = self.expr(node.args[0])
        y = self.expr(node.args[1])
        ptr = self.image_ptr(node, name, lane, x, y, "read")
        self.count(OUT_READ, SIZE[node.type.kind])
        return self.from_memory(self.tag(self.b.load(ptr), "buffers"), node.type.kind)

    def aload(self, node: Node) -> ir.Value:
        indices = [self.expr(a) for a in node.args]
        ptr, obj = self.array_ptr(node, node.arg, indices, "read")
        return self.from_memory(self.tag(self.b.load(ptr), obj), node.type.kind)

    # ------------------------------------------------------------------------------
    # statements (per work item)
    # ------------------------------------------------------------------------------
    def stmt(self, node: Node, labels: dict[str, tuple[ir.Block, ir.Block | None]]) -> None:
        outer, self.line = self.line, node.line or self.line
        try:
            self._stmt(node, labels)
        finally:
            self.line = outer

    def _stmt(self, node: Node, labels: dict[str, tuple[ir.Block, ir.Block | None]]) -> None:
        b = self.b
        op = node.op
        if op is Op.BLOCK:
            inner = labels
            end = None
            if node.arg is not None:
                end = self.new_block()
                inner = {**labels, node.arg: (end, None)}
            before = None
            for s in node.args:
                self._before = before
                self.stmt(s, inner)
                before = s
            if end is not None:
                if not self.terminated():
                    b.branch(end)
                b.position_at_end(end)
        elif op is Op.ASSIGN and id(node) in self.count_only:
            self.expr(node.args[0])  # its work, per live item; the group level stored it
        elif op is Op.ASSIGN:
            b.store(self.expr(node.args[0]), self.slots[node.arg])
        elif op is Op.STORE:
            name, lane = node.arg
            index = self.expr(node.args[0])
            value = self.expr(node.args[1])
            ptr = self.buffer_ptr(node, name, lane, index, "write")
            self.count(OUT_WRITTEN, SIZE[node.args[1].type.kind])
            self.tag(b.store(self.to_memory(value, node.args[1].type.kind), ptr), "buffers")
        elif op is Op.ISTORE:
            name, lane = node.arg
            x = self.expr(node.args[0])
            y = self.expr(node.args[1])
            value = self.expr(node.args[2])
            ptr = self.image_ptr(node, name, lane, x, y, "write")
            self.count(OUT_WRITTEN, SIZE[node.args[2].type.kind])
            self.tag(b.store(self.to_memory(value, node.args[2].type.kind), ptr), "buffers")
        elif op is Op.ASTORE:
            indices = [self.expr(a) for a in node.args[:-1]]
            value = self.expr(node.args[-1])
            ptr, obj = self.array_ptr(node, node.arg, indices, "write")
            self.tag(b.store(self.to_memory(value, node.args[-1].type.kind), ptr), obj)
        elif op is Op.ATOMIC:
            self.atomic(node)
        elif op is Op.IF and id(node) in self.never:
            # Proven false for every item: every operand of the || is evaluated.
            self.count(OUT_OPS, sum(1 for n in walk(node.args[0])
                                    if n.op in _ALU or n.op is Op.LOR))
        elif op is Op.IF:
            c = self.expr(node.args[0])
            then, merge = self.new_block(), self.new_block()
            other = self.new_block() if node.args[2].args else merge
            b.cbranch(c, then, other)
            b.position_at_end(then)
            self.stmt(node.args[1], labels)
            if not self.terminated():
                b.branch(merge)
            if other is not merge:
                b.position_at_end(other)
                self.stmt(node.args[2], labels)
                if not self.terminated():
                    b.branch(merge)
            b.position_at_end(merge)
        elif op is Op.LOOP:
            short = self.short_loop(node, self._before)
            if not short:
                self.wide += 1
            try:
                self._loop(node, labels)
            finally:
                if not short:
                    self.wide -= 1
        elif op is Op.BREAK:
            b.branch(labels[node.arg][0])
            self.dead()
        elif op is Op.CONTINUE:
            target = labels[node.arg][1]
            assert target is not None  # the verifier: continue targets a loop
            b.branch(target)
            self.dead()
        elif op is Op.RETURN:
            b.branch(self.item.ret)
            self.dead()
        elif op is Op.BARRIER:
            pass  # regions hold no barrier; the analysis cut the body at each one
        else:
            raise AssertionError(f"unexpected statement {op}")

    def _loop(self, node: Node, labels: dict[str, tuple[ir.Block, ir.Block | None]]) -> None:
        b = self.b
        head, body, step, exit_ = (self.new_block() for _ in range(4))
        b.branch(head)
        b.position_at_end(head)
        c = self.expr(node.args[0])
        b.cbranch(c, body, exit_)
        b.position_at_end(body)
        self.stmt(node.args[1], {**labels, node.arg: (exit_, step)})
        if not self.terminated():
            b.branch(step)
        b.position_at_end(step)
        # A continue inside the step goes on to the condition.
        self.stmt(node.args[2], {**labels, node.arg: (exit_, head)})
        if not self.terminated():
            b.branch(head)
        b.position_at_end(exit_)

    def atomic(self, node: Node) -> None:
        b = self.b
        kind, name, result = node.arg
        elem = self.decls[name].type.elem
        index = self.expr(node.args[0])
        values = [self.expr(a) for a in node.args[1:]]
        ptr = self.buffer_ptr(node, name, 0, index, f"atomic_{kind}")
        self.count(OUT_OPS, 1)
        self.count(OUT_READ, SIZE[elem])
        self.count(OUT_WRITTEN, SIZE[elem])
        if name in self.spec.private:
            old = b.load(ptr)
            b.store(self.combine(kind, elem, old, values), ptr)
        elif elem in ("i32", "u32") and kind != "cmpxchg":
            rmw = {"add": "add", "sub": "sub", "exchange": "xchg",
                   "min": "min" if elem == "i32" else "umin",
                   "max": "max" if elem == "i32" else "umax"}[kind]
            old = b.atomic_rmw(rmw, ptr, values[0], "seq_cst")
        elif elem in ("i32", "u32"):
            pair = b.cmpxchg(ptr, values[0], values[1], "seq_cst", "seq_cst")
            old = b.extract_value(pair, 0)
        elif kind == "exchange":
            bits = b.atomic_rmw("xchg", b.bitcast(ptr, I32.as_pointer()),
                                b.bitcast(values[0], I32), "seq_cst")
            old = b.bitcast(bits, F32)
        else:
            old = self.cas_loop(ptr, lambda cur: self.combine(kind, elem, cur, values))
        if result is not None:
            b.store(old, self.slots[result])

    def combine(self, kind: str, elem: str, cur: ir.Value, values: list[ir.Value]) -> ir.Value:
        """The new value of an element after one atomic (as interp.atomics._combine)."""
        b = self.b
        flt = elem == "f32"
        if kind == "add":
            return b.fadd(cur, values[0]) if flt else b.add(cur, values[0])
        if kind == "sub":
            return b.fsub(cur, values[0]) if flt else b.sub(cur, values[0])
        if kind in ("min", "max"):
            op = Op.MIN if kind == "min" else Op.MAX
            return self.binary(op, cur, values[0], elem, Node(op))
        if kind == "exchange":
            return values[0]
        expected, new = values
        same = (b.fcmp_ordered("==", cur, expected) if flt
                else b.icmp_unsigned("==", cur, expected))
        return b.select(same, new, cur)

    def cas_loop(self, ptr: ir.Value, update: Callable[[ir.Value], ir.Value]) -> ir.Value:
        """An atomic read-modify-write of an f32 by compare-and-swap on its bits."""
        b = self.b
        iptr = b.bitcast(ptr, I32.as_pointer())
        start = b.block
        first = b.load_atomic(iptr, "monotonic", 4)
        head, done = self.new_block(), self.new_block()
        b.branch(head)
        b.position_at_end(head)
        bits = b.phi(I32)
        bits.add_incoming(first, start)
        cur = b.bitcast(bits, F32)
        new = b.bitcast(update(cur), I32)
        pair = b.cmpxchg(iptr, bits, new, "seq_cst", "seq_cst")
        seen = b.extract_value(pair, 0)
        bits.add_incoming(seen, b.block)
        b.cbranch(b.extract_value(pair, 1), done, head)
        b.position_at_end(done)
        return cur


def _wrap32(v: int) -> int:
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _const_eval(node: Node, known: dict[str, Any], block: tuple[int, int, int]) -> Any:
    """The value of an i32 or bool expression made of constants, known locals and the block
    size, with the IR's semantics (wrapping i32, C division); None when it is not one."""
    op, kind = node.op, node.type.kind
    if kind not in ("i32", "bool"):
        return None
    if op is Op.CONST:
        return bool(node.arg) if kind == "bool" else _wrap32(int(node.arg))
    if op is Op.VAR:
        return known.get(node.arg)
    if op is Op.SPECIAL:
        what, _, axis = node.arg.partition(".")
        return block["xyz".index(axis)] if what == "group_size" else None
    args = [_const_eval(a, known, block) for a in node.args]
    if any(a is None for a in args):
        return None
    if op is Op.NOT and len(args) == 1:
        return not args[0]
    if len(args) != 2:
        return None
    x, y = args
    if op in (Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE):
        return {Op.LT: x < y, Op.LE: x <= y, Op.GT: x > y, Op.GE: x >= y, Op.EQ: x == y,
                Op.NE: x != y}[op]
    if op is Op.LAND:
        return x and y
    if op is Op.LOR:
        return x or y
    if op in (Op.ADD, Op.SUB, Op.MUL):
        return _wrap32(x + y if op is Op.ADD else x - y if op is Op.SUB else x * y)
    if op in (Op.DIV, Op.MOD) and y != 0:
        q = abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1)  # C: toward zero
        return _wrap32(q) if op is Op.DIV else _wrap32(x - q * y)
    return None


def _arrays_used(stmts: list[Node]) -> set[str]:
    """The arrays (private or shared) that ``stmts`` read or write."""
    return {n.arg for s in stmts for n in walk(s) if n.op in (Op.ALOAD, Op.ASTORE)}


def _nodes(stmts: list[Node]) -> list[Node]:
    return [n for s in stmts for n in walk(s)]


def _has(stmts: list[Node], op: Op) -> bool:
    return any(n.op is op for n in _nodes(stmts))


def _has_writes(stmts: list[Node], shared: Collection[str]) -> bool:
    """Whether ``stmts`` write memory other items or the host see: buffers, images, the
    ``shared`` arrays (not the item's locals or private arrays)."""
    return any(n.op in (Op.STORE, Op.ISTORE, Op.ATOMIC) or (n.op is Op.ASTORE and n.arg in shared)
               for n in _nodes(stmts))


def _eager(node: Node) -> bool:
    """Whether evaluating ``node`` evaluates every node under it (no select, ``&&`` or
    ``||``, which evaluate only some of their operands): then the work it counts is that of
    every operation in it, wherever it is left out."""
    return not any(n.op in (Op.SELECT, Op.LAND, Op.LOR) for n in walk(node))


def generate(kernel: Kernel, plan: Plan, spec: Spec, symbol: str) -> tuple[str, KernelMeta]:
    """LLVM IR text of ``kernel`` (verified, planned) for ``spec``, and its metadata."""
    return Codegen(kernel, plan, spec, symbol).generate()


__all__ = ["KernelMeta", "OUT_GID", "OUT_INDEX", "OUT_SITE", "OUT_SLOTS", "Site", "Spec",
           "generate"]
