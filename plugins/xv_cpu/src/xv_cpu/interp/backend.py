"""The ``interp`` backend: prepares kernels and runs tiles in batches of work items."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from xv_core.errors import TileCancelled
from xv_core.ir import LOCAL, SHARED, Kernel, Node, Op, verify_kernel
from xv_core.runtime.interfaces import Tile, TileWork
from xv_cpu.interp.alu import DTYPES
from xv_cpu.interp.batch import Batch, Bindings
from xv_cpu.interp.compiler import KernelCompiler
from xv_cpu.interp.frame import Frame

#: Work items per batch: large enough that numpy's per-call cost is small, small
#: enough that a batch's values stay in the CPU caches.
BATCH_ITEMS = 32768
#: While other tiles run the interpreter on other threads, batches are this many times
#: larger.  Then every numpy call gives the GIL to a waiting thread and must take it back,
#: a hand-over that costs tens of microseconds here (a thread wakes up on another core), so
#: each call must do more work: on this 2-core machine, through ``Fabric.dispatch`` with a
#: thread per core, cache-sized batches ran mandelbrot slower on two threads than on one,
#: and batches four times larger ran gauss5 1.5-2x and the alu workload 2x faster.
CONCURRENT_FACTOR = 4
#: At most this many bytes of private arrays per batch (they take one row per item),
#: and of shared arrays (one copy per workgroup of the batch).
PRIVATE_BUDGET = 64 << 20
SHARED_BUDGET = 64 << 20


def _uses(node: Node, op: Op) -> bool:
    return node.op is op or any(_uses(a, op) for a in node.args)


class _Running:
    """How many tiles the interpreter is running in this process, on any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def __enter__(self) -> None:
        with self._lock:
            self.count += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.count -= 1


RUNNING = _Running()


class PreparedInterpKernel:
    """A kernel compiled to closures.  ``run_tile`` may run on several threads at once.

    ``batch_items``: work items per batch (fewer when private arrays would take more than
    :data:`PRIVATE_BUDGET`); ``concurrent_items`` while other tiles run alongside."""

    def __init__(self, kernel: Kernel, batch_items: int = BATCH_ITEMS):
        verify_kernel(kernel, where=kernel.source or f"kernel {kernel.name}")
        self.kernel = kernel
        self.shared = tuple(d for d in kernel.decls if d.space == SHARED)
        self.locals = {d.name: d for d in kernel.decls if d.space == LOCAL}
        # Groups must run together (shape groups x items) only when they can see each
        # other through shared memory or wait at barriers; otherwise any slice of the
        # tile's work items is one independent batch.
        self.grouped = bool(self.shared) or _uses(kernel.body, Op.BARRIER)
        private_bytes = sum(math.prod(d.type.shape) * DTYPES[d.type.elem].itemsize
                            for d in self.locals.values() if d.type.kind == "array")
        most = PRIVATE_BUDGET // max(1, private_bytes)
        self.batch_items = max(1, min(batch_items, most))
        self.concurrent_items = max(1, min(batch_items * CONCURRENT_FACTOR, most))
        self.shared_bytes = sum(math.prod(d.type.shape) * DTYPES[d.type.elem].itemsize
                                for d in self.shared)
        # Tiles are to stop (cancel): checked before each batch and each loop iteration.
        self._stop = [False]
        self.body = KernelCompiler(kernel, self._stop).block(kernel.body, final=True)

    def cancel(self) -> None:
        """Stop the tiles running now at their next batch of work items or loop iteration,
        and those that start until :meth:`resume`: they raise TileCancelled."""
        self._stop[0] = True

    def resume(self) -> None:
        self._stop[0] = False

    def batches(self, tile: Tile) -> Iterator[tuple[int, int, int | None]]:
        """(first item, item count, groups or None) of each batch of the tile.  A batch's size
        is chosen when it starts: ``concurrent_items`` while other tiles run the interpreter
        too (see :data:`CONCURRENT_FACTOR`), else ``batch_items``."""
        per_group = tile.launch.group_items
        total = tile.group_count * per_group
        t = 0
        while t < total:
            items = self.batch_items if RUNNING.count <= 1 else self.concurrent_items
            if self.grouped:
                count = max(1, min(items // per_group,
                                   SHARED_BUDGET // max(1, self.shared_bytes)))
                count = min(count, tile.group_count - t // per_group)
                yield t, count * per_group, count
                t += count * per_group
            else:
                n = min(items, total - t)
                yield t, n, None
                t += n

    def run_tile(self, tile: Tile, args: Mapping[str, Any]) -> TileWork:
        bind = Bindings(self.kernel, args)
        ops = read = written = 0
        with np.errstate(all="ignore"), RUNNING:
            for t0, n, groups in self.batches(tile):
                if self._stop[0]:
                    raise TileCancelled.of(self.kernel.name)
                batch = Batch(self.kernel, bind, tile.launch, tile.first_group, t0, n, groups,
                              self.shared, self.locals)
                self.body(Frame(batch, n))
                ops += batch.ops
                read += batch.bytes_read
                written += batch.bytes_written
        return TileWork(ops=ops, bytes_read=read, bytes_written=written)


class InterpBackend:
    """The SIMT interpreter: the living definition of the IR (numpy, no code generation)."""

    name = "interp"

    def __init__(self, batch_items: int = BATCH_ITEMS):
        self.batch_items = batch_items

    def prepare(self, kernel: Kernel) -> PreparedInterpKernel:
        return PreparedInterpKernel(kernel, self.batch_items)
