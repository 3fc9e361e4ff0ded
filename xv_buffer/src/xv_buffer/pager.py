"""A deterministic, data-less twin of the VRAM's paging, for the timing model.

The runtime calls :meth:`RamVram.make_resident <xv_buffer.vram.RamVram.make_resident>` just
before each tile really runs, in an order that depends on threads and timing, so under memory
pressure the real VRAM's statistics change from run to run.  The timing model must not: it
drives a :class:`Pager` (``vram.pager()``) in placement order instead.  A pager makes exactly
the decisions RamVram makes (both are :class:`~xv_buffer.residency.Residency`: one
implementation of residency, eviction, tiers and ``uvm`` faults), holds no data, has no
prefetch worker and no clock, and returns what each call moved as
:class:`~xv_core.runtime.interfaces.PageMove` records.  The same calls give the same moves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from xv_core.errors import XvError
from xv_core.profiles import LinkProfile, get_profile
from xv_core.runtime.interfaces import PageMove
from xv_buffer.residency import UVM_FAULT_BATCH, VRAM, ZERO, Lease, Pages, Residency

__all__ = ["PageMove", "Pager"]

#: The level of a ``fault`` move's source: none (it moves no bytes).
_NOWHERE = -1


class Pager(Residency):
    """The paging of a VRAM without its data (usually made by :meth:`RamVram.pager`).

    ``frames`` pages of ``page_size`` bytes; ``policy_factory(capacity)`` builds the eviction
    policies; ``backing`` (``ram`` or ``file``) and ``persistent`` (names) say which buffers'
    pages go through the cache ``tiers``, given as ``(name, slots[, link profile])`` fastest
    first; ``fault_latency`` and ``fault_service`` are seconds.  Not thread-safe: one caller
    drives it, in the order it wants modelled.

    Moves made outside :meth:`access` and :meth:`host_write` (the evictions when a tile that
    ran over capacity ends, a filled buffer loaded at allocation without paging) are
    returned first by the next call to one of them.
    """

    def __init__(self, *, page_size: int, frames: int, policy_factory: Callable[[int], Any],
                 paging: bool = True, profile: str = "plain", backing: str = "ram",
                 persistent: Iterable[str] = (), tiers: Sequence[Sequence[Any]] = (),
                 link: LinkProfile | str = "pcie4-x16", fault_latency: float = 40e-6,
                 fault_service: float = 0.8e-6, fault_batch_size: int = UVM_FAULT_BATCH):
        super().__init__(page_size=page_size, frames=frames, paging=paging, profile=profile,
                         policy_factory=policy_factory,
                         link=get_profile(link) if isinstance(link, str) else link,
                         fault_latency=fault_latency, fault_service=fault_service,
                         fault_batch_size=fault_batch_size)
        tiers = [tuple(t) for t in tiers]
        self._set_tiers([t[0] for t in tiers], [t[1] for t in tiers],
                        [t[2] if len(t) > 2 else None for t in tiers])
        self._backing = backing
        self._persistent = frozenset(persistent)
        self._buffers: dict[str, Pages] = {}
        self._next_id = 0
        self._tiles: list[list[Lease]] = []  # the leases of each open tile block
        # Moves not returned yet: [kind, buffer, first, count, source, dest, seconds, faults,
        # bytes move?] (levels as ints); per (kind, buffer id, source, dest, bytes move?) the
        # one a contiguous move extends; where this call's uvm fault batches are.
        self._moves: list[list[Any]] = []
        self._open: dict[tuple[str, int, int, int, bool], list[Any]] = {}
        self._batches: list[list[Any]] = []

    # -- buffers ------------------------------------------------------------------------
    def allocate(self, name: str, nbytes: int, *, filled: bool) -> None:
        """A buffer of ``nbytes`` (at least one page).  ``filled``: its contents are on the
        host, in its backing (the first touch of a page reads it); else it was never written
        (the first touch zero-fills it and reads nothing)."""
        if name in self._buffers:
            raise XvError("a buffer of this name is already allocated", where=f"buffer {name!r}",
                          hint="free it first or choose another name")
        if isinstance(nbytes, bool) or int(nbytes) != nbytes or nbytes < 0:
            raise XvError(f"invalid size {nbytes!r}: bytes must be an integer >= 0",
                          where=f"buffer {name!r}")
        pages = max(1, -(-int(nbytes) // self.page_size))
        ram_backed = name not in self._persistent and self._backing == "ram"
        buf = Pages(self._next_id, name, int(nbytes), pages, self._units(pages),
                    ram_backed=ram_backed, stored=bool(filled))
        self._next_id += 1
        self._buffers[name] = buf
        self._admit(buf)

    def free(self, name: str) -> None:
        """Forget a buffer: its pages leave VRAM and the tiers, and nothing moves (the
        contents of a freed buffer are not kept)."""
        self._forget_pages(self._get(name))
        del self._buffers[name]

    def _get(self, name: str) -> Pages:
        buf = self._buffers.get(name)
        if buf is None:
            raise XvError("buffer is not allocated in this pager", where=f"buffer {name!r}")
        return buf

    # -- what moves ---------------------------------------------------------------------
    def host_write(self, name: str) -> list[PageMove]:
        """The host writes the whole buffer, as RamVram's does: resident pages in place and
        others into free frames (``in`` from ``host``), the rest to the backing (``down``
        from ``host`` to ``backing``); the pages written into VRAM are dirty."""
        self._host_write_pages(self._get(name))
        return self._take()

    @contextlib.contextmanager
    def tile(self) -> Iterator[None]:
        """One tile: the pages :meth:`access` makes resident inside the block stay pinned
        (never evicted) until it ends, as a tile's leases do (each access's released in
        turn, as the runtime releases them).  Blocks may nest."""
        leases: list[Lease] = []
        self._tiles.append(leases)
        try:
            yield
        finally:
            self._tiles.remove(leases)
            # One lease per access, released in order, as the runtime releases a tile's.
            for lease in leases:
                lease.release()

    def access(self, name: str, ranges: Sequence[tuple[int, int]], *,
               write: bool) -> list[PageMove]:
        """A tile touches pages ``[start, stop)`` of each range (clipped to the buffer), as
        ``make_resident`` does: faults them in, evicting by the policy, pins them (until the
        :meth:`tile` block ends, or at once outside one), marks them dirty when ``write``.
        Returns what moved, in order (``uvm``: each fault batch's ``fault`` move first)."""
        buf = self._get(name)
        lease = Lease(self)
        if self._tiles:
            self._tiles[-1].append(lease)
        try:
            batches = self._access(buf, ranges, write, lease)
            for move, (faults, seconds) in zip(self._batches, batches, strict=True):
                move[6], move[7] = seconds, faults
        finally:
            self._batches.clear()
            if not self._tiles:
                lease.release()
        return self._take()

    def hit_tile(self, accesses: Sequence[tuple[str, Sequence[tuple[int, int]], bool]]) -> bool:
        """A whole tile's accesses ``(name, ranges, write)``, in order, when every page they
        touch is resident (and nothing is waiting to be returned): exactly what a
        :meth:`tile` block of those :meth:`access` calls does -- counts, the policy's hits
        in the same order, dirty marks -- without the pins, which only matter when a fault
        of the same tile would evict.  Returns False, having done nothing, otherwise (the
        caller then makes the calls)."""
        if self._tiles or self._moves or self._resident > self.frames or not self.paging:
            return False
        clipped: list[tuple[Pages, list[tuple[int, int]], bool]] = []
        for name, ranges, write in accesses:
            buf = self._get(name)
            resident = buf.resident
            kept = []
            for start, stop in ranges:
                start, stop = max(0, int(start)), min(buf.pages, int(stop))
                if stop <= start:
                    continue
                if resident.find(0, start, stop) >= 0:
                    return False
                kept.append((start, stop))
            clipped.append((buf, kept, write))
        vs, upp = self._vstats.values, self._unit_pages
        for buf, kept, write in clipped:
            count = 0
            for start, stop in kept:
                count += stop - start
                self._hit_run(buf, start // upp, (stop - 1) // upp + 1, start, stop)
                if write:
                    buf.dirty[start:stop] = b"\x01" * (stop - start)
            for values in (vs, buf.counters.values):
                values["accesses"] += count
                values["hits"] += count
        return True

    def stats(self) -> dict[str, Any]:
        """What the decisions counted: ``tiers`` as in RamVram's statistics (``vram``, each
        cache tier, ``backing``; no wall time: nothing really moves) and ``buffers``."""
        buffers = {}
        for name, buf in self._buffers.items():
            buffers[name] = buf.counters.as_dict()
            buffers[name]["resident_pages"] = buf.resident.count(1)
        return {"tiers": self._level_stats(), "buffers": buffers}

    def _move(self, kind: str, buf: Pages, first: int, count: int, source: int, dest: int,
              carries: bool = True) -> None:
        key = (kind, buf.id, source, dest, carries)
        run = self._open.get(key)
        if run is not None and run[2] + run[3] == first:
            run[3] += count
            return
        run = [kind, buf.name, first, count, source, dest, 0.0, 0, carries]
        self._open[key] = run
        self._moves.append(run)

    def _drop(self, buf: Pages, page: int, below: int) -> None:
        # A frame freed: the model waits for the page's users before reusing it.
        self._move("down", buf, page, 1, VRAM, below, carries=False)

    def _begin_fault_batch(self, buf: Pages) -> None:
        # The batch's fixed cost comes before its moves, which merge with nothing earlier.
        self._open.clear()
        move = ["fault", buf.name, 0, 0, _NOWHERE, VRAM, 0.0, 0, False]
        self._batches.append(move)
        self._moves.append(move)

    def _take(self) -> list[PageMove]:
        ps, name = self.page_size, self._level_name
        out = [PageMove(kind, buffer, first, count,
                        count * ps if carries and source != ZERO else 0,
                        "" if source == _NOWHERE else name(source), name(dest), seconds, faults)
               for kind, buffer, first, count, source, dest, seconds, faults, carries
               in self._moves]
        self._moves = []
        self._open.clear()
        return out
