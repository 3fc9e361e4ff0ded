"""Batches and frames: where the interpreter keeps the state of work items.

A *batch* is the set of work items run together in lockstep: a slice of a
tile's work items, or whole workgroups when the kernel uses barriers or
shared memory.  It owns what every work item of the batch shares (bound
buffers, shared arrays, the counters of work done).

A *frame* is a subset of a batch's work items that is executing the same
statement.  Every work item of a frame is active: divergence never leaves
masked-off items behind, it makes a child frame holding only the items that
take a path (``sel`` maps the child's items to its parent's).  A child reads
a variable by gathering it from its parent once (lazily, on first use) and
writes back the variables it assigned when it ends (not the locals that die
with the block assigning them: ``Frame.assign_temp``), so an item's state moves
with it instead of being merged under a mask on every operation.

A variable's value is a numpy scalar when it is the same for every item of
the frame (constants, uniform loop counters, scalar parameters) and a 1-D
array otherwise; private arrays are 2-D, one row per item.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Exit target of RETURN.  Other targets are a label (BREAK) or ("continue", label).
RETURN = "<return>"

Exits = dict[Any, np.ndarray]  # exit target -> positions (in the frame) of items that left


def pick(v: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """The items (rows) of ``v`` at the valid positions ``sel``: ``v[sel]``, faster (``take``
    in ``wrap`` mode skips the bounds check that ``sel``, built by the interpreter, needs
    not)."""
    return v.take(sel, 0, None, "wrap")


class Frame:
    """Work items of one batch that execute the same statements, all active."""

    __slots__ = ("batch", "parent", "sel", "n", "vars", "owned", "dirty")

    def __init__(self, batch: Any, n: int, parent: Frame | None = None,
                 sel: np.ndarray | None = None):
        self.batch = batch
        self.parent = parent
        self.sel = sel
        self.n = n
        self.vars: dict[str, Any] = {}
        # Names whose array this frame created itself and may modify in place.
        self.owned: set[str] = set()
        # Names assigned here: written back to the parent when the frame ends.
        self.dirty: set[str] = set()

    # -- reading ---------------------------------------------------------------
    def get(self, name: str) -> Any:
        v = self.vars.get(name)
        if v is None:
            v = self.fetch(name)
        return v

    def fetch(self, name: str) -> Any:
        if self.parent is None:
            v = self.batch.root_value(name, self.n)
        else:
            pv = self.parent.get(name)
            v = pick(pv, self.sel) if type(pv) is np.ndarray else pv
        self.vars[name] = v
        if type(v) is np.ndarray:
            self.owned.add(name)
        return v

    # -- writing -----------------------------------------------------------------
    def assign(self, name: str, value: Any) -> None:
        """Set a scalar local for every item of the frame."""
        if type(value) is np.ndarray and self.owned:
            # The value may be another variable's array (``a = b``): neither may then be
            # modified in place without copying first.
            for other in [o for o in self.owned if self.vars[o] is value]:
                self.owned.discard(other)
        self.vars[name] = value
        self.owned.discard(name)
        self.dirty.add(name)

    def assign_temp(self, name: str, value: Any) -> None:
        """Like :meth:`assign`, for a local that is dead once the block assigning it ends (see
        ``KernelCompiler.temps``): it is not given back to the parent frame."""
        if type(value) is np.ndarray and self.owned:
            for other in [o for o in self.owned if self.vars[o] is value]:
                self.owned.discard(other)
        self.vars[name] = value
        self.owned.discard(name)

    def own_array(self, name: str) -> np.ndarray:
        """The variable as an array this frame may modify in place (marked dirty)."""
        v = self.get(name)
        self.dirty.add(name)
        if name in self.owned:
            if v.ndim == 1:
                # The caller changes this array in place: what the batch learnt about it (a
                # ramp, bounds, values computed from it) no longer holds.  (A private
                # array's rows are never an index or an input of a kept value.)
                self.batch.forget(v)
            return v
        arr = v.copy() if type(v) is np.ndarray else np.full(self.n, v, dtype=v.dtype)
        self.vars[name] = arr
        self.owned.add(name)
        return arr

    def scatter(self, name: str, where: np.ndarray, value: Any) -> None:
        """Set variable ``name`` for the items at positions ``where`` of this frame."""
        if type(value) is not np.ndarray:
            current = self.get(name)
            if type(current) is not np.ndarray and current == value:
                return  # a uniform value that did not change
        self.own_array(name)[where] = value

    # -- children ------------------------------------------------------------------
    def child(self, sel: np.ndarray) -> Frame:
        """A frame for the items at positions ``sel`` (sorted) of this frame."""
        return Frame(self.batch, len(sel), self, sel)

    def write_back(self) -> None:
        """Give the parent the values this frame assigned."""
        parent, sel = self.parent, self.sel
        if parent is None:
            return
        for name in self.dirty:
            parent.scatter(name, sel, self.vars[name])

    def write_back_items(self, positions: np.ndarray) -> None:
        """Give the parent the assigned values of some items only (those leaving)."""
        parent = self.parent
        if parent is None or not self.dirty:
            return
        where = pick(self.sel, positions)
        for name in self.dirty:
            v = self.vars[name]
            parent.scatter(name, where, pick(v, positions) if type(v) is np.ndarray else v)

    def without(self, gone: np.ndarray, base: Frame) -> Frame:
        """The items of this frame minus those at positions ``gone``, as a child of ``base``.

        ``self`` is ``base`` or a child of it.  The leaving items' assigned values
        are written back to ``base`` first, so they are where the items go next.
        """
        keep_mask = np.ones(self.n, dtype=np.bool_)
        keep_mask[gone] = False
        keep = np.flatnonzero(keep_mask)
        if self is base:
            return base.child(keep)
        self.write_back_items(gone)
        new = Frame(self.batch, len(keep), base, pick(self.sel, keep))
        for name, v in self.vars.items():
            if type(v) is np.ndarray:
                new.vars[name] = pick(v, keep)
                new.owned.add(name)
            else:
                new.vars[name] = v
        new.dirty = set(self.dirty)
        return new

    def lift(self) -> Frame:
        """This frame, a child of a child P of F, as an equivalent child of F.

        Used when a loop body ended with fewer items than the loop frame P: the
        body's frame becomes the loop frame instead of giving its values back to P
        and having P gather them again.  P's assigned values for this frame's items
        come along; P's unassigned ones are re-read from F when needed.
        """
        mid = self.parent
        new = Frame(self.batch, self.n, mid.parent, pick(mid.sel, self.sel))
        new.vars = dict(self.vars)
        new.owned = set(self.owned)
        new.dirty = mid.dirty | self.dirty
        for name in mid.dirty:
            if name not in new.vars:
                v = mid.vars[name]
                if type(v) is np.ndarray:
                    new.vars[name] = pick(v, self.sel)
                    new.owned.add(name)
                else:
                    new.vars[name] = v
        return new

    def to_base(self, positions: np.ndarray, base: Frame) -> np.ndarray:
        """Positions in this frame as positions in ``base`` (self is base or its child)."""
        return positions if self is base else pick(self.sel, positions)

    def item_value(self, name: str, k: int) -> Any:
        v = self.get(name)
        return v[k] if type(v) is np.ndarray else v


def merge_exits(into: Exits | None, more: Exits | None) -> Exits | None:
    if not more:
        return into
    if not into:
        return dict(more)
    for target, where in more.items():
        into[target] = np.concatenate((into[target], where)) if target in into else where
    return into


def remap_exits(exits: Exits | None, sel: np.ndarray) -> Exits | None:
    if not exits:
        return None
    return {target: pick(sel, where) for target, where in exits.items()}


def all_exits(exits: Exits) -> np.ndarray:
    parts = list(exits.values())
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
