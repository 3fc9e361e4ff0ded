"""The Python runtime API: open a fabric, load kernels, allocate, dispatch, read back.

```python
import numpy as np
import xv_core as xv

with xv.open_fabric("default") as fabric:
    saxpy = fabric.kernel("examples/kernels/saxpy.xvk")
    x = fabric.buffer(np.arange(1000, dtype=np.float32))
    y = fabric.buffer(np.ones(1000, dtype=np.float32))
    fabric.dispatch(saxpy, global_size=1000, block=256, args={"a": 2.0, "x": x, "y": y})
    print(y.read())
```

``xv fabric run`` is built on this module.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import structlog

from xv_core import ir
from xv_core.errors import ConfigError, JobError, UnknownNameError, XvError
from xv_core.events import DispatchEvent, TileEvent
from xv_core.ir import Kernel, Module
from xv_core.logsetup import enabled as log_enabled
from xv_core.plugins import Plugins, load_plugins
from xv_core.runtime import scheduler
from xv_core.runtime.args import BufferShape, check_args, rank_problem, scalar_value, signature
from xv_core.runtime.footprint import (BufferInfo, TileFootprint, WorkEstimate, estimate_work,
                                       merge_ranges, subtract_ranges, tile_footprints)
from xv_core.runtime.interfaces import DTYPES, Component, DeviceBuffer, Launch, PreparedKernel, TileWork
from xv_core.runtime.memo import IdentityLRU
from xv_core.runtime.model import HOST_MEMORY_KINDS, FabricModel, Placed
from xv_core.runtime.scheduler import execute, make_tiles

log = structlog.get_logger("xv.runtime")


class Buffer:
    """A buffer in the fabric's VRAM.  Pass it as a kernel argument; ``read()``
    returns a copy of its contents as a numpy array."""

    def __init__(self, fabric: Fabric, device: DeviceBuffer):
        self._fabric = fabric
        self.device = device
        self._name = device.name

    @property
    def name(self) -> str:
        return self._name

    @property
    def shape(self) -> tuple[int, ...]:
        self._check_live()
        return tuple(self.device.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        self._check_live()
        return self.device.dtype

    @property
    def nbytes(self) -> int:
        self._check_live()
        return self.device.nbytes

    def read(self) -> np.ndarray:
        self._check_live()
        self._fabric.model.host_read(self.name)
        return self.device.read()

    def write(self, data: np.ndarray) -> None:
        self._check_live()
        data = np.asarray(data)
        if data.shape != self.shape or data.dtype != self.dtype:
            raise JobError(f"cannot write a {data.dtype} array of shape {list(data.shape)} into "
                           f"buffer {self.name!r} ({self.dtype}, shape {list(self.shape)})")
        self.device.write(data)
        self._fabric.model.host_write(self.name)

    def free(self) -> None:
        if self.device is not None:
            if self._fabric.vram is not None:  # (a closed fabric freed it already)
                self._fabric.model.free(self.name)
                self._fabric.vram.free(self.device)
            self._fabric._buffers.pop(self.name, None)
            self.device = None  # type: ignore[assignment]

    def _check_live(self) -> None:
        if self._fabric.vram is None:
            raise JobError(f"the fabric of buffer {self.name!r} is closed")
        if self.device is None:
            raise JobError(f"buffer {self.name!r} has been freed")

    def shape_info(self) -> BufferShape:
        return BufferShape(self.name, self.dtype, self.shape)

    def __repr__(self) -> str:
        if self.device is None or self._fabric.vram is None:
            return f"<Buffer {self.name} (freed)>"
        return f"<Buffer {self.name} {self.dtype} {list(self.shape)}>"


@attrs.frozen
class TileRecord:
    """One tile: the ``component`` that really ran it and the one the scheduling policy
    ``planned`` (the modelled timeline's; they differ when an idle CPU worker stole it)."""

    tile: int
    component: str
    first_group: int
    group_count: int
    wall_s: float
    work: TileWork
    planned: str = ""


@attrs.frozen
class DispatchResult:
    """What one dispatch did: geometry, tiles, where they ran, wall time, counted work."""

    kernel: str
    launch: Launch
    tiles: tuple[TileRecord, ...]
    wall_s: float
    #: The dispatch's number on its fabric (its tiles' tags in the timeline are ``s<step>/...``).
    step: int = -1

    @property
    def work(self) -> TileWork:
        total = TileWork()
        for t in self.tiles:
            total = total + t.work
        return total

    def tiles_per_component(self) -> dict[str, int]:
        """Where the tiles really ran."""
        out: dict[str, int] = {}
        for t in self.tiles:
            out[t.component] = out.get(t.component, 0) + 1
        return out

    def placement(self) -> dict[str, int]:
        """Where the scheduling policy put the tiles (the modelled timeline's placement)."""
        out: dict[str, int] = {}
        for t in self.tiles:
            out[t.planned] = out.get(t.planned, 0) + 1
        return out

    @property
    def stolen(self) -> int:
        """Tiles an idle CPU worker took from another component's queue."""
        return sum(1 for t in self.tiles if t.planned and t.component != t.planned)


@attrs.frozen
class _Plan:
    """What a dispatch works out before anything runs, the same every time for the same kernel,
    geometry, scalar arguments and buffer shapes: its tiles, their footprints, the per-item
    work the IR suggests."""

    tiles: list[Any]
    footprints: list[TileFootprint]
    per_item: WorkEstimate
    #: Per tile, per buffer parameter: the pages it only reads, and the pages it may write
    #: (made resident once each: a page both read and written is one access, and dirty).
    leases: list[list[tuple[str, tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]]]
    #: The same for the whole dispatch (the union of its tiles').
    whole: list[tuple[str, tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]]
    #: Bytes of whole pages of the buffers, by parameter (what a dispatch pins when they fit).
    pinned: dict[str, int]
    #: The tiles' expected work for the last scaling of ``per_item`` asked for (a repeated
    #: dispatch asks for the same one): ``{(ops ratio, bytes ratio): (estimates, their total
    #: ops, their total bytes)}``.
    estimates: dict[tuple[float, float], tuple[list[TileWork], int, int]] = attrs.field(
        factory=dict, eq=False)


#: Plans kept per fabric (least recently used dropped first).
PLAN_CACHE_SIZE = 256
#: Prepared kernels kept per fabric (least recently used dropped first).
PREPARED_LIMIT = 256


def _scalar_key(value: Any) -> Any:
    # By type and bits: -0.0 == 0.0 and NaN != NaN, but the analysis may tell them apart.
    if isinstance(value, np.generic):  # dtype.str: a timedelta's unit too
        return (value.dtype.str, value.tobytes())
    if type(value) is float:
        return (float, value.hex())
    return (type(value), value)


class _Context:
    """The ComponentContext handed to component factories."""

    def __init__(self, fabric: Fabric, workdir: Path):
        self._fabric = fabric
        self._workdir = workdir
        self._lock = threading.Lock()
        # The kernels prepared, by backend and kernel, the least recently used first (at
        # most PREPARED_LIMIT: a process that loads a kernel again and again keeps the
        # latest), and what the ones dropped spent compiling (Fabric.native_compile).
        self._prepared: OrderedDict[tuple[str, int], tuple[Kernel, PreparedKernel]] = \
            OrderedDict()
        self.retired: dict[str, Any] = {"compile_s": 0.0, "compiles": 0, "cache_hits": 0}

    @property
    def workdir(self) -> str:
        return str(self._workdir)

    @property
    def plugins(self) -> Plugins:
        return self._fabric.plugins

    def prepare(self, kernel: Kernel, backend: str) -> PreparedKernel:
        name = self._fabric.backend_override or backend
        key = (name, id(kernel))
        with self._lock:
            hit = self._prepared.get(key)
            if hit is not None and hit[0] is kernel:
                self._prepared.move_to_end(key)
                return hit[1]
            spec = self._fabric.plugins.backends.get(name)
            prepared = spec.factory().prepare(kernel)
            self._prepared[key] = (kernel, prepared)
            self._prepared.move_to_end(key)
            if len(self._prepared) > PREPARED_LIMIT:
                _, (_, old) = self._prepared.popitem(last=False)
                for stat in self.retired:
                    self.retired[stat] += getattr(old, stat, 0)
            return prepared

    def prepared_of(self, kernel: Kernel) -> list[PreparedKernel]:
        """The preparations of ``kernel`` (one per backend that prepared it)."""
        with self._lock:
            return [p for k, p in self._prepared.values() if k is kernel]


class Fabric:
    """A running fabric: its VRAM, its components and the plugins behind them.

    Open with :func:`open_fabric`; close (or use ``with``) to stop the
    components' workers and release VRAM.
    """

    def __init__(self, config: Any, plugins: Plugins, *, backend: str | None = None,
                 workdir: str | os.PathLike[str] | None = None, scheduler: str | None = None):
        self.config = config
        self.plugins = plugins
        if backend is not None:
            plugins.backends.get(backend, where="--backend")
        self.backend_override = backend
        #: The scheduling policy's name (the fabric's ``scheduler``, or the override).
        self.scheduler = scheduler or config.scheduler
        where = "--scheduler" if scheduler else "$.scheduler"
        self.policy = plugins.schedulers.get(self.scheduler, where=where).factory()
        self._steps = 0
        # Per kernel: what its last dispatch counted against the IR's estimate (ops, bytes).
        self._history: IdentityLRU[tuple[float, float]] = IdentityLRU(PLAN_CACHE_SIZE)
        # Per kernel: dispatch plans by launch, tiling knobs, scalar bits and buffer shapes,
        # and checked geometry by the arguments that gave it.
        self._plans: IdentityLRU[_Plan] = IdentityLRU(PLAN_CACHE_SIZE)
        self._launches: IdentityLRU[Launch] = IdentityLRU(PLAN_CACHE_SIZE)
        self._checked: IdentityLRU[bool] = IdentityLRU(PLAN_CACHE_SIZE)
        base = Path(workdir) if workdir is not None else (
            Path(config.source).parent if config.source else Path.cwd())
        self._context = _Context(self, base)
        self._buffers: dict[str, Buffer] = {}
        self._counter = 0
        self.components: dict[str, Component] = {}
        self.compute: list[str] = []
        manager = plugins.vram_managers.get(config.vram.manager, where="$.vram.manager")
        try:
            self.vram = manager.factory(config.vram, self._context)
        except XvError as exc:
            raise _located(config, exc, "$.vram") from None
        try:
            for i, c in enumerate(config.components):
                kind = plugins.components.get(c.kind, where=f"component {c.name!r}")
                try:
                    self.components[c.name] = kind.factory(c.name, c.options, self._context)
                except XvError as exc:
                    raise _located(config, exc, f"$.components[{i}]") from None
                if kind.compute:
                    self.compute.append(c.name)
        except BaseException:
            self.close()
            raise
        if not self.compute:
            self.close()
            raise XvError(f"fabric {config.name!r} has no compute component",
                          hint="add a component of kind cpu")
        # Components that hold pages (nvme) become the VRAM's cache tiers, in fabric order.
        tiers = [c.page_tier for c in self.components.values()
                 if getattr(c, "page_tier", None) is not None]
        if tiers:
            try:
                self.vram.attach_tiers(tiers)
            except BaseException as exc:
                self.close()
                if isinstance(exc, XvError):  # (the tiers' names or pages: the components)
                    raise _located(config, exc, "$.components") from None
                raise
        # The modelled fabric: virtual time of everything this fabric does.  With paging, it
        # drives a data-less twin of the VRAM's pager in placement order, so that the paging
        # on the timeline is the same every run (the real VRAM's depends on thread timing).
        make_pager = getattr(self.vram, "pager", None) if config.vram.paging else None
        try:
            self.model = FabricModel(
                config, plugins, pager=make_pager() if make_pager is not None else None,
                tiers=[(t.name, getattr(t, "profile", None)) for t in tiers])
        except BaseException:
            self.close()
            raise
        self.model.policy_name = self.scheduler
        # Workers per compute component, and those that steal (idle CPU workers).
        self._slots = {n: _workers(self.components[n]) for n in self.compute}
        self._thieves = {n for n in self.compute if self.model.kinds[n] in HOST_MEMORY_KINDS}
        log.debug("fabric opened", fabric=config.name, components=list(self.components))

    # -- kernels ------------------------------------------------------------------
    def load_module(self, path: str | os.PathLike[str]) -> Module:
        """Compile a kernel source (by its suffix's front end) or load a verified ``.xvir``."""
        path = Path(_path_arg(path, "a kernel file"))
        if path.suffix == ".xvir":
            return ir.load(path)
        frontend = self.plugins.frontend_for(path)
        try:
            text = path.read_text(encoding="utf-8-sig")  # as vgpucc reads it: a BOM is no text
        except OSError as exc:
            raise JobError(f"cannot read kernel source: {exc.strerror}", where=str(path)) from None
        except UnicodeDecodeError:
            raise JobError("kernel source is not UTF-8 text", where=str(path)) from None
        return frontend.compile(text, str(path))

    def compile(self, source: str, path: str = "<string>.xvk") -> Module:
        """Compile kernel source text with the front end for ``path``'s suffix."""
        if not isinstance(source, str):
            raise JobError(f"compile() takes kernel source text, got {type(source).__name__}",
                           hint="fabric.kernel(path) or fabric.load_module(path) read a file")
        path = str(_path_arg(path, "the source's file name"))
        return self.plugins.frontend_for(path).compile(source, path)

    def kernel(self, path: str | os.PathLike[str], name: str | None = None) -> Kernel:
        """One kernel of a file: ``name``, or the only one."""
        module = self.load_module(path)
        return pick_kernel(module, name, str(path))

    # -- buffers ------------------------------------------------------------------
    def buffer(self, data: np.ndarray | None = None, *, shape: Sequence[int] | int | None = None,
               dtype: str | np.dtype[Any] | None = None, name: str | None = None) -> Buffer:
        """Allocate a VRAM buffer, from ``data`` (copied in) or zero-filled by
        ``shape`` and ``dtype`` (``"f32"``, ``"vec4"`` or a numpy dtype)."""
        self._check_open()
        if data is not None:
            if shape is not None or dtype is not None:
                raise JobError("give either data or shape and dtype, not both")
            data = np.asarray(data)
            shape_t, np_dtype = tuple(data.shape), _vram_dtype(data.dtype)
        else:
            if shape is None or dtype is None:
                raise JobError("a buffer needs data, or a shape and a dtype")
            try:
                shape_t = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
            except TypeError:  # not a number nor a sequence
                raise JobError(f"invalid buffer shape {shape!r}",
                               hint="give 1 to 3 positive integers") from None
            if isinstance(dtype, str):
                if dtype not in DTYPES:
                    raise JobError(f"unknown dtype {dtype!r}", hint=f"use one of {', '.join(DTYPES)}")
                if dtype == "vec4":
                    shape_t = shape_t + (4,)
                np_dtype = DTYPES[dtype]
            else:
                try:
                    np_dtype = np.dtype(dtype)
                except TypeError:
                    raise JobError(f"unknown dtype {dtype!r}",
                                   hint=f"use one of {', '.join(DTYPES)}") from None
                _vram_dtype(np_dtype)
            if not shape_t or any(not isinstance(n, (int, np.integer)) or n < 1 for n in shape_t):
                raise JobError(f"invalid buffer shape {list(shape_t)}")
        rank = rank_problem(shape_t)
        if rank is not None:  # no kernel could take it
            raise JobError(rank[0], hint=rank[1])
        if name is None:  # the next automatic name no buffer has (a user may give one too)
            self._counter += 1
            while f"buf{self._counter}" in self._buffers:
                self._counter += 1
            name = f"buf{self._counter}"
        if name in self._buffers:
            raise JobError(f"a buffer named {name!r} already exists")
        device = self.vram.allocate(name, tuple(int(n) for n in shape_t), np_dtype)
        buf = Buffer(self, device)
        self.model.allocate(name, device.nbytes, filled=data is not None,
                            stored=bool(getattr(device, "reopened", False)))
        if data is not None:
            device.write(data)
        self._buffers[name] = buf
        return buf

    def zeros(self, shape: Sequence[int] | int, dtype: str = "f32", name: str | None = None) -> Buffer:
        return self.buffer(shape=shape, dtype=dtype, name=name)

    # -- dispatch -------------------------------------------------------------------
    def launch_for(self, kernel: Kernel, *, global_size: Sequence[int] | int | None = None,
                   grid: Sequence[int] | int | None = None,
                   block: Sequence[int] | int | None = None) -> Launch:
        return launch_geometry(kernel, global_size=global_size, grid=grid, block=block)

    def dispatch(self, kernel: Kernel, *, args: Mapping[str, Any],
                 global_size: Sequence[int] | int | None = None,
                 grid: Sequence[int] | int | None = None,
                 block: Sequence[int] | int | None = None) -> DispatchResult:
        """Run ``kernel`` over a grid and wait for it.

        Give ``global_size`` (work items, rounded up to whole workgroups) or
        ``grid`` (workgroups), and ``block`` unless the kernel declares
        ``@workgroup``.  ``args`` maps every parameter to a scalar or a
        :class:`Buffer` of this fabric.
        """
        self._check_open()
        if not isinstance(kernel, Kernel):
            raise JobError(f"dispatch needs a Kernel, got {type(kernel).__name__}",
                           hint="fabric.kernel(path) gives one; a Module from fabric.compile() "
                                "holds its kernels in .kernels")
        if not isinstance(args, Mapping):
            raise JobError(f"args must map parameter names to values, got {type(args).__name__}")
        launch = self._launch(kernel, global_size, grid, block)
        try:  # the arguments' types, shapes and scalar bits: checked once per kernel and key
            key: Any = tuple((k, ("buffer", v.device.dtype.str, v.device.shape)
                              if isinstance(v, Buffer) and v.device is not None else _scalar_key(v))
                             for k, v in args.items())
            hash(key)
        except TypeError:  # an unhashable value: checked (and refused) the long way
            key = None
        if key is None or self._checked.find(kernel, key) is None:
            for k, v in args.items():
                if isinstance(v, Buffer) and v.device is None:
                    raise JobError(f"buffer {v.name!r} (argument {k!r}) has been freed",
                                   hint="allocate it again, or pass a live buffer")
            shaped = {k: v.shape_info() if isinstance(v, Buffer) else v
                      for k, v in args.items()}
            problems = check_args(kernel, shaped)
            if problems:
                p = problems[0]
                raise JobError("; ".join(q.message for q in problems), hint=p.hint)
            if key is not None:
                self._checked.put(kernel, key, True)
        run_args: dict[str, Any] = {}
        buffers: dict[str, DeviceBuffer] = {}
        for p in kernel.params:
            value = args[p.name]
            if isinstance(value, Buffer):
                if value._fabric is not self or value.device is None:
                    raise JobError(f"buffer {value.name!r} does not belong to this fabric")
                run_args[p.name] = value.device.array()
                buffers[p.name] = value.device
            else:
                run_args[p.name] = scalar_value(p.type.kind, value)
        return self._run(kernel, launch, run_args, buffers, key)

    def _launch(self, kernel: Kernel, global_size: Any, grid: Any, block: Any) -> Launch:
        """:func:`launch_geometry`, remembered per kernel for geometry given as integers."""
        def make() -> Launch:
            return launch_geometry(kernel, global_size=global_size, grid=grid, block=block)

        try:
            key = (_hashable(global_size), _hashable(grid), _hashable(block))
        except TypeError:  # not plain integers: checked (and refused) the long way
            return make()
        return self._launches.get(kernel, key, make)

    def _make_resident(self, buffers: Mapping[str, DeviceBuffer],
                       ranges: Sequence[tuple[str, Any, Any]]) -> list[Any]:
        """Leases on the pages a tile touches, by buffer parameter: those it only reads, then
        those it may write (which become dirty)."""
        leases = []
        try:
            for param, reads, writes in ranges:
                device = buffers[param]
                if reads:
                    leases.append(self.vram.make_resident(device, list(reads), write=False))
                if writes:
                    leases.append(self.vram.make_resident(device, list(writes), write=True))
        except BaseException:
            _release(leases)
            raise
        return leases

    def _prefetch(self, buffers: Mapping[str, DeviceBuffer], footprint: TileFootprint) -> None:
        """Ask the VRAM to bring a coming tile's pages in while earlier tiles compute."""
        for param, fp in footprint.buffers.items():
            if fp.reads or fp.writes:
                self.vram.prefetch(buffers[param], fp.touched)

    def _plan(self, kernel: Kernel, launch: Launch, args: Mapping[str, Any],
              buffers: Mapping[str, DeviceBuffer], args_key: Any) -> _Plan:
        """The dispatch's plan, remembered by launch, tiling knobs and ``args_key`` (the
        arguments' types, buffer shapes and scalar bits, or None: then worked out from them).
        ``args``: every argument, the scalars' values and the buffers' arrays."""
        scalars = None
        if args_key is None:
            scalars = {k: v for k, v in args.items() if k not in buffers}
            args_key = (tuple((k, _scalar_key(v)) for k, v in sorted(scalars.items())),
                        tuple(sorted((k, d.dtype.str, tuple(d.shape))
                                     for k, d in buffers.items())))
        # The tiling knobs are read when tiles are cut (tests lower MIN_TILE_ITEMS).
        key = (launch, scheduler.MIN_TILE_ITEMS, scheduler.TILES_PER_WORKER, args_key)
        plan = self._plans.find(kernel, key)
        if plan is None:
            if scalars is None:
                scalars = {k: v for k, v in args.items() if k not in buffers}
            infos = {p: BufferInfo(d.dtype, tuple(d.shape), d.nbytes) for p, d in buffers.items()}
            plan = self._make_plan(kernel, launch, scalars, infos)
            self._plans.put(kernel, key, plan)
        return plan

    def _make_plan(self, kernel: Kernel, launch: Launch, scalars: Mapping[str, Any],
                   infos: Mapping[str, BufferInfo]) -> _Plan:
        tiles = make_tiles(launch, self.model.lanes)
        footprints = tile_footprints(kernel, tiles, scalars, infos, self.vram.page_size)
        leases = [_leases((param, fp.reads, fp.writes)
                          for param, fp in footprint.buffers.items())
                  for footprint in footprints]
        reads: dict[str, list[tuple[int, int]]] = {}
        writes: dict[str, list[tuple[int, int]]] = {}
        for footprint in footprints:
            for param, fp in footprint.buffers.items():
                reads.setdefault(param, []).extend(fp.reads)
                writes.setdefault(param, []).extend(fp.writes)
        whole = _leases((param, reads[param], writes[param]) for param in reads)
        page = self.vram.page_size
        pinned = {p: -(-info.nbytes // page) * page for p, info in infos.items()}
        return _Plan(tiles, footprints, estimate_work(kernel, launch, scalars, infos),
                     leases, whole, pinned)

    def _estimates(self, launch: Launch, plan: _Plan,
                   ratios: tuple[float, float]) -> tuple[list[TileWork], int, int]:
        """Each tile's expected work: the IR's per-item estimate times its work items, scaled
        by ``ratios``: what the backend counted against that estimate (ops, bytes) in the
        kernel's last dispatch; and the tiles' ops and bytes together."""
        hit = plan.estimates.get(ratios)
        if hit is None:
            ops_ratio, bytes_ratio = ratios
            per_item = plan.per_item
            out = []
            for tile in plan.tiles:
                items = tile.group_count * launch.group_items
                out.append(TileWork(ops=round(per_item.ops * items * ops_ratio),
                                    bytes_read=round(per_item.bytes * items * bytes_ratio)))
            hit = (out, sum(e.ops for e in out), sum(e.bytes_read for e in out))
            plan.estimates.clear()
            plan.estimates[ratios] = hit
        return hit

    def _run(self, kernel: Kernel, launch: Launch, args: dict[str, Any],
             buffers: Mapping[str, DeviceBuffer], args_key: Any = None) -> DispatchResult:
        hook = self.plugins.hook
        model = self.model
        step = self._steps
        self._steps += 1
        plan = self._plan(kernel, launch, args, buffers, args_key)
        tiles, footprints = plan.tiles, plan.footprints
        old = self._history.find(kernel, None) or (1.0, 1.0)
        estimates, *guessed = self._estimates(launch, plan, old)
        # Tiles are placed as the scheduler asks for them: the first run while the last are
        # placed.  Every tile of a dispatch is placed before any is finished (model.finish).
        names = {p: d.name for p, d in buffers.items()}
        model.begin(step, kernel.name)
        placed: list[Placed] = []

        def placements() -> Iterator[tuple[Any, str]]:
            for tile, footprint, estimate in zip(tiles, footprints, estimates):
                p = model.place_tile(tile, footprint, names, estimate, self.policy)
                placed.append(p)
                yield tile, p.component

        order: Iterable[tuple[Any, str]] = placements()
        if len(tiles) == 1:
            order = list(order)
        # Events are built only for plugins that listen (a tiny dispatch notices the cost).
        on_dispatch = bool(hook.xv_on_dispatch.get_hookimpls())
        on_tile = bool(hook.xv_on_tile.get_hookimpls())
        if on_dispatch:
            hook.xv_on_dispatch(event=DispatchEvent("start", kernel.name, launch.grid,
                                                    launch.block, len(tiles)))
        start = time.perf_counter()

        slots = self._slots
        paging = getattr(self.vram, "paging", False)
        # When the dispatch's buffers fit in VRAM together, the pages it touches are made
        # resident (and pinned) once, for the whole dispatch, and a cpu component holds a
        # few tiles more than it has workers (scheduler.execute).  Otherwise each tile's pages
        # are made resident as it is handed over and released as it ends, one tile per
        # worker is handed over (a held tile's pages are pinned, leaving less room to page
        # in), and the tile to be handed over next is prefetched meanwhile.
        # In whole pages, as they are pinned; a buffer passed twice counts once (the sum
        # counting it twice bounds that).
        fits = not paging or sum(plan.pinned.values()) <= self.vram.capacity or sum(
            {d.name: plan.pinned[p] for p, d in buffers.items()}.values()) <= self.vram.capacity
        queued = scheduler.QUEUED_PER_WORKER if fits else 0
        ahead = sum(slots.values()) if paging and not fits and len(tiles) > 1 else 0
        held: list[Any] | None = None

        def submit(tile: Any, comp: str) -> Any:
            if held is not None:
                return self.components[comp].submit(kernel, tile, args)
            leases = self._make_resident(buffers, plan.leases[tile.index])
            try:
                fut = self.components[comp].submit(kernel, tile, args)
            except BaseException:
                _release(leases)
                raise
            fut.add_done_callback(lambda _f: _release(leases))
            if ahead and tile.index + ahead < len(tiles):
                self._prefetch(buffers, footprints[tile.index + ahead])
            return fut

        thieves = self._thieves
        # The modelled VRAM's paging needs no tile to have finished: it is worked out while
        # the tiles run (in placement order, once all are placed), on this otherwise idle
        # thread.
        unpaged = iter(placed)

        def idle() -> bool:
            tile = next(unpaged, None)
            if tile is None:
                return False
            model.page(tile)
            return True

        cancelled: list[Any] = []

        def cancel() -> None:  # interrupted: the backends that can stop their tiles do
            for prepared in self._context.prepared_of(kernel):
                stop = getattr(prepared, "cancel", None)
                if stop is not None:
                    stop()
                    cancelled.append(prepared)

        try:
            if fits:
                held = self._make_resident(buffers, plan.whole)
            runs = execute(order, slots, thieves, submit,
                           idle if model.pager is not None else None, queued, cancel)
        except BaseException:
            # However far placement and paging got while tiles ran, the model places every
            # tile and its VRAM takes every one placed, so what follows does not depend on
            # when the failure came.
            try:
                for _ in order:
                    pass
            except BaseException:  # noqa: BLE001 - a placement failed: raised once already
                pass
            for p in placed:
                model.page(p)
            raise
        finally:
            if held is not None:
                _release(held)
            for prepared in cancelled:  # the kernel may run again
                resume = getattr(prepared, "resume", None)
                if resume is not None:
                    resume()
        wall = time.perf_counter() - start
        model.finish(placed, [r.work for r in runs], [r.wall_s for r in runs])
        records: list[TileRecord] = []
        for run in runs:
            tile, work = run.tile, run.work
            record = TileRecord(tile.index, run.component, tile.first_group, tile.group_count,
                                run.wall_s, work, run.planned)
            records.append(record)
            if on_tile:
                hook.xv_on_tile(event=TileEvent(kernel.name, tile.index, run.component,
                                                tile.first_group, tile.group_count, record.wall_s,
                                                work.ops, work.bytes_read, work.bytes_written))
        if len(runs) == 1:
            work = runs[0].work
            counted = work.ops, work.bytes_read + work.bytes_written
        else:
            counted = (sum(r.work.ops for r in runs),
                       sum(r.work.bytes_read + r.work.bytes_written for r in runs))
        self._history.put(kernel, None, (
            old[0] * counted[0] / guessed[0] if guessed[0] else old[0],
            old[1] * counted[1] / guessed[1] if guessed[1] else old[1]))
        if on_dispatch:
            hook.xv_on_dispatch(event=DispatchEvent("end", kernel.name, launch.grid,
                                                    launch.block, len(tiles), wall))
        if log_enabled():
            log.debug("dispatch", kernel=kernel.name, grid=launch.grid, block=launch.block,
                      tiles=len(tiles), stolen=sum(r.stolen for r in runs),
                      wall_s=round(wall, 6))
        return DispatchResult(kernel.name, launch, tuple(records), wall, step)

    def timing_report(self) -> dict[str, Any]:
        """The modelled timeline of everything this fabric did so far (runs it first):
        :meth:`FabricModel.report <xv_core.runtime.model.FabricModel.report>` plus ``steps``,
        each dispatch's virtual span and placement, in dispatch order."""
        report = self.model.report()
        report["steps"] = self.model.step_spans()
        report["scheduler"] = self.scheduler
        return report

    def native_compile(self) -> dict[str, Any]:
        """What backends that compile (``jit``) spent on the kernels prepared so far:
        ``compile_s`` seconds compiling, ``compiles`` kernels compiled, ``cache_hits`` loaded
        from their cache instead.  A prepared kernel reports these as attributes."""
        with self._context._lock:
            total = dict(self._context.retired)
            prepared = [p for _, p in self._context._prepared.values()]
        for p in prepared:
            for key in total:
                total[key] += getattr(p, key, 0)
        return total

    # -- lifetime -------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.vram is None:
            raise JobError(f"fabric {self.config.name!r} is closed",
                           hint="open it again with open_fabric")

    def close(self) -> None:
        """Free the VRAM's buffers, then close the components (a cache tier the VRAM
        still holds pages in is a component: it must outlive them)."""
        vram, self.vram = getattr(self, "vram", None), None
        try:
            if vram is not None:
                vram.close()
        finally:
            for comp in list(self.components.values()):
                try:
                    comp.close()
                except Exception as exc:  # closing must go on for the others
                    log.warning("component failed to close",
                                component=getattr(comp, "name", "?"), error=str(exc))
            self.components.clear()

    def __enter__(self) -> Fabric:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _hashable(value: Any) -> Any:
    """A geometry argument as a key: None, an int, or a tuple of ints (else TypeError)."""
    if value is None or type(value) is int:
        return value
    if isinstance(value, (tuple, list)) and all(type(v) is int for v in value):
        return ("seq", tuple(value))
    raise TypeError("not a plain geometry")


def _leases(pages: Iterable[tuple[str, Sequence[tuple[int, int]], Sequence[tuple[int, int]]]]
            ) -> list[tuple[str, tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]]:
    """Per buffer parameter ``(param, pages read, pages written)``: the pages only read and
    the pages written, each made resident once (a page both read and written is one access,
    and dirty); parameters that touch nothing are left out."""
    return [(param, subtract_ranges(reads, writes), merge_ranges(writes))
            for param, reads, writes in pages if reads or writes]


def _workers(component: Component) -> int:
    return int(getattr(component, "workers", 1) or 1)


def _located(config: Any, exc: XvError, part: str) -> XvError:
    """``exc``, raised while opening the fabric part at ``$.path`` ``part``, as a problem of
    the fabric file (``file:line:col: ... @ $.path``): at its own ``where`` when that is a
    ``$.path``, else at ``part`` with its ``where`` (a file, a component) before the message.
    A ConfigError (already a fabric's or a job's) and a fabric not from a file stay as they
    are."""
    if isinstance(exc, ConfigError) or getattr(config, "locator", None) is None:
        return exc
    where = exc.where
    if isinstance(where, str) and where.startswith("$"):
        return config.error([(where, exc.message, exc.hint)])
    message = exc.message if where is None else f"{where}: {exc.message}"
    return config.error([(part, message, exc.hint)])


def _release(leases: Sequence[Any]) -> None:
    for lease in leases:
        lease.release()


def pick_kernel(module: Module, name: str | None, where: str) -> Kernel:
    if name is None:
        if len(module.kernels) != 1:
            names = ", ".join(k.name for k in module.kernels) or "none"
            raise JobError(f"the file defines {len(module.kernels)} kernels ({names}); name one",
                           where=where)
        return module.kernels[0]
    kernel = module.kernel(name)
    if kernel is None:
        names = ", ".join(k.name for k in module.kernels) or "none"
        raise JobError(f"no kernel named {name!r} (defined: {names})", where=where)
    return kernel


def _dims(value: Sequence[int] | int, what: str) -> tuple[int, int, int]:
    try:
        dims = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    except TypeError:  # not a number nor a sequence
        raise JobError(f"{what} must be 1 to 3 positive integers, got {value!r}") from None
    if not 1 <= len(dims) <= 3 or any(
        isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in dims
    ):
        raise JobError(f"{what} must be 1 to 3 positive integers, got {list(dims)}")
    return tuple(int(d) for d in dims) + (1,) * (3 - len(dims))  # type: ignore[return-value]


MAX_GROUP_ITEMS = 1024
#: Work items along one axis of a grid: global ids are i32 (0 .. 2**31 - 1).
MAX_GLOBAL_ITEMS = 1 << 31


def launch_geometry(kernel: Kernel, *, global_size: Sequence[int] | int | None = None,
                    grid: Sequence[int] | int | None = None,
                    block: Sequence[int] | int | None = None) -> Launch:
    """Grid and block of a dispatch, checked against the kernel's ``@workgroup``."""
    if (global_size is None) == (grid is None):
        raise JobError("give exactly one of global size (work items) and grid (workgroups)")
    if block is None:
        if kernel.workgroup is None:
            raise JobError(f"kernel {signature(kernel)} declares no @workgroup, so the block "
                           f"(workgroup size) must be given")
        block3 = tuple(kernel.workgroup)
    else:
        block3 = _dims(block, "block")
        if kernel.workgroup is not None and block3 != tuple(kernel.workgroup):
            raise JobError(f"block {list(block3)} differs from the kernel's "
                           f"@workgroup{tuple(kernel.workgroup)}")
    if math.prod(block3) > MAX_GROUP_ITEMS:
        raise JobError(f"a workgroup of {math.prod(block3)} work items is more than "
                       f"{MAX_GROUP_ITEMS}")
    if grid is not None:
        grid3 = _dims(grid, "grid")
    else:
        g = _dims(global_size, "global size")  # type: ignore[arg-type]
        grid3 = tuple(-(-g[i] // block3[i]) for i in range(3))  # type: ignore[assignment]
    for axis, groups, items in zip("xyz", grid3, block3):
        if groups * items > MAX_GLOBAL_ITEMS:
            raise JobError(f"more than {MAX_GLOBAL_ITEMS} work items along {axis}: "
                           f"global_id.{axis} is an i32, so at most {MAX_GLOBAL_ITEMS} are "
                           f"numbered", hint="split the work into several dispatches")
    return Launch(grid3, block3)  # type: ignore[arg-type]


def open_fabric(spec: Any = "default", *, plugins: Plugins | None = None,
                backend: str | None = None, workdir: str | os.PathLike[str] | None = None,
                scheduler: str | None = None) -> Fabric:
    """Open a fabric by YAML path, built-in name, or an already loaded FabricConfig;
    ``backend`` and ``scheduler`` override the fabric's."""
    from xv_core.config.fabric import load_fabric

    if not structlog.is_configured():  # a library user who set nothing sees warnings only
        from xv_core.logsetup import configure

        configure()
    plugins = plugins if plugins is not None else load_plugins()
    if hasattr(spec, "components"):
        config = spec
    else:
        config = load_fabric(_path_arg(spec, "a fabric (a built-in name or a YAML file)"), plugins)
    return Fabric(config, plugins, backend=backend, workdir=workdir, scheduler=scheduler)


def _vram_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """``dtype`` when VRAM can hold arrays of it, else a JobError."""
    if dtype not in set(DTYPES.values()):
        raise JobError(f"arrays of {dtype} cannot live in VRAM",
                       hint="use bool, int32, uint32, float32 or float64")
    return dtype


def _path_arg(value: Any, what: str) -> str | os.PathLike[str]:
    """``value`` when it is a path (text or ``os.PathLike``), else a JobError naming ``what``."""
    if isinstance(value, (str, os.PathLike)):
        return value
    raise JobError(f"expected {what} as a path or a name, got {type(value).__name__}",
                   hint="pass a str or a pathlib.Path")


__all__ = ["Buffer", "DispatchResult", "Fabric", "TileRecord", "open_fabric", "launch_geometry",
           "pick_kernel", "UnknownNameError"]
