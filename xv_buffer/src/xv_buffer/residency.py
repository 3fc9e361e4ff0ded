"""The paging decisions of the VRAM, made once for :class:`~xv_buffer.vram.RamVram` and for its
data-less twin :class:`~xv_buffer.pager.Pager`.

:class:`Residency` holds where every page is (VRAM, a cache tier, the backing, or nowhere yet)
and decides what moves: faults and the ``uvm`` tree prefetch, evictions by the policy, dirty
write-back, the chain of cache tiers, the host's writes, pins.  It counts the statistics
(hits, misses, evictions, bytes per level, modelled seconds) as it decides.  Each piece of data
it decides to move goes through one method, :meth:`Residency._move` ``(kind, pages, first,
count, source, dest)``: RamVram copies the bytes there (and measures the wall time), the Pager
writes it down as a :class:`~xv_core.runtime.interfaces.PageMove`.  So the two cannot drift
apart: the same calls make the same decisions, whatever the data.

Levels pages live on: :data:`VRAM` (0), the cache tiers 1 .. n (fastest first), the buffer's
:data:`BACKING`; a page nobody wrote comes from :data:`ZERO`, the host's writes from
:data:`HOST`.  Keys of pages and migration units are ``buffer id << 32 | unit``.
"""

from __future__ import annotations

import array
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import structlog

from xv_core.events import PageEvent
from xv_core.profiles import LinkProfile, get_profile
from xv_core.runtime.interfaces import PAGE_WRITE

log = structlog.get_logger("xv.vram")

#: The ``uvm`` profile's migration block and prefetch region.
UVM_BLOCK = 64 << 10
UVM_REGION = 2 << 20
#: Far faults the ``uvm`` profile services per batch: the NVIDIA UVM driver's default
#: (``uvm_perf_fault_batch_count``; see docs/vram.md).
UVM_FAULT_BATCH = 256
KEY_BITS = 32
_KEY_MASK = (1 << KEY_BITS) - 1

#: Levels of :meth:`Residency._move` (cache tiers are 1 .. 255, fastest first).
VRAM = 0
BACKING = 256
ZERO = 257
HOST = 258

_VRAM_COUNTERS = ("accesses", "hits", "misses", "zero_fills", "prefetches", "fault_batches",
                  "prefetched", "prefetch_hits", "prefetch_unused", "prefetch_dropped",
                  "evictions", "writebacks", "bytes_read", "bytes_written", "host_bytes_read",
                  "host_bytes_written")
_TIER_COUNTERS = ("hits", "misses", "prefetch_hits", "evictions", "reads", "writes",
                  "bytes_read", "bytes_written")


class Counters:
    """Named counters plus measured (wall) and modelled seconds of data movement."""

    def __init__(self, names: Sequence[str]):
        self.values = dict.fromkeys(names, 0)
        self.wall_s = 0.0
        self.modelled_s = 0.0

    def add(self, name: str, n: int = 1) -> None:
        self.values[name] += n

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.values)
        moved = out.get("bytes_read", 0) + out.get("bytes_written", 0)
        accesses = out.get("hits", 0) + out.get("misses", 0)
        if "hits" in out:
            out["miss_ratio"] = out["misses"] / accesses if accesses else 0.0
        out["wall_s"] = self.wall_s
        out["modelled_s"] = self.modelled_s
        # Measured on this machine: bytes moved over the time spent moving them.
        out["bandwidth_Bps"] = moved / self.wall_s if self.wall_s > 0 else 0.0
        return out


def vram_counters() -> Counters:
    return Counters(_VRAM_COUNTERS)


class Pages:
    """Where each page of one buffer is: the state the paging decisions read and change.

    Per page: ``resident`` in VRAM; ``dirty``, written since it came in (newer than any copy
    below); ``tier_of``, the cache tier holding a copy (0: none, k: the k-th, fastest first;
    a page is in one cache tier at most); ``tier_newer``, that copy is newer than the
    backing's; ``stored``, the backing holds data for it (0: never written: zeros).  Per
    migration unit (a page, or a ``uvm`` block): ``pins``, how many leases hold it.
    ``ram_backed``: its pages go straight back to host RAM, past the cache tiers."""

    def __init__(self, ident: int, name: str, nbytes: int, pages: int, units: int, *,
                 ram_backed: bool, stored: bool):
        self.id = ident
        self.name = name
        self.nbytes = nbytes
        self.pages = pages
        self.key_base = ident << KEY_BITS
        self.ram_backed = ram_backed
        self.resident = bytearray(pages)
        self.dirty = bytearray(pages)
        self.tier_of = bytearray(pages)
        self.tier_newer = bytearray(pages)
        self.stored = bytearray(b"\x01" * pages) if stored else bytearray(pages)
        # Two views of the pin counts: one to index (a Python int each), one to add to runs.
        self.pins = array.array("i", bytes(4 * units))
        self.pin_runs = np.frombuffer(self.pins, dtype=np.int32)
        self.counters = vram_counters()


class Pins:
    """The pinned units of every buffer, as the ``pinned`` container :meth:`evict` passes
    over: ``key in pins`` when the unit's pin count is above 0."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[int, array.array[int]] = {}

    def __contains__(self, key: object) -> bool:
        counts = self.counts.get(key >> KEY_BITS)  # type: ignore[operator]
        return counts is not None and counts[key & _KEY_MASK] > 0  # type: ignore[operator]

    def __bool__(self) -> bool:
        return any(counts.count(0) != len(counts) for counts in self.counts.values())


class Lease:
    """Units pinned for one tile (see :meth:`RamVram.make_resident`); :meth:`release` once
    lets them be evicted again."""

    __slots__ = ("_owner", "held")

    def __init__(self, owner: Residency):
        self._owner = owner
        #: ``(pages, first unit, stop unit)`` runs, each pinned once.
        self.held: list[tuple[Pages, int, int]] = []

    def add(self, buf: Pages, first: int, stop: int) -> None:
        held = self.held
        if held:
            last_buf, last_first, last_stop = held[-1]
            if last_buf is buf and last_stop == first:
                held[-1] = (buf, last_first, stop)
                return
        held.append((buf, first, stop))

    def release(self) -> None:
        held, self.held = self.held, []
        if held:
            self._owner._release_lease(held)


class Residency:
    """Residency, eviction, tiers and faults of one VRAM: the decisions, without the data.

    ``frames`` pages of ``page_size`` bytes; ``policy_factory(capacity)`` builds the
    policy of VRAM (capacity in migration units) and of each cache tier.  Subclasses
    perform the moves (:meth:`_move`) and may watch the cache tiers' real contents
    (:meth:`_tier_used`, :meth:`_tier_holds`, :meth:`_drop_tier_copy`); this class is not
    thread-safe (RamVram holds its lock around every call).
    """

    def __init__(self, *, page_size: int, frames: int, paging: bool, profile: str,
                 policy_factory: Callable[[int], Any], link: LinkProfile,
                 fault_latency: float, fault_service: float, fault_batch_size: int,
                 on_page: Callable[..., Any] | None = None):
        self.page_size = page_size
        self.frames = frames
        self.paging = paging
        self.profile = profile
        self.link = link
        self.fault_latency = fault_latency
        self.fault_service = fault_service
        self.fault_batch_size = fault_batch_size
        self._uvm = profile == "uvm"
        # The unit the policy sees and pages move in: a page, or a UVM migration block.
        self._unit_pages = UVM_BLOCK // page_size if self._uvm else 1
        self._policy_factory = policy_factory
        self.policy = policy_factory(max(1, frames // self._unit_pages))
        # A run of hits in one call (the fast path of a tile whose pages are resident).
        hit_many = getattr(self.policy, "hit_many", None)
        self._hit_many: Callable[[Iterable[int]], None] = hit_many or self._hit_each
        self._pins = Pins()
        self._by_id: dict[int, Pages] = {}
        self._resident = 0  # resident pages (frames in use)
        self._resident_peak = 0
        self._over_peak = 0
        self._closed = False
        self._vstats = vram_counters()
        self._backing_stats = Counters(_TIER_COUNTERS)
        # The cache tiers, fastest first: name, slots, policy, the link timing its transfers
        # (or None), statistics.
        self._tier_names: list[str] = []
        self._tier_slots: list[int] = []
        self._tier_profiles: list[str | None] = []
        self._tier_policies: list[Any] = []
        self._tier_links: list[LinkProfile | None] = []
        self._tier_stats: list[Counters] = []
        # Units the prefetch worker brought in that no tile has touched since, with their
        # pages, and their total (RamVram only: the Pager does not prefetch).
        self._prefetched: dict[int, int] = {}
        self._prefetched_pages = 0
        self._trace: array.array[int] | None = None
        # The xv_on_page hook (called with event=PageEvent), when a plugin implements it.
        self._on_page = on_page

    def _set_tiers(self, names: Sequence[str], slots: Sequence[int],
                   profiles: Sequence[str | None]) -> None:
        self._tier_names = list(names)
        self._tier_slots = [int(s) for s in slots]
        self._tier_profiles = list(profiles)
        self._tier_policies = [self._policy_factory(max(1, s)) for s in self._tier_slots]
        self._tier_links = [get_profile(p) if p else None for p in profiles]
        self._tier_stats = [Counters(_TIER_COUNTERS) for _ in names]

    # -- what subclasses do with the decisions ------------------------------------------
    def _move(self, kind: str, buf: Pages, first: int, count: int, source: int,
              dest: int) -> None:
        """Move pages ``first .. first + count - 1`` of ``buf`` from level ``source`` to
        ``dest`` (``kind``: ``"in"`` into VRAM, ``"down"`` below it).  Called in the order
        decided; a page from a tier is one page, and a move from a tier to another level
        than VRAM leaves the tier (the caller has made room at ``dest``)."""
        raise NotImplementedError

    def _drop(self, buf: Pages, page: int, below: int) -> None:
        """A clean page leaves VRAM and nothing moves: its current copy is at level ``below``
        (``ZERO``: it was never written)."""

    def _tier_used(self, index: int) -> int:
        """Pages cache tier ``index`` holds."""
        return len(self._tier_policies[index])

    def _tier_holds(self, index: int, key: int) -> bool:
        """Cache tier ``index`` still has the page: False only for a tier that lost it."""
        return True

    def _drop_tier_copy(self, index: int, key: int) -> None:
        """Cache tier ``index`` forgets a page (nothing moves)."""

    def _release(self, buf: Pages, first: int, count: int) -> None:
        """Pages left VRAM: give their memory back."""

    def _begin_fault_batch(self, buf: Pages) -> None:
        """A ``uvm`` fault batch begins: the moves of its faults follow."""

    def _release_lease(self, held: list[tuple[Pages, int, int]]) -> None:
        self._unpin(held)

    # -- buffers ------------------------------------------------------------------------
    def _units(self, pages: int) -> int:
        return -(-pages // self._unit_pages)

    def _admit(self, buf: Pages) -> None:
        """A new buffer.  Without paging it is resident at once (loaded when stored)."""
        self._by_id[buf.id] = buf
        self._pins.counts[buf.id] = buf.pins
        if not self.paging:
            self._resident_pages(buf.pages)
            buf.resident[:] = b"\x01" * buf.pages
            if buf.stored[0]:
                self._load(buf, 0, buf.pages)  # a persistent buffer's stored contents

    def _forget_pages(self, buf: Pages) -> None:
        """A buffer is freed: its pages leave VRAM and the tiers, moving nothing."""
        upp = self._unit_pages
        if self.paging:
            page = buf.resident.find(1)
            while page >= 0:
                key = buf.key_base | page // upp
                if key in self.policy:
                    self.policy.remove(key)
                self._prefetch_forget(buf, key)
                page = buf.resident.find(1, (page // upp + 1) * upp)
        del self._by_id[buf.id]
        del self._pins.counts[buf.id]
        self._resident -= buf.resident.count(1)
        if self._tier_names and buf.tier_of.count(0) != buf.pages:
            for page in range(buf.pages):
                if buf.tier_of[page]:
                    self._drop_from_tier(buf, page)

    def _unit_range(self, buf: Pages, unit: int) -> tuple[int, int]:
        upp = self._unit_pages
        return unit * upp, min(buf.pages, (unit + 1) * upp)

    def _resident_pages(self, n: int) -> None:
        self._resident += n
        self._resident_peak = max(self._resident_peak, self._resident)
        self._over_peak = max(self._over_peak, self._resident - self.frames)

    def _level_name(self, level: int) -> str:
        if level == VRAM:
            return "vram"
        if level == BACKING:
            return "backing"
        if level == ZERO:
            return "zero"
        if level == HOST:
            return "host"
        return self._tier_names[level - 1]

    def _source(self, buf: Pages, page: int) -> str:
        if buf.tier_of[page]:
            return self._tier_names[buf.tier_of[page] - 1]
        return "backing" if buf.stored[page] else "zero"

    def _event(self, kind: str, buf: Pages, page: int, tier: str) -> None:
        if self._on_page is not None:
            self._on_page(event=PageEvent(kind, buf.name, page, tier))

    # -- a tile's access ----------------------------------------------------------------
    def _access(self, buf: Pages, page_ranges: Iterable[tuple[int, int]], write: bool,
                lease: Lease) -> list[tuple[int, float]]:
        """Fault in pages ``[start, stop)`` of each range, pin them into ``lease``, mark them
        dirty when ``write``; the ``uvm`` fault batches as ``(faults, fixed seconds)``."""
        faults: list[int] = []  # bytes each fault moved, in order
        accesses = misses = 0  # of the ranges done (counted even if a later one fails)
        try:
            for start, stop in page_ranges:
                start, stop = max(0, int(start)), min(buf.pages, int(stop))
                if stop <= start:
                    continue
                count = stop - start
                if self._trace is not None:
                    self._trace.extend((buf.id, start, count, PAGE_WRITE if write else 0))
                if self.paging:
                    misses += self._touch(buf, start, stop, lease, faults)
                accesses += count
                if write:
                    buf.dirty[start:stop] = b"\x01" * count
        finally:
            for values in (self._vstats.values, buf.counters.values):
                values["accesses"] += accesses
                values["hits"] += accesses - misses
                if misses:
                    values["misses"] += misses
        return self._charge_faults(buf, faults) if faults else []

    def _touch(self, buf: Pages, start: int, stop: int, lease: Lease,
               faults: list[int]) -> int:
        """Pin and make resident the units holding pages ``[start, stop)``, in order; the
        faults (the bytes each moved are appended to ``faults``)."""
        upp = self._unit_pages
        resident = buf.resident
        unit, end = start // upp, (stop - 1) // upp + 1
        misses = 0
        while unit < end:
            # Units up to the first missing page are resident: pin them and tell the policy
            # of their hits in one go (no fault comes between them to evict any).
            gap = resident.find(0, unit * upp, stop)
            hits_end = end if gap < 0 else gap // upp
            if hits_end > unit:
                self._pin(buf, unit, hits_end, lease)
                self._hit_run(buf, unit, hits_end, start, stop)
                unit = hits_end
                continue
            # Pinned before it is made resident, so that neither the prefetcher nor later
            # units of this very call can evict it.
            self._pin(buf, unit, unit + 1, lease)
            misses += 1  # one fault brings the whole unit: its other pages are hits
            if self._uvm and len(faults) % self.fault_batch_size == 0:
                self._begin_fault_batch(buf)
            faults.append(self._fault(buf, unit, buf.key_base | unit))
            unit += 1
        return misses

    def _pin(self, buf: Pages, first: int, stop: int, lease: Lease) -> None:
        if stop - first == 1:
            buf.pins[first] += 1
        else:
            buf.pin_runs[first:stop] += 1
        lease.add(buf, first, stop)

    def _hit_each(self, keys: Iterable[int]) -> None:
        hit = self.policy.hit
        for key in keys:
            hit(key)

    def _hit_run(self, buf: Pages, first: int, stop: int, start: int, end: int) -> None:
        """Hits on resident units ``first .. stop - 1`` (pages ``[start, end)`` asked for)."""
        key = buf.key_base | first
        if stop - first == 1:
            self.policy.hit(key)
        else:
            self._hit_many(range(key, key + stop - first))
        if self._prefetched:  # first use of units the prefetch worker brought
            upp, prefetched = self._unit_pages, self._prefetched
            for unit in range(first, stop):
                pages = prefetched.pop(buf.key_base | unit, None)
                if pages is not None:
                    self._prefetched_pages -= pages
                    used = min(end, (unit + 1) * upp) - max(start, unit * upp)
                    self._vstats.add("prefetch_hits", used)
                    buf.counters.add("prefetch_hits", used)

    def _charge_faults(self, buf: Pages, faults: list[int]) -> list[tuple[int, float]]:
        """Modelled seconds of the faults of one call (bytes moved by each); the ``uvm``
        batches as ``(faults, fixed seconds)``.

        ``plain``: one link transfer per fault.  ``uvm``: batches of up to
        ``fault_batch_size`` faults, in order; a batch costs ``fault_latency``, each of its
        faults ``fault_service``, and one link transfer of everything the batch migrated."""
        link = self.link
        batches: list[tuple[int, float]] = []
        if self._uvm:
            modelled, size = 0.0, self.fault_batch_size
            for b in range(0, len(faults), size):
                batch = faults[b:b + size]
                moved = sum(batch)
                fixed = self.fault_latency + len(batch) * self.fault_service
                modelled += fixed
                if moved:
                    modelled += link.transfer_time(moved)
                batches.append((len(batch), fixed))
            self._vstats.add("fault_batches", len(batches))
            buf.counters.add("fault_batches", len(batches))
        else:
            modelled = sum(link.transfer_time(moved) for moved in faults if moved)
        self._charge(buf, modelled)
        return batches

    def _unpin(self, held: list[tuple[Pages, int, int]]) -> None:
        by_id = self._by_id
        for buf, first, stop in held:
            if by_id.get(buf.id) is not buf:
                continue  # freed meanwhile
            if stop - first == 1:
                buf.pins[first] -= 1
            else:
                buf.pin_runs[first:stop] -= 1
        # Pages brought in over capacity while everything was pinned go now.
        if self.paging and self._resident > self.frames and not self._closed:
            self._make_room(0)

    # -- faults and evictions -----------------------------------------------------------
    def _fault(self, buf: Pages, unit: int, key: int) -> int:
        """Bring in a unit on demand (and, with ``uvm``, its tree prefetch); bytes moved."""
        first, stop = self._unit_range(buf, unit)
        self.policy.miss(key)
        # Read it before making room: evicting first could push the very copy it is about to
        # read out of a cache tier, down the chain.  Frames only count pages (the bytes live
        # in the buffer's own mapping), so nothing else sees the unit over capacity.
        source = self._source(buf, first)
        moved = self._load(buf, first, stop - first)
        self._make_room(stop - first)
        self._event("fault", buf, first, source)
        self._place(buf, unit)
        if self._uvm:
            moved += self._tree_prefetch(buf, unit)
        return moved

    def _place(self, buf: Pages, unit: int) -> None:
        """A unit takes frames (its pages are loaded): the policy admits it, its pages are
        resident and clean."""
        first, stop = self._unit_range(buf, unit)
        self.policy.insert(buf.key_base | unit)
        buf.resident[first:stop] = b"\x01" * (stop - first)
        buf.dirty[first:stop] = bytes(stop - first)
        self._resident_pages(stop - first)

    def _charge(self, buf: Pages, seconds: float) -> None:
        """Modelled seconds of moving ``buf``'s pages over the link."""
        self._vstats.modelled_s += seconds
        buf.counters.modelled_s += seconds

    def _make_room(self, pages: int) -> None:
        """Evict until ``pages`` more fit; over capacity only when everything is pinned."""
        while self._resident + pages > self.frames:
            victim = self.policy.evict(self._pins)
            if victim is None:
                if pages:
                    log.debug("vram over capacity: every resident page is pinned",
                              resident=self._resident, frames=self.frames)
                return
            self._evict(victim)

    def _evict(self, key: int) -> None:
        buf = self._by_id[key >> KEY_BITS]
        first, stop = self._unit_range(buf, key & _KEY_MASK)
        if self._on_page is not None and any(buf.dirty[first:stop]):
            below = self._tier_names[0] if self._tier_names and not buf.ram_backed \
                else "backing"
            self._event("writeback", buf, first, below)
        self._write_down(buf, first, stop)
        self._event("evict", buf, first, "vram")
        self._release(buf, first, stop - first)
        buf.resident[first:stop] = bytes(stop - first)
        buf.dirty[first:stop] = bytes(stop - first)
        self._resident -= stop - first
        self._vstats.add("evictions")
        buf.counters.add("evictions")
        self._prefetch_forget(buf, key)

    def _prefetch_forget(self, buf: Pages, key: int) -> None:
        """A unit leaves VRAM (evicted or freed): if prefetch brought it and no tile used
        it, that prefetch was wasted."""
        pages = self._prefetched.pop(key, None)
        if pages is not None:
            self._prefetched_pages -= pages
            self._vstats.add("prefetch_unused", pages)
            buf.counters.add("prefetch_unused", pages)

    def _tree_prefetch(self, buf: Pages, unit: int) -> int:
        """The ``uvm`` profile's tree-based neighbourhood prefetcher: bytes it brought in."""
        upp = self._unit_pages
        units = self._units(buf.pages)
        per_region = UVM_REGION // UVM_BLOCK
        moved, size = 0, 2
        while size <= per_region:
            lo = unit // size * size
            hi = min(lo + size, units)
            missing = [u for u in range(lo, hi) if not buf.resident[u * upp]]
            if missing and (hi - lo - len(missing)) * 2 > hi - lo:
                for u in missing:
                    first, stop = self._unit_range(buf, u)
                    self._make_room(stop - first)
                    if self._resident + (stop - first) > self.frames:
                        return moved  # no room without evicting pinned pages: stop here
                    self._event("fault", buf, first, self._source(buf, first))
                    moved += self._load(buf, first, stop - first)
                    self._place(buf, u)
                    self._vstats.add("prefetches")
                    buf.counters.add("prefetches")
            size *= 2
        return moved

    # -- moving pages between levels ----------------------------------------------------
    def _load(self, buf: Pages, first: int, count: int, *, prefetch: bool = False) -> int:
        """Bring pages into VRAM from the fastest level holding them; the bytes that moved
        (zero pages move nothing).  A file-backed page not in cache tier k was looked for (a
        miss) in tiers 1 .. k - 1."""
        ps = self.page_size
        moved = 0
        page, stop = first, first + count
        tiered = bool(self._tier_names) and not buf.ram_backed
        while page < stop:
            level = buf.tier_of[page]
            if level:
                key = buf.key_base | page
                policy = self._tier_policies[level - 1]
                if not self._tier_holds(level - 1, key):  # lost: should not happen; read below
                    if key in policy:
                        policy.remove(key)
                    buf.tier_of[page] = buf.tier_newer[page] = 0
                    continue
                self._move("in", buf, page, 1, level, VRAM)
                for upper in self._tier_stats[:level - 1]:
                    upper.add("misses")
                policy.hit(key)
                stats = self._tier_stats[level - 1]
                stats.add("hits")
                if prefetch:
                    stats.add("prefetch_hits")
                stats.add("reads")
                stats.add("bytes_read", ps)
                link = self._tier_links[level - 1]
                if link is not None:
                    stats.modelled_s += link.transfer_time(ps)
                moved += ps
                page += 1
                continue
            # A run of pages in no cache tier: one read from the backing, or zero-fill.
            end = page + 1
            has = buf.stored[page]
            while end < stop and not buf.tier_of[end] and buf.stored[end] == has:
                end += 1
            if tiered:
                for stats in self._tier_stats:
                    stats.add("misses", end - page)
            if has:
                self._move("in", buf, page, end - page, BACKING, VRAM)
                self._backing_stats.add("reads")
                self._backing_stats.add("bytes_read", (end - page) * ps)
                if prefetch:
                    self._backing_stats.add("prefetch_hits", end - page)
                moved += (end - page) * ps
            else:
                self._move("in", buf, page, end - page, ZERO, VRAM)
                self._vstats.add("zero_fills", end - page)
            page = end
        if moved:
            self._vstats.add("bytes_written", moved)
            buf.counters.add("bytes_written", moved)
        return moved

    def _write_down(self, buf: Pages, first: int, stop: int) -> None:
        """Send evicted pages below VRAM: dirty ones back, clean ones of file-backed
        buffers into the first cache tier (a victim cache in front of the slower file)."""
        ps = self.page_size
        written = 0
        use_tier = bool(self._tier_names) and not buf.ram_backed
        for page in range(first, stop):
            dirty = buf.dirty[page]
            level = buf.tier_of[page]
            if use_tier and dirty:
                if level > 1:  # its copy further down is stale now
                    self._drop_from_tier(buf, page)
                self._to_tier(0, buf, page, VRAM, newer=True)
                written += ps
            elif use_tier and not level and buf.stored[page]:
                self._to_tier(0, buf, page, VRAM, newer=False)
            elif dirty:
                self._move("down", buf, page, 1, VRAM, BACKING)
                buf.stored[page] = 1
                self._backing_stats.add("writes")
                self._backing_stats.add("bytes_written", ps)
                if level:  # its copy in a tier is stale now
                    self._drop_from_tier(buf, page)
                written += ps
            else:  # clean: its copy below is current
                self._drop(buf, page, level or (BACKING if buf.stored[page] else ZERO))
        if written:
            self._vstats.add("writebacks", written // ps)
            buf.counters.add("writebacks", written // ps)
            self._vstats.add("bytes_read", written)
            buf.counters.add("bytes_read", written)
            self._charge(buf, self.link.transfer_time(written))

    def _to_tier(self, index: int, buf: Pages, page: int, source: int, *, newer: bool) -> None:
        """Move a page from level ``source`` into cache tier ``index`` (0: the fastest),
        making room there first by moving its victims down the chain."""
        policy = self._tier_policies[index]
        key = buf.key_base | page
        newer = newer or (buf.tier_of[page] == index + 1 and bool(buf.tier_newer[page]))
        if key in policy:
            policy.hit(key)
        else:
            policy.miss(key)
            slots = self._tier_slots[index]
            while self._tier_used(index) >= slots or len(policy) >= policy.capacity:
                victim = policy.evict(())
                if victim is None:
                    break
                self._tier_evict(index, victim)
            policy.insert(key)
        self._move("down", buf, page, 1, source, index + 1)
        stats = self._tier_stats[index]
        stats.add("writes")
        stats.add("bytes_written", self.page_size)
        link = self._tier_links[index]
        if link is not None:
            stats.modelled_s += link.transfer_time(self.page_size)
        buf.tier_of[page] = index + 1
        buf.tier_newer[page] = 1 if newer else 0

    def _tier_evict(self, index: int, key: int) -> None:
        """Cache tier ``index`` lets a page go: down to the next tier, or from the last
        one to the backing when it is newer there (else it is dropped)."""
        stats = self._tier_stats[index]
        stats.add("evictions")
        buf = self._by_id.get(key >> KEY_BITS)
        page = key & _KEY_MASK
        last = index + 1 == len(self._tier_names)
        if buf is not None and (not last or buf.tier_newer[page]) \
                and self._tier_holds(index, key):
            stats.add("reads")
            stats.add("bytes_read", self.page_size)
            link = self._tier_links[index]
            if link is not None:
                stats.modelled_s += link.transfer_time(self.page_size)
            newer = bool(buf.tier_newer[page])
            buf.tier_of[page] = buf.tier_newer[page] = 0
            if not last:
                self._to_tier(index + 1, buf, page, index + 1, newer=newer)
            else:
                self._move("down", buf, page, 1, index + 1, BACKING)
                buf.stored[page] = 1
                self._backing_stats.add("writes")
                self._backing_stats.add("bytes_written", self.page_size)
            return
        self._drop_tier_copy(index, key)
        if buf is not None:
            buf.tier_of[page] = buf.tier_newer[page] = 0

    def _drop_from_tier(self, buf: Pages, page: int) -> None:
        level = buf.tier_of[page]
        if not level:
            return
        key = buf.key_base | page
        self._drop_tier_copy(level - 1, key)
        policy = self._tier_policies[level - 1]
        if key in policy:
            policy.remove(key)
        buf.tier_of[page] = buf.tier_newer[page] = 0

    # -- the host's writes ----------------------------------------------------------------
    def _host_write_pages(self, buf: Pages) -> None:
        """The host writes the whole buffer: resident pages in place; others into free VRAM
        frames while there are some (no eviction), the rest to the backing."""
        if buf.resident.find(0) < 0:
            self._move("in", buf, 0, buf.pages, HOST, VRAM)
            buf.dirty[:] = b"\x01" * buf.pages
        else:
            for unit in range(self._units(buf.pages)):
                first, stop = self._unit_range(buf, unit)
                count = stop - first
                if not buf.resident[first] and self._resident + count <= self.frames:
                    self._place(buf, unit)
                if buf.resident[first]:
                    self._move("in", buf, first, count, HOST, VRAM)
                    buf.dirty[first:stop] = b"\x01" * count
                    continue
                self._move("down", buf, first, count, HOST, BACKING)
                buf.stored[first:stop] = b"\x01" * count
                for page in range(first, stop):
                    if buf.tier_of[page]:
                        self._drop_from_tier(buf, page)
        self._vstats.add("host_bytes_written", buf.nbytes)

    # -- statistics -----------------------------------------------------------------------
    def _level_stats(self) -> dict[str, dict[str, Any]]:
        """Counters per level: ``vram``, each cache tier by name in chain order,
        ``backing``."""
        vram = self._vstats.as_dict()
        vram.update(resident=self._resident * self.page_size,
                    resident_peak=self._resident_peak * self.page_size,
                    overcommit_peak=max(0, self._over_peak) * self.page_size)
        levels: dict[str, dict[str, Any]] = {"vram": vram}
        for level, name in enumerate(self._tier_names, 1):
            entry = self._tier_stats[level - 1].as_dict()
            entry.update(level=level, slots=self._tier_slots[level - 1],
                         used=self._tier_used(level - 1), profile=self._tier_profiles[level - 1])
            levels[name] = entry
        backing = self._backing_stats.as_dict()
        backing.pop("miss_ratio", None)
        backing["prefetch_reads"] = backing.pop("prefetch_hits")
        for unused in ("hits", "misses", "evictions"):
            backing.pop(unused, None)
        levels["backing"] = backing
        return levels
