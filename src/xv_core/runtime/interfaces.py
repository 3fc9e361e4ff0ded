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

from collections.abc import Mapping
from concurrent.futures import Future
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
    several threads at once, for different tiles of the same dispatch."""

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


class DeviceBuffer(Protocol):
    """A buffer in emulated VRAM."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    nbytes: int

    def array(self) -> np.ndarray:
        """The numpy array kernels read and write (resident while a dispatch runs)."""
        ...


class Vram(Protocol):
    """Device memory of a fabric: capacity-limited allocation of buffers."""

    capacity: int
    page_size: int

    def allocate(self, name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> DeviceBuffer:
        """Raise XvError when the buffer does not fit (listing live allocations)."""
        ...

    def free(self, buffer: DeviceBuffer) -> None: ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...
