"""VRAM emulated in host RAM: allocation within a capacity, and paging between tiers.

Every buffer has its own anonymous memory mapping of whole pages (its device address range);
the numpy array kernels index is a view of it.  VRAM is the set of *resident* pages: at most
``capacity // page_size`` of them hold data at any time.  A page that is not resident holds
zeros in that mapping (``madvise(MADV_DONTNEED)`` gives its RAM back), so a kernel reading a
page that was never made resident would compute wrong results: the tests comparing outputs
with and without paging would catch any page the pager forgot.

Without paging (``vram.paging: false``) every buffer is resident for its whole life and the
buffers must fit in the capacity together; allocation is first fit over runs of pages in a
device address space of ``capacity`` bytes, and running out of memory is an error listing the
live allocations, largest first.

With paging, allocation only reserves device address space (not limited by the capacity) and
pages move along a chain of tiers, VRAM -> cache tier 1 -> cache tier 2 -> ... -> backing:

* **in**, before a tile runs: :meth:`RamVram.make_resident` faults in the pages the tile
  touches from the fastest tier that holds them (the cache tiers in order, then the buffer's
  backing; a page never written is zero-filled, nothing to read), evicting pages chosen by
  the eviction policy when VRAM is full, and pins them until the tile's lease is released;
* **ahead of use**: :meth:`RamVram.prefetch` queues pages a coming tile will touch; a
  background worker loads them, one migration unit per hold of the lock, without pinning them
  and without evicting pinned pages or pages earlier prefetches brought and no tile has used
  yet, with at most half of VRAM in such pages;
* **out**: an evicted page that is dirty (written since it came in) is written back; pages
  of file-backed buffers go to the first cache tier (such as an ``nvme`` component's page
  file) when there is one, a page a cache tier evicts goes down to the next tier, and from the
  last one a page newer than the backing is written to the backing file; pages of RAM-backed
  buffers go straight back to host RAM (a disk tier is slower than the RAM it would cache).

The ``uvm`` profile behaves like GPU unified memory: 4KiB pages (faults and traces count
them), 64KiB migration blocks (a fault brings in its whole block, the policy evicts whole
blocks), and a tree-based neighbourhood prefetcher inside 2MiB regions: after a fault, every
level of a full binary tree over the region's 32 blocks that is more than half resident is
made fully resident.  Far faults are serviced in batches, as the driver does: the faults of
one :meth:`RamVram.make_resident` call form batches of up to ``fault_batch_size``; each batch
costs ``fault_latency_us``, each fault in it ``fault_service_us``, plus one transfer over the
modelled link of what the batch migrated.  Those modelled seconds go into the statistics.
"""

from __future__ import annotations

import array
import bisect
import json
import mmap
import os
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from xv_core.errors import XvError
from xv_core.events import PageEvent
from xv_core.profiles import LinkProfile, get_profile
from xv_core.runtime.interfaces import PAGE_TRACE_DTYPE, PAGE_TRACE_MAGIC, PAGE_WRITE
from xv_buffer.backing import Backing, FileBacking, PersistentBacking, RamBacking
from xv_buffer.sizes import format_size, to_bytes

log = structlog.get_logger("xv.vram")

#: Live allocations an out-of-memory message lists before summarising the rest.
MAX_LISTED = 8
#: Bytes of device address space with paging: allocation is never what runs out.
ADDRESS_SPACE = 1 << 46
#: The ``uvm`` profile's migration block and prefetch region.
UVM_BLOCK = 64 << 10
UVM_REGION = 2 << 20
#: Far faults the ``uvm`` profile services per batch: the NVIDIA UVM driver's default
#: (``uvm_perf_fault_batch_count``; see docs/vram.md).
UVM_FAULT_BATCH = 256
#: Prefetch requests waiting for the worker at most; when more arrive the oldest (the most
#: likely to be for a tile that has run already) is dropped.
PREFETCH_QUEUE = 64
_OS_PAGE = mmap.PAGESIZE
_KEY_BITS = 32


class RunAllocator:
    """First-fit allocation of runs of pages in ``[0, pages)``.

    Free space is a sorted list of ``(start, length)`` runs with no two runs
    adjacent (they are merged on free), so the largest free run tells how
    fragmented the space is.  O(free runs) per operation.
    """

    def __init__(self, pages: int):
        self.pages = pages
        self._starts: list[int] = [0] if pages else []
        self._lengths: list[int] = [pages] if pages else []

    def allocate(self, count: int) -> int | None:
        """Start of a free run of ``count`` pages, now taken; None if no run is long enough."""
        for i, length in enumerate(self._lengths):
            if length >= count:
                start = self._starts[i]
                if length == count:
                    del self._starts[i], self._lengths[i]
                else:
                    self._starts[i] += count
                    self._lengths[i] -= count
                return start
        return None

    def release(self, start: int, count: int) -> None:
        """Give back a run that :meth:`allocate` returned."""
        i = bisect.bisect_left(self._starts, start)
        merge_prev = i > 0 and self._starts[i - 1] + self._lengths[i - 1] == start
        merge_next = i < len(self._starts) and start + count == self._starts[i]
        if merge_prev and merge_next:
            self._lengths[i - 1] += count + self._lengths[i]
            del self._starts[i], self._lengths[i]
        elif merge_prev:
            self._lengths[i - 1] += count
        elif merge_next:
            self._starts[i] = start
            self._lengths[i] += count
        else:
            self._starts.insert(i, start)
            self._lengths.insert(i, count)

    @property
    def free_pages(self) -> int:
        return sum(self._lengths)

    @property
    def largest_run(self) -> int:
        return max(self._lengths, default=0)

    def runs(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._lengths))


# ----------------------------------------------------------------------------------------
# statistics
# ----------------------------------------------------------------------------------------

_VRAM_COUNTERS = ("accesses", "hits", "misses", "zero_fills", "prefetches", "fault_batches",
                  "prefetched", "prefetch_hits", "prefetch_unused", "prefetch_dropped",
                  "evictions", "writebacks", "bytes_read", "bytes_written", "host_bytes_read",
                  "host_bytes_written")
_TIER_COUNTERS = ("hits", "misses", "prefetch_hits", "evictions", "reads", "writes",
                  "bytes_read", "bytes_written")


class _Counters:
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


# ----------------------------------------------------------------------------------------
# buffers
# ----------------------------------------------------------------------------------------


class PagedBuffer:
    """A buffer in :class:`RamVram`.  Implements :class:`xv_core.runtime.interfaces.DeviceBuffer`.

    ``offset`` is its place in the device address space, ``reserved`` the bytes it takes
    there (whole pages, or whole 2MiB regions with the ``uvm`` profile).  After it is freed,
    :meth:`array`, :meth:`read` and :meth:`write` raise :class:`~xv_core.errors.XvError`.
    """

    def __init__(self, vram: RamVram, ident: int, name: str, dtype: np.dtype[Any],
                 shape: tuple[int, ...], nbytes: int, pages: int, offset: int, reserved: int,
                 backing: Backing, persistent: bool):
        self._vram = vram
        self.id = ident
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.nbytes = nbytes
        self.pages = pages
        self.offset = offset
        self.reserved = reserved
        self.backing = backing
        self.persistent = persistent
        self.key_base = ident << _KEY_BITS
        size = max(pages, 1) * vram.page_size
        self._mem: mmap.mmap | None = mmap.mmap(-1, size,
                                                flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._bytes = np.frombuffer(self._mem, dtype=np.uint8)
        self._view = memoryview(self._mem)
        self._array: np.ndarray | None = self._bytes[:nbytes].view(dtype).reshape(shape)
        # Per page: resident in VRAM; written since it came in (newer than the tier or
        # backing copy); the cache tier holding a copy (0: none, k: the k-th, fastest first;
        # a page is in one cache tier at most); that copy is newer than the backing's; the
        # backing holds data for it (0: never written: zeros).
        self.resident = bytearray(pages)
        self.dirty = bytearray(pages)
        self.tier_of = bytearray(pages)
        self.tier_newer = bytearray(pages)
        self.stored = bytearray(b"\x01" * pages) if getattr(backing, "existed", False) \
            else bytearray(pages)
        self.counters = _Counters(_VRAM_COUNTERS)

    @property
    def freed(self) -> bool:
        return self._array is None

    def array(self) -> np.ndarray:
        if self._array is None:
            raise XvError("buffer has been freed", where=f"buffer {self.name!r}",
                          hint="allocate it again")
        return self._array

    def read(self) -> np.ndarray:
        self.array()
        return self._vram._host_read(self)

    def write(self, data: np.ndarray) -> None:
        target = self.array()
        data = np.asarray(data)
        if data.shape != target.shape or data.dtype != target.dtype:
            raise XvError(f"cannot write a {data.dtype} array of shape {list(data.shape)} "
                          f"into a {target.dtype} buffer of shape {list(target.shape)}",
                          where=f"buffer {self.name!r}")
        self._vram._host_write(self, data)

    def page_view(self, first: int, count: int) -> memoryview:
        ps = self._vram.page_size
        return self._view[first * ps:(first + count) * ps]

    def _release(self, first: int, count: int) -> None:
        """Give back the RAM of pages ``first .. first + count - 1`` (they read as zeros)."""
        ps = self._vram.page_size
        start, length = first * ps, count * ps
        if self._mem is not None and start % _OS_PAGE == 0 and length % _OS_PAGE == 0:
            self._mem.madvise(mmap.MADV_DONTNEED, start, length)
        else:
            self._bytes[start:start + length] = 0

    def _drop_memory(self) -> None:
        self._array = None
        self._view.release()
        self._bytes = np.empty(0, dtype=np.uint8)
        mem, self._mem = self._mem, None
        try:
            mem.close()
        except BufferError:
            pass  # someone still holds the array: the mapping lives on until they drop it

    def __repr__(self) -> str:
        return (f"<PagedBuffer {self.name} {self.dtype} {list(self.shape)} "
                f"at {self.offset:#x} ({format_size(self.reserved)})>")


#: The first cut's name for a buffer of the ``ram`` manager.
RamBuffer = PagedBuffer


class _Protected:
    """Keys in any of several containers: what the prefetcher must not evict."""

    __slots__ = ("_parts",)

    def __init__(self, *parts: Any):
        self._parts = parts

    def __contains__(self, key: object) -> bool:
        return any(key in part for part in self._parts)


class Lease:
    """Pages pinned for one tile (see :meth:`RamVram.make_resident`)."""

    __slots__ = ("_vram", "keys")

    def __init__(self, vram: RamVram):
        self._vram = vram
        self.keys: list[int] = []

    def release(self) -> None:
        keys, self.keys = self.keys, []
        if keys:
            self._vram._unpin(keys)


# ----------------------------------------------------------------------------------------
# the VRAM
# ----------------------------------------------------------------------------------------


class RamVram:
    """Device memory of a fabric, in RAM.  Implements :class:`xv_core.runtime.interfaces.Vram`.

    ``capacity`` and ``page_size`` are bytes (ints, or size strings such as ``"64KiB"``).
    ``policy_factory(capacity)`` builds eviction policies (by default the one this package
    ships under ``eviction``).  ``path`` is where file backings and persistent buffers live.
    The ``uvm`` profile's far faults are serviced in batches of up to ``fault_batch_size``;
    each batch costs ``fault_latency_us`` and each fault in it ``fault_service_us`` (modelled).

    Thread-safe: one lock guards all state (pins are released from worker threads).  The
    prefetch worker (a thread started by the first :meth:`prefetch`, stopped by
    :meth:`close`) holds it for one migration unit at a time and lets :meth:`make_resident`
    go first.
    """

    def __init__(self, capacity: int | str, page_size: int | str = 64 << 10, *,
                 eviction: str = "lru", paging: bool = False, manager: str = "ram",
                 backing: str = "ram", path: str | os.PathLike[str] = ".xv/vram",
                 persistent: Sequence[str] = (), profile: str = "plain",
                 link: str = "pcie4-x16", fault_latency_us: float = 40.0,
                 fault_service_us: float = 0.8, fault_batch_size: int = UVM_FAULT_BATCH,
                 policy_factory: Callable[[int], Any] | None = None,
                 on_page: Callable[..., Any] | None = None):
        try:
            self.capacity = to_bytes(capacity, "vram.capacity")
            self.page_size = to_bytes(page_size, "vram.page_size")
        except ValueError as exc:
            raise XvError(str(exc), where="$.vram") from None
        if self.page_size < 1:
            raise XvError("vram.page_size must be at least 1 byte", where="$.vram.page_size")
        if self.capacity < self.page_size:
            raise XvError(f"vram.capacity ({format_size(self.capacity)}) is smaller than one "
                          f"page ({format_size(self.page_size)})", where="$.vram.capacity",
                          hint="raise vram.capacity or lower vram.page_size")
        if profile not in ("plain", "uvm"):
            raise XvError(f"unknown paging profile {profile!r} (known: plain, uvm)",
                          where="$.vram.profile")
        if backing not in ("ram", "file"):
            raise XvError(f"unknown backing {backing!r} (known: ram, file)",
                          where="$.vram.backing")
        self.eviction = eviction
        self.paging = bool(paging)
        self.manager = manager
        self.backing = backing
        self.path = Path(path)
        self.persistent = frozenset(persistent)
        self.profile = profile
        self.link: LinkProfile = get_profile(link)
        if fault_latency_us < 0 or fault_service_us < 0:
            raise XvError("fault_latency_us and fault_service_us must be 0 or more",
                          where="$.vram")
        if isinstance(fault_batch_size, bool) or not isinstance(fault_batch_size, int) \
                or fault_batch_size < 1:
            raise XvError(f"fault_batch_size must be an integer of at least 1, got "
                          f"{fault_batch_size!r}", where="$.vram.fault_batch_size")
        self.fault_latency = fault_latency_us * 1e-6
        self.fault_service = fault_service_us * 1e-6
        self.fault_batch_size = fault_batch_size
        self.frames = self.capacity // self.page_size
        uvm = profile == "uvm"
        if uvm and self.page_size != 4096:
            raise XvError(f"the uvm profile faults at 4KiB pages, but page_size is "
                          f"{format_size(self.page_size)}", where="$.vram.profile",
                          hint="set page_size: 4KiB")
        if uvm and self.paging and self.capacity < UVM_BLOCK:
            raise XvError(f"vram.capacity ({format_size(self.capacity)}) holds no 64KiB "
                          f"migration block of the uvm profile", where="$.vram.capacity",
                          hint="raise vram.capacity to at least 64KiB")
        # The unit the policy sees and pages move in: a page, or a UVM migration block.
        self._unit_pages = UVM_BLOCK // self.page_size if uvm else 1
        # Allocation unit in the address space: a page, or a UVM 2MiB region.
        self._alloc_unit = UVM_REGION if uvm and self.paging else self.page_size
        space = ADDRESS_SPACE if self.paging else self.capacity
        self._runs = RunAllocator(space // self._alloc_unit)
        if policy_factory is None:
            from xv_buffer.policies import POLICIES

            if eviction not in POLICIES:
                raise XvError(f"unknown eviction policy {eviction!r} (known: "
                              f"{', '.join(POLICIES)})", where="$.vram.eviction")
            policy_factory = POLICIES[eviction]
        self._policy_factory = policy_factory
        units = max(1, self.frames // self._unit_pages)
        self.policy = policy_factory(units)
        if self.paging and getattr(self.policy, "offline", False):
            raise XvError(f"eviction policy {eviction!r} needs the future accesses, so it "
                          f"only replays recorded traces", where="$.vram.eviction",
                          hint="choose an online policy such as lru or arc, and compare "
                               "against it with `xv vram replay`")
        self._pins: dict[int, int] = {}
        self._live: dict[str, PagedBuffer] = {}
        self._by_id: dict[int, PagedBuffer] = {}
        self._history: dict[str, dict[str, Any]] = {}  # per-buffer stats of freed buffers
        self._trace_names: dict[int, tuple[str, int]] = {}
        self._next_id = 0
        self._used = 0  # bytes reserved in the address space
        self._peak = 0
        self._total = 0
        self._resident = 0  # resident pages (frames in use)
        self._resident_peak = 0
        self._over_peak = 0
        self._flushes = 0
        self._flushed_bytes = 0
        self._closed = False
        self._lock = threading.RLock()
        self._vstats = _Counters(_VRAM_COUNTERS)
        self._backing_stats = _Counters(_TIER_COUNTERS)
        # The cache tiers, fastest first, and per tier: its policy, the link timing its
        # transfers, its statistics, a page of scratch memory for pages moving out of it.
        self._tiers: list[Any] = []
        self._tier_policies: list[Any] = []
        self._tier_links: list[LinkProfile | None] = []
        self._tier_stats: list[_Counters] = []
        self._scratch: list[bytearray] = []
        self._trace: array.array[int] | None = None
        self._trace_path: Path | None = None
        # Prefetching.  Units prefetch brought in that no tile has touched since, with their
        # pages (guarded by _lock), and the bound on those pages: half of VRAM.
        self._prefetched: dict[int, int] = {}
        self._prefetched_pages = 0
        self.prefetch_limit = self.frames // 2
        # Requests waiting for the worker, the worker, and its stop flag (guarded by
        # _pf_cv); requests queued or in progress; pages of requests dropped from the queue.
        self._pf_cv = threading.Condition(threading.Lock())
        self._pf_queue: deque[tuple[PagedBuffer, list[tuple[int, int]]]] = deque()
        self._pf_thread: threading.Thread | None = None
        self._pf_stop = False
        self._pf_pending = 0
        self._pf_overflow = 0
        self._pf_errors = 0
        # make_resident calls waiting for or holding _lock: the worker yields to them.
        self._demand_cv = threading.Condition(threading.Lock())
        self._demand = 0
        # The xv_on_page hook (called with event=PageEvent), when a plugin implements it.
        self._on_page = on_page

    @classmethod
    def from_config(cls, vram_config: Any, context: Any = None) -> RamVram:
        """Build from the fabric's ``vram`` section (duck-typed), resolving ``path`` against
        the context's working directory and the policy through its plugin registry."""
        plugins = getattr(context, "plugins", None) if context is not None else None
        eviction = getattr(vram_config, "eviction", "lru")
        factory = on_page = None
        if plugins is not None:
            factory = plugins.eviction_policies.get(eviction, where="$.vram.eviction").factory
            if plugins.hook.xv_on_page.get_hookimpls():
                on_page = plugins.hook.xv_on_page
        path = Path(os.path.expanduser(getattr(vram_config, "path", ".xv/vram")))
        if not path.is_absolute() and context is not None:
            path = Path(context.workdir) / path
        return cls(vram_config.capacity, getattr(vram_config, "page_size", 64 << 10),
                   eviction=eviction, paging=getattr(vram_config, "paging", False),
                   manager=getattr(vram_config, "manager", "ram"),
                   backing=getattr(vram_config, "backing", "ram"), path=path,
                   persistent=getattr(vram_config, "persistent", ()),
                   profile=getattr(vram_config, "profile", "plain"),
                   link=getattr(vram_config, "link", "pcie4-x16"),
                   fault_latency_us=getattr(vram_config, "fault_latency_us", 40.0),
                   fault_service_us=getattr(vram_config, "fault_service_us", 0.8),
                   fault_batch_size=getattr(vram_config, "fault_batch_size", UVM_FAULT_BATCH),
                   policy_factory=factory, on_page=on_page)

    # -- allocation -------------------------------------------------------------------
    def allocate(self, name: str, shape: tuple[int, ...], dtype: Any) -> PagedBuffer:
        """A buffer of ``shape`` and ``dtype``: zero-filled, or a persistent buffer's stored
        contents.

        Raises :class:`~xv_core.errors.XvError` when the name is taken, the shape or dtype
        is invalid, or (without paging) the buffer does not fit: the message lists the
        live allocations, largest first, against the capacity.
        """
        try:
            np_dtype = np.dtype(dtype)
        except TypeError:
            raise XvError(f"invalid dtype {dtype!r}", where=f"buffer {name!r}") from None
        shape = tuple(shape)
        if any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0
               for n in shape):
            raise XvError(f"invalid shape {list(shape)}: dimensions must be integers >= 0",
                          where=f"buffer {name!r}")
        shape = tuple(int(n) for n in shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * np_dtype.itemsize
        pages = max(1, -(-nbytes // self.page_size))
        units = max(1, -(-(pages * self.page_size) // self._alloc_unit))
        with self._lock:
            if self._closed:
                raise XvError("VRAM is closed", where=f"buffer {name!r}")
            if name in self._live:
                raise XvError("a buffer of this name is already allocated",
                              where=f"buffer {name!r}", hint="free it first or choose another name")
            start = self._runs.allocate(units)
            if start is None:
                raise self._out_of_memory(name, nbytes, units * self._alloc_unit)
            try:
                buffer = self._make_buffer(name, np_dtype, shape, nbytes, pages,
                                           start * self._alloc_unit, units * self._alloc_unit)
            except BaseException:
                self._runs.release(start, units)
                raise
            self._live[name] = buffer
            self._by_id[buffer.id] = buffer
            self._trace_names[buffer.id] = (name, pages)
            self._used += buffer.reserved
            self._peak = max(self._peak, self._used)
            self._total += 1
            if not self.paging:
                self._resident_pages(pages)
                buffer.resident[:] = b"\x01" * pages
                if buffer.stored[0]:
                    self._load(buffer, 0, pages)  # a persistent buffer's stored contents
        log.debug("vram allocate", buffer=name, nbytes=nbytes, offset=buffer.offset,
                  used=self._used)
        return buffer

    def _make_buffer(self, name: str, dtype: np.dtype[Any], shape: tuple[int, ...],
                     nbytes: int, pages: int, offset: int, reserved: int) -> PagedBuffer:
        size = pages * self.page_size
        persistent = name in self.persistent
        backing: Backing
        if persistent:
            backing = PersistentBacking(self.path, name, dtype, shape, size, self.page_size)
        elif self.backing == "file":
            backing = FileBacking(self.path, name, size, self.page_size)
        else:
            backing = RamBacking(size, self.page_size)
        ident = self._next_id
        self._next_id += 1
        try:
            return PagedBuffer(self, ident, name, dtype, shape, nbytes, pages, offset, reserved,
                               backing, persistent)
        except (OSError, MemoryError, ValueError):
            backing.close()
            raise XvError(f"the host has no memory left for {format_size(nbytes)}",
                          where=f"buffer {name!r}", hint="lower vram.capacity") from None

    def free(self, buffer: Any) -> None:
        """Release ``buffer``; its array can no longer be used.  Unflushed changes to a
        persistent buffer are dropped.  Freeing a buffer twice, or one of another VRAM,
        raises XvError."""
        name = getattr(buffer, "name", buffer)
        with self._lock:
            live = self._live.get(name)
            if live is None or live is not buffer:
                raise XvError("buffer is not allocated in this VRAM (freed twice?)",
                              where=f"buffer {name!r}")
            self._forget(live)
        log.debug("vram free", buffer=name, used=self._used)

    def _forget(self, buf: PagedBuffer) -> None:
        del self._live[buf.name]
        del self._by_id[buf.id]
        self._runs.release(buf.offset // self._alloc_unit, buf.reserved // self._alloc_unit)
        self._used -= buf.reserved
        upp = self._unit_pages
        if self.paging:
            for unit in range(0, buf.pages, upp):
                if buf.resident[unit]:
                    key = buf.key_base | (unit // upp)
                    if key in self.policy:
                        self.policy.remove(key)
                    self._pins.pop(key, None)
                    self._prefetch_forget(buf, key)
        self._resident -= sum(buf.resident)
        if self._tiers:
            for page in range(buf.pages):
                if buf.tier_of[page]:
                    self._drop_from_tier(buf, page)
        self._history[buf.name] = self._buffer_stats(buf)
        buf.backing.close()
        buf._drop_memory()

    def _out_of_memory(self, name: str, nbytes: int, reserved: int) -> XvError:
        unit = self._alloc_unit
        space = self._runs.pages * unit
        free = self._runs.free_pages * unit
        largest = self._runs.largest_run * unit
        what = "VRAM" if not self.paging else "device address space"
        if reserved > space:
            return XvError(f"cannot allocate {format_size(reserved)}: more than the whole "
                           f"{what} ({format_size(space)})", where=f"buffer {name!r}",
                           hint=f"raise vram.capacity to at least {format_size(reserved)}, "
                                f"or turn vram.paging on")
        if reserved <= free:
            message = (f"cannot allocate {format_size(reserved)}: {format_size(free)} of the "
                       f"{format_size(space)} {what} is free, but the largest free run is "
                       f"{format_size(largest)} (fragmented)")
            # Growing by the whole request is the only size sure to leave a long enough run.
            hint = (f"free buffers you no longer need, allocate the largest buffers first, or "
                    f"raise vram.capacity to {format_size(space + reserved)}")
        else:
            message = (f"cannot allocate {format_size(reserved)}: only {format_size(free)} of "
                       f"the {format_size(space)} {what} is free")
            hint = (f"raise vram.capacity to at least {format_size(self._used + reserved)}, "
                    f"or free buffers you no longer need")
        if not self.paging:
            hint += ", or turn vram.paging on"
        live = sorted(self._live.values(), key=lambda b: (-b.reserved, b.name))
        listed = ", ".join(f"{b.name!r} {format_size(b.reserved)}" for b in live[:MAX_LISTED])
        if len(live) > MAX_LISTED:
            listed += f" and {len(live) - MAX_LISTED} more"
        message += f"; live allocations, largest first: {listed}"
        return XvError(message, where=f"buffer {name!r}", hint=hint)

    # -- tiers and traces -------------------------------------------------------------
    def attach_tiers(self, tiers: Sequence[Any]) -> None:
        """Use ``tiers`` (fastest first) as the chain of cache tiers between VRAM and file
        backings: pages VRAM evicts go to the first, pages tier k evicts go to tier k + 1,
        pages the last evicts go to the backing when they are newer there.

        Each tier's page size must hold one VRAM page.  Call it before pages move."""
        tiers = list(tiers)
        for tier in tiers:
            if tier.page_size < self.page_size:
                raise XvError(f"its page size ({format_size(tier.page_size)}) is smaller than "
                              f"vram.page_size ({format_size(self.page_size)})",
                              where=f"component {tier.name!r}",
                              hint=f"set its page_size to {format_size(self.page_size)}")
        names = [t.name for t in tiers]
        for reserved in ("vram", "backing"):
            if reserved in names:
                raise XvError(f"a cache tier cannot be named {reserved!r}: the VRAM statistics "
                              f"use that name", where=f"component {reserved!r}",
                              hint="rename the component")
        if len(set(names)) != len(names):
            raise XvError(f"cache tiers need distinct names, got {', '.join(names)}",
                          where="$.components")
        if len(tiers) > 255:
            raise XvError(f"at most 255 cache tiers, got {len(tiers)}", where="$.components")
        with self._lock:
            self._tiers = tiers
            self._tier_policies = [self._policy_factory(max(1, t.slots)) for t in tiers]
            self._tier_links = [get_profile(t.profile) if getattr(t, "profile", None) else None
                                for t in tiers]
            self._tier_stats = [_Counters(_TIER_COUNTERS) for _ in tiers]
            self._scratch = [bytearray(self.page_size) for _ in tiers]

    def record_pages(self, path: str | os.PathLike[str]) -> None:
        """Record every page access from now on; the trace is written to ``path`` when the
        VRAM closes (see :data:`xv_core.runtime.interfaces.PAGE_TRACE_MAGIC`)."""
        with self._lock:
            self._trace = array.array("I")
            self._trace_path = Path(path)

    def _record(self, ident: int, first: int, count: int, write: bool) -> None:
        if self._trace is not None:
            self._trace.extend((ident, first, count, PAGE_WRITE if write else 0))

    def _write_trace(self) -> None:
        assert self._trace is not None and self._trace_path is not None
        header = {"page_size": self.page_size, "profile": self.profile,
                  "buffers": {str(i): {"name": n, "pages": p}
                              for i, (n, p) in sorted(self._trace_names.items())}}
        text = json.dumps(header).encode("utf-8")
        records = np.frombuffer(self._trace, dtype=np.uint32).astype("<u4", copy=False)
        path = self._trace_path
        tmp = path.with_name(path.name + ".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(PAGE_TRACE_MAGIC + struct.pack("<I", len(text)) + text)
                f.write(records.view(PAGE_TRACE_DTYPE).tobytes())
            os.replace(tmp, path)
        except OSError as exc:
            raise XvError(f"cannot write the page trace: {exc.strerror}",
                          where=str(path)) from None

    # -- residency ----------------------------------------------------------------------
    def make_resident(self, buffer: PagedBuffer, page_ranges: Sequence[tuple[int, int]], *,
                      write: bool) -> Lease:
        """Fault in pages ``[start, stop)`` of each range, pin them, mark them dirty when
        ``write`` (and only then); see :class:`xv_core.runtime.interfaces.Vram`.

        With the ``uvm`` profile the faults of this call are serviced in batches of up to
        ``fault_batch_size``, each batch charged once (see the module docstring)."""
        lease = Lease(self)
        self._demand_begin()
        try:
            with self._lock:
                buf = self._check(buffer)
                vs, bs = self._vstats, buf.counters
                faults: list[int] = []  # bytes each fault moved, in order
                for start, stop in page_ranges:
                    start, stop = max(0, int(start)), min(buf.pages, int(stop))
                    if stop <= start:
                        continue
                    self._record(buf.id, start, stop - start, write)
                    count = stop - start
                    vs.add("accesses", count)
                    bs.add("accesses", count)
                    if not self.paging:
                        vs.add("hits", count)
                        bs.add("hits", count)
                    else:
                        misses = self._touch(buf, start, stop, lease, faults)
                        vs.add("misses", misses)
                        bs.add("misses", misses)
                        vs.add("hits", count - misses)
                        bs.add("hits", count - misses)
                    if write:
                        buf.dirty[start:stop] = b"\x01" * count
                if faults:
                    self._charge_faults(buf, faults)
        except BaseException:
            lease.release()  # what this call pinned before it failed
            raise
        finally:
            self._demand_end()
        return lease

    def _touch(self, buf: PagedBuffer, start: int, stop: int, lease: Lease,
               faults: list[int]) -> int:
        """Pin and make resident the units holding pages ``[start, stop)``; the faults (the
        bytes each moved are appended to ``faults``)."""
        upp = self._unit_pages
        pins, keys, resident = self._pins, lease.keys, buf.resident
        hit, base = self.policy.hit, buf.key_base
        prefetched = self._prefetched
        misses = 0
        for unit in range(start // upp, (stop - 1) // upp + 1):
            key = base | unit
            # Pinned before it is made resident, so that neither the prefetcher nor later
            # units of this very call can evict it.
            pins[key] = pins.get(key, 0) + 1
            keys.append(key)
            if resident[unit * upp]:
                hit(key)
                if key in prefetched:  # first use of a unit the prefetch worker brought
                    self._prefetched_pages -= prefetched.pop(key)
                    used = min(stop, (unit + 1) * upp) - max(start, unit * upp)
                    self._vstats.add("prefetch_hits", used)
                    buf.counters.add("prefetch_hits", used)
            else:
                misses += 1  # one fault brings the whole unit: its other pages are hits
                faults.append(self._fault(buf, unit, key))
        return misses

    def _charge_faults(self, buf: PagedBuffer, faults: list[int]) -> None:
        """Modelled seconds of the faults of one make_resident call (bytes moved by each).

        ``plain``: one link transfer per fault.  ``uvm``: batches of up to
        ``fault_batch_size`` faults, in order; a batch costs ``fault_latency``, each of its
        faults ``fault_service``, and one link transfer of everything the batch migrated."""
        link = self.link
        if self.profile == "uvm":
            modelled, size = 0.0, self.fault_batch_size
            batches = -(-len(faults) // size)
            for b in range(batches):
                batch = faults[b * size:(b + 1) * size]
                moved = sum(batch)
                modelled += self.fault_latency + len(batch) * self.fault_service
                if moved:
                    modelled += link.transfer_time(moved)
            self._vstats.add("fault_batches", batches)
            buf.counters.add("fault_batches", batches)
        else:
            modelled = sum(link.transfer_time(moved) for moved in faults if moved)
        self._vstats.modelled_s += modelled
        buf.counters.modelled_s += modelled

    def _unpin(self, keys: list[int]) -> None:
        with self._lock:
            pins = self._pins
            for key in keys:
                n = pins.get(key, 0) - 1
                if n > 0:
                    pins[key] = n
                else:
                    pins.pop(key, None)
            # Pages brought in over capacity while everything was pinned go now.
            if self.paging and self._resident > self.frames and not self._closed:
                self._make_room(0)

    def _check(self, buffer: Any) -> PagedBuffer:
        buf = self._live.get(getattr(buffer, "name", None))
        if buf is None or buf is not buffer:
            raise XvError("buffer is not allocated in this VRAM",
                          where=f"buffer {getattr(buffer, 'name', buffer)!r}")
        return buf

    def _unit_range(self, buf: PagedBuffer, unit: int) -> tuple[int, int]:
        upp = self._unit_pages
        return unit * upp, min(buf.pages, (unit + 1) * upp)

    def _resident_pages(self, n: int) -> None:
        self._resident += n
        self._resident_peak = max(self._resident_peak, self._resident)
        self._over_peak = max(self._over_peak, self._resident - self.frames)

    def _event(self, kind: str, buf: PagedBuffer, page: int, tier: str) -> None:
        if self._on_page is not None:
            self._on_page(event=PageEvent(kind, buf.name, page, tier))

    def _source(self, buf: PagedBuffer, page: int) -> str:
        if buf.tier_of[page]:
            return self._tiers[buf.tier_of[page] - 1].name
        return "backing" if buf.stored[page] else "zero"

    def _fault(self, buf: PagedBuffer, unit: int, key: int) -> int:
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
        self.policy.insert(key)
        buf.resident[first:stop] = b"\x01" * (stop - first)
        buf.dirty[first:stop] = bytes(stop - first)
        self._resident_pages(stop - first)
        if self.profile == "uvm":
            moved += self._tree_prefetch(buf, unit)
        return moved

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
        buf = self._by_id[key >> _KEY_BITS]
        first, stop = self._unit_range(buf, key & ((1 << _KEY_BITS) - 1))
        if self._on_page is not None and any(buf.dirty[first:stop]):
            below = self._tiers[0].name if self._tiers and buf.backing.kind != "ram" \
                else "backing"
            self._event("writeback", buf, first, below)
        self._write_down(buf, first, stop)
        self._event("evict", buf, first, "vram")
        buf._release(first, stop - first)
        buf.resident[first:stop] = bytes(stop - first)
        buf.dirty[first:stop] = bytes(stop - first)
        self._resident -= stop - first
        self._vstats.add("evictions")
        buf.counters.add("evictions")
        self._prefetch_forget(buf, key)

    def _tree_prefetch(self, buf: PagedBuffer, unit: int) -> int:
        """The ``uvm`` profile's tree-based neighbourhood prefetcher: bytes it brought in."""
        upp = self._unit_pages
        units = -(-buf.pages // upp)
        per_region = UVM_REGION // UVM_BLOCK
        moved, size = 0, 2
        while size <= per_region:
            lo = unit // size * size
            hi = min(lo + size, units)
            missing = [u for u in range(lo, hi) if not buf.resident[u * upp]]
            if missing and (hi - lo - len(missing)) * 2 > hi - lo:
                for u in missing:
                    first, stop = self._unit_range(buf, u)
                    key = buf.key_base | u
                    self._make_room(stop - first)
                    if self._resident + (stop - first) > self.frames:
                        return moved  # no room without evicting pinned pages: stop here
                    self._event("fault", buf, first, self._source(buf, first))
                    moved += self._load(buf, first, stop - first)
                    self.policy.insert(key)
                    buf.resident[first:stop] = b"\x01" * (stop - first)
                    self._resident_pages(stop - first)
                    self._vstats.add("prefetches")
                    buf.counters.add("prefetches")
            size *= 2
        return moved

    # -- prefetching ahead of use -----------------------------------------------------
    def prefetch(self, buffer: PagedBuffer, page_ranges: Iterable[tuple[int, int]]) -> None:
        """Ask for pages ``[start, stop)`` of each range to be brought into VRAM soon, because
        a tile will touch them; returns at once.

        A worker thread (started on first use, stopped by :meth:`close`) loads them in order,
        one migration unit at a time, from the fastest tier holding them, without pinning
        them: a later :meth:`make_resident` of those pages hits (``prefetch_hits``).  It never
        evicts pinned pages, pages earlier prefetches brought that no tile has touched yet,
        or pages of the same request, and keeps at most :attr:`prefetch_limit` (half of
        VRAM) pages of the former; pages it cannot place that way are skipped
        (``prefetch_dropped``).  Pages are never marked dirty by a prefetch.  A hint: with
        paging off, for a freed buffer or a closed VRAM it does nothing.  Raises XvError for
        a buffer of another VRAM."""
        if getattr(buffer, "_vram", None) is not self:
            raise XvError("buffer is not allocated in this VRAM",
                          where=f"buffer {getattr(buffer, 'name', buffer)!r}")
        if not self.paging or self._closed or buffer.freed:
            return
        ranges = []
        for start, stop in page_ranges:
            start, stop = max(0, int(start)), min(buffer.pages, int(stop))
            if stop > start:
                ranges.append((start, stop))
        if not ranges:
            return
        with self._pf_cv:
            if self._pf_stop:
                return
            if len(self._pf_queue) >= PREFETCH_QUEUE:
                _, stale = self._pf_queue.popleft()
                self._pf_pending -= 1
                self._pf_overflow += sum(b - a for a, b in stale)
            self._pf_queue.append((buffer, ranges))
            self._pf_pending += 1
            if self._pf_thread is None:
                self._pf_thread = threading.Thread(target=self._prefetch_worker, daemon=True,
                                                   name="xv-vram-prefetch")
                self._pf_thread.start()
            self._pf_cv.notify_all()

    def wait_prefetches(self, timeout: float | None = None) -> bool:
        """Block until every prefetch asked for so far is done (or dropped); False when
        ``timeout`` seconds passed first.  For tests and reproducible statistics."""
        with self._pf_cv:
            return self._pf_cv.wait_for(lambda: self._pf_pending == 0 or self._pf_stop,
                                        timeout)

    def _prefetch_worker(self) -> None:
        while True:
            with self._pf_cv:
                self._pf_cv.wait_for(lambda: self._pf_queue or self._pf_stop)
                if self._pf_stop:
                    return
                buf, ranges = self._pf_queue.popleft()
            try:
                self._prefetch_request(buf, ranges)
            except Exception as exc:  # noqa: BLE001 - a hint failed: the tile meets the error
                log.warning("vram prefetch failed", buffer=buf.name, error=str(exc))
                with self._pf_cv:
                    self._pf_errors += 1
            finally:
                with self._pf_cv:
                    # (Not below 0: a stop while this request ran has set it to 0.)
                    self._pf_pending = max(0, self._pf_pending - 1)
                    self._pf_cv.notify_all()

    def _prefetch_request(self, buf: PagedBuffer, ranges: list[tuple[int, int]]) -> None:
        upp = self._unit_pages
        units: dict[int, None] = {}  # in the order asked, each once
        for start, stop in ranges:
            units.update(dict.fromkeys(range(start // upp, (stop - 1) // upp + 1)))
        # Not to be evicted to make room for this request: pinned units, units earlier
        # prefetches brought that are not used yet, and the units of this request.
        protected = _Protected(self._pins, self._prefetched,
                               {buf.key_base | u for u in units})
        order = list(units)
        for i, unit in enumerate(order):
            if not self._yield_to_demand():
                return  # stopping
            with self._lock:
                if self._pf_stop or self._closed or self._live.get(buf.name) is not buf:
                    return  # freed (or closed) while queued: forget the rest
                if not self._prefetch_unit(buf, unit, protected):
                    skipped = 0
                    for u in order[i:]:
                        if not buf.resident[u * upp]:
                            first, stop = self._unit_range(buf, u)
                            skipped += stop - first
                    self._vstats.add("prefetch_dropped", skipped)
                    buf.counters.add("prefetch_dropped", skipped)
                    return

    def _prefetch_unit(self, buf: PagedBuffer, unit: int, protected: _Protected) -> bool:
        """Load one unit for a prefetch (under the lock); False when it cannot be placed."""
        first, stop = self._unit_range(buf, unit)
        if buf.resident[first]:
            return True
        count = stop - first
        if self._prefetched_pages + count > self.prefetch_limit:
            return False
        while self._resident + count > self.frames:
            victim = self.policy.evict(protected)
            if victim is None:
                return False
            self._evict(victim)
        key = buf.key_base | unit
        self._event("prefetch", buf, first, self._source(buf, first))
        moved = self._load(buf, first, count, prefetch=True)
        self.policy.insert(key)  # not a miss: no tile asked for it yet
        buf.resident[first:stop] = b"\x01" * count
        buf.dirty[first:stop] = bytes(count)
        self._resident_pages(count)
        self._prefetched[key] = count
        self._prefetched_pages += count
        self._vstats.add("prefetched", count)
        buf.counters.add("prefetched", count)
        if moved:
            modelled = self.link.transfer_time(moved)
            self._vstats.modelled_s += modelled
            buf.counters.modelled_s += modelled
        return True

    def _prefetch_forget(self, buf: PagedBuffer, key: int) -> None:
        """A unit leaves VRAM (evicted or freed): if prefetch brought it and no tile used
        it, that prefetch was wasted."""
        pages = self._prefetched.pop(key, None)
        if pages is not None:
            self._prefetched_pages -= pages
            self._vstats.add("prefetch_unused", pages)
            buf.counters.add("prefetch_unused", pages)

    def _demand_begin(self) -> None:
        with self._demand_cv:
            self._demand += 1

    def _demand_end(self) -> None:
        with self._demand_cv:
            self._demand -= 1
            if not self._demand:
                self._demand_cv.notify_all()

    def _yield_to_demand(self) -> bool:
        """The worker waits while make_resident calls want the lock (so that they wait at
        most for the one unit being loaded); False when the worker is to stop."""
        with self._demand_cv:
            self._demand_cv.wait_for(lambda: not self._demand or self._pf_stop)
        return not self._pf_stop

    def _stop_prefetcher(self) -> None:
        with self._pf_cv:
            self._pf_stop = True
            self._pf_queue.clear()
            self._pf_pending = 0
            thread = self._pf_thread
            self._pf_cv.notify_all()
        with self._demand_cv:
            self._demand_cv.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    # -- moving data ------------------------------------------------------------------
    def _load(self, buf: PagedBuffer, first: int, count: int, *, prefetch: bool = False
              ) -> int:
        """Bring pages into the buffer's memory from the fastest tier holding them; return
        the bytes that moved (zero pages move nothing).  A file-backed page not in the
        cache tier k was looked for (a miss) in tiers 1 .. k - 1."""
        ps = self.page_size
        moved = 0
        page, stop = first, first + count
        start = time.perf_counter()
        tiered = bool(self._tiers) and buf.backing.kind != "ram"
        while page < stop:
            level = buf.tier_of[page]
            if level:
                stats = self._tier_stats[level - 1]
                key = buf.key_base | page
                began = time.perf_counter()
                got = self._tiers[level - 1].read_into(key, buf.page_view(page, 1))
                stats.wall_s += time.perf_counter() - began
                if got is None:  # the tier lost it: should not happen; read below it
                    if key in self._tier_policies[level - 1]:
                        self._tier_policies[level - 1].remove(key)
                    buf.tier_of[page] = buf.tier_newer[page] = 0
                    continue
                for upper in self._tier_stats[:level - 1]:
                    upper.add("misses")
                self._tier_policies[level - 1].hit(key)
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
                began = time.perf_counter()
                buf.backing.read_into(page, buf.page_view(page, end - page))
                self._backing_stats.wall_s += time.perf_counter() - began
                self._backing_stats.add("reads")
                self._backing_stats.add("bytes_read", (end - page) * ps)
                if prefetch:
                    self._backing_stats.add("prefetch_hits", end - page)
                moved += (end - page) * ps
            else:
                self._vstats.add("zero_fills", end - page)
            page = end
        elapsed = time.perf_counter() - start
        if moved:
            self._vstats.add("bytes_written", moved)
            buf.counters.add("bytes_written", moved)
            self._vstats.wall_s += elapsed
        return moved

    def _write_down(self, buf: PagedBuffer, first: int, stop: int) -> None:
        """Write evicted pages below VRAM: dirty ones back, clean ones of file-backed
        buffers into the first cache tier (a victim cache in front of the slower file)."""
        ps = self.page_size
        start = time.perf_counter()
        written = 0
        use_tier = bool(self._tiers) and buf.backing.kind != "ram"
        for page in range(first, stop):
            dirty = buf.dirty[page]
            level = buf.tier_of[page]
            if use_tier:
                if dirty:
                    if level > 1:  # its copy further down is stale now
                        self._drop_from_tier(buf, page)
                    self._to_tier(0, buf, page, buf.page_view(page, 1), newer=True)
                    written += ps
                elif not level and buf.stored[page]:
                    self._to_tier(0, buf, page, buf.page_view(page, 1), newer=False)
            elif dirty:
                began = time.perf_counter()
                buf.backing.write_from(page, buf.page_view(page, 1))
                self._backing_stats.wall_s += time.perf_counter() - began
                buf.stored[page] = 1
                self._backing_stats.add("writes")
                self._backing_stats.add("bytes_written", ps)
                if level:  # its copy in a tier is stale now
                    self._drop_from_tier(buf, page)
                written += ps
        if written:
            self._vstats.add("writebacks", written // ps)
            buf.counters.add("writebacks", written // ps)
            self._vstats.add("bytes_read", written)
            buf.counters.add("bytes_read", written)
            modelled = self.link.transfer_time(written)
            self._vstats.modelled_s += modelled
            buf.counters.modelled_s += modelled
            self._vstats.wall_s += time.perf_counter() - start

    def _to_tier(self, index: int, buf: PagedBuffer, page: int, data: memoryview | bytearray,
                 *, newer: bool) -> None:
        """Store a page in cache tier ``index`` (0: the fastest), making room there first
        by moving its victims down the chain."""
        tier, policy = self._tiers[index], self._tier_policies[index]
        key = buf.key_base | page
        newer = newer or (buf.tier_of[page] == index + 1 and bool(buf.tier_newer[page]))
        if key in policy:
            policy.hit(key)
        else:
            policy.miss(key)
            while len(tier) >= tier.slots or len(policy) >= policy.capacity:
                victim = policy.evict(())
                if victim is None:
                    break
                self._tier_evict(index, victim)
            policy.insert(key)
        stats = self._tier_stats[index]
        began = time.perf_counter()
        tier.write_page(key, data)
        stats.wall_s += time.perf_counter() - began
        stats.add("writes")
        stats.add("bytes_written", len(data))
        link = self._tier_links[index]
        if link is not None:
            stats.modelled_s += link.transfer_time(len(data))
        buf.tier_of[page] = index + 1
        buf.tier_newer[page] = 1 if newer else 0

    def _tier_evict(self, index: int, key: int) -> None:
        """Cache tier ``index`` drops a page: it goes down to the next tier, or from the last
        one to the backing when it is newer there."""
        tier, stats = self._tiers[index], self._tier_stats[index]
        buf = self._by_id.get(key >> _KEY_BITS)
        page = key & ((1 << _KEY_BITS) - 1)
        last = index + 1 == len(self._tiers)
        if buf is not None and (not last or buf.tier_newer[page]):
            # Each tier has its own scratch page: moving this one down may evict from the
            # next tier, which reads its victim into the next scratch page.
            scratch = memoryview(self._scratch[index])
            began = time.perf_counter()
            got = tier.read_into(key, scratch)
            stats.wall_s += time.perf_counter() - began
            if got is not None:
                stats.add("reads")
                stats.add("bytes_read", self.page_size)
                link = self._tier_links[index]
                if link is not None:
                    stats.modelled_s += link.transfer_time(self.page_size)
                newer = bool(buf.tier_newer[page])
                tier.drop(key)
                buf.tier_of[page] = buf.tier_newer[page] = 0
                stats.add("evictions")
                if not last:
                    self._to_tier(index + 1, buf, page, scratch, newer=newer)
                else:
                    began = time.perf_counter()
                    buf.backing.write_from(page, scratch)
                    self._backing_stats.wall_s += time.perf_counter() - began
                    buf.stored[page] = 1
                    self._backing_stats.add("writes")
                    self._backing_stats.add("bytes_written", self.page_size)
                return
        tier.drop(key)
        stats.add("evictions")
        if buf is not None:
            buf.tier_of[page] = buf.tier_newer[page] = 0

    def _drop_from_tier(self, buf: PagedBuffer, page: int) -> None:
        level = buf.tier_of[page]
        if not level:
            return
        key = buf.key_base | page
        self._tiers[level - 1].drop(key)
        policy = self._tier_policies[level - 1]
        if key in policy:
            policy.remove(key)
        buf.tier_of[page] = buf.tier_newer[page] = 0

    def _newest(self, buf: PagedBuffer, page: int, out: memoryview) -> None:
        """The page's current bytes, from wherever they are, into ``out``."""
        level = buf.tier_of[page]
        if buf.resident[page]:
            out[:] = buf.page_view(page, 1)
        elif level and self._tiers[level - 1].read_into(buf.key_base | page, out) is not None:
            pass
        elif buf.stored[page]:
            buf.backing.read_into(page, out)
        else:
            out[:] = bytes(len(out))

    # -- host access ----------------------------------------------------------------------
    def _host_read(self, buf: PagedBuffer) -> np.ndarray:
        with self._lock:
            self._check(buf)
            if all(buf.resident):
                out = np.array(buf._array, copy=True)
            else:
                raw = np.empty(buf.pages * self.page_size, dtype=np.uint8)
                view = memoryview(raw)
                ps = self.page_size
                for page in range(buf.pages):
                    self._newest(buf, page, view[page * ps:(page + 1) * ps])
                out = raw[:buf.nbytes].view(buf.dtype).reshape(buf.shape).copy()
            self._vstats.add("host_bytes_read", buf.nbytes)
            return out

    def _host_write(self, buf: PagedBuffer, data: np.ndarray) -> None:
        """Write the whole buffer: resident pages in place; others into free VRAM frames
        while there are some (no eviction), the rest to the backing."""
        with self._lock:
            self._check(buf)
            raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
            if all(buf.resident):
                buf._bytes[:buf.nbytes] = raw
                buf.dirty[:] = b"\x01" * buf.pages
            else:
                self._host_write_pages(buf, raw)
            self._vstats.add("host_bytes_written", buf.nbytes)

    def _host_write_pages(self, buf: PagedBuffer, raw: np.ndarray) -> None:
        ps, upp = self.page_size, self._unit_pages
        padded = np.zeros(buf.pages * ps, dtype=np.uint8)
        padded[:buf.nbytes] = raw
        source = memoryview(padded)
        for unit in range(-(-buf.pages // upp)):
            first, stop = self._unit_range(buf, unit)
            part = source[first * ps:stop * ps]
            if not buf.resident[first] and self._resident + (stop - first) <= self.frames:
                self.policy.insert(buf.key_base | unit)
                buf.resident[first:stop] = b"\x01" * (stop - first)
                self._resident_pages(stop - first)
            if buf.resident[first]:
                buf.page_view(first, stop - first)[:] = part
                buf.dirty[first:stop] = b"\x01" * (stop - first)
                continue
            buf.backing.write_from(first, part)
            buf.stored[first:stop] = b"\x01" * (stop - first)
            for page in range(first, stop):
                if buf.tier_of[page]:
                    self._drop_from_tier(buf, page)

    # -- persistence ----------------------------------------------------------------------
    def flush(self, buffer: Any = None, *, before_rename: Callable[[], None] | None = None
              ) -> None:
        """Write persistent buffers (or the one given) to their files, crash-safely: each
        file holds its old contents or its new ones, never a mix.  ``before_rename`` is a
        test hook (see :meth:`PersistentBacking.commit`)."""
        with self._lock:
            if buffer is not None:
                buf = self._check(buffer)
                if not buf.persistent:
                    raise XvError("the buffer is not persistent: there is nothing to flush it "
                                  "to", where=f"buffer {buf.name!r}",
                                  hint="list it in vram.persistent")
                targets = [buf]
            else:
                targets = [b for b in self._live.values() if b.persistent]
            for buf in targets:
                self._flush_one(buf, before_rename)

    def _flush_one(self, buf: PagedBuffer, before_rename: Callable[[], None] | None) -> None:
        assert isinstance(buf.backing, PersistentBacking)
        start = time.perf_counter()
        buf.backing.commit(lambda page, out: self._newest(buf, page, out),
                           before_rename=before_rename)
        for page in range(buf.pages):
            if buf.resident[page] and buf.dirty[page] and buf.tier_of[page]:
                self._drop_from_tier(buf, page)  # older than what the file holds now
            else:
                buf.tier_newer[page] = 0  # the file holds what the tier holds now
        buf.dirty[:] = bytes(buf.pages)
        buf.stored[:] = b"\x01" * buf.pages
        self._flushes += 1
        self._flushed_bytes += buf.nbytes
        self._backing_stats.add("writes")
        self._backing_stats.add("bytes_written", buf.nbytes)
        self._backing_stats.wall_s += time.perf_counter() - start

    # -- accounting -------------------------------------------------------------------
    def _buffer_stats(self, buf: PagedBuffer) -> dict[str, Any]:
        out = buf.counters.as_dict()
        for unused in ("host_bytes_read", "host_bytes_written", "bandwidth_Bps", "wall_s"):
            out.pop(unused, None)
        out.update(nbytes=buf.nbytes, pages=buf.pages, backing=buf.backing.kind,
                   resident_pages=sum(buf.resident))
        return out

    def stats(self) -> dict[str, Any]:
        """Allocation, residency and paging statistics.

        ``used``, ``peak`` and ``requested`` count the address space allocations take (whole
        pages, or whole 2MiB regions with the uvm profile); ``internal_fragmentation`` is
        reserved minus requested; ``external_fragmentation`` is 1 - largest free run / free
        space.  Without paging that space is the capacity; with paging VRAM frames hold any
        page, so ``free`` counts free frames and there is no external fragmentation.
        ``tiers`` has one entry per tier (``vram``, each cache tier by name in chain order,
        ``backing``) and ``buffers`` one per buffer, freed ones included.  Prefetching runs
        in the background: call :meth:`wait_prefetches` first for settled numbers.
        """
        with self._lock:
            live = sorted(self._live.values(), key=lambda b: (-b.reserved, b.name))
            requested = sum(b.nbytes for b in live)
            if self.paging:
                free = (self.frames - min(self._resident, self.frames)) * self.page_size
                largest, external = free, 0.0
            else:
                free = self._runs.free_pages * self._alloc_unit
                largest = self._runs.largest_run * self._alloc_unit
                external = (1.0 - largest / free) if free else 0.0
            vram = self._vstats.as_dict()
            with self._pf_cv:
                overflow, errors = self._pf_overflow, self._pf_errors
            vram.update(resident=self._resident * self.page_size,
                        resident_peak=self._resident_peak * self.page_size,
                        overcommit_peak=max(0, self._over_peak) * self.page_size,
                        prefetch_dropped=vram["prefetch_dropped"] + overflow,
                        prefetch_errors=errors, prefetch_in_flight=self._prefetched_pages,
                        prefetch_limit=self.prefetch_limit)
            tiers: dict[str, Any] = {"vram": vram}
            for level, (tier, counters) in enumerate(zip(self._tiers, self._tier_stats), 1):
                entry = counters.as_dict()
                entry.update(level=level, slots=tier.slots, used=len(tier),
                             profile=getattr(tier, "profile", None))
                tiers[tier.name] = entry
            backing = self._backing_stats.as_dict()
            backing.pop("miss_ratio", None)
            backing["prefetch_reads"] = backing.pop("prefetch_hits")
            for unused in ("hits", "misses", "evictions"):
                backing.pop(unused, None)
            backing.update(kind=self.backing, flushes=self._flushes,
                           flushed_bytes=self._flushed_bytes)
            tiers["backing"] = backing
            buffers = dict(self._history)
            buffers.update({b.name: self._buffer_stats(b) for b in self._live.values()})
            return {
                "manager": self.manager,
                "capacity": self.capacity,
                "page_size": self.page_size,
                "pages": self.frames,
                "used": self._used,
                "peak": self._peak,
                "free": free,
                "largest_free": largest,
                "requested": requested,
                "internal_fragmentation": self._used - requested,
                "external_fragmentation": external,
                "count": len(live),
                "allocations_total": self._total,
                "live": [{"name": b.name, "nbytes": b.nbytes, "reserved": b.reserved,
                          "offset": b.offset} for b in live],
                "eviction": self.eviction,
                "paging": self.paging,
                "profile": self.profile,
                "backing": self.backing,
                "link": self.link.name,
                "modelled_s": sum(t.get("modelled_s", 0.0) for t in tiers.values()),
                "tiers": tiers,
                "buffers": buffers,
            }

    def close(self) -> None:
        """Free every live buffer (unflushed persistent changes are dropped) and write the
        page trace if one is recorded.  Queued prefetches are dropped and the prefetch
        worker is stopped (after the unit it is loading).  Further allocations raise
        XvError; closing twice is fine."""
        self._stop_prefetcher()  # without the lock: the worker may be waiting for it
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for buffer in list(self._live.values()):
                self._forget(buffer)
            self._runs = RunAllocator(self._runs.pages)
            self._used = 0
            if self._trace is not None:
                self._write_trace()
                self._trace = None


def ram_vram_factory(vram_config: Any, context: Any = None) -> RamVram:
    """The ``ram`` VRAM manager's factory: ``(vram_config, context) -> RamVram``."""
    return RamVram.from_config(vram_config, context)
