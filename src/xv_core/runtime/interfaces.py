"""The contracts between the runtime and what plugins provide.

These are Protocols: a plugin implements them without importing anything
but the core.  Shapes of kernel arguments, as every backend receives them:

* a scalar parameter: a numpy scalar of the parameter's dtype;
* ``buffer<T>``: a 1-D numpy array of T's dtype, or of shape (n, 4) float32
  for ``vec4``;
* ``image<T>``: a numpy array of shape (height, width), or (height, width,
  4) float32 for ``vec4``; ``img[x, y]`` is ``array[y, x]``.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Any, Protocol

import attrs
import numpy as np

from xv_core.ir import Kernel

#: numpy dtype of each IR scalar type.
DTYPES: dict[str, np.dtype[Any]] = {
    "bool": np.dtype(np.bool_),
    "i32": np.dtype(np.int32),
    "u32": np.dtype(np.uint32),
    "f32": np.dtype(np.float32),
    "f64": np.dtype(np.float64),
    "vec4": np.dtype(np.float32),
}


@attrs.frozen
class Launch:
    """The geometry of one dispatch: grid in workgroups, block in work items."""

    grid: tuple[int, int, int]
    block: tuple[int, int, int]

    @property
    def groups(self) -> int:
        return self.grid[0] * self.grid[1] * self.grid[2]

    @property
    def group_items(self) -> int:
        return self.block[0] * self.block[1] * self.block[2]

    def group_coords(self, linear: int) -> tuple[int, int, int]:
        """Linear group id to (x, y, z); x varies fastest."""
        gx, gy, _ = self.grid
        return linear % gx, (linear // gx) % gy, linear // (gx * gy)


@attrs.frozen
class Tile:
    """A contiguous run of workgroups (linear ids, x fastest) run as one unit."""

    index: int
    launch: Launch
    first_group: int
    group_count: int


@attrs.frozen
class TileWork:
    """The work a tile really did, as counted by the backend (for the timing model)."""

    ops: int = 0
    bytes_read: int = 0
    bytes_written: int = 0

    def __add__(self, other: TileWork) -> TileWork:
        return TileWork(self.ops + other.ops, self.bytes_read + other.bytes_read,
                        self.bytes_written + other.bytes_written)


class PreparedKernel(Protocol):
    """A kernel made ready by a backend.  ``run_tile`` may be called from
    several threads at once, for different tiles of the same dispatch.

    Optional: ``cancel()`` asks the tiles running now (and those that start until
    ``resume()``) to stop at their next workgroup and raise
    :class:`~xv_core.errors.TileCancelled`; ``resume()`` lets tiles run again.  The runtime
    calls them on the kernels it prepared (``ComponentContext.prepare``) when a dispatch is
    interrupted (Ctrl-C): without them an interrupted dispatch waits for its running tiles.
    """

    kernel: Kernel

    def run_tile(self, tile: Tile, args: Mapping[str, Any]) -> TileWork: ...


class Backend(Protocol):
    name: str

    def prepare(self, kernel: Kernel) -> PreparedKernel: ...


class Component(Protocol):
    """A running fabric component.  Compute components run tiles; others
    (cache tiers, kernel caches) only need ``close``."""

    name: str
    kind: str

    def submit(self, kernel: Kernel, tile: Tile, args: Mapping[str, Any]) -> Future[TileWork]:
        """Run one tile (asynchronously); the component picks its backend
        through ``ComponentContext.prepare``."""
        ...

    def close(self) -> None: ...


class ComponentContext(Protocol):
    """What the runtime offers a component factory."""

    def prepare(self, kernel: Kernel, backend: str) -> PreparedKernel:
        """``kernel`` prepared by the backend named ``backend`` — or by the
        run's override (``--backend``) when there is one.  Cached, and safe
        to call from several threads."""
        ...

    @property
    def workdir(self) -> str:
        """A directory for the component's files (relative paths in options resolve here)."""
        ...

    @property
    def plugins(self) -> Any:
        """The run's :class:`~xv_core.plugins.Plugins`: the registries (eviction policies,
        bus models, ...) a component or VRAM manager reaches other providers through."""
        ...


class DeviceBuffer(Protocol):
    """A buffer in emulated VRAM, ``pages`` pages of the VRAM's page size."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    nbytes: int
    pages: int

    def array(self) -> np.ndarray:
        """The numpy array kernels read and write.  With paging only the pages that
        :meth:`Vram.make_resident` made resident hold the buffer's contents; the host
        reads and writes through :meth:`read` and :meth:`write` instead."""
        ...

    def read(self) -> np.ndarray:
        """A copy of the whole contents, gathered from wherever each page lives."""
        ...

    def write(self, data: np.ndarray) -> None:
        """Replace the whole contents (``data`` has the buffer's shape and dtype)."""
        ...

    # Optional: ``reopened`` (bool) is True for a buffer allocated with contents kept from an
    # earlier run (a persistent buffer); the runtime reads it with getattr, default False.


class Lease(Protocol):
    """Pages held resident for a tile; :meth:`release` (once) lets them be evicted again."""

    def release(self) -> None: ...


@attrs.frozen
class PageMove:
    """Pages a :class:`Pager` moved (or, for ``"fault"``, a fixed cost it paid).

    ``kind``: ``"in"`` into VRAM; ``"down"`` out of VRAM or a cache tier to a level below it
    (a dirty page written back, or a clean page a tier keeps as a victim cache; ``nbytes`` 0:
    a clean page left VRAM without moving, ``dest`` holding its current copy, ``"zero"``
    when it was never written); ``"fault"``, the fixed cost of one ``uvm`` far-fault batch:
    ``seconds`` (latency + ``faults`` x service time), no bytes, before the moves of that
    batch (``source`` ``""``, ``dest`` ``"vram"``, ``first`` and ``count`` 0).  ``source``
    and ``dest`` are levels: ``"vram"``, a cache tier's name, ``"backing"``, ``"zero"`` (a
    page never written, zero-filled: ``nbytes`` 0) or ``"host"`` (the host's writes).  Pages
    ``first .. first + count - 1`` of ``buffer``; ``nbytes``: whole pages.
    """

    kind: str
    buffer: str
    first: int
    count: int
    nbytes: int
    source: str
    dest: str
    seconds: float = 0.0
    faults: int = 0


class Pager(Protocol):
    """A deterministic, data-less twin of a :class:`Vram`'s paging (:meth:`Vram.pager`): the
    same decisions fed in placement order, returning what moved.  Single-threaded.

    Optional: ``hit_tile(accesses) -> bool``, a fast path for a tile whose pages are all
    resident: given the tile's ``(name, ranges, write)`` accesses in order, it does what a
    :meth:`tile` block of those :meth:`access` calls would (nothing moves) and returns True,
    or does nothing and returns False."""

    page_size: int

    def allocate(self, name: str, nbytes: int, *, filled: bool) -> None:
        """A buffer of ``nbytes``; ``filled``: its contents are on the host (the backing),
        else it was never written (zero-filled on first touch, nothing read)."""
        ...

    def free(self, name: str) -> None: ...

    def host_write(self, name: str) -> list[PageMove]:
        """The host writes the whole buffer, as :meth:`DeviceBuffer.write` does."""
        ...

    def tile(self) -> AbstractContextManager[None]:
        """A tile: what :meth:`access` pins inside the block stays pinned until it ends."""
        ...

    def access(self, name: str, ranges: Sequence[tuple[int, int]], *,
               write: bool) -> list[PageMove]:
        """A tile touches pages ``[start, stop)`` of each range (as :meth:`Vram.make_resident`
        does): what had to move, in order."""
        ...


class Vram(Protocol):
    """Device memory of a fabric: capacity-limited allocation of buffers, and paging.

    The runtime calls, in this order: :meth:`attach_tiers` once the fabric's components
    exist; :meth:`record_pages` when a trace is asked for; per tile,
    :meth:`make_resident` for every buffer argument (the tile runs once every call
    has returned, and its leases are released when it ends), and :meth:`prefetch` for the
    footprint of a tile that will run soon (such as the next one, when a tile is handed
    over); :meth:`flush` at the end of a job; :meth:`close` with the fabric.

    Optional: ``pager() -> Pager``, a fresh data-less twin of this VRAM's paging (its
    configuration and attached tiers, no buffers) for the timing model, which must be
    deterministic while the real statistics depend on thread timing.  A manager may leave it
    out: the runtime looks it up with ``getattr(vram, "pager", None)`` (it is not a member of
    this protocol, so that managers without it still implement it).
    """

    capacity: int
    page_size: int

    def allocate(self, name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> DeviceBuffer:
        """Raise XvError when the buffer does not fit (listing live allocations)."""
        ...

    def free(self, buffer: DeviceBuffer) -> None: ...

    def make_resident(self, buffer: DeviceBuffer, page_ranges: Sequence[tuple[int, int]], *,
                      write: bool) -> Lease:
        """Make pages ``[start, stop)`` of each range resident before a tile touches them,
        evicting others by the fabric's policy; ``write``: the tile may write them (they
        become dirty; with ``write=False`` no page becomes dirty, and pages already dirty
        stay so).  The pages stay resident until the lease is released.  Ranges are clipped
        to the buffer; a tile that reads some pages and writes others may make two calls."""
        ...

    def prefetch(self, buffer: DeviceBuffer, page_ranges: Sequence[tuple[int, int]]) -> None:
        """A hint that a tile will soon touch pages ``[start, stop)`` of each range: returns
        at once and brings them in in the background, without pinning them or marking them
        dirty, so that a later :meth:`make_resident` of them hits.  It never evicts pinned
        pages and never makes :meth:`make_resident` wait longer than for one page load
        already in progress; pages it cannot place are skipped.  It does nothing for a freed
        buffer, a closed VRAM or without paging; queued prefetches end with :meth:`close`.
        Raises XvError for a buffer of another VRAM."""
        ...

    def attach_tiers(self, tiers: Sequence[PageTier]) -> None:
        """The cache tiers between VRAM and the buffers' backing, fastest first: a chain
        VRAM -> tiers[0] -> tiers[1] -> ... -> backing."""
        ...

    def flush(self, buffer: DeviceBuffer | None = None) -> None:
        """Write persistent buffers (or one buffer) to their backing, crash-safely."""
        ...

    def record_pages(self, path: str) -> None:
        """Record every page access to ``path`` (written when the VRAM closes), in the
        page-trace format below."""
        ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class PageTier(Protocol):
    """A cache tier for VRAM pages: a component that holds pages (such as ``nvme``)
    offers one as its ``page_tier`` attribute.  Keys are any hashable value."""

    name: str
    page_size: int
    slots: int
    #: Name of the link profile that times transfers to and from the tier (or None).
    profile: str | None

    def write_page(self, key: Any, data: Any) -> int:
        """Store at most one page of bytes under ``key``; an existing key is overwritten.
        The caller keeps ``len(tier) < slots`` before writing a new key."""
        ...

    def read_into(self, key: Any, out: Any) -> int | None:
        """Copy the page stored under ``key`` into the writable buffer ``out``; return the
        number of bytes, or None when the key is not stored."""
        ...

    def drop(self, key: Any) -> bool: ...

    def __contains__(self, key: object) -> bool: ...

    def __len__(self) -> int: ...

    def stats(self) -> dict[str, Any]: ...


class EvictionPolicy(Protocol):
    """What an eviction policy's factory returns (``factory(capacity)``, capacity in pages).

    The VRAM manager drives it: ``key in policy`` (resident?), :meth:`hit`, :meth:`miss`
    (the key is about to be admitted), :meth:`evict` (choose a victim not in ``pinned``,
    forget it and return it; None when all are pinned), :meth:`insert`, :meth:`remove`.
    Trace replay calls :meth:`replay` with a whole key sequence when the policy has it
    (an offline policy such as ``belady`` has nothing else), and the five methods one
    access at a time otherwise.  Optional: ``hit_many(keys)``, :meth:`hit` on each key in
    order, which the VRAM calls for a run of resident pages when the policy has it.
    """

    capacity: int
    #: True for a policy that needs the future and so only replays traces.
    offline: bool

    def hit(self, key: Any) -> None: ...

    def miss(self, key: Any) -> None: ...

    def evict(self, pinned: Container[Any]) -> Any | None: ...

    def insert(self, key: Any) -> None: ...

    def remove(self, key: Any) -> None: ...

    def __contains__(self, key: object) -> bool: ...

    def __len__(self) -> int: ...


# --------------------------------------------------------------------------
# Page traces (``xv fabric run --record-pages FILE``, ``xv vram replay FILE``)
# --------------------------------------------------------------------------

#: First bytes of a page-trace file.  Then a little-endian uint32 length and that many
#: bytes of UTF-8 JSON: ``{"page_size": int, "profile": str, "buffers": {id: {"name": str,
#: "pages": int}}}``; then records of :data:`PAGE_TRACE_DTYPE` to the end of the file.
PAGE_TRACE_MAGIC = b"XVPAGES1\n"

#: One record: a tile (or the host) touched pages ``first .. first + count - 1`` of
#: buffer ``buffer`` in order; bit 0 of ``flags``: it may have written them.  The key
#: replay uses for a page is ``buffer << 32 | page``.
PAGE_TRACE_DTYPE = np.dtype([("buffer", "<u4"), ("first", "<u4"), ("count", "<u4"),
                             ("flags", "<u4")])
PAGE_WRITE = 1
