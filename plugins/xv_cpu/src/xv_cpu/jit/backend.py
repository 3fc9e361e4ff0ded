"""The ``jit`` backend: kernels compiled to native code, one function per specialisation.

A prepared kernel compiles lazily, on the first tile of each specialisation (the block
size, whether accesses are checked, which atomics run on private copies), looking in
the process and then in the disk cache first.  ``compile_s`` and ``cache_hits`` say what
that cost.  Tiles call the native function through ctypes, which releases the GIL, so
the cpu component's worker threads run tiles on every core at once.
"""

from __future__ import annotations

import ctypes
import hashlib
import struct
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import structlog

from xv_core import ir
from xv_core.errors import KernelRuntimeError, TileCancelled
from xv_core.ir import CONSTANT, LOCAL, SHARED, Kernel, Module, Op, verify_kernel
from xv_core.runtime.atomics import ATOMICS_LOCK
from xv_core.runtime.interfaces import Tile, TileWork
from xv_cpu.interp.alu import DTYPES as ALU_DTYPES
from xv_cpu.interp.backend import PreparedInterpKernel
from xv_cpu.interp.batch import Bindings
from xv_cpu.jit import codegen, engine, lanes
from xv_cpu.jit.analysis import plan_kernel, walk
from xv_cpu.jit.cache import DiskCache
from xv_cpu.jit.codegen import (
    OUT_GID, OUT_INDEX, OUT_SITE, OUT_SLOTS, KernelMeta, Site, Spec, generate,
)

log = structlog.get_logger("xv.jit")

_HERE = Path(__file__).resolve().parent
#: Changes whenever the code generator does, so stale cache entries are never used.
BACKEND_VERSION = "jit-1-" + hashlib.sha256(b"".join(
    (_HERE / f).read_bytes() for f in ("analysis.py", "codegen.py", "lanes.py"))).hexdigest()[:16]

#: A buffer updated only by integer atomics is privatised per tile when it has at most
#: this many elements and the tile has at least PRIVATE_RATIO items per element.
PRIVATE_MAX = 1 << 16
PRIVATE_RATIO = 4

_TILE_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
_MERGE = {"add": np.add, "min": np.minimum, "max": np.maximum}

_process_lock = threading.Lock()
_process: dict[str, Compiled] = {}  # key -> compiled, shared by every prepared kernel


@attrs.frozen
class Compiled:
    meta: KernelMeta
    fn: Any  # the ctypes function


_addresses: dict[int, tuple[Any, int]] = {}


def _address(arr: np.ndarray) -> int:
    """The address of an array's data, remembered per array object (asking numpy costs
    microseconds, and the same arrays come back dispatch after dispatch)."""
    hit = _addresses.get(id(arr))
    if hit is not None and hit[0]() is arr:
        return hit[1]
    addr = arr.__array_interface__["data"][0]
    if len(_addresses) > 4096:
        _addresses.clear()
    try:
        _addresses[id(arr)] = (weakref.ref(arr), addr)
    except TypeError:  # not weakly referenceable: not remembered
        pass
    return addr


class _ThreadState:
    """Per thread: the argument words, the grid, the out slots and scratch memory, kept
    from tile to tile with their addresses (and writable views for struct)."""

    def __init__(self, slots: int):
        self.words = np.zeros(max(slots, 1), np.int64)
        self.grid = np.zeros(4, np.int64)  # the grid in groups, then the stop word
        self.out = np.zeros(OUT_SLOTS, np.int64)
        self.addresses = (_address(self.words), _address(self.grid), _address(self.out))
        self.words_view = memoryview(self.words).cast("B")
        self.grid_view = memoryview(self.grid).cast("B")
        self.out_view = memoryview(self.out).cast("B")
        self.scratch = np.empty(0, np.uint8)
        self.scratch_address = 0


_GRID = struct.Struct("<4q")
_COUNTS = struct.Struct("<3q")
_F32 = np.dtype(np.float32)
#: Per IR scalar type: its numpy scalar type, and how a value of that type is packed (its
#: bits, as the native function reads them; i32/u32/bool in the low 32 bits).
_SCALAR_BITS: dict[str, tuple[type, Any]] = {
    "f32": (np.float32, lambda v: int.from_bytes(v.tobytes(), "little")),
    "f64": (np.float64, lambda v: int.from_bytes(v.tobytes(), "little", signed=True)),
    "i32": (np.int32, lambda v: int(v) & 0xFFFFFFFF),
    "u32": (np.uint32, int),
    "bool": (np.bool_, int),
}


class PreparedJitKernel:
    """A kernel ready to run natively.  ``run_tile`` may run on several threads at once."""

    def __init__(self, kernel: Kernel, backend: JitBackend):
        verify_kernel(kernel, where=kernel.source or f"kernel {kernel.name}")
        self.kernel = kernel
        self.backend = backend
        self.plan = plan_kernel(kernel)
        self.compile_s = 0.0  # seconds spent compiling (not loading from a cache)
        self.compiles = 0
        self.cache_hits = 0
        self._lock = threading.Lock()
        self._by_spec: dict[Spec, Compiled] = {}
        self._tls = threading.local()
        # Every thread's state (their stop words), and whether tiles are to stop.
        self._states: weakref.WeakSet[_ThreadState] = weakref.WeakSet()
        self._stop = False
        self._fallback: PreparedInterpKernel | None = None
        if self.plan.mode == "fallback":
            # Barriers under control flow that may differ between items: the interpreter
            # runs such kernels (and reports divergence exactly where it happens).
            log.info("jit runs kernel on the interpreter", kernel=kernel.name, why=self.plan.why)
            self._fallback = PreparedInterpKernel(kernel)
        self._ir = ir.dumps(Module((kernel,)))
        self._slots = sum(1 if p.type.is_scalar else (2 if p.type.kind == "buffer" else 3)
                          for p in kernel.params)
        self._words_struct = struct.Struct(f"<{self._slots}q")
        # Per parameter, what the fast path of run_tile expects (see _fast_words).
        self._layout: list[tuple[str, str, Any, Any]] = []
        for p in kernel.params:
            t = p.type
            if t.is_scalar:
                self._layout.append((p.name, "scalar", *_SCALAR_BITS[t.kind]))
            else:
                dtype = _F32 if t.elem == "vec4" else np.dtype(ALU_DTYPES[t.elem])
                rank = (1 if t.kind == "buffer" else 2) + (1 if t.lanes == 4 else 0)
                self._layout.append((p.name, t.kind, dtype, (rank, t.lanes == 4)))
        self._specs: dict[tuple[int, int, int], Spec] = {}
        self.decls = {d.name: d for d in kernel.all_decls()}
        # Buffer and image parameters the kernel's atomics update: device memory that
        # other parties (the interpreter's atomics, remote merges) may update at once.
        self._device_atomics = frozenset(
            n.arg[1] for n in walk(kernel.body) if n.op is Op.ATOMIC
            and kernel.param(n.arg[1]) is not None)

    @property
    def mode(self) -> str:
        return self.plan.mode

    # -- compiling -------------------------------------------------------------------
    def key(self, spec: Spec) -> str:
        h = hashlib.sha256()
        for part in (BACKEND_VERSION, engine.target_id(), repr(spec),
                     f"lanes={lanes.LANES if codegen.LANE_LOOPS else 0}",
                     f"scatter={codegen.SCATTER_MIN_OPS if codegen.SCATTER_SPLIT else 0}",
                     self._ir):
            h.update(part.encode("utf-8"))
            h.update(b"\0")
        return h.hexdigest()

    def compiled(self, spec: Spec) -> Compiled:
        hit = self._by_spec.get(spec)
        if hit is not None:
            return hit
        with self._lock:
            hit = self._by_spec.get(spec)
            if hit is None:
                hit = self._by_spec[spec] = self._compile(spec)
            return hit

    def _compile(self, spec: Spec) -> Compiled:
        key = self.key(spec)
        with _process_lock:
            hit = _process.get(key)
        if hit is not None:
            return hit
        symbol = "xv_tile_" + key[:32]
        cache = self.backend.cache
        entry = cache.get(key) if cache is not None else None
        meta = None
        if entry is not None:
            try:
                m, obj = entry
                meta = KernelMeta(m["symbol"], int(m["scratch_bytes"]),
                                  tuple(Site(**s) for s in m["sites"]))
                if meta.symbol != symbol:
                    meta = None
            except (KeyError, TypeError, ValueError):
                meta = None
        if meta is not None:
            addr = engine.load_object(obj, symbol)
            self.cache_hits += 1
            log.debug("jit cache hit", kernel=self.kernel.name, key=key[:12])
        else:
            t0 = time.perf_counter()
            text, meta = generate(self.kernel, self.plan, spec, symbol)
            obj = engine.compile_object(text)
            addr = engine.load_object(obj, symbol)
            seconds = time.perf_counter() - t0
            self.compile_s += seconds
            self.compiles += 1
            log.debug("jit compiled", kernel=self.kernel.name, key=key[:12],
                      seconds=round(seconds, 4), block=spec.block)
            if cache is not None:
                cache.put(key, {"symbol": meta.symbol, "scratch_bytes": meta.scratch_bytes,
                                "sites": [attrs.asdict(s) for s in meta.sites]}, obj)
        compiled = Compiled(meta, _TILE_FN(addr))
        with _process_lock:
            _process[key] = compiled
        return compiled

    # -- running ---------------------------------------------------------------------
    def run_tile(self, tile: Tile, args: Mapping[str, Any]) -> TileWork:
        if self._fallback is not None:
            return self._fallback.run_tile(tile, args)
        words = None if self.plan.privatisable else self._fast_words(args)
        if words is None:
            return self._run_bound(tile, args)
        launch = tile.launch
        spec = self._specs.get(launch.block)
        if spec is None:
            spec = self._specs[launch.block] = Spec(launch.block, self.backend.checked, ())
        compiled = self.compiled(spec)
        state = self._state()
        self._words_struct.pack_into(state.words_view, 0, *words)
        return self._call(compiled, tile, state, args)

    def _fast_words(self, args: Mapping[str, Any]) -> list[int] | None:
        """The argument words, when every argument is exactly what the runtime passes (a
        numpy scalar of the parameter's type, a writable C-contiguous array of its dtype and
        rank); None sends run_tile the long way (Bindings), which also explains refusals."""
        words: list[int] = []
        for name, kind, want, extra in self._layout:
            value = args.get(name)
            if kind == "scalar":
                if type(value) is not want:
                    return None
                words.append(extra(value))
                continue
            if (type(value) is not np.ndarray or value.dtype != want
                    or value.ndim != extra[0] or (extra[1] and value.shape[-1] != 4)):
                return None
            flags = value.flags
            if not (flags.c_contiguous and flags.writeable):
                return None
            words.append(_address(value))
            shape = value.shape
            if kind == "buffer":
                words.append(shape[0])
            else:
                words += (shape[1], shape[0])
        return words

    def _run_bound(self, tile: Tile, args: Mapping[str, Any]) -> TileWork:
        """run_tile the long way: arguments checked by Bindings (with the interpreter's
        messages), atomics' targets privatised where it pays."""
        bind = Bindings(self.kernel, args)
        launch = tile.launch
        items = tile.group_count * launch.group_items
        private: dict[str, np.ndarray] = {}
        for name, merge in self.plan.privatisable.items():
            target = bind.flat[name]
            if len(target) <= PRIVATE_MAX and len(target) * PRIVATE_RATIO <= items and not any(
                    np.may_share_memory(target, other) for n, other in bind.flat.items()
                    if n != name):
                if merge == "add":
                    private[name] = np.zeros_like(target)
                else:
                    info = np.iinfo(target.dtype)
                    private[name] = np.full_like(target, info.max if merge == "min" else info.min)
        spec = Spec(launch.block, self.backend.checked, tuple(sorted(private)))
        compiled = self.compiled(spec)
        state = self._state()
        self._words_struct.pack_into(state.words_view, 0, *self._words(bind, args, private))
        return self._call(compiled, tile, state, args, private, bind)

    def _call(self, compiled: Compiled, tile: Tile, state: _ThreadState,
              args: Mapping[str, Any], private: Mapping[str, np.ndarray] | None = None,
              bind: Bindings | None = None) -> TileWork:
        """Run the native function on the packed arguments (and merge privatised copies,
        given with their Bindings)."""
        _GRID.pack_into(state.grid_view, 0, *tile.launch.grid, 0)
        if self._stop:  # (after the stop word is cleared: a cancel() since then sets it)
            raise TileCancelled.of(self.kernel.name)
        out = state.out
        if len(state.scratch) < compiled.meta.scratch_bytes:
            state.scratch = np.empty(compiled.meta.scratch_bytes, np.uint8)
            state.scratch_address = _address(state.scratch)
        words_at, grid_at, out_at = state.addresses
        if self._device_atomics.difference(private or ()):
            # The CPU's atomic instructions on device memory: atomic among native tiles,
            # not against software read-modify-writes, which hold the lock exclusively.
            with ATOMICS_LOCK.shared():
                rc = compiled.fn(words_at, tile.first_group, tile.group_count, grid_at,
                                 state.scratch_address, out_at)
        else:
            rc = compiled.fn(words_at, tile.first_group, tile.group_count, grid_at,
                             state.scratch_address, out_at)
        if private:
            assert bind is not None
            with ATOMICS_LOCK:  # the merge is the tile's atomic update of the real buffer
                for name, copy in private.items():
                    target = bind.flat[name]
                    _MERGE[self.plan.privatisable[name]](target, copy, out=target)
        if rc == 2:
            raise TileCancelled.of(self.kernel.name)
        if rc != 0:
            bind = bind or Bindings(self.kernel, args)
            raise self._error(compiled.meta.sites[int(out[OUT_SITE])], out, bind)
        ops, nread, nwritten = _COUNTS.unpack_from(state.out_view, 0)
        return TileWork(ops=ops, bytes_read=nread, bytes_written=nwritten)

    def _state(self) -> _ThreadState:
        state = getattr(self._tls, "state", None)
        if state is None:
            state = self._tls.state = _ThreadState(self._slots)
            with self._lock:
                self._states.add(state)
        return state

    def cancel(self) -> None:
        """Stop the tiles running now at their next workgroup, and those that start until
        :meth:`resume`: they raise TileCancelled."""
        self._stop = True
        with self._lock:
            for state in self._states:
                state.grid[3] = 1
        if self._fallback is not None:
            self._fallback.cancel()

    def resume(self) -> None:
        self._stop = False
        if self._fallback is not None:
            self._fallback.resume()

    def _words(self, bind: Bindings, args: Mapping[str, Any],
               private: Mapping[str, np.ndarray]) -> list[int]:
        """The argument words from checked Bindings (privatised buffers by their copies)."""
        words: list[int] = []
        for p in self.kernel.params:
            t = p.type
            if t.is_scalar:  # Bindings made it the numpy scalar of its type
                words.append(_SCALAR_BITS[t.kind][1](bind.scalars[p.name]))
                continue
            # The caller's array (the same object dispatch after dispatch) has the address
            # of its flat view, and its address is remembered.
            arr = private.get(p.name)
            words.append(_address(arr if arr is not None else args[p.name]))
            if t.kind == "buffer":
                words.append(bind.length[p.name])
            else:
                words += [bind.width[p.name], bind.height[p.name]]
        return words

    def _error(self, site: Site, out: np.ndarray, bind: Bindings) -> KernelRuntimeError:
        gid = [int(out[OUT_GID + a]) for a in range(3)]
        item = f"work item global_id=({gid[0]}, {gid[1]}, {gid[2]})"
        kernel = self.kernel.name
        if site.kind == "div":
            return KernelRuntimeError(f"integer {site.name} by zero by {item} in kernel {kernel!r}",
                                      where=site.where,
                                      hint="guard the operation where the divisor can be 0")
        values = [int(out[OUT_INDEX + k]) for k in range(site.dims)]
        name = site.name
        decl = self.decls[name]
        if decl.type.kind == "buffer":
            shown = f"{name}[{values[0]}]"
            extent = f"buffer {name!r} has {bind.length[name]} elements"
        elif decl.type.kind == "image":
            shown = f"{name}[{values[0]}, {values[1]}]"
            extent = f"image {name!r} is {bind.width[name]} wide and {bind.height[name]} high"
        else:
            shown = name + "".join(f"[{v}]" for v in values)
            space = {LOCAL: "private", SHARED: "shared", CONSTANT: "constant"}[decl.space]
            extent = f"{space} array {name!r} is {decl.type}"
        return KernelRuntimeError(
            f"out-of-bounds {site.access} {shown} by {item} in kernel {kernel!r}: {extent}",
            where=site.where, hint="check the index, or guard the access with a bounds test")


class JitBackend:
    """Native code through LLVM (llvmlite).  ``checked``: every buffer, image and array
    access is bounds-checked, an out-of-bounds access being a located error as on
    ``interp``; without it such an access is undefined behaviour, as on a GPU.
    ``cache``: compiled kernels are kept in the disk cache (see :mod:`.cache`)."""

    name = "jit"

    def __init__(self, checked: bool = True, cache: bool | DiskCache = True):
        self.checked = checked
        if cache is True:
            cache = _default_cache()
        self.cache: DiskCache | None = cache or None

    def prepare(self, kernel: Kernel) -> PreparedJitKernel:
        return PreparedJitKernel(kernel, self)


_caches: dict[str, DiskCache] = {}


def _default_cache() -> DiskCache:
    from xv_cpu.jit.cache import default_dir

    d = str(default_dir())
    with _process_lock:
        cache = _caches.get(d)
        if cache is None:  # (the default folder: its root is checked too)
            cache = _caches[d] = DiskCache()
        return cache


class UncheckedJitBackend(JitBackend):
    """``jit`` without bounds checks: fastest, for kernels known to stay in bounds."""

    name = "jit-unchecked"

    def __init__(self, cache: bool | DiskCache = True):
        super().__init__(checked=False, cache=cache)
