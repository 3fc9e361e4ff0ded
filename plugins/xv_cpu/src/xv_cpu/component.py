"""The ``cpu`` component kind: a pool of worker threads acting as the ALUs of a fabric."""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import attrs
import structlog

from xv_core.config.convert import Invalid
from xv_core.ir import Kernel
from xv_core.runtime.interfaces import ComponentContext, Tile, TileWork

log = structlog.get_logger("xv.cpu")


def _threads(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"threads must be an integer (got {value!r})")
    if value < 0:
        raise Invalid(f"threads must be >= 0 (got {value})", hint="0 means one per CPU core")


def _backend(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise Invalid(f"backend must be the name of an IR backend (got {value!r})",
                      hint="jit and interp are always installed with the cpu component")


@attrs.frozen
class CpuOptions:
    """Keys of a ``cpu`` component in the fabric YAML.

    ``threads``: worker threads, each running one tile at a time (0: one per
    CPU core, ``os.cpu_count()``).  ``backend``: the IR backend that runs the
    tiles (``jit``: native code; ``interp``: the reference interpreter); the
    run's ``--backend`` overrides it.
    """

    threads: int = attrs.field(default=0, validator=_threads)
    backend: str = attrs.field(default="jit", validator=_backend)


#: Tiles of at most this many work items run on the thread that submits them: handing
#: a tile to a worker and waiting for it costs more than running such a tile.
INLINE_ITEMS = 1 << 12


class CpuComponent:
    """Runs tiles on ``threads`` worker threads.  The jit's native code and numpy's
    loops release the GIL, so the workers really run in parallel.  Tiny tiles
    (:data:`INLINE_ITEMS`) run on the submitting thread instead."""

    kind = "cpu"

    def __init__(self, name: str, options: CpuOptions, context: ComponentContext):
        self.name = name
        self.options = options
        self.workers = options.threads or os.cpu_count() or 1
        self._context = context
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=f"xv-{name}")
        log.debug("cpu component started", component=name, threads=self.workers,
                  backend=options.backend)

    def submit(self, kernel: Kernel, tile: Tile, args: Mapping[str, Any]) -> Future[TileWork]:
        if tile.group_count * tile.launch.group_items > INLINE_ITEMS:
            return self._pool.submit(self._run, kernel, tile, args)
        done: Future[TileWork] = Future()
        done.set_running_or_notify_cancel()
        try:
            done.set_result(self._run(kernel, tile, args))
        except BaseException as exc:  # delivered through the future, as from a worker
            done.set_exception(exc)
        return done

    def _run(self, kernel: Kernel, tile: Tile, args: Mapping[str, Any]) -> TileWork:
        # Preparing on the worker keeps submit() cheap; the context caches prepared kernels.
        return self._context.prepare(kernel, self.options.backend).run_tile(tile, args)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __repr__(self) -> str:
        return (f"CpuComponent({self.name!r}, threads={self.workers}, "
                f"backend={self.options.backend!r})")
