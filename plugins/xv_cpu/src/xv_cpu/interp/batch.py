"""Arguments bound for a tile, and the batch of work items run in lockstep."""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np

from xv_core.errors import JobError
from xv_core.ir import Kernel
from xv_core.runtime.interfaces import Launch
from xv_cpu.interp.alu import DTYPES, scalar


class Bindings:
    """A kernel's arguments as the interpreter uses them, checked once per tile.

    Buffers and images are kept as flat views of the caller's arrays, so that
    loads and stores are one ``take`` or one fancy assignment.
    """

    def __init__(self, kernel: Kernel, args: Mapping[str, Any]):
        self.scalars: dict[str, np.generic] = {}
        self.flat: dict[str, np.ndarray] = {}
        self.length: dict[str, int] = {}  # buffer elements / image width, height
        self.width: dict[str, int] = {}
        self.height: dict[str, int] = {}
        # Whether y * width + x (times lanes) fits an int32, so image indexing can stay int32.
        self.small: dict[str, bool] = {}
        for p in kernel.params:
            if p.name not in args:
                raise JobError(f"kernel {kernel.name!r} needs argument {p.name!r}",
                               where=f"kernel {kernel.name}")
            value = args[p.name]
            t = p.type
            if t.is_scalar:
                try:
                    self.scalars[p.name] = scalar(value, t.kind)
                except (OverflowError, TypeError, ValueError):
                    raise JobError(f"argument {p.name!r} of kernel {kernel.name!r} must be a "
                                   f"{t.kind} (got {value!r})",
                                   where=f"kernel {kernel.name}") from None
                continue
            arr = value if isinstance(value, np.ndarray) else np.asarray(value)
            want = DTYPES["f32" if t.elem == "vec4" else t.elem]
            rank = (1 if t.kind == "buffer" else 2) + (1 if t.lanes == 4 else 0)
            if arr.dtype != want or arr.ndim != rank or (t.lanes == 4 and arr.shape[-1] != 4):
                raise JobError(
                    f"argument {p.name!r} of kernel {kernel.name!r} is a {arr.dtype} array of "
                    f"shape {arr.shape}, but the parameter is {t}", where=f"kernel {kernel.name}")
            if not arr.flags.c_contiguous or not arr.flags.writeable:
                raise JobError(f"argument {p.name!r} of kernel {kernel.name!r} must be a "
                               "writable C-contiguous array", where=f"kernel {kernel.name}")
            self.flat[p.name] = arr.reshape(-1)
            if t.kind == "buffer":
                self.length[p.name] = arr.shape[0]
            else:
                self.height[p.name], self.width[p.name] = arr.shape[0], arr.shape[1]
                self.small[p.name] = arr.size < 2**31


class Batch:
    """Work items ``t0 .. t0 + n - 1`` of a tile (numbered group by group, x fastest).

    In group mode (``groups`` is set) the batch is whole workgroups, its
    items ordered group by group, and it holds the groups' shared arrays and
    the count of live (not returned) items per group for barrier checks.
    """

    __slots__ = ("kernel", "bind", "launch", "first_group", "t0", "n", "groups", "shared",
                 "live", "ops", "bytes_read", "bytes_written", "_cache", "locals", "ramps",
                 "invariants", "bounds", "_fulls", "rows", "memo", "epoch")

    def __init__(self, kernel: Kernel, bind: Bindings, launch: Launch, first_group: int,
                 t0: int, n: int, groups: int | None, shared_decls: tuple[Any, ...],
                 locals_: Mapping[str, Any]):
        self.kernel = kernel
        self.bind = bind
        self.launch = launch
        self.first_group = first_group
        self.t0 = t0
        self.n = n
        self.groups = groups
        self.locals = locals_
        self.ops = 0
        self.bytes_read = 0
        self.bytes_written = 0
        self._cache: dict[str, Any] = {}
        # id(array) -> (array, first) for index arrays found to be first, first + 1, ...
        self.ramps: dict[int, tuple[Any, int | None]] = {}
        # id(array) -> (array, lo, hi): known bounds of clamped integer arrays.
        self.bounds: dict[int, tuple[Any, float, float]] = {}
        # image access site -> (y, epoch, y * width): the last row offsets computed there.
        self.rows: dict[int, tuple[np.ndarray, int, np.ndarray]] = {}
        self._fulls: dict[tuple[str, bytes, int], np.ndarray] = {}
        # Loop-invariant expressions (see KernelCompiler._memoised): site -> (epoch, inputs,
        # value).  ``epoch`` counts changes made in place to variables' arrays: an entry
        # from an older epoch may have been computed from values that have changed since.
        self.memo: dict[int, tuple[int, tuple[Any, ...], Any]] = {}
        self.epoch = 0
        # Values of batch-invariant expressions (see KernelCompiler._once_per_batch).
        self.invariants: dict[str, Any] = {}
        self.shared: dict[str, np.ndarray] = {}
        self.live: np.ndarray | None = None
        if groups is not None:
            for d in shared_decls:
                self.shared[d.name] = np.zeros(groups * math.prod(d.type.shape),
                                               dtype=DTYPES[d.type.elem])
            self.live = np.full(groups, launch.group_items, dtype=np.int64)

    def full(self, value: np.generic, n: int) -> np.ndarray:
        """``value`` repeated n times (read-only, cached for the batch)."""
        key = (value.dtype.char, value.tobytes(), n)
        arr = self._fulls.get(key)
        if arr is None:
            if len(self._fulls) >= 16:
                self._fulls.clear()
            arr = self._fulls[key] = np.full(n, value)
            arr.flags.writeable = False
        return arr

    def forget(self, arr: np.ndarray) -> None:
        """``arr`` is about to change in place: drop what is known about its values."""
        key = id(arr)
        self.ramps.pop(key, None)
        self.bounds.pop(key, None)
        self.epoch += 1

    def arange(self, n: int) -> np.ndarray:
        """Positions 0..n-1 (a read-only view)."""
        return arange(n)

    # -- values of the root frame ---------------------------------------------
    def root_value(self, name: str, n: int) -> Any:
        """What a name holds before anything is assigned: parameters, zeroed locals, builtins."""
        if name.startswith("@"):
            return self.special(name[1:])
        if name in self.bind.scalars:
            return self.bind.scalars[name]
        decl = self.locals[name]
        if decl.type.kind == "array":
            return np.zeros((n, math.prod(decl.type.shape)), dtype=DTYPES[decl.type.elem])
        return scalar(False if decl.type.kind == "bool" else 0, decl.type.kind)

    def special(self, name: str) -> Any:
        """A builtin (``global_id.x`` ...) or ``slot`` (the item's group within the batch)."""
        v = self._cache.get(name)
        if v is None:
            v = self._cache[name] = self._special(name)
            if type(v) is np.ndarray and name != "slot":
                # Indices made of builtins need no bounds check where these bounds suffice
                # (``tile[local_id.y][k]`` in a tile of the workgroup's size).
                a = "xyz".index(name[-1])
                launch = self.launch
                extent = {"local_id": launch.block[a], "group_id": launch.grid[a]}.get(
                    name[:-2], launch.grid[a] * launch.block[a])
                remember(self.bounds, v, 0, extent - 1)
        return v

    def _special(self, name: str) -> Any:
        launch = self.launch
        if name == "slot":
            if self.groups == 1:
                return np.int32(0)
            return _div(arange32(self.n), launch.group_items)
        what, _, axis = name.partition(".")
        a = "xyz".index(axis)
        if what == "group_size":
            return np.int32(launch.block[a])
        if what == "num_groups":
            return np.int32(launch.grid[a])
        if what == "local_id":
            return self._local(a)
        if what == "group_id":
            return self._group(a)
        # global_id
        if launch.block[1:] == (1, 1) and launch.grid[1:] == (1, 1):
            # One dimension: the tile's items are consecutive global ids.
            if a:
                return np.int32(0)
            return self._item() + np.int32(self.first_group * launch.block[0])
        group, local = self._group(a), self._local(a)
        return group * np.int32(launch.block[a]) + local

    def _item(self) -> np.ndarray:
        """Each item's number within the tile (int32)."""
        v = self._cache.get("=item")
        if v is None:
            v = self._cache["=item"] = arange32(self.n) + np.int32(self.t0)
        return v

    def _linear_local(self) -> Any:
        v = self._cache.get("=local")
        if v is None:
            per_group = self.launch.group_items
            first = self.t0 % per_group
            if self.n == 1:
                v = np.int32(first)
            elif first + self.n <= per_group:
                v = arange32(self.n) + np.int32(first)
            elif self.groups is not None:
                v = np.tile(arange32(per_group), self.groups)
            else:
                item = self._item()
                v = item - _div(item, per_group) * np.int32(per_group)
            self._cache["=local"] = v
        return v

    def _linear_group(self) -> Any:
        v = self._cache.get("=group")
        if v is None:
            per_group = self.launch.group_items
            first = self.t0 // per_group
            last = (self.t0 + self.n - 1) // per_group
            if first == last:
                v = np.int32(self.first_group + first)
            else:
                v = _div(self._item(), per_group) + np.int32(self.first_group)
            self._cache["=group"] = v
        return v

    def _local(self, a: int) -> Any:
        return _coordinate(self._linear_local(), self.launch.block, a)

    def _group(self, a: int) -> Any:
        return _coordinate(self._linear_group(), self.launch.grid, a)


def remember(cache: dict[int, tuple[Any, ...]], arr: np.ndarray, *facts: Any) -> None:
    """Record ``facts`` about ``arr`` in a per-batch cache keyed by the array's identity.

    The array is held weakly: holding temporaries alive would stop numpy from reusing their
    memory, and fresh memory for every temporary costs more than the caches save.  Entries
    of arrays that died are dropped when the cache fills up, so that the facts about a
    long-lived array (a loop-invariant index) survive a loop that makes many temporaries.
    An array changed in place is forgotten first (``Batch.forget``)."""
    if len(cache) >= 64:
        for key in [k for k, v in cache.items() if v[0]() is None]:
            del cache[key]
        if len(cache) >= 64:
            cache.clear()
    cache[id(arr)] = (weakref.ref(arr), *facts)


_ARANGE: dict[str, np.ndarray] = {}


def _cached_arange(n: int, dtype: type, key: str) -> np.ndarray:
    base = _ARANGE.get(key)
    if base is None or len(base) < n:
        base = np.arange(max(n, 1 << 16), dtype=dtype)
        base.flags.writeable = False
        _ARANGE[key] = base  # replacing the entry is safe: old views stay valid
    return base[:n]


def arange32(n: int) -> np.ndarray:
    """0..n-1 as int32, shared and read-only."""
    return _cached_arange(n, np.int32, "i32")


def arange(n: int) -> np.ndarray:
    """0..n-1 as intp (positions), shared and read-only."""
    return _cached_arange(n, np.intp, "intp")


def _div(v: Any, d: int) -> Any:
    """v // d for non-negative int32 v; a shift when d is a power of two."""
    if d & (d - 1) == 0:
        return v >> np.int32(d.bit_length() - 1)
    return v // np.int32(d)


def _mod(v: Any, d: int) -> Any:
    if d & (d - 1) == 0:
        return v & np.int32(d - 1)
    return v - (v // np.int32(d)) * np.int32(d)


def _coordinate(linear: Any, dims: tuple[int, int, int], a: int) -> Any:
    """Coordinate ``a`` of a linear index over ``dims`` (x fastest)."""
    if dims[a] == 1:
        return np.int32(0)
    x, y, z = dims
    if type(linear) is not np.ndarray:
        lin = int(linear)
        return np.int32((lin % x, (lin // x) % y, lin // (x * y))[a])
    if a == 0:
        return linear if y * z == 1 else _mod(linear, x)
    if a == 1:
        row = _div(linear, x)
        return row if z == 1 else _mod(row, y)
    return _div(linear, x * y)
