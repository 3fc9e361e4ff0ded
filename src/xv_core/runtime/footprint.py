"""Tile footprints: which pages of which buffers a tile reads and writes (bounds inference).

The scheduler needs, for each tile of a dispatch, the pages of each buffer argument it may
touch: to move only those to the component that runs it, to make only those resident in VRAM,
and to order tiles of later dispatches after the ones that wrote what they read.  As Halide
does, the footprint is derived from the IR by **interval arithmetic**: every integer value is
bounded by an interval, starting from the ranges the tile gives the work-item ids
(``global_id``, ``local_id``, ``group_id`` over the tile's workgroups), the dispatch's scalar
arguments and buffer sizes (exact values), and loop variables (bounded by their loop
conditions).  An index is then bounded by evaluating its expression over intervals; a buffer
access ``x[i]`` touches the elements of ``i``'s interval, an image access ``img[x, y]`` the
window of ``x``'s and ``y``'s intervals.

This is an abstract interpretation of the kernel over intervals:

* assignments update a local's interval; ``if`` and loop conditions *refine* intervals
  (``if (i < x.length)`` bounds ``i`` by the length in the branch, a ``return`` under
  ``x >= width`` bounds ``x`` after it); ``break``, ``continue`` and ``return`` are followed;
* a counted loop (``for (i = a; i < n; i += c)`` with ``n`` unchanged by the loop, no
  ``break``) gives its variable its whole range in the body at once: ``dy`` in [-2, 2] for
  ``for (i32 dy = -2; dy <= 2; dy += 1)``; any loop is then iterated to a fixed point,
  widening a bound that keeps growing to its type's limit after a few exact iterations (the
  loop condition then bounds it again);
* ``min``, ``max`` (and so ``clamp``), ``+ - *``, division and remainder by constants, shifts,
  masks and casts have their interval rules; a value that may overflow its type (i32 wraps)
  becomes the whole type range, which keeps the analysis sound;
* values loaded from memory are unknown (their type's whole range): an index that depends on
  data (``bins[b]`` with ``b`` computed from ``values[i]``) is unbounded unless clamped.

An access whose interval stays within the type's limits is *inferred*; otherwise its buffer's
footprint **falls back to the whole buffer**.  Intervals are clipped to the buffer (an access
outside it is a kernel error, never a footprint).  Bytes become pages of ``page_size`` bytes
from the start of the buffer.

Each tile is a run of workgroups in linear order (x fastest); it is cut into at most five boxes
of group coordinates (a partial row, whole rows, whole planes, ...) and each box is analysed on
its own, so a tile of whole rows of an image gets exactly its rows (plus any halo the kernel
reads).  The result is sound (every element a work item of the tile may touch is inside it) and
as tight as intervals allow; ``docs/scheduling.md`` has examples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from xv_core.ir import BINARY, COMPARE, CONSTANT, LOCAL, PARAM, UNARY, Kernel, Node, Op
from xv_core.runtime.interfaces import Launch, Tile

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
U32_MAX = (1 << 32) - 1
#: Each int type's whole range: an interval that reaches one of these ends is not bounded.
TYPE_RANGE: dict[str, tuple[int, int]] = {
    "i32": (I32_MIN, I32_MAX), "u32": (0, U32_MAX), "bool": (0, 1),
}
#: Iterations of a loop joined exactly before bounds that still move are widened: enough for
#: short loops (a 5-tap window, a loop left by ``break`` at a small count) to converge exactly.
JOIN_ITERATIONS = 4
#: Fixed-point iterations of one loop before every local it assigns is given up (never reached
#: in practice: widening ends the climb a few iterations after the exact ones).
MAX_LOOP_ITERATIONS = 32
#: Conditions refined per outermost refinement (see KernelAnalysis._refine), at most.
MAX_REFINE_STEPS = 4096
#: Operations a backend counts (as ``interp`` does): arithmetic, comparisons, casts, the lazy
#: operators and atomics; reads, writes and assignments move bytes but are not operations.
_COUNTED = UNARY | BINARY | COMPARE | {Op.CAST, Op.LAND, Op.LOR, Op.SELECT, Op.ATOMIC}
#: Trip count assumed for a loop whose count the analysis cannot bound (work estimates only).
UNKNOWN_TRIPS = 8

Interval = tuple[int, int]
State = dict[str, Interval]


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@attrs.frozen
class BufferFootprint:
    """What one tile touches of one buffer or image argument: page ranges ``[start, stop)``,
    sorted and disjoint, that it may read and that it may write.  ``inferred`` is False when
    some access could not be bounded and the footprint fell back to the whole buffer."""

    reads: tuple[tuple[int, int], ...] = ()
    writes: tuple[tuple[int, int], ...] = ()
    inferred: bool = True

    @property
    def touched(self) -> tuple[tuple[int, int], ...]:
        """Pages read or written."""
        return merge_ranges(self.reads + self.writes)

    @property
    def read_pages(self) -> int:
        return sum(b - a for a, b in self.reads)

    @property
    def write_pages(self) -> int:
        return sum(b - a for a, b in self.writes)


@attrs.frozen
class TileFootprint:
    """A tile's footprint: by parameter name, what it touches of each buffer argument."""

    buffers: Mapping[str, BufferFootprint]

    def __getitem__(self, param: str) -> BufferFootprint:
        return self.buffers.get(param, BufferFootprint())


@attrs.frozen
class WorkEstimate:
    """Operations and bytes one work item is expected to do, from the IR (loops weighted by
    their trip counts as the analysis bounds them; both sides of a branch counted as the
    costlier one).  The scheduler's first guess of a tile's work, before any was counted."""

    ops: float
    bytes: float


# --------------------------------------------------------------------------
# Interval arithmetic
# --------------------------------------------------------------------------


def _hull(a: Interval, b: Interval) -> Interval:
    return (a[0] if a[0] < b[0] else b[0], a[1] if a[1] > b[1] else b[1])


def _tdiv(a: int, b: int) -> int:
    """C division: truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _fit(kind: str, iv: Interval) -> Interval:
    """``iv`` if it fits the type, else the type's whole range (the value may wrap)."""
    lo, hi = TYPE_RANGE[kind]
    if iv[0] < lo or iv[1] > hi:
        return lo, hi
    return iv


def _binary(op: Op, kind: str, a: Interval, b: Interval) -> Interval:
    full = TYPE_RANGE[kind]
    if op is Op.ADD:
        return _fit(kind, (a[0] + b[0], a[1] + b[1]))
    if op is Op.SUB:
        return _fit(kind, (a[0] - b[1], a[1] - b[0]))
    if op is Op.MUL:
        corners = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
        return _fit(kind, (min(corners), max(corners)))
    if op is Op.MIN:
        return (min(a[0], b[0]), min(a[1], b[1]))
    if op is Op.MAX:
        return (max(a[0], b[0]), max(a[1], b[1]))
    if op is Op.DIV:
        if b[0] > 0 or b[1] < 0:  # the divisor's sign is known: monotone in each operand
            corners = [_tdiv(x, y) for x in a for y in b]
            return _fit(kind, (min(corners), max(corners)))
        return full
    if op is Op.MOD:
        if b[0] > 0 or b[1] < 0:
            m = max(abs(b[0]), abs(b[1]))
            if b[0] == b[1] and a[0] >= 0 and a[1] - a[0] < m and a[0] % m <= a[1] % m:
                return (a[0] % m, a[1] % m)
            if a[0] >= 0:
                return (0, min(a[1], m - 1))
            if a[1] <= 0:
                return (max(a[0], 1 - m), 0)
            return (1 - m, m - 1)
        return full
    if op is Op.SHL:
        if b[0] == b[1] and 0 <= b[0] < 32:
            return _fit(kind, (a[0] << b[0], a[1] << b[0]))
        return full
    if op is Op.SHR:
        if b[0] == b[1] and 0 <= b[0] < 32 and (a[0] >= 0 or kind == "i32"):
            return (a[0] >> b[0], a[1] >> b[0])
        return full
    if op is Op.BITAND:
        if a[0] >= 0 and b[0] >= 0:
            return (0, min(a[1], b[1]))
        if a[0] >= 0 or b[0] >= 0:
            return (0, a[1] if a[0] >= 0 else b[1])
        return full
    if op in (Op.BITOR, Op.BITXOR):
        if a[0] >= 0 and b[0] >= 0:
            return _fit(kind, (0, (1 << max(a[1], b[1]).bit_length()) - 1))
        return full
    return full


def _constrain(x: Interval, rel: Op, y: Interval) -> Interval | None:
    """The part of ``x`` that can stand in relation ``rel`` to some value of ``y``; None when
    none can."""
    lo, hi = x
    if rel is Op.LT:
        hi = min(hi, y[1] - 1)
    elif rel is Op.LE:
        hi = min(hi, y[1])
    elif rel is Op.GT:
        lo = max(lo, y[0] + 1)
    elif rel is Op.GE:
        lo = max(lo, y[0])
    elif rel is Op.EQ:
        lo, hi = max(lo, y[0]), min(hi, y[1])
    elif rel is Op.NE and y[0] == y[1]:
        if lo == y[0]:
            lo += 1
        if hi == y[0]:
            hi -= 1
    return (lo, hi) if lo <= hi else None


_NEGATE = {Op.LT: Op.GE, Op.LE: Op.GT, Op.GT: Op.LE, Op.GE: Op.LT, Op.EQ: Op.NE, Op.NE: Op.EQ}
_MIRROR = {Op.LT: Op.GT, Op.LE: Op.GE, Op.GT: Op.LT, Op.GE: Op.LE, Op.EQ: Op.EQ, Op.NE: Op.NE}


def _join(a: State | None, b: State | None) -> State | None:
    """The least state holding both (a local missing from either is unbounded)."""
    if a is None:
        return b
    if b is None:
        return a
    return {k: _hull(v, b[k]) for k, v in a.items() if k in b}


def _join_all(first: State | None, others: Iterable[State | None]) -> State | None:
    out = first
    for s in others:
        out = _join(out, s)
    return out


def _within(a: State | None, b: State | None) -> bool:
    """Every value ``a`` allows, ``b`` allows too."""
    if a is None:
        return True
    if b is None:
        return False
    for k, (lo, hi) in b.items():
        v = a.get(k)
        if v is None or v[0] < lo or v[1] > hi:
            return False
    return True


# --------------------------------------------------------------------------
# The analysis
# --------------------------------------------------------------------------


class _Access:
    """The accesses of one analysis: per parameter, mode ("r" or "w") and access site (the IR
    node), the hull of the index intervals (one per dimension) the site was reached with --
    a site in a loop is reached once per fixed-point iteration."""

    def __init__(self) -> None:
        self.sites: dict[tuple[str, str, int], tuple[Interval, ...]] = {}

    def add(self, name: str, mode: str, index: tuple[Interval, ...], site: Node) -> None:
        key = (name, mode, id(site))
        old = self.sites.get(key)
        self.sites[key] = index if old is None else tuple(map(_hull, old, index))

    @property
    def found(self) -> dict[tuple[str, str], set[tuple[Interval, ...]]]:
        out: dict[tuple[str, str], set[tuple[Interval, ...]]] = {}
        for (name, mode, _site), index in self.sites.items():
            out.setdefault((name, mode), set()).add(index)
        return out


class KernelAnalysis:
    """Bounds inference for one kernel with one dispatch's arguments.

    ``scalars`` maps scalar parameters to their values; ``shapes`` buffer and image parameters
    to their array shapes (a ``vec4`` buffer is ``(n, 4)``, an image ``(height, width[, 4])``).
    """

    def __init__(self, kernel: Kernel, scalars: Mapping[str, Any],
                 shapes: Mapping[str, tuple[int, ...]]):
        self.kernel = kernel
        self.kinds: dict[str, str] = {}  # int-like locals and params: their type
        self.consts: dict[str, Interval] = {}  # scalar params and constant int arrays
        for d in kernel.all_decls():
            kind = d.type.kind
            if d.space == PARAM and kind in TYPE_RANGE:
                value = scalars.get(d.name)
                if value is not None:
                    v = int(value)
                    self.consts[d.name] = (v, v)
            elif d.space == LOCAL and kind in TYPE_RANGE:
                self.kinds[d.name] = kind
            elif d.space == CONSTANT and d.type.elem in ("i32", "u32") and d.init:
                values = [int(v) for v in d.init]
                self.consts[d.name] = (min(values), max(values))
        self.shapes = {k: tuple(int(n) for n in v) for k, v in shapes.items()}
        self.trips: dict[int, int] = {}  # id(loop node) -> largest trip count seen
        self._counted_loops: dict[int, tuple[str, int, Op, Node] | None] = {}
        self._specials: dict[str, Interval] = {}
        self._access = _Access()
        self._breaks: dict[str, list[State | None]] = {}
        self._continues: dict[str, list[State | None]] = {}
        self._refine_memo: dict[tuple[int, bool, int], tuple[State, State | None]] | None = None
        self._refine_steps = 0

    # -- entry -------------------------------------------------------------
    def box(self, launch: Launch, groups: Sequence[tuple[int, int]]) -> _Access:
        """Analyse the work items of the workgroups ``groups[axis] = (first, last)``."""
        sp: dict[str, Interval] = {}
        for i, axis in enumerate("xyz"):
            g0, g1 = groups[i]
            b = launch.block[i]
            sp[f"group_id.{axis}"] = (g0, g1)
            sp[f"local_id.{axis}"] = (0, b - 1)
            sp[f"global_id.{axis}"] = (g0 * b, g1 * b + b - 1)
            sp[f"group_size.{axis}"] = (b, b)
            sp[f"num_groups.{axis}"] = (launch.grid[i], launch.grid[i])
        self._specials = sp
        self._access = _Access()
        self._breaks.clear()
        self._continues.clear()
        self._stmt(self.kernel.body, {})
        return self._access

    # -- expressions --------------------------------------------------------
    def _ev(self, node: Node, st: State) -> Interval | None:
        """The interval of an int or bool expression (None for floats), recording accesses."""
        op = node.op
        kind = node.type.kind
        if op is Op.CONST:
            if kind in TYPE_RANGE:
                v = int(node.arg)
                return (v, v)
            return None
        if op is Op.VAR:
            name = node.arg
            if name in self.consts:
                return self.consts[name]
            if kind in TYPE_RANGE:
                return st.get(name, TYPE_RANGE[kind])
            return None
        if op is Op.SPECIAL:
            return self._specials[node.arg]
        if op is Op.LENGTH:
            n = self.shapes.get(node.arg, (None,))[0]
            return (n, n) if n is not None else TYPE_RANGE["i32"]
        if op in (Op.WIDTH, Op.HEIGHT):
            shape = self.shapes.get(node.arg)
            if shape is None or len(shape) < 2:
                return TYPE_RANGE["i32"]
            n = shape[1] if op is Op.WIDTH else shape[0]
            return (n, n)
        if op is Op.LOAD:
            index = self._ev(node.args[0], st)
            self._access.add(node.arg[0], "r", (index or TYPE_RANGE["i32"],), node)
            return TYPE_RANGE[kind] if kind in TYPE_RANGE else None
        if op is Op.ILOAD:
            x, y = self._ev(node.args[0], st), self._ev(node.args[1], st)
            self._access.add(node.arg[0], "r", (x or TYPE_RANGE["i32"], y or TYPE_RANGE["i32"]),
                             node)
            return TYPE_RANGE[kind] if kind in TYPE_RANGE else None
        if op is Op.ALOAD:
            for a in node.args:
                self._ev(a, st)
            if node.arg in self.consts:
                return self.consts[node.arg]
            return TYPE_RANGE[kind] if kind in TYPE_RANGE else None
        if op is Op.LAND or op is Op.LOR:
            a, b = node.args
            self._ev(a, st)
            inner = self._refine(st, a, op is Op.LAND)
            if inner is not None:
                self._ev(b, inner)
            return (0, 1)
        if op is Op.SELECT:
            c, a, b = node.args
            self._ev(c, st)
            out: Interval | None = None
            for branch, truth in ((a, True), (b, False)):
                inner = self._refine(st, c, truth)
                if inner is None:
                    continue
                v = self._ev(branch, inner)
                if v is None:
                    out = None if kind not in TYPE_RANGE else TYPE_RANGE[kind]
                else:
                    out = v if out is None else _hull(out, v)
            if kind not in TYPE_RANGE:
                return None
            return out if out is not None else TYPE_RANGE[kind]
        args = [self._ev(a, st) for a in node.args]
        if kind not in TYPE_RANGE:
            return None
        full = TYPE_RANGE[kind]
        if op in COMPARE or op is Op.NOT:
            return (0, 1)
        if op is Op.CAST:
            src = node.args[0].type.kind
            a = args[0]
            if a is None or src not in TYPE_RANGE:
                return full  # from a float: any value of the type
            return _fit(kind, a)
        if any(a is None for a in args):
            return full
        if op is Op.NEG:
            a = args[0]
            return _fit(kind, (-a[1], -a[0]))
        if op is Op.ABS:
            a = args[0]
            if a[0] >= 0:
                return a
            if a[1] <= 0:
                return _fit(kind, (-a[1], -a[0]))
            return _fit(kind, (0, max(-a[0], a[1])))
        if op is Op.SIGN:
            return (-1 if args[0][0] < 0 else 0 if args[0][0] == 0 else 1,
                    1 if args[0][1] > 0 else 0 if args[0][1] == 0 else -1)
        if op is Op.BITNOT:
            a = args[0]
            return _fit(kind, (-a[1] - 1, -a[0] - 1)) if kind == "i32" else full
        if len(args) == 2:
            return _binary(op, kind, args[0], args[1])
        return full

    # -- conditions ----------------------------------------------------------
    def _refine(self, st: State | None, cond: Node, truth: bool) -> State | None:
        """``st`` where ``cond`` evaluates to ``truth``: None if it cannot.

        An operand of ``&&`` or ``||`` that can take either value is refined both ways, so
        a chain of them would cost 2^length: each (condition, truth, state) is worked out
        once per call (remembered), and past :data:`MAX_REFINE_STEPS` of them a condition
        leaves the state as it is -- wider than it could be, never narrower (the footprint
        stays a superset of what the items touch)."""
        if self._refine_memo is not None:
            return self._refine_once(st, cond, truth)
        self._refine_memo, self._refine_steps = {}, 0
        try:
            return self._refine_once(st, cond, truth)
        finally:
            self._refine_memo = None

    def _refine_once(self, st: State | None, cond: Node, truth: bool) -> State | None:
        if st is None:
            return None
        memo = self._refine_memo
        assert memo is not None
        key = (id(cond), truth, id(st))
        hit = memo.get(key)
        if hit is not None and hit[0] is st:  # (the state is kept in the entry: ids stay)
            return hit[1]
        self._refine_steps += 1
        out = (self._refine_step(st, cond, truth) if self._refine_steps <= MAX_REFINE_STEPS
               else st)
        memo[key] = (st, out)
        return out

    def _refine_step(self, st: State, cond: Node, truth: bool) -> State | None:
        refine = self._refine_once
        op = cond.op
        if op is Op.NOT:
            return refine(st, cond.args[0], not truth)
        if op is Op.LAND or op is Op.LOR:
            a, b = cond.args
            if (op is Op.LAND) == truth:  # both operands take the value
                return refine(refine(st, a, truth), b, truth)
            return _join(refine(st, a, truth), refine(refine(st, a, not truth), b, truth))
        if op is Op.CONST and cond.type.kind == "bool":
            return st if bool(cond.arg) == truth else None
        if op in COMPARE:
            a, b = cond.args
            if a.type.kind not in ("i32", "u32"):
                return st
            rel = op if truth else _NEGATE[op]
            ia = self._pure(a, st)
            ib = self._pure(b, st)
            if ia is None or ib is None:
                return st
            if _constrain(ia, rel, ib) is None:
                return None
            out = st
            for var, other, r in ((a, ib, rel), (b, ia, _MIRROR[rel])):
                if var.op is Op.VAR and var.arg in self.kinds:
                    cur = out.get(var.arg, TYPE_RANGE[self.kinds[var.arg]])
                    new = _constrain(cur, r, other)
                    if new is None:
                        return None
                    if new != cur:
                        out = dict(out)
                        out[var.arg] = new
            return out
        return st

    def _pure(self, node: Node, st: State) -> Interval | None:
        """The interval of a condition's operand, without recording accesses again."""
        saved = self._access
        self._access = _Access()
        try:
            return self._ev(node, st)
        finally:
            self._access = saved

    # -- statements ----------------------------------------------------------
    def _stmt(self, node: Node, st: State | None) -> State | None:
        """The state after ``node`` (None: no work item gets past it)."""
        if st is None:
            return None
        op = node.op
        if op is Op.BLOCK:
            label = node.arg
            if label is not None:
                self._breaks[label] = []
            for s in node.args:
                st = self._stmt(s, st)
                if st is None:
                    break
            if label is not None:
                st = _join_all(st, self._breaks.pop(label))
            return st
        if op is Op.ASSIGN:
            name = node.arg
            value = self._ev(node.args[0], st)
            if name in self.kinds:
                st = dict(st)
                if value is None:
                    st.pop(name, None)
                else:
                    st[name] = _fit(self.kinds[name], value)
            return st
        if op is Op.STORE:
            index = self._ev(node.args[0], st)
            self._ev(node.args[1], st)
            self._access.add(node.arg[0], "w", (index or TYPE_RANGE["i32"],), node)
            return st
        if op is Op.ISTORE:
            x, y = self._ev(node.args[0], st), self._ev(node.args[1], st)
            self._ev(node.args[2], st)
            self._access.add(node.arg[0], "w", (x or TYPE_RANGE["i32"], y or TYPE_RANGE["i32"]),
                             node)
            return st
        if op is Op.ASTORE:
            for a in node.args:
                self._ev(a, st)
            return st
        if op is Op.ATOMIC:
            _kind, buffer, result = node.arg
            index = self._ev(node.args[0], st)
            for a in node.args[1:]:
                self._ev(a, st)
            where = (index or TYPE_RANGE["i32"],)
            self._access.add(buffer, "r", where, node)
            self._access.add(buffer, "w", where, node)
            if result is not None and result in self.kinds:
                st = dict(st)
                st.pop(result, None)
            return st
        if op is Op.IF:
            cond, then, other = node.args
            self._ev(cond, st)
            return _join(self._stmt(then, self._refine(st, cond, True)),
                         self._stmt(other, self._refine(st, cond, False)))
        if op is Op.LOOP:
            return self._loop(node, st)
        if op is Op.BREAK:
            self._breaks.setdefault(node.arg, []).append(st)
            return None
        if op is Op.CONTINUE:
            self._continues.setdefault(node.arg, []).append(st)
            return None
        if op is Op.RETURN:
            return None
        return st  # BARRIER, and anything without integer effects

    def _loop(self, node: Node, entry: State) -> State | None:
        cond, body, step = node.args
        label = node.arg
        counted = self._counted(node)
        pinned: tuple[str, Interval] | None = None
        if counted is not None:
            var, stride, rel, bound_node = counted
            kind = self.kinds[var]
            init = entry.get(var, TYPE_RANGE[kind])
            bound = self._pure(bound_node, entry)
            if bound is not None:
                if stride > 0:
                    span = (init[0], bound[1] - (1 if rel is Op.LT else 0))
                    after = (bound[0], span[1] + stride)
                else:
                    span = (bound[0] + (1 if rel is Op.GT else 0), init[1])
                    after = (span[0] + stride, bound[1])
                full = TYPE_RANGE[kind]
                if full[0] < span[0] and span[1] < full[1]:
                    pinned = (var, span)
                    exit_value = _fit(kind, _hull(init, after))
        self._breaks[label] = []
        head: State = entry
        inside: State | None = None
        if pinned is not None:
            var, span = pinned
            if span[0] > span[1]:  # the body never runs
                self._ev(cond, entry)
                self.trips[id(node)] = max(self.trips.get(id(node), 0), 0)
                self._breaks.pop(label)
                return entry
            head = dict(entry)
            head[var] = span
        for iteration in range(MAX_LOOP_ITERATIONS):
            self._ev(cond, head)
            inside = self._refine(head, cond, True)
            self._continues[label] = []
            out = self._stmt(body, inside)
            out = _join_all(out, self._continues.pop(label))
            back = self._stmt(step, out)
            new = _join(entry, back)
            if pinned is not None and new is not None:
                new = dict(new)
                new[pinned[0]] = pinned[1]
            if _within(new, head):
                break
            assert new is not None  # entry is a state
            head = (_join(head, new) if iteration < JOIN_ITERATIONS
                    else _widen(head, new, self.kinds))
        else:  # pragma: no cover - widening reaches a fixed point long before
            head = {k: v for k, v in entry.items() if k not in _assigned(node)}
            pinned = None
        self._count_trips(node, inside)
        if pinned is not None:
            # The loop ends with its variable past the bound (or at its first value).
            done = dict(head)
            done[pinned[0]] = exit_value
            return _join_all(done, self._breaks.pop(label))
        return _join_all(self._refine(head, cond, False), self._breaks.pop(label))

    def _counted(self, node: Node) -> tuple[str, int, Op, Node] | None:
        """``(var, stride, relation, bound)`` of a counted loop -- its step is only
        ``var = var +- c``, its condition compares ``var`` with an expression the loop does not
        change, and its body neither assigns ``var`` nor breaks out -- whose variable's range in
        the body is then known at once; None for any other loop (iterated as usual, which also
        bounds a loop left early by ``break``)."""
        key = id(node)
        if key in self._counted_loops:
            return self._counted_loops[key]
        found: tuple[str, int, Op, Node] | None = None
        cond, body, step = node.args
        induction = _induction_step(step)
        if induction is not None and cond.op in (Op.LT, Op.LE, Op.GT, Op.GE):
            var, stride = induction
            a, b = cond.args
            if a.op is Op.VAR and a.arg == var:
                rel, bound = cond.op, b
            elif b.op is Op.VAR and b.arg == var:
                rel, bound = _MIRROR[cond.op], a
            else:
                rel, bound = None, None
            changed = _assigned(body) | _assigned(step)
            if (rel is not None and bound is not None and var in self.kinds
                    and (stride > 0) == (rel in (Op.LT, Op.LE))
                    and var not in _assigned(body) and _assigned(step) == {var}
                    and not (_names(bound) & changed) and not _breaks_out(body, node.arg)):
                found = (var, stride, rel, bound)
        self._counted_loops[key] = found
        return found

    def _count_trips(self, node: Node, inside: State | None) -> None:
        """Remember how many times the loop's body may run (for work estimates): the width
        of its induction variable's interval in the body over the step's stride."""
        trips = UNKNOWN_TRIPS
        found = _induction(node)
        if inside is None:
            trips = 0
        elif found is not None:
            var, stride = found
            iv = inside.get(var)
            if iv is not None and iv != TYPE_RANGE.get(self.kinds.get(var, ""), None):
                trips = max(0, (iv[1] - iv[0]) // abs(stride) + 1)
        key = id(node)
        self.trips[key] = max(self.trips.get(key, 0), trips)


def _widen(old: State, new: State, kinds: Mapping[str, str]) -> State:
    """Bounds of ``old`` that ``new`` moved are pushed to their type's limits."""
    out: State = {}
    for k, (lo, hi) in old.items():
        v = new.get(k)
        if v is None:
            continue
        full = TYPE_RANGE[kinds.get(k, "i32")]
        out[k] = (lo if v[0] >= lo else full[0], hi if v[1] <= hi else full[1])
    return out


def _assigned(node: Node) -> set[str]:
    names: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n.op is Op.ASSIGN:
            names.add(n.arg)
        elif n.op is Op.ATOMIC and n.arg[2] is not None:
            names.add(n.arg[2])
        stack.extend(n.args)
    return names


def _breaks_out(body: Node, label: str) -> bool:
    """Whether ``body`` holds a ``break`` of the loop labelled ``label``."""
    stack = [body]
    while stack:
        n = stack.pop()
        if n.op is Op.BREAK and n.arg == label:
            return True
        stack.extend(n.args)
    return False


def _names(node: Node) -> set[str]:
    """The locals and parameters an expression reads."""
    names: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n.op is Op.VAR:
            names.add(n.arg)
        stack.extend(n.args)
    return names


def _induction_step(step: Node) -> tuple[str, int] | None:
    """``(var, stride)`` when a loop's step block is exactly ``var = var +- constant``."""
    if step.op is not Op.BLOCK or len(step.args) != 1:
        return None
    s = step.args[0]
    if s.op is not Op.ASSIGN:
        return None
    value = s.args[0]
    if value.op in (Op.ADD, Op.SUB) and len(value.args) == 2:
        a, b = value.args
        if a.op is Op.VAR and a.arg == s.arg and b.op is Op.CONST and b.arg and \
                isinstance(b.arg, int) and not isinstance(b.arg, bool):
            stride = int(b.arg)
            return s.arg, stride if value.op is Op.ADD else -stride
    return None


def _induction(loop: Node) -> tuple[str, int] | None:
    """``(var, stride)`` when the loop's step (or, for a ``while`` loop, its body) ends with
    ``var = var + c`` or ``var = var - c`` for a constant ``c``."""
    _cond, body, step = loop.args
    for block in (step, body):
        for s in reversed(block.args):
            if s.op is not Op.ASSIGN:
                continue
            value = s.args[0]
            if value.op in (Op.ADD, Op.SUB) and len(value.args) == 2:
                a, b = value.args
                if a.op is Op.VAR and a.arg == s.arg and b.op is Op.CONST and b.arg:
                    stride = int(b.arg)
                    return s.arg, stride if value.op is Op.ADD else -stride
            break
    return None


# --------------------------------------------------------------------------
# Tiles to boxes, intervals to pages
# --------------------------------------------------------------------------


def group_boxes(launch: Launch, first: int, count: int) -> list[tuple[tuple[int, int], ...]]:
    """The workgroups ``first .. first + count - 1`` (linear, x fastest) as at most five boxes
    of group coordinates ``((x0, x1), (y0, y1), (z0, z1))``."""
    gx, gy, _gz = launch.grid
    boxes: list[tuple[tuple[int, int], ...]] = []
    lin, end = first, first + count
    while lin < end:
        x, y, z = lin % gx, (lin // gx) % gy, lin // (gx * gy)
        if x != 0 or end - lin < gx:
            n = min(gx - x, end - lin)
            boxes.append(((x, x + n - 1), (y, y), (z, z)))
            lin += n
        elif y != 0 or end - lin < gx * gy:
            rows = min(gy - y, (end - lin) // gx)
            boxes.append(((0, gx - 1), (y, y + rows - 1), (z, z)))
            lin += rows * gx
        else:
            planes = (end - lin) // (gx * gy)
            boxes.append(((0, gx - 1), (0, gy - 1), (z, z + planes - 1)))
            lin += planes * gx * gy
    return boxes


def subtract_ranges(ranges: Iterable[tuple[int, int]],
                    cut: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """The integers of ``[start, stop)`` ranges ``ranges`` that no range of ``cut`` holds, as
    sorted, disjoint ranges."""
    cuts = merge_ranges(cut)
    out: list[tuple[int, int]] = []
    for a, b in merge_ranges(ranges):
        for c, d in cuts:
            if d <= a or c >= b:
                continue
            if c > a:
                out.append((a, c))
            a = max(a, d)
            if a >= b:
                break
        if a < b:
            out.append((a, b))
    return tuple(out)


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sorted, disjoint ``[start, stop)`` ranges covering the same integers (touching ranges
    are joined)."""
    out: list[list[int]] = []
    for a, b in sorted(r for r in ranges if r[1] > r[0]):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1][1] = b
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def _element_bytes(dtype: np.dtype[Any], shape: tuple[int, ...], dims: int) -> int:
    """Bytes of one element: the dtype's size times the trailing lanes (vec4) if any."""
    extra = shape[dims:] if len(shape) > dims else ()
    return int(dtype.itemsize) * math.prod(extra)


def _byte_ranges(index: tuple[Interval, ...], shape: tuple[int, ...],
                 elem: int) -> tuple[list[tuple[int, int]], bool]:
    """Byte ranges an access touches, and whether its interval was bounded (else: all)."""
    if len(index) == 1:
        n = shape[0]
        lo, hi = index[0]
        bounded = lo > I32_MIN and hi < I32_MAX
        lo, hi = max(lo, 0), min(hi, n - 1)
        if lo > hi:
            return [], bounded
        return [(lo * elem, (hi + 1) * elem)], bounded
    height, width = shape[0], shape[1]
    (x0, x1), (y0, y1) = index
    bounded = x0 > I32_MIN and x1 < I32_MAX and y0 > I32_MIN and y1 < I32_MAX
    x0, x1, y0, y1 = max(x0, 0), min(x1, width - 1), max(y0, 0), min(y1, height - 1)
    if x0 > x1 or y0 > y1:
        return [], bounded
    row = width * elem
    if x0 == 0 and x1 == width - 1:
        return [(y0 * row, (y1 + 1) * row)], bounded
    return [(y * row + x0 * elem, y * row + (x1 + 1) * elem) for y in range(y0, y1 + 1)], bounded


def _pages(byte_ranges: Iterable[tuple[int, int]], page_size: int) -> tuple[tuple[int, int], ...]:
    return merge_ranges((a // page_size, (b - 1) // page_size + 1) for a, b in byte_ranges)


# --------------------------------------------------------------------------
# The entry points
# --------------------------------------------------------------------------


@attrs.frozen
class BufferInfo:
    """What the analysis needs of a buffer or image argument."""

    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    nbytes: int


def tile_footprints(kernel: Kernel, tiles: Sequence[Tile], scalars: Mapping[str, Any],
                    buffers: Mapping[str, BufferInfo], page_size: int) -> list[TileFootprint]:
    """The footprint of each tile of one dispatch (see the module docstring).

    ``scalars`` maps scalar parameters to their values, ``buffers`` buffer and image
    parameters to their arrays' dtype, shape and size; ``page_size`` is the VRAM's.
    """
    analysis = KernelAnalysis(kernel, scalars, {k: v.shape for k, v in buffers.items()})
    image = {p.name: p.type.kind == "image" for p in kernel.params}
    out = []
    for tile in tiles:
        found: dict[tuple[str, str], set[tuple[Interval, ...]]] = {}
        for box in group_boxes(tile.launch, tile.first_group, tile.group_count):
            for key, indices in analysis.box(tile.launch, box).found.items():
                found.setdefault(key, set()).update(indices)
        per: dict[str, BufferFootprint] = {}
        for name, info in buffers.items():
            dims = 2 if image.get(name) else 1
            elem = _element_bytes(info.dtype, info.shape, dims)
            whole = ((0, -(-info.nbytes // page_size)),) if info.nbytes else ()
            reads: list[tuple[int, int]] = []
            writes: list[tuple[int, int]] = []
            inferred = True
            for mode, into in (("r", reads), ("w", writes)):
                for index in found.get((name, mode), ()):
                    ranges, bounded = _byte_ranges(index, info.shape, elem)
                    if not bounded:
                        inferred = False
                    into.extend(ranges)
            if not inferred:
                per[name] = BufferFootprint(whole if reads else (), whole if writes else (),
                                            False)
            elif reads or writes:
                per[name] = BufferFootprint(_pages(reads, page_size), _pages(writes, page_size))
        out.append(TileFootprint(per))
    return out


def estimate_work(kernel: Kernel, launch: Launch, scalars: Mapping[str, Any],
                  buffers: Mapping[str, BufferInfo]) -> WorkEstimate:
    """Per work item, the operations and bytes the IR suggests (module docstring of
    :class:`WorkEstimate`): the scheduler's guess before a backend has counted anything."""
    analysis = KernelAnalysis(kernel, scalars, {k: v.shape for k, v in buffers.items()})
    analysis.box(launch, [(0, g - 1) for g in launch.grid])
    # A load or store moves one scalar (a vec4 access is four of them, one per lane).
    sizes = {name: int(info.dtype.itemsize) for name, info in buffers.items()}

    def cost(node: Node) -> tuple[float, float]:
        op = node.op
        if op is Op.LOOP:
            cond, body, step = node.args
            trips = analysis.trips.get(id(node), UNKNOWN_TRIPS)
            c, b, s = cost(cond), cost(body), cost(step)
            return ((trips + 1) * c[0] + trips * (b[0] + s[0]),
                    (trips + 1) * c[1] + trips * (b[1] + s[1]))
        if op is Op.IF:
            c, t, e = (cost(a) for a in node.args)
            return c[0] + max(t[0], e[0]), c[1] + max(t[1], e[1])
        ops = 1.0 if op in _COUNTED else 0.0
        nbytes = 0.0
        if op in (Op.LOAD, Op.ILOAD, Op.STORE, Op.ISTORE):
            nbytes = sizes.get(node.arg[0], 4)
        elif op is Op.ATOMIC:
            nbytes = 2 * sizes.get(node.arg[1], 4)
        for a in node.args:
            o, b = cost(a)
            ops += o
            nbytes += b
        return ops, nbytes

    ops, nbytes = cost(kernel.body)
    return WorkEstimate(ops, nbytes)


__all__ = ["BufferFootprint", "BufferInfo", "KernelAnalysis", "TileFootprint", "WorkEstimate",
           "estimate_work", "group_boxes", "merge_ranges", "subtract_ranges", "tile_footprints"]
