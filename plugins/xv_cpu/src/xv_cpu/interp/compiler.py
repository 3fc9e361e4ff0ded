"""Turning a verified IR kernel into a tree of Python closures.

Each expression becomes ``fn(frame) -> value`` and each statement
``fn(frame) -> exits``: ``None`` when every item of the frame completed the
statement normally, else a dict from exit target (a label, ``("continue",
label)`` or :data:`RETURN`) to the positions of the items that left that
way.  Every item of a frame is active, so an operation is one numpy call on
the frame's values; divergence makes child frames (see :mod:`.frame`).

Work is counted as the closures run: one ALU op per item of the frame for
every unary, binary, comparison, conversion, logical, select and atomic
node; bytes for every buffer and image element read or written.

Values are kept from one evaluation to the next within a batch where that
cannot change a result: expressions of constants, scalar parameters and sizes
(once per batch), loop-invariant expressions, image row offsets and array
index offsets (while the arrays they came from are the same objects and
unchanged: an array changed in place moves ``Batch.epoch``), and facts about
index arrays (consecutive, clamped).  Reused values count their operations
as if computed again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from xv_core.errors import KernelRuntimeError, TileCancelled
from xv_core.ir import (
    BINARY, COMPARE, CONSTANT, LOCAL, PARAM, SHARED, UNARY, Decl, Kernel, Node, Op,
)
from xv_cpu.interp import alu
from xv_cpu.interp.atomics import apply_atomic
from xv_cpu.interp.batch import arange, arange32, remember
from xv_cpu.interp.frame import RETURN, Exits, Frame, all_exits, merge_exits, remap_exits

Expr = Callable[[Frame], Any]
Stmt = Callable[[Frame], "Exits | None"]

_ALU = UNARY | BINARY | COMPARE | {Op.CAST}
_MEMORY_READS = {Op.LOAD, Op.ILOAD, Op.ALOAD}


def _alu_count(node: Node) -> int:
    return (node.op in _ALU) + sum(_alu_count(a) for a in node.args)


def _pure(node: Node) -> bool:
    """True when evaluating ``node`` for any item can neither fail nor have an effect,
    and its op count is static: it may be evaluated eagerly for items that do not need it."""
    if node.op in _MEMORY_READS or node.op in (Op.LAND, Op.LOR, Op.SELECT):
        return False
    if node.op in (Op.DIV, Op.MOD) and node.type.is_int:
        return False
    return all(_pure(a) for a in node.args)


def _assigned(node: Node) -> set[str]:
    """Names of the locals a statement may assign (private arrays included)."""
    names: set[str] = set()

    def walk(n: Node) -> None:
        if n.op is Op.ASSIGN or n.op is Op.ASTORE:
            names.add(n.arg)
        elif n.op is Op.ATOMIC and n.arg[2] is not None:
            names.add(n.arg[2])
        for a in n.args:
            walk(a)

    walk(node)
    return names


_SIMPLE = {Op.ASSIGN, Op.STORE, Op.ISTORE, Op.ASTORE, Op.ATOMIC}


def _block_temps(kernel: Kernel, decls: dict[str, Decl]) -> set[str]:
    """Locals that are dead outside one execution of one block: every use of the local is in
    the simple statements (and ``if`` conditions) directly in that block, and the first of
    them assigns it without reading it.  Such a local (``_t`` of ``z = vec2(...)``, a
    ``f32 t = ...`` declared inside a loop body) never needs to be given back to the frame
    the block's frame came from, nor carried when a loop's frame is compacted."""
    places: dict[str, list[tuple[int, int, bool]]] = {}  # name -> (block, statement, writes)
    nested: set[str] = set()

    def reads(n: Node, into: set[str]) -> None:
        if n.op is Op.VAR:
            into.add(n.arg)
        for a in n.args:
            reads(a, into)

    def block(b: Node) -> None:
        for k, st in enumerate(b.args):
            used: set[str] = set()
            if st.op in _SIMPLE:
                for a in st.args:
                    reads(a, used)
                if st.op is Op.ATOMIC and st.arg[2] is not None:
                    nested.add(st.arg[2])
                for name in used:
                    places.setdefault(name, []).append((id(b), k, False))
                if st.op is Op.ASSIGN:
                    places.setdefault(st.arg, []).append((id(b), k, st.arg not in used))
                elif st.op is Op.ASTORE:
                    nested.add(st.arg)
            elif st.op is Op.IF:
                reads(st.args[0], used)
                for name in used:
                    places.setdefault(name, []).append((id(b), k, False))
                block(st.args[1])
                block(st.args[2])
            elif st.op is Op.LOOP:
                reads(st.args[0], nested)
                block(st.args[1])
                block(st.args[2])
            elif st.op is Op.BLOCK:
                block(st)

    block(kernel.body)
    temps = set()
    for name, where in places.items():
        decl = decls.get(name)
        if name in nested or decl is None or decl.space != LOCAL or decl.type.kind == "array":
            continue
        if len({b for b, _, _ in where}) == 1:
            first = min(k for _, k, _ in where)
            # The first statement using it assigns it and does not read it.
            if all(writes for _, k, writes in where if k == first) and \
                    any(writes for _, k, writes in where if k == first):
                temps.add(name)
    return temps


#: Leaves a memoised expression may read: their values depend on the batch only.
_MEMO_LEAVES = {Op.CONST, Op.LENGTH, Op.WIDTH, Op.HEIGHT}


def _memo_inputs(node: Node, decls: dict[str, Decl], names: set[str]) -> bool:
    """True when ``node`` is a function of variables alone (collected into ``names``, as the
    frame knows them): arithmetic, comparisons, conversions, ``min``/``max`` and integer
    division over variables, builtins, constants, sizes and constant tables, without the
    lazy operators (whose operation counts depend on the values)."""
    op = node.op
    if op is Op.VAR:
        names.add(node.arg)
    elif op is Op.SPECIAL:
        names.add("@" + node.arg)
    elif op is Op.ALOAD:
        if decls[node.arg].space != CONSTANT:
            return False
    elif op not in _ALU and op not in _MEMO_LEAVES:
        return False
    return all(_memo_inputs(a, decls, names) for a in node.args)


def _same_inputs(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    """The same arrays (by identity: an array changed in place moves the batch's epoch) and
    equal uniform values."""
    for a, b in zip(old, new):
        if a is not b and (type(a) is np.ndarray or type(b) is np.ndarray or a != b):
            return False
    return True


def _ramp(batch: Any, index: np.ndarray) -> int | None:
    """``first`` when the index array is first, first + 1, ... (an access that can be a
    slice instead of a gather or scatter), else None.  Cached per array for the batch."""
    m = len(index)
    first = int(index[0])
    if m == 1:
        return first
    # Two cheap probes reject most non-ramps (a 2-D workgroup's items jump at every row)
    # before the full comparison, which costs two passes over the index.
    mid = m >> 1
    if int(index[-1]) - first != m - 1 or int(index[mid]) - first != mid:
        return None
    ramps = batch.ramps
    hit = ramps.get(id(index))
    if hit is not None and hit[0]() is index:
        return hit[1]
    ok = bool((index - index.dtype.type(first) == arange32(m)).all())
    remember(ramps, index, first if ok else None)
    return first if ok else None


def _fresh(node: Node) -> bool:
    """True when ``node`` evaluates to a new array (or a scalar) that no variable holds, so
    the operation consuming it may overwrite it.  Identity conversions and the lazy
    operators may hand back an operand, so they are not fresh."""
    op = node.op
    if op is Op.CAST:
        return node.type != node.args[0].type
    if op is Op.ABS:
        return node.type.kind != "u32"
    return op in UNARY or op in BINARY or op in COMPARE or op in _MEMORY_READS


def _first_bad(batch: Any, index: Any, bound: int) -> int | None:
    """Position of the first item whose index is outside 0..bound-1, or None."""
    if type(index) is np.ndarray:
        known = batch.bounds.get(id(index))
        if known is not None and known[0]() is index and 0 <= known[1] and known[2] < bound:
            return None  # a clamped index: in range without looking
        u = index.view(np.uint32)  # negative indices become huge
        first = _ramp(batch, index)
        if first is not None:
            if 0 <= first and first + len(index) <= bound:
                return None
        elif u.max() < bound:
            return None
        return int(np.flatnonzero(u >= bound)[0])
    return None if 0 <= index < bound else 0


def _known_bounds(batch: Any, arr: np.ndarray) -> tuple[float, float]:
    known = batch.bounds.get(id(arr))
    if known is not None and known[0]() is arr:
        return known[1], known[2]
    return -np.inf, np.inf


def _set_bounds(batch: Any, arr: np.ndarray, lo: float, hi: float) -> None:
    """Remember that the integer array ``arr`` lies within lo..hi (``min(max(i, 0), n - 1)``
    is within 0..n-1), so that an index computed that way needs no bounds check.  Bounds
    are kept per array object (weakly, as ramps) for the batch; an in-place operation on an
    array forgets them."""
    remember(batch.bounds, arr, lo, hi)


def _gather(batch: Any, flat: np.ndarray, index: Any, lanes: int, lane: int) -> Any:
    """flat[index * lanes + lane] for in-range indices (a copy, never a view).

    Indices are checked before every gather, so ``take`` runs in ``wrap`` mode, which
    skips numpy's own per-element check and is faster than the default."""
    if type(index) is not np.ndarray:
        return flat[int(index) * lanes + lane]
    first = _ramp(batch, index)
    if first is not None:
        start = first * lanes + lane
        return flat[start:start + len(index) * lanes:lanes].copy()
    if lanes == 1:
        return flat.take(index, mode="wrap")
    return flat.take(index.astype(np.intp) * lanes + lane, mode="wrap")


def _scatter(batch: Any, flat: np.ndarray, index: Any, lanes: int, lane: int, value: Any) -> None:
    """flat[index * lanes + lane] = value for in-range indices."""
    if type(index) is not np.ndarray:
        # Every item writes the same element: the last one wins.
        flat[int(index) * lanes + lane] = value[-1] if type(value) is np.ndarray else value
        return
    first = _ramp(batch, index)
    if first is not None:
        start = first * lanes + lane
        flat[start:start + len(index) * lanes:lanes] = value
    elif lanes == 1:
        flat[index] = value
    else:
        flat[index.astype(np.intp) * lanes + lane] = value


def _min_max_values(is_min: bool, ints: bool, kind: str) -> Callable[..., Any]:
    """min or max of two evaluated operands (see ``KernelCompiler._min_max``)."""
    scalar_fn, _ = alu.binary(Op.MIN if is_min else Op.MAX, kind)
    ufunc = np.minimum if is_min else np.maximum

    def apply(batch: Any, x: Any, y: Any, fresh_x: bool, fresh_y: bool) -> Any:
        x_array, y_array = type(x) is np.ndarray, type(y) is np.ndarray
        if not x_array and not y_array:
            return scalar_fn(x, y)
        if x_array and y_array:
            out = x if fresh_x else (y if fresh_y else None)
            if out is not None and batch.bounds:
                batch.bounds.pop(id(out), None)
            return ufunc(x, y, out=out)
        arr, s, fresh = (x, y, fresh_x) if x_array else (y, x, fresh_y)
        lo, hi = _known_bounds(batch, arr) if ints else (0, 0)
        out = arr if fresh else None
        if out is not None and batch.bounds:
            batch.bounds.pop(id(out), None)
        result = ufunc(arr, batch.full(s, len(arr)), out=out)  # both are commutative
        if ints:
            v = int(s)
            lo, hi = (min(lo, v), min(hi, v)) if is_min else (max(lo, v), max(hi, v))
            _set_bounds(batch, result, lo, hi)
        return result

    return apply


def _at(value: Any, k: int) -> Any:
    return value[k] if type(value) is np.ndarray else value


class KernelCompiler:
    """Compiles one kernel; the closures share nothing mutable, so a compiled kernel
    may run on several threads at once."""

    def __init__(self, kernel: Kernel, stop: list[bool] | None = None):
        self.kernel = kernel
        # Set (stop[0] = True) to make every loop raise TileCancelled at its next iteration.
        self.stop = stop if stop is not None else [False]
        self.decls: dict[str, Decl] = {d.name: d for d in kernel.all_decls()}
        self.file = kernel.source or f"<kernel {kernel.name}>"
        self.line = 0  # line of the statement being compiled
        # Locals assigned in the innermost loop being compiled (None outside loops), whether
        # an enclosing expression is memoised already, and the memoised nodes (whose values
        # are kept, so that no consumer may overwrite them in place).
        self.loop_assigned: set[str] | None = None
        self.in_memo = False
        self.memoised: set[int] = set()
        self.sites = 0
        self.temps = _block_temps(kernel, self.decls)
        self.constants: dict[str, np.ndarray] = {
            d.name: np.array(d.init, dtype=alu.DTYPES[d.type.elem])
            for d in kernel.decls if d.space == CONSTANT
        }

    # -- errors ------------------------------------------------------------------
    def where(self, node: Node) -> str:
        """``file:line`` of a node, at compile time: an expression without a line of its
        own takes the line of the statement it is part of."""
        line = node.line or self.line
        return f"{self.file}:{line}" if line else self.file

    @staticmethod
    def work_item(frame: Frame, k: int) -> str:
        gid = [int(frame.item_value(f"@global_id.{a}", k)) for a in "xyz"]
        return f"work item global_id=({gid[0]}, {gid[1]}, {gid[2]})"

    def oob(self, loc: str, frame: Frame, k: int, access: str, name: str,
            indices: tuple[Any, ...]) -> KernelRuntimeError:
        values = [int(_at(i, k)) for i in indices]
        decl = self.decls[name]
        if decl.type.kind == "buffer":
            shown = f"{name}[{values[0]}]"
            extent = f"buffer {name!r} has {frame.batch.bind.length[name]} elements"
        elif decl.type.kind == "image":
            shown = f"{name}[{values[0]}, {values[1]}]"
            bind = frame.batch.bind
            extent = f"image {name!r} is {bind.width[name]} wide and {bind.height[name]} high"
        else:
            shown = name + "".join(f"[{v}]" for v in values)
            space = {LOCAL: "private", SHARED: "shared", CONSTANT: "constant"}[decl.space]
            extent = f"{space} array {name!r} is {decl.type}"
        return KernelRuntimeError(
            f"out-of-bounds {access} {shown} by {self.work_item(frame, k)} in kernel "
            f"{self.kernel.name!r}: {extent}",
            where=loc,
            hint="check the index, or guard the access with a bounds test",
        )

    def check(self, loc: str, frame: Frame, access: str, name: str,
              indices: tuple[Any, ...], bounds: tuple[int, ...]) -> None:
        for index, bound in zip(indices, bounds):
            k = _first_bad(frame.batch, index, bound)
            if k is not None:
                raise self.oob(loc, frame, k, access, name, indices)

    # -- expressions -------------------------------------------------------------
    def expr(self, node: Node) -> Expr:
        if node.op in _ALU and self._invariant(node):
            return self._once_per_batch(node)
        if self.loop_assigned is not None and not self.in_memo and node.op in _ALU:
            names: set[str] = set()
            if _memo_inputs(node, self.decls, names) and not names & self.loop_assigned:
                return self._memoised(node, sorted(names))
        return self._expr(node)

    def site(self) -> int:
        """A number for a place in the kernel that keeps values in the batch."""
        self.sites += 1
        return self.sites

    def _fresh(self, node: Node) -> bool:
        return id(node) not in self.memoised and _fresh(node)

    def _memoised(self, node: Node, names: list[str]) -> Expr:
        """A loop-invariant expression: one whose variables the innermost enclosing loop does
        not assign (``clamp(y + dy, 0, h - 1)`` inside the loop over ``dx``).  Its value is
        kept per batch with the values it was computed from, and reused while they are the
        same arrays (unchanged: see ``Batch.epoch``) and equal uniform values; its
        operations are still counted per item at every evaluation."""
        self.in_memo = True
        try:
            compute = self._expr(node)
        finally:
            self.in_memo = False
        self.memoised.add(id(node))
        ops = _alu_count(node)
        site = self.site()

        def memoised(f: Frame) -> Any:
            inputs = tuple([f.get(name) for name in names])
            batch = f.batch
            hit = batch.memo.get(site)
            if hit is not None and hit[0] == batch.epoch and _same_inputs(hit[1], inputs):
                batch.ops += ops * f.n
                return hit[2]
            v = compute(f)
            batch.memo[site] = (batch.epoch, inputs, v)
            return v

        return memoised

    def _invariant(self, node: Node) -> bool:
        """True when ``node``'s value is the same for every item and every evaluation in a
        batch: built only from constants, scalar parameters, sizes and launch dimensions."""
        op = node.op
        if op is Op.VAR:
            return self.decls[node.arg].space == PARAM
        if op is Op.SPECIAL:
            return node.arg.startswith(("group_size.", "num_groups."))
        if op in _ALU:
            return all(self._invariant(a) for a in node.args)
        return op in (Op.CONST, Op.LENGTH, Op.WIDTH, Op.HEIGHT)

    def _once_per_batch(self, node: Node) -> Expr:
        """An invariant expression (``x.length - 1``, ``n / TILE``), computed at its first
        evaluation in a batch and then reused; its operations are still counted per item."""
        compute = self._expr(node)
        ops = _alu_count(node)
        key = f"={id(node)}"

        def cached(f: Frame) -> Any:
            batch = f.batch
            v = batch.invariants.get(key)
            if v is None:
                saved = batch.ops
                v = batch.invariants[key] = compute(f)
                batch.ops = saved
            batch.ops += ops * f.n
            return v

        return cached

    def _expr(self, node: Node) -> Expr:
        op = node.op
        if op is Op.CONST:
            value = alu.scalar(node.arg, node.type.kind)
            return lambda f: value
        if op in (Op.VAR, Op.SPECIAL):
            return self._var(node.arg if op is Op.VAR else "@" + node.arg)
        if op in (Op.LENGTH, Op.WIDTH, Op.HEIGHT):
            return self._size(op, node.arg)
        if op is Op.LOAD:
            return self._load(node)
        if op is Op.ILOAD:
            return self._iload(node)
        if op is Op.ALOAD:
            return self._aload(node)
        if op is Op.CAST:
            return self._unary((alu.cast(node.args[0].type.kind, node.type.kind), None), node)
        if op in UNARY:
            return self._unary(alu.unary(op, node.type.kind), node)
        if op in (Op.DIV, Op.MOD) and node.type.is_int:
            return self._int_divmod(node)
        if op in BINARY:
            return self._binary(alu.binary(op, node.type.kind), node)
        if op in COMPARE:
            return self._binary(alu.binary(op, node.args[0].type.kind), node)
        if op in (Op.LAND, Op.LOR):
            return self._logical(node)
        if op is Op.SELECT:
            return self._select(node)
        raise AssertionError(f"unexpected expression {op}")  # the verifier rules this out

    @staticmethod
    def _var(name: str) -> Expr:
        def var(f: Frame) -> Any:
            v = f.vars.get(name)
            return v if v is not None else f.fetch(name)

        return var

    @staticmethod
    def _size(op: Op, name: str) -> Expr:
        table = {Op.LENGTH: "length", Op.WIDTH: "width", Op.HEIGHT: "height"}[op]

        def size(f: Frame) -> Any:
            return np.int32(getattr(f.batch.bind, table)[name])

        return size

    def _unary(self, how: alu.Unary, node: Node) -> Expr:
        fn, ufunc = how
        a = self.expr(node.args[0])
        if ufunc is not None and self._fresh(node.args[0]):
            # The operand is a temporary nobody else holds: compute in place.
            def unary_inplace(f: Frame) -> Any:
                batch = f.batch
                batch.ops += f.n
                x = a(f)
                if type(x) is not np.ndarray:
                    return fn(x)
                if batch.bounds:
                    batch.bounds.pop(id(x), None)  # its values change
                return ufunc(x, out=x)

            return unary_inplace

        def unary(f: Frame) -> Any:
            f.batch.ops += f.n
            return fn(a(f))

        return unary

    def _binary(self, how: alu.Binary, node: Node) -> Expr:
        if node.op in (Op.MIN, Op.MAX):
            return self._min_max(node)
        fn, ufunc = how
        a = self.expr(node.args[0])
        b = self.expr(node.args[1])
        fresh_a, fresh_b = self._fresh(node.args[0]), self._fresh(node.args[1])
        if ufunc is not None and (fresh_a or fresh_b):
            # Result and operands have one dtype: a temporary operand can hold the result.
            def binary_inplace(f: Frame) -> Any:
                x = a(f)
                y = b(f)
                batch = f.batch
                batch.ops += f.n
                if fresh_a and type(x) is np.ndarray:
                    out = x
                elif fresh_b and type(y) is np.ndarray:
                    out = y
                else:
                    return fn(x, y)
                if batch.bounds:
                    batch.bounds.pop(id(out), None)  # its values change
                return ufunc(x, y, out=out)

            return binary_inplace

        def binary(f: Frame) -> Any:
            x = a(f)
            y = b(f)
            f.batch.ops += f.n
            return fn(x, y)

        return binary

    def _min_max(self, node: Node) -> Expr:
        """MIN and MAX, and the clamp ``min(max(a, lo), hi)`` fused into one ``np.clip``.

        numpy's minimum/maximum are about three times slower with a scalar operand than
        with an array one, so a uniform operand is given as a (cached) full array; a clamp
        is one pass instead of two.  Integer results remember their bounds (see
        :func:`_set_bounds`).
        """
        is_min = node.op is Op.MIN
        ints = node.type.is_int
        apply = _min_max_values(is_min, ints, node.type.kind)
        inner_op = Op.MAX if is_min else Op.MIN
        inner_at = next((k for k in (0, 1) if node.args[k].op is inner_op), None)
        if inner_at is None:
            a = self.expr(node.args[0])
            b = self.expr(node.args[1])
            fresh_a, fresh_b = self._fresh(node.args[0]), self._fresh(node.args[1])

            def min_max(f: Frame) -> Any:
                x = a(f)
                y = b(f)
                f.batch.ops += f.n
                return apply(f.batch, x, y, fresh_a, fresh_b)

            return min_max

        inner = node.args[inner_at]
        pf, qf = self.expr(inner.args[0]), self.expr(inner.args[1])
        fresh_p, fresh_q = self._fresh(inner.args[0]), self._fresh(inner.args[1])
        hf = self.expr(node.args[1 - inner_at])
        fresh_h = self._fresh(node.args[1 - inner_at])
        apply_inner = _min_max_values(not is_min, ints, node.type.kind)

        def clamp(f: Frame) -> Any:
            # Operands in the order of the unfused tree: the inner operation's, then the other.
            if inner_at == 0:
                p = pf(f)
                q = qf(f)
                h = hf(f)
            else:
                h = hf(f)
                p = pf(f)
                q = qf(f)
            batch = f.batch
            batch.ops += 2 * f.n
            if type(h) is not np.ndarray and (type(p) is np.ndarray) != (type(q) is np.ndarray):
                arr, s, fresh = (p, q, fresh_p) if type(p) is np.ndarray else (q, p, fresh_q)
                lo, hi = (s, h) if is_min else (h, s)
                # max(min(a, hi), lo) is a clip only when lo <= hi; NaN bounds are not clips.
                if lo == lo and hi == hi and (is_min or lo <= hi):
                    out = arr if fresh else None
                    if out is not None and batch.bounds:
                        batch.bounds.pop(id(out), None)
                    result = alu.CLIP(arr, lo, hi, out=out)
                    if ints:
                        _set_bounds(batch, result, min(int(lo), int(hi)), int(hi))
                    return result
            first = apply_inner(batch, p, q, fresh_p, fresh_q)
            if inner_at == 0:
                return apply(batch, first, h, True, fresh_h)
            return apply(batch, h, first, fresh_h, True)

        return clamp

    def _int_divmod(self, node: Node) -> Expr:
        a = self.expr(node.args[0])
        b = self.expr(node.args[1])
        op = node.op
        loc = self.where(node)
        what = "division" if op is Op.DIV else "modulo"

        def divmod_(f: Frame) -> Any:
            x = a(f)
            y = b(f)
            f.batch.ops += f.n
            if type(y) is np.ndarray:
                if not y.all():
                    raise self.div_zero(loc, f, int(np.flatnonzero(y == 0)[0]), what)
            elif y == 0:
                raise self.div_zero(loc, f, 0, what)
            return alu.int_divmod(op, x, y)

        return divmod_

    def div_zero(self, loc: str, frame: Frame, k: int, what: str) -> KernelRuntimeError:
        return KernelRuntimeError(
            f"integer {what} by zero by {self.work_item(frame, k)} in kernel "
            f"{self.kernel.name!r}",
            where=loc, hint="guard the operation where the divisor can be 0")

    def _logical(self, node: Node) -> Expr:
        a = self.expr(node.args[0])
        b = self.expr(node.args[1])
        is_and = node.op is Op.LAND
        eager = _pure(node.args[1])
        b_ops = _alu_count(node.args[1])

        def logical(f: Frame) -> Any:
            x = a(f)
            batch = f.batch
            batch.ops += f.n
            if type(x) is not np.ndarray:
                return b(f) if bool(x) == is_and else x
            # Items whose result the right operand decides.
            need = x if is_and else ~x
            count = int(np.count_nonzero(need))
            if count == 0:
                return x
            if count == f.n:
                return b(f)
            if eager:
                saved = batch.ops
                y = b(f)
                batch.ops = saved + count * b_ops
                return (x & y) if is_and else (x | y)
            where = np.flatnonzero(need)
            out = x.copy()
            out[where] = b(f.child(where))
            return out

        return logical

    def _select(self, node: Node) -> Expr:
        c = self.expr(node.args[0])
        t = self.expr(node.args[1])
        e = self.expr(node.args[2])
        eager = _pure(node.args[1]) and _pure(node.args[2])
        t_ops, e_ops = _alu_count(node.args[1]), _alu_count(node.args[2])
        dtype = alu.DTYPES[node.type.kind]

        def select(f: Frame) -> Any:
            cond = c(f)
            batch = f.batch
            batch.ops += f.n
            if type(cond) is not np.ndarray:
                return t(f) if cond else e(f)
            count = int(np.count_nonzero(cond))
            if count == f.n:
                return t(f)
            if count == 0:
                return e(f)
            if eager:
                saved = batch.ops
                vt = t(f)
                ve = e(f)
                batch.ops = saved + count * t_ops + (f.n - count) * e_ops
                return np.where(cond, vt, ve)
            ti = np.flatnonzero(cond)
            ei = np.flatnonzero(~cond)
            out = np.empty(f.n, dtype=dtype)
            out[ti] = t(f.child(ti))
            out[ei] = e(f.child(ei))
            return out

        return select

    # -- memory reads ----------------------------------------------------------------
    def _load(self, node: Node) -> Expr:
        loc = self.where(node)
        name, lane = node.arg
        lanes = self.decls[name].type.lanes
        itemsize = alu.DTYPES[node.type.kind].itemsize
        index = self.expr(node.args[0])

        def load(f: Frame) -> Any:
            i = index(f)
            batch = f.batch
            k = _first_bad(batch, i, batch.bind.length[name])
            if k is not None:
                raise self.oob(loc, f, k, "read", name, (i,))
            batch.bytes_read += f.n * itemsize
            return _gather(batch, batch.bind.flat[name], i, lanes, lane)

        return load

    def _image_index(self, name: str, lane: int, lanes: int) -> Callable[[Frame, Any, Any], Any]:
        site = self.site()

        def linear(f: Frame, x: Any, y: Any) -> Any:
            bind = f.batch.bind
            w = bind.width[name]
            if type(x) is not np.ndarray and type(y) is not np.ndarray:
                return (int(y) * w + int(x)) * lanes + lane
            if bind.small[name]:
                # In range and smaller than 2**31 elements: int32 arithmetic cannot overflow.
                if type(y) is np.ndarray:
                    # The rows' offsets are kept for the next evaluation: a loop over x
                    # inside a loop over y reads the same rows again (``src[x + dx, sy]``).
                    batch = f.batch
                    hit = batch.rows.get(site)
                    if hit is not None and hit[0] is y and hit[1] == batch.epoch:
                        lin = hit[2] + x
                    else:
                        rows = y * np.int32(w)
                        batch.rows[site] = (y, batch.epoch, rows)
                        lin = rows + x
                else:
                    lin = x + y * np.int32(w)
            else:
                lin = np.add(np.multiply(y, w, dtype=np.intp), x, dtype=np.intp)
            if lanes != 1:
                lin *= lanes
                lin += lane
            return lin

        return linear

    def _iload(self, node: Node) -> Expr:
        loc = self.where(node)
        name, lane = node.arg
        lanes = self.decls[name].type.lanes
        itemsize = alu.DTYPES[node.type.kind].itemsize
        xf = self.expr(node.args[0])
        yf = self.expr(node.args[1])
        linear = self._image_index(name, lane, lanes)

        def iload(f: Frame) -> Any:
            x = xf(f)
            y = yf(f)
            batch = f.batch
            bind = batch.bind
            self.check(loc, f, "read", name, (x, y), (bind.width[name], bind.height[name]))
            batch.bytes_read += f.n * itemsize
            return _gather(batch, bind.flat[name], linear(f, x, y), 1, 0)

        return iload

    def _array_index(self, node: Node, access: str, name: str,
                     idx: list[Expr]) -> Callable[[Frame], tuple[Any, bool]]:
        """Evaluates and checks the indices of an array access; returns the element's position
        in the array's storage and whether it is the same for every item.

        A constant array is its table; shared arrays hold one copy per group of the batch
        (position: slot * size + linear index); private arrays one row per item of the frame
        (position: item * size + linear index, or just the column when that is uniform).
        The part of the position from the slot or row and the leading indices is kept for
        the next evaluation while those are the same arrays (see ``_same_inputs``):
        ``tile[ly][k]`` inside a loop over k then costs one addition before the gather."""
        decl = self.decls[name]
        shape = decl.type.shape
        space = decl.space
        size = math.prod(shape)
        strides = [np.int32(math.prod(shape[k + 1:])) for k in range(len(shape) - 1)]
        loc = self.where(node)
        site = self.site()
        size32 = np.int32(size)

        def head(key: tuple[Any, ...]) -> Any:
            """The offset from the array-valued parts of ``key`` (slot, row count, leading
            indices; None for the parts that are uniform)."""
            slot, rows, *lead = key
            off = None if slot is None else slot * size32
            for v, stride in zip(lead, strides):
                if v is not None:
                    term = v * stride
                    off = term if off is None else off + term
            if rows is not None:  # private, per item: rows of ``size`` elements
                base = arange(rows) * size
                off = base if off is None else base + off
            return off

        def index(f: Frame) -> tuple[Any, bool]:
            values = [fn(f) for fn in idx]
            self.check(loc, f, access, name, values, shape)
            last = values[-1]
            # Uniform parts add up to ``const``; array-valued ones go into the kept offset.
            const = np.int32(0)
            slot = None
            kept = False
            if space == SHARED:
                slot = f.get("@slot")
                if type(slot) is np.ndarray:
                    kept = True
                else:
                    const = slot * size32
                    slot = None
            lead = []
            for v, stride in zip(values, strides):
                if type(v) is np.ndarray:
                    lead.append(v)
                    kept = True
                else:
                    lead.append(None)
                    const = const + v * stride
            rows = f.n if space == LOCAL and (kept or type(last) is np.ndarray) else None
            if rows is None and not kept:
                pos = const + last
                return pos, type(pos) is not np.ndarray
            key = (slot, rows, *lead)
            batch = f.batch
            hit = batch.memo.get(site)
            if hit is not None and hit[0] == batch.epoch and _same_inputs(hit[1], key):
                off = hit[2]
            else:
                off = head(key)
                batch.memo[site] = (batch.epoch, key, off)
            pos = off + last
            if const:
                pos += const
            return pos, False

        return index

    def _aload(self, node: Node) -> Expr:
        name = node.arg
        decl = self.decls[name]
        idx = [self.expr(a) for a in node.args]
        index = self._array_index(node, "read", name, idx)
        size = math.prod(decl.type.shape)
        if decl.space == CONSTANT:
            table = self.constants[name]
            if len(idx) == 1:
                # ``W[k]`` with a uniform k in range, the common case, without the generic
                # index machinery.
                first = idx[0]
                loc = self.where(node)

                def const_load1(f: Frame) -> Any:
                    i = first(f)
                    if type(i) is not np.ndarray and 0 <= i < size:
                        return table[int(i)]
                    self.check(loc, f, "read", name, (i,), (size,))
                    return table.take(i, mode="wrap") if type(i) is np.ndarray else table[int(i)]

                return const_load1

            def const_load(f: Frame) -> Any:
                pos, uniform = index(f)
                return table[int(pos)] if uniform else table.take(pos, mode="wrap")

            return const_load
        if decl.space == SHARED:
            def shared_load(f: Frame) -> Any:
                pos, uniform = index(f)
                store = f.batch.shared[name]
                return store[int(pos)] if uniform else store.take(pos, mode="wrap")

            return shared_load

        def private_load(f: Frame) -> Any:
            pos, uniform = index(f)
            rows = f.get(name)
            if uniform:
                return rows[:, int(pos)].copy()
            return rows.reshape(-1).take(pos, mode="wrap")

        return private_load

    # -- statements ----------------------------------------------------------------------
    def stmt(self, node: Node) -> Stmt:
        outer = self.line
        self.line = node.line or outer
        try:
            return self._stmt(node)
        finally:
            self.line = outer

    def _stmt(self, node: Node) -> Stmt:
        op = node.op
        if op is Op.BLOCK:
            return self.block(node)
        if op is Op.ASSIGN:
            return self._assign(node)
        if op is Op.STORE:
            return self._store(node)
        if op is Op.ISTORE:
            return self._istore(node)
        if op is Op.ASTORE:
            return self._astore(node)
        if op is Op.ATOMIC:
            return self._atomic(node)
        if op is Op.IF:
            return self._if(node)
        if op is Op.LOOP:
            return self._loop(node)
        if op in (Op.BREAK, Op.CONTINUE):
            target = node.arg if op is Op.BREAK else ("continue", node.arg)
            return lambda f: {target: arange(f.n)}
        if op is Op.RETURN:
            return self._return(node)
        if op is Op.BARRIER:
            return self._barrier(node)
        raise AssertionError(f"unexpected statement {op}")  # the verifier rules this out

    def block(self, node: Node, final: bool = False) -> Stmt:
        """A statement list.  Items that leave (break, continue, return) are dropped
        for the statements after; ``final`` skips giving values back (kernel body)."""
        run = self.block_keep(node, final)

        def block(f: Frame) -> Exits | None:
            exits, rest = run(f)
            if rest is not None and rest is not f:
                rest.write_back()
            return exits

        return block

    def block_keep(self, node: Node, final: bool = False
                   ) -> Callable[[Frame], tuple[Exits | None, Frame | None]]:
        """Like :meth:`block`, but returns the frame of the items that completed the
        block instead of giving its values back: ``f`` itself, a child of ``f`` holding
        the items that remain (values not yet given back), or None when none remain."""
        stmts = [self.stmt(s) for s in node.args]
        label = node.arg

        def block_keep(f: Frame) -> tuple[Exits | None, Frame | None]:
            cur: Frame | None = f
            exits: Exits | None = None
            for s in stmts:
                ex = s(cur)
                if ex:
                    gone = all_exits(ex)
                    exits = merge_exits(exits, ex if cur is f else remap_exits(ex, cur.sel))
                    if len(gone) == cur.n:
                        if cur is not f and not final:
                            cur.write_back()
                        cur = None
                        break
                    cur = cur.without(gone, f)
            if exits and label is not None and exits.pop(label, None) is not None:
                # Items that broke out of this block complete it too: all are back in f.
                if cur is not None and cur is not f and not final:
                    cur.write_back()
                cur = f
            return exits or None, cur

        return block_keep

    def _assign(self, node: Node) -> Stmt:
        name = node.arg
        value = self.expr(node.args[0])
        if name in self.temps:
            def assign_temp(f: Frame) -> None:
                f.assign_temp(name, value(f))

            return assign_temp

        def assign(f: Frame) -> None:
            f.assign(name, value(f))

        return assign

    def _store(self, node: Node) -> Stmt:
        loc = self.where(node)
        name, lane = node.arg
        lanes = self.decls[name].type.lanes
        itemsize = alu.DTYPES[node.args[1].type.kind].itemsize
        index = self.expr(node.args[0])
        value = self.expr(node.args[1])

        def store(f: Frame) -> None:
            i = index(f)
            v = value(f)
            batch = f.batch
            k = _first_bad(batch, i, batch.bind.length[name])
            if k is not None:
                raise self.oob(loc, f, k, "write", name, (i,))
            batch.bytes_written += f.n * itemsize
            _scatter(batch, batch.bind.flat[name], i, lanes, lane, v)

        return store

    def _istore(self, node: Node) -> Stmt:
        loc = self.where(node)
        name, lane = node.arg
        lanes = self.decls[name].type.lanes
        itemsize = alu.DTYPES[node.args[2].type.kind].itemsize
        xf = self.expr(node.args[0])
        yf = self.expr(node.args[1])
        value = self.expr(node.args[2])
        linear = self._image_index(name, lane, lanes)

        def istore(f: Frame) -> None:
            x = xf(f)
            y = yf(f)
            v = value(f)
            batch = f.batch
            bind = batch.bind
            self.check(loc, f, "write", name, (x, y), (bind.width[name], bind.height[name]))
            batch.bytes_written += f.n * itemsize
            lin = linear(f, x, y)
            if type(lin) is int:
                lin = np.intp(lin)
            _scatter(batch, bind.flat[name], lin, 1, 0, v)

        return istore

    def _astore(self, node: Node) -> Stmt:
        name = node.arg
        decl = self.decls[name]
        index = self._array_index(node, "write", name, [self.expr(a) for a in node.args[:-1]])
        value = self.expr(node.args[-1])

        if decl.space == SHARED:
            def shared_store(f: Frame) -> None:
                pos, uniform = index(f)
                v = value(f)
                store = f.batch.shared[name]
                if uniform:
                    # Every item writes the same element: the last one wins.
                    store[int(pos)] = v[-1] if type(v) is np.ndarray else v
                else:
                    store[pos] = v

            return shared_store

        def private_store(f: Frame) -> None:
            pos, uniform = index(f)
            v = value(f)
            rows = f.own_array(name)
            if uniform:
                rows[:, int(pos)] = v
            else:
                rows.reshape(-1)[pos] = v

        return private_store

    def _atomic(self, node: Node) -> Stmt:
        loc = self.where(node)
        kind, name, result = node.arg
        index = self.expr(node.args[0])
        operands = [self.expr(a) for a in node.args[1:]]
        itemsize = alu.DTYPES[node.args[1].type.kind].itemsize

        def atomic(f: Frame) -> None:
            i = index(f)
            values = [fn(f) for fn in operands]
            batch = f.batch
            k = _first_bad(batch, i, batch.bind.length[name])
            if k is not None:
                raise self.oob(loc, f, k, f"atomic_{kind}", name, (i,))
            n = f.n
            batch.ops += n
            batch.bytes_read += n * itemsize
            batch.bytes_written += n * itemsize
            idx = i if type(i) is np.ndarray else np.full(n, i, dtype=np.int32)
            vals = [v if type(v) is np.ndarray else np.full(n, v) for v in values]
            flat = batch.bind.flat[name]
            if kind == "cmpxchg":
                old = apply_atomic(kind, flat, idx, vals[1], vals[0])
            else:
                old = apply_atomic(kind, flat, idx, vals[0], need_old=result is not None)
            if result is not None:
                f.assign(result, old)

        return atomic

    # -- control flow ----------------------------------------------------------------------
    def _if(self, node: Node) -> Stmt:
        cond = self.expr(node.args[0])
        then = self.block(node.args[1])
        other = self.block(node.args[2]) if node.args[2].args else None

        def if_(f: Frame) -> Exits | None:
            c = cond(f)
            if type(c) is not np.ndarray:
                if c:
                    return then(f)
                return other(f) if other is not None else None
            count = int(np.count_nonzero(c))
            if count == f.n:
                return then(f)
            if count == 0:
                return other(f) if other is not None else None
            where = np.flatnonzero(c)
            sub = f.child(where)
            exits = remap_exits(then(sub), where)
            sub.write_back()
            if other is not None:
                where = np.flatnonzero(~c)
                sub = f.child(where)
                exits = merge_exits(exits, remap_exits(other(sub), where))
                sub.write_back()
            return exits

        return if_

    def _loop(self, node: Node) -> Stmt:
        label = node.arg
        cont = ("continue", label)
        outer, self.loop_assigned = self.loop_assigned, _assigned(node)
        try:
            cond = self.expr(node.args[0])
            parts = [self.block_keep(node.args[1])]
            if node.args[2].args:
                parts.append(self.block_keep(node.args[2]))
        finally:
            self.loop_assigned = outer

        stop = self.stop
        name = self.kernel.name

        def loop(f: Frame) -> Exits | None:
            """Runs until no item is left in the loop.  ``cur`` (``f`` or a child of it)
            holds the items still looping; leaving items give their values back to ``f``."""
            cur = f
            exits: Exits | None = None
            while True:
                if stop[0]:  # the dispatch was interrupted (PreparedInterpKernel.cancel)
                    raise TileCancelled.of(name)
                c = cond(cur)
                if type(c) is not np.ndarray:
                    if not c:
                        break
                else:
                    count = int(np.count_nonzero(c))
                    if count == 0:
                        break
                    if count < cur.n:
                        cur = cur.without(np.flatnonzero(~c), f)
                for part in parts:
                    ex, rest = part(cur)
                    if not ex:
                        continue
                    continuing = ex.pop(cont, None)  # these go on to the step and condition
                    if continuing is not None or rest is None and not ex:
                        # Continuing items are not in ``rest``: everything back into cur.
                        if rest is not None and rest is not cur:
                            rest.write_back()
                        rest = cur
                    if not ex:
                        continue
                    gone = all_exits(ex)
                    ex.pop(label, None)  # breaking items leave the loop here
                    if ex:
                        exits = merge_exits(exits, remap_exits(ex, cur.sel) if cur is not f
                                            else ex)
                    if rest is None:  # every item left (``part`` gave its values to cur)
                        if cur is not f:
                            cur.write_back()
                        return exits
                    if rest is cur:
                        cur = cur.without(gone, f)
                    elif cur is f:
                        cur = rest
                    else:
                        cur.write_back_items(gone)
                        cur = rest.lift()
            if cur is not f:
                cur.write_back()
            return exits

        return loop

    def _return(self, node: Node) -> Stmt:
        def return_(f: Frame) -> Exits:
            batch = f.batch
            if batch.live is not None:
                slot = f.get("@slot")
                if type(slot) is np.ndarray:
                    batch.live -= np.bincount(slot, minlength=batch.groups)
                else:
                    batch.live[int(slot)] -= f.n
            return {RETURN: arange(f.n)}

        return return_

    def _barrier(self, node: Node) -> Stmt:
        loc = self.where(node)
        # Work items run in lockstep, statement by statement, so every item of a group has
        # finished everything before the barrier when it is reached: the barrier itself
        # has nothing to wait for.  What remains is to check that the whole group is here.
        def barrier(f: Frame) -> None:
            batch = f.batch
            if f.n == int(batch.live.sum()):
                return None  # every live item of the batch is here, so of each group
            slot = f.get("@slot")
            if type(slot) is np.ndarray:
                here = np.bincount(slot, minlength=batch.groups)
                bad = np.flatnonzero((here != 0) & (here != batch.live))
                if len(bad):
                    g = int(bad[0])
                    raise self.divergence(loc, f, g, int(here[g]), int(batch.live[g]))
            elif f.n != batch.live[int(slot)]:
                raise self.divergence(loc, f, int(slot), f.n, int(batch.live[int(slot)]))
            return None

        return barrier

    def divergence(self, loc: str, frame: Frame, slot: int, here: int,
                   live: int) -> KernelRuntimeError:
        batch = frame.batch
        group = batch.launch.group_coords(batch.first_group
                                          + batch.t0 // batch.launch.group_items + slot)
        return KernelRuntimeError(
            f"barrier divergence in kernel {self.kernel.name!r}: only {here} of the {live} "
            f"work items of workgroup ({group[0]}, {group[1]}, {group[2]}) that have not "
            "returned reached this barrier()",
            where=loc,
            hint="every work item of a workgroup that has not returned must reach the same "
                 "barrier(); move it out of control flow that differs between work items")
