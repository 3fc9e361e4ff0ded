"""The modelled fabric: where every page lives in virtual time, and what each dispatch costs.

A :class:`FabricModel` is built with a fabric and lives as long as it.  It holds a
:class:`~xv_core.timing.Timeline` of the fabric's links (plus a default link for a component
that has none to the host) and its compute components (each with its device profile), and the
*memory nodes* pages can live on: ``host`` (the host's RAM, where inputs come from and outputs
go) and each compute component with memory of its own.  A ``cpu`` component that no link names
shares the host's memory: it is the ``host`` node.

For each buffer it tracks, page by page (pages of the fabric's ``vram.page_size``), which nodes
hold the current contents and since when (the activity after which they are there), which tiles
wrote it and which read it since.  The runtime drives it, per dispatch:

1. :meth:`place` -- for each tile, in order, the scheduling policy is offered one candidate per
   compute component (estimated ready, start, compute and finish times, bytes moved); the tile
   is committed where the policy chooses: transfers of the pages it reads that its component
   does not hold start on the timeline (from the node whose copy would arrive first, after the
   tile that produced it), and the component's lanes and the links are booked in the estimates;
2. the tiles really run (anywhere: idle CPU workers may steal them) and their backends count
   their work;
3. :meth:`finish` -- each tile's compute is submitted on its planned component, after its
   transfers and after the tiles of earlier dispatches it depends on (the writers of what it
   reads; the readers and writers of what it writes), timed by the roofline of the counted work
   (or its measured wall time with ``clock: measured``).  What the dispatch wrote becomes the
   pages' current contents.

Host reads (:meth:`host_read`) add read-back transfers; host writes (:meth:`host_write`) put
new contents on the host.  Transfers for a tile start as soon as their data exists and the
transfers placed before them between the same two nodes are done (one copy queue per pair of
nodes), while the component still computes earlier tiles: transfers overlap compute.  The
timeline runs lazily (:meth:`report`); its times never depend on wall time or thread timing
(tags are ``s<dispatch>/t<tile>...``), so the same fabric and job give the same timeline, event
for event, whatever the number of worker threads.

``docs/scheduling.md`` explains the estimates, the dependencies and the lower bound reported
beside the makespan.
"""

from __future__ import annotations

import array
import bisect
import heapq
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from xv_core.config.timing import MAX_LANES
from xv_core.errors import XvError
from xv_core.events import TransferEvent
from xv_core.runtime.footprint import TileFootprint, subtract_ranges
from xv_core.runtime.interfaces import Tile, TileWork
from xv_core.runtime.memo import IdentityLRU
from xv_core.runtime.placement import Candidate
from xv_core.timing import DEFAULT_DEVICE_PROFILES, DeviceProfile, Link, Timeline
from xv_core.timing.engine import Activity

HOST = "host"
#: A page no one has written yet (a buffer allocated zero-filled): any node has it, at once.
ANYWHERE = "*"
#: Component kinds that share the host's memory when no link names them.
HOST_MEMORY_KINDS = frozenset({"cpu"})
#: The link a component gets when no link joins it to the host: (profile, bus model or None
#: for the fabric's ``bus``), by kind; other kinds get :data:`DEFAULT_LINK`.
DEFAULT_LINKS: dict[str, tuple[str, str | None]] = {
    "hdd": ("sata3", None),
    "net": ("1gbe", "tcp"),
}
DEFAULT_LINK: tuple[str, str | None] = ("pcie4-x16", None)

_Held = tuple[tuple[Activity, ...], float]  # (activities it waits for, estimated time)


# --------------------------------------------------------------------------
# The fabric as the timeline sees it
# --------------------------------------------------------------------------


def _configured_lanes(options: object) -> int | None:
    """``threads`` or ``workers`` when the fabric sets them (0 means 'per core': not set)."""
    for key in ("threads", "workers"):
        value = getattr(options, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def device_profiles(config: Any, plugins: Any) -> dict[str, DeviceProfile]:
    """The device profile of each compute component, in fabric order.

    The component's ``timing.profile``, else its kind's default profile, else ``cpu``'s; its
    numbers overridden by the other ``timing`` keys.  Lanes: ``timing.lanes``, else the
    ``threads`` or ``workers`` the fabric gives the component, else the profile's -- never the
    machine's core count, so a fabric times the same everywhere.
    """
    out: dict[str, DeviceProfile] = {}
    for c in config.components:
        if not plugins.components.get(c.kind).compute:
            continue
        timing = c.timing
        base = (timing.profile if timing is not None and timing.profile else
                c.kind if c.kind in DEFAULT_DEVICE_PROFILES else "cpu")
        profile = DEFAULT_DEVICE_PROFILES[base]
        changes: dict[str, Any] = {"lanes": _configured_lanes(c.options) or profile.lanes}
        if timing is not None:
            for key in ("lanes", "ops_per_lane_per_s", "mem_bandwidth", "launch_latency"):
                value = getattr(timing, key)
                if value is not None:
                    changes[key] = value
        if changes["lanes"] > MAX_LANES:  # threads or workers in the thousands of millions
            raise XvError(f"component {c.name!r} would be modelled with {changes['lanes']} "
                          f"lanes, more than {MAX_LANES}",
                          hint="give it timing: {lanes: N} to model fewer, or fewer workers")
        out[c.name] = attrs.evolve(profile, **changes)
    return out


def model_links(config: Any, plugins: Any) -> tuple[list[Link], dict[str, str]]:
    """The timeline's links and each compute component's memory node.

    The fabric's links as declared; a ``cpu`` component no link names is the ``host`` node;
    any other compute component that no chain of links joins to the host gets a link of its
    own, ``<name>-link``, by its kind (:data:`DEFAULT_LINKS`: ``hdd`` over ``sata3``, ``net``
    over ``1gbe`` with the ``tcp`` model, others over ``pcie4-x16``).
    """
    from xv_core.profiles import PROFILES

    links = [Link(ln.name, ln.between[0], ln.between[1], ln.link_profile(), ln.model)
             for ln in config.links]
    named = {end for ln in config.links for end in ln.between}
    reach = _reachable(links, HOST)
    nodes: dict[str, str] = {}
    for c in config.components:
        if not plugins.components.get(c.kind).compute:
            continue
        if c.kind in HOST_MEMORY_KINDS and c.name not in named:
            nodes[c.name] = HOST
            continue
        nodes[c.name] = c.name
        if c.name not in reach:
            profile, model = DEFAULT_LINKS.get(c.kind, DEFAULT_LINK)
            links.append(Link(f"{c.name}-link", HOST, c.name, PROFILES[profile], model))
            reach = _reachable(links, HOST)
    return links, nodes


def _reachable(links: Sequence[Link], start: str) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        node = todo.pop()
        for ln in links:
            for a, b in ((ln.a, ln.b), (ln.b, ln.a)):
                if a == node and b not in seen:
                    seen.add(b)
                    todo.append(b)
    return seen


# --------------------------------------------------------------------------
# Page state
# --------------------------------------------------------------------------


class _Seg:
    """A run of pages ``[start, stop)`` of one buffer whose current contents are in the same
    place.  ``copies``: nodes holding all of them; ``parts``: nodes holding the pieces of a
    version several nodes wrote in one dispatch (then no node holds all of it until one gathers
    it).  ``writers`` wrote the current contents, ``readers`` read them since.

    Pages are kept in runs, not one by one, so that what a dispatch costs the model grows with
    its tiles, not with the pages they touch: a run is split where a tile's range starts or
    stops inside it, and every page of a run is treated exactly as the model treats one page.
    """

    __slots__ = ("start", "stop", "copies", "parts", "writers", "readers")

    def __init__(self, start: int, stop: int, copies: dict[str, _Held]):
        self.start = start
        self.stop = stop
        self.copies = copies
        self.parts: dict[str, _Held] = {}
        self.writers: list[Activity] = []
        self.readers: list[Activity] = []

    def cut(self, at: int) -> _Seg:
        """Split at page ``at``: this run keeps ``[start, at)``, the new one ``[at, stop)``."""
        right = _Seg(at, self.stop, dict(self.copies))
        right.parts = dict(self.parts)
        right.writers = list(self.writers)
        right.readers = list(self.readers)
        self.stop = at
        return right

    def same(self, other: _Seg) -> bool:
        return (self.copies == other.copies and self.parts == other.parts
                and _same_acts(self.writers, other.writers)
                and _same_acts(self.readers, other.readers))


def _same_acts(a: Sequence[Activity], b: Sequence[Activity]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


class _Buffer:
    """A buffer's pages as sorted, contiguous runs (:class:`_Seg`) covering all of them."""

    __slots__ = ("name", "nbytes", "count", "segs", "starts")

    def __init__(self, name: str, nbytes: int, page_size: int, where: str):
        self.name = name
        self.nbytes = nbytes
        self.count = -(-nbytes // page_size)
        self.segs = [_Seg(0, self.count, {where: ((), 0.0)})] if self.count else []
        self.starts = [0] if self.count else []

    def overlap(self, a: int, b: int) -> list[tuple[_Seg, int, int]]:
        """The runs meeting pages ``[a, b)``, each with the part of ``[a, b)`` it holds."""
        a, b = max(a, 0), min(b, self.count)
        if a >= b:
            return []
        i = bisect.bisect_right(self.starts, a) - 1
        segs = self.segs
        seg = segs[i]
        if b <= seg.stop:  # one run holds it all (the common case)
            return [(seg, a, b)]
        out = []
        while a < b:
            seg = segs[i]
            hi = min(b, seg.stop)
            out.append((seg, a, hi))
            a = hi
            i += 1
        return out

    def split(self, a: int, b: int) -> list[_Seg]:
        """The runs exactly covering pages ``[a, b)``, splitting those that stick out."""
        a, b = max(a, 0), min(b, self.count)
        if a >= b:
            return []
        i = bisect.bisect_right(self.starts, a) - 1
        seg = self.segs[i]
        if seg.start == a and seg.stop == b:  # one run already
            return [seg]
        self._cut(a)
        self._cut(b)
        i = bisect.bisect_left(self.starts, a)
        j = bisect.bisect_left(self.starts, b)
        return self.segs[i:j]

    def _cut(self, at: int) -> None:
        if at >= self.count:
            return
        i = bisect.bisect_right(self.starts, at) - 1
        seg = self.segs[i]
        if seg.start != at:
            self.segs.insert(i + 1, seg.cut(at))
            self.starts.insert(i + 1, at)

    def join(self, a: int, b: int) -> None:
        """Merge neighbouring runs in and around ``[a, b)`` whose pages are in the same place."""
        if len(self.segs) < 2:
            return
        i = max(0, bisect.bisect_right(self.starts, max(a, 0)) - 2)
        j = min(len(self.segs), bisect.bisect_left(self.starts, b) + 1)
        keep = self.segs[:i]
        for seg in self.segs[i:j]:
            if keep and keep[-1].same(seg):
                keep[-1].stop = seg.stop
            else:
                keep.append(seg)
        keep.extend(self.segs[j:])
        self.segs = keep
        self.starts = [seg.start for seg in keep]


def _union(ranges: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """``(buffer, start, stop)`` page ranges, sorted by buffer then page, overlaps joined."""
    out: list[list[Any]] = []
    for name, a, b in sorted(ranges):
        if b <= a:
            continue
        if out and out[-1][0] == name and a <= out[-1][2]:
            out[-1][2] = max(out[-1][2], b)
        else:
            out.append([name, a, b])
    return [(n, a, b) for n, a, b in out]


@attrs.frozen
class _Need:
    """Pages ``[first, stop)`` one tile reads that a candidate node does not hold, from one
    source node."""

    buffer: str
    first: int
    stop: int
    nbytes: int
    source: str
    held: _Held


@attrs.define
class Placed:
    """A tile committed to a component: what its compute waits for, and the estimates.

    Once :meth:`FabricModel.finish` has put its compute on the timeline, a tile keeps only
    what the model reports and later placements read (``tile``, ``component``, ``reads``,
    ``writes``, ``compute``): ``candidate`` becomes None, ``after``, ``depends`` and
    ``paging`` empty, so that what the model keeps per dispatch stays small (a fabric may run
    millions)."""

    tile: Tile
    component: str
    candidate: Candidate | None
    after: list[Activity] | tuple[()]  # () once finished
    depends: list[Activity] | tuple[()]  # computes of earlier dispatches it must follow
    reads: list[tuple[str, int, int]]  # (buffer, first page, stop page)
    writes: list[tuple[str, int, int]]
    estimate: TileWork
    #: What the pager is asked for, in order: (buffer, page ranges, write).
    accesses: list[tuple[str, Sequence[tuple[int, int]], bool]]
    compute: Activity | None = None
    paging: Sequence[Any] | None = None  # the pager's moves, in order (page())


@attrs.define
class _Step:
    index: int
    kernel: str
    tiles: list[Placed]
    transfers: list[Activity] | tuple[()]  # () once finished, when there were none


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------


class FabricModel:
    """The modelled fabric of one running :class:`~xv_core.runtime.api.Fabric` (module
    docstring).  ``compute`` lists the compute components in fabric order."""

    def __init__(self, config: Any, plugins: Any, *, pager: Any = None,
                 tiers: Sequence[tuple[str, str]] = ()):
        self.config = config
        self._hook = plugins.hook
        links, self.node_of = model_links(config, plugins)
        self.profiles = device_profiles(config, plugins)
        self.compute = list(self.profiles)
        self.kinds = {c.name: c.kind for c in config.components}
        models = {name: plugins.bus_models.get(name).factory() for name in plugins.bus_models}
        devices = dict(self.profiles)
        self._pager = pager
        if pager is not None:
            links += paging_links(config, tiers)
            devices[PAGER] = PAGER_PROFILE
        self._paging_links = {ln.name for ln in links if ln.name.startswith(PAGING_PREFIX)}
        self._paging = {"in": 0, "in_bytes": 0, "down": 0, "down_bytes": 0, "zero_fills": 0,
                        "fault_batches": 0, "faults": 0}
        self.timeline = Timeline(links, devices, bus=config.bus, models=models)
        self.page_size = int(config.vram.page_size)
        self.measured = config.clock == "measured"
        self._buffers: dict[str, _Buffer] = {}
        self._lanes = {c: [0.0] * p.lanes for c, p in self.profiles.items()}
        self._link_free: dict[tuple[int, int], float] = {}
        # The last transfer between each pair of nodes: the next one waits for it (each pair
        # has one copy queue, in placement order, so that the first tile's data is not slowed
        # by sharing its links with every later tile's).
        self._tail: dict[tuple[str, str], Activity] = {}
        self._routes: dict[tuple[str, str], tuple[Any, float, float]] = {}
        self._est: dict[int, float] = {}
        self._range_memo: IdentityLRU[tuple[Any, Any, Any]] = IdentityLRU(4096)
        self._page_tail: Activity | None = None  # the last paging move: the next waits
        self._uploads = 0
        self._steps: list[_Step] = []
        self._readbacks: list[Activity] = []
        self._reads = 0
        self._base = 0.0
        # For the lower bound: each tile's best compute time over the components, the time on
        # each component, and the longest chain of dependent computes ending at each tile.
        # (flat: the times of tile i are items i * len(compute) onwards)
        self._times = array.array("d")
        self._chain: dict[int, float] = {}
        #: The scheduling policy's name in the fabric (set by the runtime), for messages.
        self.policy_name: str | None = None

    @property
    def pager(self) -> Any:
        """The data-less pager the model drives, or None (no paging on the timeline)."""
        return self._pager

    @property
    def lanes(self) -> int:
        """Lanes of every compute component together (tiles are cut for them)."""
        return sum(p.lanes for p in self.profiles.values())

    # -- buffers -----------------------------------------------------------
    def allocate(self, name: str, nbytes: int, *, filled: bool, stored: bool = False) -> None:
        """A new buffer: its contents on the host (``filled``: the host just wrote them;
        ``stored``: kept in its backing from an earlier run) or zeros, anywhere at once."""
        where = HOST if filled or stored else ANYWHERE
        self._buffers[name] = _Buffer(name, nbytes, self.page_size, where)
        if self._pager is not None:
            # Uploads are not on the timeline (the host's data is there when a dispatch
            # starts); the pager only learns which pages they left in VRAM.
            self._pager.allocate(name, nbytes, filled=stored and not filled)
            if filled:
                self._host_paging(self._pager.host_write(name))

    def free(self, name: str) -> None:
        self._buffers.pop(name, None)
        if self._pager is not None:
            self._pager.free(name)

    def host_write(self, name: str) -> None:
        """The host replaced the contents: they are on the host once every tile that read or
        wrote the old contents is done."""
        buf = self._buffers.get(name)
        if buf is None:
            return
        if self._pager is not None:
            self._host_paging(self._pager.host_write(name))
        for seg in buf.segs:
            waits = tuple(seg.readers) + tuple(seg.writers)
            seg.copies = {HOST: (waits, self._latest(waits))}
            seg.parts = {}
            seg.writers = list(waits)
            seg.readers = []
        buf.join(0, buf.count)

    def host_read(self, name: str) -> None:
        """The host reads the whole buffer: read-back transfers of what it does not hold."""
        buf = self._buffers.get(name)
        if buf is None:
            return
        self._reads += 1
        needs: list[_Need] = []
        for seg in list(buf.segs):
            needs.extend(self._needs(buf, seg.start, seg.stop, seg, HOST))
        acts, _ = self._move(needs, HOST, f"r{self._reads}")
        self._readbacks.extend(acts)

    # -- placing a dispatch ----------------------------------------------------
    def place(self, step: int, kernel: str, tiles: Sequence[Tile],
              footprints: Sequence[TileFootprint], buffers: Mapping[str, str],
              estimates: Sequence[TileWork], policy: Any) -> list[Placed]:
        """Choose each tile's component with ``policy`` and start its transfers (module
        docstring, step 1).  ``buffers`` maps the kernel's buffer parameters to buffer names;
        ``estimates`` is each tile's expected work."""
        self.begin(step, kernel)
        return [self.place_tile(tile, footprint, buffers, estimate, policy)
                for tile, footprint, estimate in zip(tiles, footprints, estimates)]

    def begin(self, step: int, kernel: str) -> None:
        """A dispatch begins: :meth:`place_tile` places its tiles, in order (:meth:`place`
        does both)."""
        self._steps.append(_Step(step, kernel, [], []))

    def place_tile(self, tile: Tile, footprint: TileFootprint, buffers: Mapping[str, str],
                   estimate: TileWork, policy: Any) -> Placed:
        """Place the next tile of the dispatch :meth:`begin` began (see :meth:`place`).  Every
        tile of a dispatch is placed before it is finished (:meth:`finish`)."""
        record = self._steps[-1]
        reads, writes, accesses = self._ranges(footprint, buffers)
        # What any placement waits for: the writers of what the tile reads (they made the
        # copies it fetches), the readers and writers of what it overwrites.
        depends: dict[int, Activity] = {}
        # The runs the tile reads, each with its part of the range (every candidate looks at
        # them; choosing changes nothing until the choice is made).
        read_runs = [(buf, buf.overlap(a, b)) for buf, a, b in
                     ((self._buffers[name], a, b) for name, a, b in reads)]
        for _, runs in read_runs:
            for seg, _, _ in runs:
                for act in seg.writers:
                    depends[id(act)] = act
        for name, a, b in writes:
            for seg, _, _ in self._buffers[name].overlap(a, b):
                for act in seg.readers + seg.writers:
                    depends[id(act)] = act
        waits = list(depends.values())
        floor = max(self._base, self._latest(waits))
        candidates = []
        options = []
        for comp in self.compute:
            cand, needs, local = self._candidate(comp, estimate, read_runs, floor)
            candidates.append(cand)
            options.append((needs, local))
        try:
            chosen = policy.choose(tile, candidates)
        except Exception as exc:  # the policy's own bug: say whose, where the traceback goes
            exc.add_note(f"raised by scheduling policy {self._policy_name(policy)!r} "
                         f"choosing a component for tile {tile.index}")
            raise
        choice = chosen if type(chosen) is int else _as_index(chosen)  # numpy integers too
        if choice is None or not 0 <= choice < len(candidates):
            name = self._policy_name(policy)
            raise XvError(f"scheduling policy {name!r} chose {chosen!r} for tile {tile.index}, "
                          f"not a candidate's index (0 to {len(candidates) - 1})",
                          hint="report this to the policy's authors")
        cand = candidates[choice]
        needs, local = options[choice]
        node = self.node_of[cand.component]
        after: dict[int, Activity] = {}
        if needs:
            moved, _ = self._move(needs, node, f"s{record.index}/t{tile.index}")
            record.transfers.extend(moved)
            after = {id(a): a for a in moved}
        for act in local:
            after[id(act)] = act
        for act in waits:
            after[id(act)] = act
        heapq.heapreplace(self._lanes[cand.component], cand.finish_s)
        placed = Placed(tile, cand.component, cand, list(after.values()), waits, reads,
                        writes, estimate, accesses)
        record.tiles.append(placed)
        return placed

    def _policy_name(self, policy: Any) -> str:
        """The name the fabric gave ``policy`` (its ``scheduler``), for messages; else its own
        ``name``, else its class's."""
        return self.policy_name or getattr(policy, "name", None) or type(policy).__name__

    def _ranges(self, footprint: TileFootprint,
                buffers: Mapping[str, str]) -> tuple[Any, Any, Any]:
        """A tile's page ranges read and written, by buffer name (a buffer passed as two
        arguments is still read, or written, once per page), and its accesses for the pager;
        remembered per footprint (the runtime keeps a plan's footprints) and argument
        buffers."""
        def make() -> tuple[Any, Any, Any]:
            read_ranges: list[tuple[str, int, int]] = []
            write_ranges: list[tuple[str, int, int]] = []
            for param, fp in footprint.buffers.items():
                name = buffers[param]
                read_ranges.extend((name, a, b) for a, b in fp.reads)
                write_ranges.extend((name, a, b) for a, b in fp.writes)
            reads, writes = _union(read_ranges), _union(write_ranges)
            return reads, writes, _pager_accesses(reads, writes)

        return self._range_memo.get(footprint, tuple(buffers.items()), make)

    def _candidate(self, comp: str, estimate: TileWork,
                   reads: Sequence[tuple[_Buffer, Sequence[tuple[_Seg, int, int]]]],
                   floor: float) -> tuple[Candidate, list[_Need], list[Activity]]:
        """Placing the tile on ``comp``; ``reads``: the runs it reads, by buffer
        (:meth:`_Buffer.overlap`)."""
        node = self.node_of[comp]
        needs: list[_Need] = []
        local: dict[int, Activity] = {}
        ready = floor
        local_bytes = 0
        for buf, runs in reads:
            for seg, lo, hi in runs:
                held = seg.copies.get(node) or seg.copies.get(ANYWHERE)
                if held is not None:
                    local_bytes += self._bytes(buf, lo, hi)
                    ready = max(ready, held[1])
                    for act in held[0]:
                        local[id(act)] = act
                else:
                    needs.extend(self._needs(buf, lo, hi, seg, node))
        moved_bytes = sum(n.nbytes for n in needs)
        arrive, transfer_s = self._estimate_moves(needs, node, ready)
        ready = max(ready, arrive)
        compute_s = self.timeline.compute_estimate(comp, estimate, lanes=1)
        start = max(ready, self._lanes[comp][0])
        cand = Candidate(comp, self.kinds[comp], ready, start, compute_s, start + compute_s,
                         local_bytes, moved_bytes, transfer_s)
        return cand, needs, list(local.values())

    def _bytes(self, buf: _Buffer, first: int, stop: int) -> int:
        """Bytes of pages ``[first, stop)`` (the last page of a buffer may be short)."""
        return min(stop * self.page_size, buf.nbytes) - first * self.page_size

    def _needs(self, buf: _Buffer, lo: int, hi: int, seg: _Seg, node: str) -> list[_Need]:
        """The transfers that give ``node`` all of pages ``[lo, hi)`` of run ``seg``."""
        if node in seg.copies or ANYWHERE in seg.copies:
            return []
        if seg.copies:
            # A whole copy somewhere: from the one whose bytes would arrive first, chosen for
            # a page's bytes (a short last page may choose otherwise: it is its own need).
            out = []
            full = hi if hi * self.page_size <= buf.nbytes else hi - 1
            for first, stop in ((lo, full), (full, hi)):
                if first >= stop:
                    continue
                page = self._bytes(buf, stop - 1, stop)
                best = min(seg.copies.items(), key=lambda kv: (
                    kv[1][1] + self._route(kv[0], node)[1]
                    + page * self._route(kv[0], node)[2], kv[0]))
                out.append(_Need(buf.name, first, stop, self._bytes(buf, first, stop),
                                 best[0], best[1]))
            return out
        # Pieces on several nodes: each other holder sends its piece (a page each, at most).
        nbytes = self._bytes(buf, lo, hi)
        return [_Need(buf.name, lo, hi, nbytes, src, held)
                for src, held in sorted(seg.parts.items()) if src != node]

    def _route(self, src: str, dst: str) -> tuple[Any, float, float]:
        """(route, latency, seconds per byte) between two nodes, on an idle fabric."""
        key = (src, dst)
        hit = self._routes.get(key)
        if hit is None:
            route = self.timeline.route(src, dst)
            latency = self.timeline.transfer_estimate(route, 0)
            probe = 1 << 30
            per_byte = (self.timeline.transfer_estimate(route, probe) - latency) / probe
            hit = self._routes[key] = (route, latency, per_byte)
        return hit

    def _estimate_moves(self, needs: Sequence[_Need], node: str,
                        ready: float) -> tuple[float, float]:
        """When everything in ``needs`` would have arrived at ``node`` (transfers from one
        source one after another on links still busy with earlier ones), and the time spent."""
        if not needs:
            return ready, 0.0
        by_source: dict[str, list[_Need]] = {}
        for need in needs:
            by_source.setdefault(need.source, []).append(need)
        arrive = ready
        spent = 0.0
        for src, group in sorted(by_source.items()):
            route, latency, per_byte = self._route(src, node)
            nbytes = sum(n.nbytes for n in group)
            start = max(max(n.held[1] for n in group), self._busy(route))
            end = start + latency + nbytes * per_byte
            spent += latency + nbytes * per_byte
            arrive = max(arrive, end)
        return arrive, spent

    def _busy(self, route: Any) -> float:
        return max((self._link_free.get(hop, 0.0) for hop in route.hops), default=0.0)

    def _move(self, needs: Sequence[_Need], node: str,
              tag: str) -> tuple[list[Activity], float]:
        """Submit the transfers of ``needs`` to ``node``: one per run of consecutive pages of
        a buffer from one source that wait for the same activities.  The pages then have a
        copy on ``node``."""
        acts: list[Activity] = []
        if not needs:
            return acts, 0.0
        latest = 0.0
        runs: list[list[_Need]] = []
        for need in sorted(needs, key=lambda n: (n.buffer, n.source, n.first)):
            last = runs[-1][-1] if runs else None
            if (last is not None and last.buffer == need.buffer and last.source == need.source
                    and last.stop == need.first and last.held[0] == need.held[0]):
                runs[-1].append(need)
            else:
                runs.append([need])
        gathered: dict[tuple[str, int, int], list[_Held]] = {}
        for run in runs:
            first, last = run[0], run[-1]
            route, latency, per_byte = self._route(first.source, node)
            nbytes = sum(n.nbytes for n in run)
            ready = max(self._base, max(n.held[1] for n in run))
            start = max(ready, self._busy(route))
            end = start + latency + nbytes * per_byte
            for hop in route.hops:  # booked for the estimates of later placements
                self._link_free[hop] = start + nbytes * per_byte
            label = (f"{tag}/{first.buffer}/p{first.first}" +
                     (f"-{last.stop - 1}" if last.stop - 1 != first.first else "") +
                     f"/{first.source}>{node}")
            queue = (first.source, node)
            tail = self._tail.get(queue)
            after = first.held[0] if tail is None else first.held[0] + (tail,)
            act = self.timeline.transfer(route, nbytes, tag=label, after=after)
            self._tail[queue] = act
            self._est[id(act)] = end
            self._hook.xv_on_transfer(event=TransferEvent(route.label, first.source, node,
                                                          nbytes, first.buffer))
            acts.append(act)
            latest = max(latest, end)
            for n in run:
                gathered.setdefault((n.buffer, n.first, n.stop), []).append(((act,), end))
        for (name, first_page, stop), helds in gathered.items():
            buf = self._buffers[name]
            waits = tuple(a for held in helds for a in held[0])
            arrive = max(h[1] for h in helds)
            for seg in buf.split(first_page, stop):
                own = seg.parts.get(node)
                seg.copies[node] = (waits + own[0] if own is not None else waits, arrive)
        return acts, latest

    def page(self, placed: Placed) -> None:
        """Make a placed tile's pages resident in the modelled VRAM (the pager): call it for
        each tile of a dispatch in placement order, after :meth:`place` and before
        :meth:`finish` -- for instance while the tiles run (:meth:`finish` does it for the
        tiles not paged yet).  Without a pager it does nothing."""
        if self._pager is not None and placed.paging is None:
            placed.paging = self._page_moves(placed.accesses)

    def _host_paging(self, moves: Sequence[Any]) -> None:
        """The pager's moves around a host write: the upload itself (from ``host``) is not on
        the timeline, the write-backs it forces and those pending from earlier tiles are."""
        kept = [m for m in moves if m.source != "host"]
        if kept:
            self._uploads += 1
            self._page_in(f"h{self._uploads}", kept, {})

    def _page_moves(self, accesses: Sequence[tuple[str, Sequence[tuple[int, int]], bool]]
                    ) -> list[Any]:
        """Make a tile's pages resident in the modelled VRAM: the pager's moves, in placement
        order (pages only read, then pages it may write)."""
        pager = self._pager
        # A tile whose pages are all resident moves nothing: the pager's fast path, when it
        # has one, does the same without pinning them.
        hit_tile = getattr(pager, "hit_tile", None)
        if hit_tile is not None and hit_tile(accesses):
            return []
        moves: list[Any] = []
        with pager.tile():
            for name, ranges, write in accesses:
                moves += pager.access(name, ranges, write=write)
        return moves

    def _page_in(self, tag: str, moves: Sequence[Any],
                 writing: Mapping[str, list[tuple[int, int, Activity]]]) -> list[Activity]:
        """Put a tile's paging on the timeline; what its compute waits for: its last move
        (the moves form one chain, so every page-in and every eviction that freed a frame
        for it), and the users of pages dropped without a move after that.

        All paging forms one queue, in placement order (a page brought back never overtakes
        its own write-back); it starts as soon as the moves are known: a tile's page-ins
        overlap the compute of earlier tiles.  A page evicted from
        VRAM or a tier leaves once every tile that read or wrote it is done (``writing``: the
        writes of this dispatch's earlier tiles, not yet the pages' writers); a uvm fault batch
        occupies the pager (one batch at a time) for its fixed cost."""
        last: Activity | None = self._page_tail
        count = self._paging
        freed: list[Activity] = []  # users of pages dropped without a move: the next waits
        for i, move in enumerate(moves):
            after: list[Activity] = [last] if last is not None else []
            after += freed
            label = f"{tag}/page{i}/{move.kind}"
            evicts = move.kind != "in" and move.kind != "fault"
            if evicts:  # a page leaves VRAM (or a tier) once its users are done with it
                first, stop = move.first, move.first + move.count
                buf = self._buffers.get(move.buffer)
                if buf is not None:
                    for seg, _, _ in buf.overlap(first, stop):
                        after += seg.readers + seg.writers
                after += [act for a, b, act in writing.get(move.buffer, ())
                          if a < stop and first < b]
            if move.kind == "fault":
                count["fault_batches"] += 1
                count["faults"] += move.faults
                act = self.timeline.compute(PAGER, duration=move.seconds, lanes=1, after=after,
                                            tag=label)
                est = self._latest(after) + move.seconds
            elif move.source == "zero" or not move.nbytes:
                # Nothing crosses a link: a zero-filled page, or a clean page dropped.
                count["zero_fills"] += move.count if move.kind == "in" else 0
                freed = after[1:] if last is not None else after
                continue
            else:
                count[move.kind] = count.get(move.kind, 0) + move.count
                count[move.kind + "_bytes"] = count.get(move.kind + "_bytes", 0) + move.nbytes
                route = self._route(_level_node(move.source), _level_node(move.dest))[0]
                act = self.timeline.transfer(
                    route, move.nbytes, after=after,
                    tag=f"{label}/{move.buffer}/p{move.first}+{move.count}/"
                        f"{move.source}>{move.dest}")
                est = max(self._base, self._latest(after)) + self.timeline.transfer_estimate(
                    route, move.nbytes)
            self._est[id(act)] = est
            last = act
            freed = []
        mine = last is not None and last is not self._page_tail  # this tile moved something
        self._page_tail = last
        return [last, *freed] if mine else list(freed)

    def _latest(self, acts: Sequence[Activity]) -> float:
        return max((self._est.get(id(a), 0.0) for a in acts), default=0.0)

    # -- after the tiles ran -----------------------------------------------------
    def finish(self, placed: Sequence[Placed], works: Sequence[TileWork],
               walls: Sequence[float]) -> None:
        """Submit each tile's compute with its counted work (or measured wall time), then make
        what the dispatch wrote the pages' current contents (module docstring, step 3)."""
        step = self._steps[-1]
        written: dict[str, list[tuple[int, int, str, Activity, float]]] = {}
        writing: dict[str, list[tuple[int, int, Activity]]] = {}
        for tile in placed:  # in placement order, what was not paged while the tiles ran
            self.page(tile)
        for tile, work, wall in zip(placed, works, walls):
            comp = tile.component
            if tile.paging:
                tile.after.extend(self._page_in(f"s{step.index}/t{tile.tile.index}",
                                                tile.paging, writing))
            act = self.timeline.compute(comp, work, lanes=1, after=tile.after,
                                        duration=wall if self.measured else None,
                                        tag=f"s{step.index}/t{tile.tile.index}")
            tile.compute = act
            self._est[id(act)] = tile.candidate.finish_s
            times = ([wall] * len(self.compute) if self.measured else
                     [self.timeline.compute_estimate(c, work, lanes=1) for c in self.compute])
            self._times.extend(times)
            chain = max((self._chain.get(id(a), 0.0) for a in tile.depends), default=0.0)
            self._chain[id(act)] = chain + min(times)
            node = self.node_of[comp]
            # A reader this tile waits for (a tile of an earlier dispatch that also wrote what
            # this one overwrites, say) is implied by this tile: whatever must follow both
            # follows it.  Dropping it keeps the readers of a page only ever read from growing
            # with every dispatch.
            implied = {id(a) for a in tile.depends}
            for name, a, b in tile.reads:
                buf = self._buffers.get(name)
                if buf is not None:
                    for seg in buf.split(a, b):
                        if implied and seg.readers:
                            seg.readers = [r for r in seg.readers if id(r) not in implied]
                        seg.readers.append(act)
            for name, a, b in tile.writes:
                written.setdefault(name, []).append((a, b, node, act, tile.candidate.finish_s))
                writing.setdefault(name, []).append((a, b, act))
        for name, ranges in written.items():
            buf = self._buffers.get(name)
            if buf is None:
                continue
            # Cut at every written range's ends, then give each run the writers covering it,
            # in tile order, as one page of it would have them.
            if len(ranges) > 1:  # (one range: its own cuts are all there are)
                for a, b, *_ in ranges:
                    buf.split(a, b)
            writers_of: dict[int, tuple[_Seg, list[tuple[str, Activity, float]]]] = {}
            for a, b, node, act, est in ranges:
                for seg in buf.split(a, b):
                    writers_of.setdefault(id(seg), (seg, []))[1].append((node, act, est))
            for seg, writers in writers_of.values():
                if len(writers) == 1:  # one tile wrote the run (the common case)
                    node, act, est = writers[0]
                    seg.copies, seg.parts = {node: ((act,), est)}, {}
                    seg.writers = [act]
                    seg.readers = []
                    continue
                holders: dict[str, list[tuple[Activity, float]]] = {}
                for node, act, est in writers:
                    holders.setdefault(node, []).append((act, est))
                held = {node: (tuple(a for a, _ in acts), max(e for _, e in acts))
                        for node, acts in holders.items()}
                if len(held) == 1:
                    seg.copies, seg.parts = held, {}
                else:
                    seg.copies, seg.parts = {}, held
                seg.writers = [act for _, act, _ in writers]
                seg.readers = []
            if len(ranges) == 1:
                buf.join(ranges[0][0], ranges[0][1])
            else:
                buf.join(min(a for a, *_ in ranges), max(b for _, b, *_ in ranges))
        # What only finishing needed (see Placed): the model keeps every dispatch's record.
        for tile in placed:
            tile.candidate, tile.after, tile.depends, tile.paging = None, (), (), ()
        if not step.transfers:
            step.transfers = ()

    # -- results -------------------------------------------------------------------
    def run(self) -> float:
        """Run the timeline over everything submitted so far; the virtual time reached."""
        end = self.timeline.run()
        self._base = max(self._base, self.timeline.now)
        return end

    def bound(self) -> dict[str, float]:
        """The lower bound on the makespan of the computes so far: max(total work / total
        throughput, critical path) (``docs/scheduling.md``)."""
        times = np.array(self._times, dtype=np.float64).reshape(-1, len(self.compute))
        area = _area_bound(times, [self.profiles[c].lanes for c in self.compute])
        chain = max(self._chain.values(), default=0.0)
        return {"area_s": area, "critical_path_s": chain, "lower_bound_s": max(area, chain)}

    def step_spans(self) -> list[dict[str, Any]]:
        """Per dispatch: its virtual span (first transfer or compute start to last compute
        end), where its tiles were placed, and the bytes its transfers moved."""
        out = []
        for step in self._steps:
            acts = [t.compute for t in step.tiles if t.compute is not None]
            acts += step.transfers
            starts = [a.start for a in acts if a.start is not None]
            ends = [a.end for a in acts if a.end is not None]
            placement: dict[str, int] = {}
            for t in step.tiles:
                placement[t.component] = placement.get(t.component, 0) + 1
            out.append({"virtual_start_s": min(starts, default=0.0),
                        "virtual_end_s": max(ends, default=0.0),
                        "placement": placement,
                        "moved_bytes": sum(a.nbytes for a in step.transfers)})
        return out

    def report(self) -> dict[str, Any]:
        """Run the timeline and return its report (``Timeline.report``) with ``bound``:
        ``lower_bound_s``, ``area_s``, ``critical_path_s`` and ``ratio`` (makespan over the
        bound), ``readback_bytes``, and the fabric's ``bus``, ``clock`` and memory ``nodes``."""
        self.run()
        report = self.timeline.report()
        paging_links = {name: report["links"].pop(name) for name in list(report["links"])
                        if name in self._paging_links}
        if self._pager is not None:
            report["paging"] = {"links": paging_links,
                                "pager": report["components"].pop(PAGER), **self._paging}
        bound = self.bound()
        lower = bound["lower_bound_s"]
        if report["virtual_s"] < lower <= report["virtual_s"] * (1 + 1e-9):
            # The same sum added in another order: a makespan that meets the bound.
            lower = bound["lower_bound_s"] = report["virtual_s"]
        bound["makespan_s"] = report["virtual_s"]
        bound["ratio"] = report["virtual_s"] / lower if lower > 0 else None
        report["bound"] = bound
        report["readback_bytes"] = sum(a.nbytes for a in self._readbacks)
        report["bus"] = self.config.bus
        report["clock"] = self.config.clock
        report["nodes"] = dict(self.node_of)
        return report


#: The pseudo-device that services uvm fault batches on the timeline, one at a time (as a
#: GPU driver's fault handler does).
PAGER = "vram-pager"
PAGER_PROFILE = DeviceProfile(PAGER, ops_per_lane_per_s=1.0, lanes=1, mem_bandwidth=1.0,
                              launch_latency=0.0, description="services far-fault batches")
#: The node of the modelled VRAM, and the prefix of the links pages move over.
VRAM_NODE = "vram"
PAGING_PREFIX = "vram:"
#: The link profile of a cache tier that does not name one.
DEFAULT_TIER_PROFILE = "nvme-gen4"


def paging_links(config: Any, tiers: Sequence[tuple[str, str]]) -> list[Link]:
    """The links pages move over: ``vram:host`` between the host (where backings live) and the
    VRAM, with the fabric's ``vram.link`` profile; ``vram:<tier>`` between each cache tier and
    the host, with the tier's profile.  A move between two levels goes through the host."""
    from xv_core.profiles import PROFILES

    out = [Link(f"{PAGING_PREFIX}host", HOST, VRAM_NODE, PROFILES[config.vram.link], None)]
    for name, profile in tiers:
        out.append(Link(f"{PAGING_PREFIX}{name}", name, HOST,
                        PROFILES[profile or DEFAULT_TIER_PROFILE], None))
    return out


def _pager_accesses(reads: Sequence[tuple[str, int, int]], writes: Sequence[tuple[str, int, int]]
                    ) -> list[tuple[str, Sequence[tuple[int, int]], bool]]:
    """A tile's accesses for the pager, in order: per buffer the pages it only reads, then per
    buffer the pages it may write."""
    by_buffer: dict[str, list[tuple[int, int]]] = {}
    for name, a, b in writes:
        by_buffer.setdefault(name, []).append((a, b))
    accesses: list[tuple[str, Sequence[tuple[int, int]], bool]] = []
    for name, a, b in reads:
        only = subtract_ranges([(a, b)], by_buffer.get(name, ()))
        if only:
            accesses.append((name, only, False))
    accesses.extend((name, ranges, True) for name, ranges in by_buffer.items())
    return accesses


def _as_index(value: Any) -> int | None:
    """``value`` as an index (a numpy integer, anything with ``__index__``), or None."""
    try:
        return operator.index(value)
    except TypeError:
        return None


def _level_node(level: str) -> str:
    """The timeline node of a pager level: the VRAM, a tier (by name) or the backing (host)."""
    if level == "vram":
        return VRAM_NODE
    if level == "backing":
        return HOST
    return level


def _area_bound(times: Sequence[Sequence[float]], lanes: Sequence[int],
                rounds: int = 40) -> float:
    """A lower bound on the time ``lanes[c]`` lanes of each component need for every tile,
    when tile ``i`` takes ``times[i][c]`` on one lane of component ``c``.

    The fractional relaxation (tiles may be split between components) is a linear program
    whose dual gives, for any weights ``y >= 0`` with ``sum(lanes[c] * y[c]) == 1``, the bound
    ``sum over tiles of min over c of times[i][c] * y[c]``.  The weights start at each
    component's throughput share (exact when tiles differ only by size: total work / total
    throughput), then move pairwise while the bound grows.
    """
    if not len(times):
        return 0.0
    t = np.asarray(times, dtype=np.float64)
    lane = np.asarray(lanes, dtype=np.float64)
    totals = t.sum(axis=0)
    if np.any(totals <= 0):
        return 0.0
    y = (1.0 / totals) / float(np.sum(lane / totals))

    def value(w: np.ndarray) -> float:
        return float((t * w).min(axis=1).sum())

    best = value(y)
    n = len(lanes)
    step = 0.25
    for _ in range(rounds):
        improved = False
        for a in range(n):
            for b in range(n):
                if a == b or y[b] <= 0:
                    continue
                # Move weight from b to a, keeping sum(lanes * y) == 1.
                delta = step * y[b] * lane[b]
                trial = y.copy()
                trial[b] -= delta / lane[b]
                trial[a] += delta / lane[a]
                v = value(trial)
                if v > best * (1 + 1e-12):
                    y, best, improved = trial, v, True
        if not improved:
            step /= 2
            if step < 1e-4:
                break
    return best


__all__ = ["ANYWHERE", "DEFAULT_LINK", "DEFAULT_LINKS", "FabricModel", "HOST",
           "HOST_MEMORY_KINDS", "Placed", "device_profiles", "model_links"]
