"""VRAM emulated in host RAM: a page-granular allocator with a capacity.

First cut of issue 5's allocator.  Every buffer is a zero-filled numpy array
in RAM, placed at a page-aligned offset in a device address space of
``capacity`` bytes.  The placement is real (first fit over the free runs of
pages, coalescing on free), so usage, peak, internal fragmentation (bytes
lost to rounding up to whole pages) and external fragmentation (free space
split into runs too small to use) are accounted exactly.

Not yet: oversubscription.  A buffer, or the buffers together, must fit in
the capacity; ``vram.paging: true`` allows nothing more until paging between
tiers arrives with issue 5, and the out-of-memory error says so.
"""

from __future__ import annotations

import bisect
import threading
from typing import Any

import numpy as np
import structlog

from xv_core.errors import XvError
from xv_buffer.sizes import format_size, to_bytes

log = structlog.get_logger("xv.vram")

#: Live allocations an out-of-memory message lists before summarising the rest.
MAX_LISTED = 8


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


class RamBuffer:
    """A buffer in :class:`RamVram`: a numpy array in RAM at a device offset.

    Implements :class:`xv_core.runtime.interfaces.DeviceBuffer`.  After it is
    freed, :meth:`array` raises :class:`~xv_core.errors.XvError`.
    """

    __slots__ = ("name", "dtype", "shape", "nbytes", "offset", "reserved", "_array")

    def __init__(self, name: str, array: np.ndarray, offset: int, reserved: int):
        self.name = name
        self.dtype = array.dtype
        self.shape = tuple(array.shape)
        self.nbytes = int(array.nbytes)
        self.offset = offset  # bytes from the start of VRAM, a multiple of the page size
        self.reserved = reserved  # bytes counted against capacity: nbytes rounded up to pages
        self._array: np.ndarray | None = array

    @property
    def freed(self) -> bool:
        return self._array is None

    def array(self) -> np.ndarray:
        if self._array is None:
            raise XvError("buffer has been freed", where=f"buffer {self.name!r}",
                          hint="allocate it again")
        return self._array

    def __repr__(self) -> str:
        return (f"<RamBuffer {self.name} {self.dtype} {list(self.shape)} "
                f"at {self.offset:#x} ({format_size(self.reserved)})>")


class RamVram:
    """Device memory of a fabric, in RAM.  Implements :class:`xv_core.runtime.interfaces.Vram`.

    ``capacity`` and ``page_size`` are bytes (ints, or size strings such as
    ``"64KiB"``).  Allocations are aligned to the page size and take whole
    pages (at least one, so every buffer has its own address).  ``eviction``
    and ``paging`` are recorded for :meth:`stats`; neither changes what fits
    yet (see the module docstring).  Thread-safe.
    """

    def __init__(self, capacity: int | str, page_size: int | str = 64 << 10, *,
                 eviction: str = "lru", paging: bool = False, manager: str = "ram"):
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
        self.eviction = eviction
        self.paging = bool(paging)
        self.manager = manager
        self._runs = RunAllocator(self.capacity // self.page_size)
        self._live: dict[str, RamBuffer] = {}
        self._used = 0
        self._peak = 0
        self._total = 0
        self._closed = False
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, vram_config: Any, context: Any = None) -> RamVram:
        """Build from the fabric's ``vram`` section (duck-typed: ``capacity``,
        ``page_size``, ``eviction``, ``paging``, ``manager``)."""
        return cls(vram_config.capacity, getattr(vram_config, "page_size", 64 << 10),
                   eviction=getattr(vram_config, "eviction", "lru"),
                   paging=getattr(vram_config, "paging", False),
                   manager=getattr(vram_config, "manager", "ram"))

    # -- allocation -------------------------------------------------------------------
    def allocate(self, name: str, shape: tuple[int, ...], dtype: Any) -> RamBuffer:
        """A zero-filled buffer of ``shape`` and ``dtype``.

        Raises :class:`~xv_core.errors.XvError` when the name is taken, the
        shape or dtype is invalid, or the buffer does not fit: the message
        lists the live allocations, largest first, against the capacity.
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
        with self._lock:
            if self._closed:
                raise XvError("VRAM is closed", where=f"buffer {name!r}")
            if name in self._live:
                raise XvError("a buffer of this name is already allocated",
                              where=f"buffer {name!r}", hint="free it first or choose another name")
            start = self._runs.allocate(pages)
            if start is None:
                raise self._out_of_memory(name, nbytes, pages * self.page_size)
            # Allocated only once the pages are ours, so a failed request costs no RAM.
            try:
                array = np.zeros(shape, dtype=np_dtype)
            except MemoryError:
                self._runs.release(start, pages)
                raise XvError(f"the host has no RAM left for {format_size(nbytes)}",
                              where=f"buffer {name!r}", hint="lower vram.capacity") from None
            buffer = RamBuffer(name, array, start * self.page_size, pages * self.page_size)
            self._live[name] = buffer
            self._used += buffer.reserved
            self._peak = max(self._peak, self._used)
            self._total += 1
        log.debug("vram allocate", buffer=name, nbytes=nbytes, offset=buffer.offset,
                  used=self._used)
        return buffer

    def free(self, buffer: Any) -> None:
        """Release ``buffer``; its array can no longer be used.  Freeing a buffer
        twice, or one of another VRAM, raises XvError."""
        name = getattr(buffer, "name", buffer)
        with self._lock:
            live = self._live.get(name)
            if live is None or live is not buffer:
                raise XvError("buffer is not allocated in this VRAM (freed twice?)",
                              where=f"buffer {name!r}")
            del self._live[name]
            self._runs.release(live.offset // self.page_size, live.reserved // self.page_size)
            self._used -= live.reserved
            live._array = None
        log.debug("vram free", buffer=name, used=self._used)

    def _out_of_memory(self, name: str, nbytes: int, reserved: int) -> XvError:
        free = self._runs.free_pages * self.page_size
        largest = self._runs.largest_run * self.page_size
        paging_note = ("vram.paging is on, but paging is not implemented yet: "
                       "buffers must fit in VRAM together")
        if reserved > self._runs.pages * self.page_size:
            message = (f"cannot allocate {format_size(reserved)}: more than the whole VRAM "
                       f"({format_size(self.capacity)})")
            if self.paging:
                message += "; vram.paging is on, but paging is not implemented yet"
            hint = f"raise vram.capacity to at least {format_size(reserved)}"
            return XvError(message, where=f"buffer {name!r}", hint=hint)
        if reserved <= free:
            message = (f"cannot allocate {format_size(reserved)}: {format_size(free)} of the "
                       f"{format_size(self.capacity)} VRAM is free, but the largest free run is "
                       f"{format_size(largest)} (fragmented)")
            # Growing by the whole request is the only size sure to leave a long enough run.
            hint = (f"free buffers you no longer need, allocate the largest buffers first, or "
                    f"raise vram.capacity to {format_size(self.capacity + reserved)}")
        else:
            message = (f"cannot allocate {format_size(reserved)}: only {format_size(free)} of "
                       f"the {format_size(self.capacity)} VRAM is free")
            hint = (f"raise vram.capacity to at least {format_size(self._used + reserved)}, "
                    f"or free buffers you no longer need")
        live = sorted(self._live.values(), key=lambda b: (-b.reserved, b.name))
        listed = ", ".join(f"{b.name!r} {format_size(b.reserved)}" for b in live[:MAX_LISTED])
        if len(live) > MAX_LISTED:
            listed += f" and {len(live) - MAX_LISTED} more"
        message += f"; live allocations, largest first: {listed}"
        if self.paging:
            message += f"; {paging_note}"
        return XvError(message, where=f"buffer {name!r}", hint=hint)

    # -- accounting -------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Usage now and at peak, fragmentation and the live allocations (largest first).

        ``used`` and ``peak`` count whole pages (what capacity is spent on);
        ``requested`` counts the bytes asked for; ``internal_fragmentation``
        is the difference; ``external_fragmentation`` is 1 - largest free
        run / free space (0 when free space is one run).
        """
        with self._lock:
            live = sorted(self._live.values(), key=lambda b: (-b.reserved, b.name))
            requested = sum(b.nbytes for b in live)
            free = self._runs.free_pages * self.page_size
            largest = self._runs.largest_run * self.page_size
            return {
                "manager": self.manager,
                "capacity": self.capacity,
                "page_size": self.page_size,
                "pages": self._runs.pages,
                "used": self._used,
                "peak": self._peak,
                "free": free,
                "largest_free": largest,
                "requested": requested,
                "internal_fragmentation": self._used - requested,
                "external_fragmentation": (1.0 - largest / free) if free else 0.0,
                "count": len(live),
                "allocations_total": self._total,
                "live": [{"name": b.name, "nbytes": b.nbytes, "reserved": b.reserved,
                          "offset": b.offset} for b in live],
                "eviction": self.eviction,
                "paging": self.paging,
            }

    def close(self) -> None:
        """Free every live buffer.  Further allocations raise XvError; closing twice is fine."""
        with self._lock:
            for buffer in self._live.values():
                buffer._array = None
            self._live.clear()
            self._runs = RunAllocator(self._runs.pages)
            self._used = 0
            self._closed = True


def ram_vram_factory(vram_config: Any, context: Any = None) -> RamVram:
    """The ``ram`` VRAM manager's factory: ``(vram_config, context) -> RamVram``."""
    return RamVram.from_config(vram_config, context)
