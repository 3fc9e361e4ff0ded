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

The decisions are :class:`~xv_buffer.residency.Residency`'s, shared with the data-less twin
:meth:`RamVram.pager` gives the timing model (:mod:`xv_buffer.pager`); this module moves the
bytes they decide and adds allocation, backings, persistence, traces and prefetching.
"""

from __future__ import annotations

import array
import bisect
import json
import math
import mmap
import os
import struct
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from xv_core.errors import XvError
from xv_core.profiles import get_profile
from xv_core.runtime.interfaces import PAGE_TRACE_DTYPE, PAGE_TRACE_MAGIC
from xv_buffer.backing import Backing, FileBacking, PersistentBacking, RamBacking
from xv_buffer.pager import Pager
from xv_buffer.residency import (
    BACKING, HOST, UVM_BLOCK, UVM_FAULT_BATCH, UVM_REGION, VRAM, ZERO, Lease, Pages,
    Residency,
)
from xv_buffer.sizes import format_size, to_bytes

log = structlog.get_logger("xv.vram")

#: Live allocations an out-of-memory message lists before summarising the rest.
MAX_LISTED = 8
#: Bytes of device address space with paging: allocation is never what runs out.
ADDRESS_SPACE = 1 << 46
#: Prefetch requests waiting for the worker at most; when more arrive the oldest (the most
#: likely to be for a tile that has run already) is dropped.
PREFETCH_QUEUE = 64
_OS_PAGE = mmap.PAGESIZE
#: Freed buffers whose statistics ``stats()`` keeps (the most recently freed).
HISTORY_LIMIT = 1024
#: Re-exported: the ``uvm`` profile's sizes (see :mod:`xv_buffer.residency`).
__all__ = ["ADDRESS_SPACE", "Lease", "MAX_LISTED", "PagedBuffer", "RamBuffer", "RamVram",
           "RunAllocator", "UVM_BLOCK", "UVM_FAULT_BATCH", "UVM_REGION", "ram_vram_factory"]


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
# buffers
# ----------------------------------------------------------------------------------------


class PagedBuffer(Pages):
    """A buffer in :class:`RamVram`.  Implements :class:`xv_core.runtime.interfaces.DeviceBuffer`.

    ``offset`` is its place in the device address space, ``reserved`` the bytes it takes
    there (whole pages, or whole 2MiB regions with the ``uvm`` profile).  After it is freed,
    :meth:`array`, :meth:`read` and :meth:`write` raise :class:`~xv_core.errors.XvError`.
    Where each page is (``resident``, ``dirty``, ``tier_of``, ...): see
    :class:`xv_buffer.residency.Pages`.
    """

    def __init__(self, vram: RamVram, ident: int, name: str, dtype: np.dtype[Any],
                 shape: tuple[int, ...], nbytes: int, pages: int, offset: int, reserved: int,
                 backing: Backing, persistent: bool):
        super().__init__(ident, name, nbytes, pages, vram._units(pages),
                         ram_backed=backing.kind == "ram",
                         stored=getattr(backing, "existed", False))
        self._vram = vram
        self.dtype = dtype
        self.shape = shape
        self.offset = offset
        self.reserved = reserved
        self.backing = backing
        self.persistent = persistent
        size = max(pages, 1) * vram.page_size
        self._mem: mmap.mmap | None = mmap.mmap(-1, size,
                                                flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._bytes = np.frombuffer(self._mem, dtype=np.uint8)
        self._view = memoryview(self._mem)
        self._array: np.ndarray | None = self._bytes[:nbytes].view(dtype).reshape(shape)

    @property
    def freed(self) -> bool:
        return self._array is None

    @property
    def reopened(self) -> bool:
        """True for a persistent buffer that came with contents from an earlier run."""
        return bool(getattr(self.backing, "existed", False))

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


# ----------------------------------------------------------------------------------------
# the VRAM
# ----------------------------------------------------------------------------------------


class RamVram(Residency):
    """Device memory of a fabric, in RAM.  Implements :class:`xv_core.runtime.interfaces.Vram`.

    The paging decisions are :class:`~xv_buffer.residency.Residency`'s; this class moves the
    bytes they decide (:meth:`_move`), and adds allocation, backings, persistence, traces
    and the prefetch worker.  :meth:`pager` gives a data-less twin for the timing model.

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
        if fault_latency_us < 0 or fault_service_us < 0:
            raise XvError("fault_latency_us and fault_service_us must be 0 or more",
                          where="$.vram")
        if isinstance(fault_batch_size, bool) or not isinstance(fault_batch_size, int) \
                or fault_batch_size < 1:
            raise XvError(f"fault_batch_size must be an integer of at least 1, got "
                          f"{fault_batch_size!r}", where="$.vram.fault_batch_size")
        uvm = profile == "uvm"
        if uvm and self.page_size != 4096:
            raise XvError(f"the uvm profile faults at 4KiB pages, but page_size is "
                          f"{format_size(self.page_size)}", where="$.vram.profile",
                          hint="set page_size: 4KiB")
        if uvm and paging and self.capacity < UVM_BLOCK:
            raise XvError(f"vram.capacity ({format_size(self.capacity)}) holds no 64KiB "
                          f"migration block of the uvm profile", where="$.vram.capacity",
                          hint="raise vram.capacity to at least 64KiB")
        if policy_factory is None:
            from xv_buffer.policies import POLICIES

            if eviction not in POLICIES:
                raise XvError(f"unknown eviction policy {eviction!r} (known: "
                              f"{', '.join(POLICIES)})", where="$.vram.eviction")
            policy_factory = POLICIES[eviction]
        super().__init__(page_size=self.page_size, frames=self.capacity // self.page_size,
                         paging=bool(paging), profile=profile, policy_factory=policy_factory,
                         link=get_profile(link), fault_latency=fault_latency_us * 1e-6,
                         fault_service=fault_service_us * 1e-6,
                         fault_batch_size=fault_batch_size, on_page=on_page)
        if self.paging and getattr(self.policy, "offline", False):
            raise XvError(f"eviction policy {eviction!r} needs the future accesses, so it "
                          f"only replays recorded traces", where="$.vram.eviction",
                          hint="choose an online policy such as lru or arc, and compare "
                               "against it with `xv vram replay`")
        self.eviction = eviction
        self.manager = manager
        self.backing = backing
        self.path = Path(path)
        self.persistent = frozenset(persistent)
        # Allocation unit in the address space: a page, or a UVM 2MiB region.
        self._alloc_unit = UVM_REGION if uvm and self.paging else self.page_size
        space = ADDRESS_SPACE if self.paging else self.capacity
        self._runs = RunAllocator(space // self._alloc_unit)
        self._live: dict[str, PagedBuffer] = {}
        # Per-buffer stats of freed buffers, the last HISTORY_LIMIT of them (oldest first).
        self._history: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._history_dropped = 0
        self._trace_names: dict[int, tuple[str, int]] = {}
        self._next_id = 0
        self._used = 0  # bytes reserved in the address space
        self._peak = 0
        self._total = 0
        self._flushes = 0
        self._flushed_bytes = 0
        self._lock = threading.RLock()
        # The cache tiers (fastest first) and a page of memory for pages moving between them.
        self._tiers: list[Any] = []
        self._scratch = bytearray(self.page_size)
        self._host_data: np.ndarray | None = None  # what the host is writing (under the lock)
        self._trace_path: Path | None = None
        # Prefetching: at most this many pages brought in ahead of use and not used yet.
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
        self._demand_lock = threading.Lock()
        self._demand_cv = threading.Condition(self._demand_lock)
        self._demand = 0

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
        nbytes = math.prod(shape) * np_dtype.itemsize  # Python ints: no wrap-around
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
            self._trace_names[buffer.id] = (name, pages)
            self._used += buffer.reserved
            self._peak = max(self._peak, self._used)
            self._total += 1
            self._admit(buffer)
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
                          where=f"buffer {name!r}",
                          hint="make the buffer smaller: its array is mapped in this machine's "
                               "memory") from None

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
        self._runs.release(buf.offset // self._alloc_unit, buf.reserved // self._alloc_unit)
        self._used -= buf.reserved
        self._forget_pages(buf)
        self._history.pop(buf.name, None)
        self._history[buf.name] = self._buffer_stats(buf)
        if len(self._history) > HISTORY_LIMIT:  # a long-lived fabric's memory stays bounded
            self._history.popitem(last=False)
            self._history_dropped += 1
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
            self._set_tiers(names, [t.slots for t in tiers],
                            [getattr(t, "profile", None) for t in tiers])

    def pager(self) -> Pager:
        """A fresh data-less twin of this VRAM for the timing model: its capacity, page size,
        paging profile, eviction policy (new instances from the same factory), the cache
        tiers attached now (names and slots, in chain order), backings, link and fault
        costs; no buffers.  See :class:`xv_buffer.pager.Pager`."""
        with self._lock:
            return Pager(page_size=self.page_size, frames=self.frames, paging=self.paging,
                         profile=self.profile, policy_factory=self._policy_factory,
                         backing=self.backing, persistent=self.persistent,
                         tiers=list(zip(self._tier_names, self._tier_slots,
                                        self._tier_profiles)),
                         link=self.link, fault_latency=self.fault_latency,
                         fault_service=self.fault_service,
                         fault_batch_size=self.fault_batch_size)

    def record_pages(self, path: str | os.PathLike[str]) -> None:
        """Record every page access from now on; the trace is written to ``path`` when the
        VRAM closes (see :data:`xv_core.runtime.interfaces.PAGE_TRACE_MAGIC`)."""
        with self._lock:
            self._trace = array.array("I")
            self._trace_path = Path(path)

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
            tmp.unlink(missing_ok=True)  # nothing half-written is left
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
                self._access(self._check(buffer), page_ranges, write, lease)
        except BaseException:
            lease.release()  # what this call pinned before it failed
            raise
        finally:
            self._demand_end()
        return lease

    def _release_lease(self, held: list[tuple[Pages, int, int]]) -> None:
        with self._lock:  # leases are released from the threads that ran the tiles
            self._unpin(held)

    def _check(self, buffer: Any) -> PagedBuffer:
        buf = self._live.get(getattr(buffer, "name", None))
        if buf is None or buf is not buffer:
            raise XvError("buffer is not allocated in this VRAM",
                          where=f"buffer {getattr(buffer, 'name', buffer)!r}")
        return buf

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
        # A request whose pages are all resident needs no worker (read without the lock: a
        # hint may be stale either way, and make_resident faults in whatever is missing).
        # Otherwise its resident ranges stay in it: they are protected from its evictions.
        resident = buffer.resident
        if not any(resident.find(0, a, b) >= 0 for a, b in ranges):
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
        self._event("prefetch", buf, first, self._source(buf, first))
        moved = self._load(buf, first, count, prefetch=True)
        self._place(buf, unit)  # not a miss: no tile asked for it yet
        self._prefetched[buf.key_base | unit] = count
        self._prefetched_pages += count
        self._vstats.add("prefetched", count)
        buf.counters.add("prefetched", count)
        if moved:
            self._charge(buf, self.link.transfer_time(moved))
        return True

    def _demand_begin(self) -> None:
        with self._demand_lock:
            self._demand += 1

    def _demand_end(self) -> None:
        with self._demand_lock:
            self._demand -= 1
            # Only the prefetch worker waits for demand to end (it is set before it starts).
            if not self._demand and self._pf_thread is not None:
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
    def _move(self, kind: str, buf: PagedBuffer, first: int, count: int, source: int,
              dest: int) -> None:
        """Copy the bytes of a move :class:`Residency` decided (see there), measuring the
        time each level spends."""
        began = time.perf_counter()
        if source == ZERO:
            return  # the pages' memory was given back: they read as zeros already
        if source == BACKING:
            buf.backing.read_into(first, buf.page_view(first, count))
            spent = time.perf_counter() - began
            self._backing_stats.wall_s += spent
            self._vstats.wall_s += spent
            return
        if source == HOST:
            data = self._host_pages(first, count)
        elif source == VRAM:
            data = buf.page_view(first, count)
        else:  # one page out of a cache tier
            tier, key = self._tiers[source - 1], buf.key_base | first
            data = buf.page_view(first, 1) if dest == VRAM else memoryview(self._scratch)
            if tier.read_into(key, data) is None:
                raise XvError(f"cache tier {tier.name!r} lost page {first} it said it held",
                              where=f"buffer {buf.name!r}")
            if dest != VRAM:
                tier.drop(key)
            now = time.perf_counter()
            self._tier_stats[source - 1].wall_s += now - began
            if dest == VRAM:
                self._vstats.wall_s += now - began
                return
            began = now
        if dest == VRAM:
            buf.page_view(first, count)[:] = data
            return  # from the host: its time is not paging's
        if dest == BACKING:
            buf.backing.write_from(first, data)
            stats = self._backing_stats
        else:
            self._tiers[dest - 1].write_page(buf.key_base | first, data)
            stats = self._tier_stats[dest - 1]
        spent = time.perf_counter() - began
        stats.wall_s += spent
        if source == VRAM:
            self._vstats.wall_s += spent

    def _tier_used(self, index: int) -> int:
        return len(self._tiers[index])

    def _tier_holds(self, index: int, key: int) -> bool:
        return key in self._tiers[index]

    def _drop_tier_copy(self, index: int, key: int) -> None:
        self._tiers[index].drop(key)

    def _release(self, buf: PagedBuffer, first: int, count: int) -> None:
        buf._release(first, count)

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
            self._host_data = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
            try:
                self._host_write_pages(buf)
            finally:
                self._host_data = None

    def _host_pages(self, first: int, count: int) -> memoryview:
        """Pages ``first .. first + count - 1`` of the data the host is writing (the last
        page zero-padded)."""
        raw, ps = self._host_data, self.page_size
        assert raw is not None
        start, stop = first * ps, (first + count) * ps
        if stop <= len(raw):
            return memoryview(raw[start:stop])
        padded = np.zeros(stop - start, dtype=np.uint8)
        padded[:len(raw) - start] = raw[start:]
        return memoryview(padded)

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
        ``backing``) and ``buffers`` one per buffer, live or among the last
        :data:`HISTORY_LIMIT` freed (``buffers_forgotten`` counts the freed ones left out).
        Prefetching runs in the background: call :meth:`wait_prefetches` first for settled
        numbers.
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
            tiers: dict[str, Any] = self._level_stats()
            with self._pf_cv:
                overflow, errors = self._pf_overflow, self._pf_errors
            vram = tiers["vram"]
            vram.update(prefetch_dropped=vram["prefetch_dropped"] + overflow,
                        prefetch_errors=errors, prefetch_in_flight=self._prefetched_pages,
                        prefetch_limit=self.prefetch_limit)
            tiers["backing"].update(kind=self.backing, flushes=self._flushes,
                                    flushed_bytes=self._flushed_bytes)
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
                "buffers_forgotten": self._history_dropped,
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
