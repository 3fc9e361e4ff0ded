"""The ``interp`` backend: prepares kernels and runs tiles in batches of work items."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from xv_core.ir import LOCAL, SHARED, Kernel, Node, Op, verify_kernel
from xv_core.runtime.interfaces import Tile, TileWork
from xv_cpu.interp.alu import DTYPES
from xv_cpu.interp.batch import Batch, Bindings
from xv_cpu.interp.compiler import KernelCompiler
from xv_cpu.interp.frame import Frame

#: Work items per batch: large enough that numpy's per-call cost is small, small
#: enough that a batch's values stay in the CPU caches.
BATCH_ITEMS = 32768
#: At most this many bytes of private arrays per batch (they take one row per item),
#: and of shared arrays (one copy per workgroup of the batch).
PRIVATE_BUDGET = 64 << 20
SHARED_BUDGET = 64 << 20


def _uses(node: Node, op: Op) -> bool:
    return node.op is op or any(_uses(a, op) for a in node.args)


class PreparedInterpKernel:
    """A kernel compiled to closures.  ``run_tile`` may run on several threads at once."""

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
        self.batch_items = max(1, min(batch_items, PRIVATE_BUDGET // max(1, private_bytes)))
        self.shared_bytes = sum(math.prod(d.type.shape) * DTYPES[d.type.elem].itemsize
                                for d in self.shared)
        self.body = KernelCompiler(kernel).block(kernel.body, final=True)

    def batches(self, tile: Tile) -> Iterator[tuple[int, int, int | None]]:
        """(first item, item count, groups or None) of each batch of the tile."""
        per_group = tile.launch.group_items
        if self.grouped:
            step = max(1, min(self.batch_items // per_group,
                              SHARED_BUDGET // max(1, self.shared_bytes)))
            for g in range(0, tile.group_count, step):
                count = min(step, tile.group_count - g)
                yield g * per_group, count * per_group, count
        else:
            total = tile.group_count * per_group
            for t in range(0, total, self.batch_items):
                yield t, min(self.batch_items, total - t), None

    def run_tile(self, tile: Tile, args: Mapping[str, Any]) -> TileWork:
        bind = Bindings(self.kernel, args)
        ops = read = written = 0
        with np.errstate(all="ignore"):
            for t0, n, groups in self.batches(tile):
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
