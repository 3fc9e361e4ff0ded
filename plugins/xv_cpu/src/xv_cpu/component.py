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
                      hint="interp is always installed with the cpu component")


@attrs.frozen
class CpuOptions:
    """Keys of a ``cpu`` component in the fabric YAML.

    ``threads``: worker threads, each running one tile at a time (0: one per
    CPU core, ``os.cpu_count()``).  ``backend``: the IR backend that runs the
    tiles (``interp``); the run's ``--backend`` overrides it.
    """

    threads: int = attrs.field(default=0, validator=_threads)
    backend: str = attrs.field(default="interp", validator=_backend)


class CpuComponent:
    """Runs tiles on ``threads`` worker threads.  Numpy releases the GIL in its
    loops, so the workers really run in parallel on large batches."""

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
        return self._pool.submit(self._run, kernel, tile, args)

    def _run(self, kernel: Kernel, tile: Tile, args: Mapping[str, Any]) -> TileWork:
        # Preparing on the worker keeps submit() cheap; the context caches prepared kernels.
        return self._context.prepare(kernel, self.options.backend).run_tile(tile, args)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __repr__(self) -> str:
        return (f"CpuComponent({self.name!r}, threads={self.workers}, "
                f"backend={self.options.backend!r})")
