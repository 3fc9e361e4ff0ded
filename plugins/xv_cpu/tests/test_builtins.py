"""The builtins (global_id, local_id, group_id, group_size, num_groups) in 1, 2 and 3 dimensions,
for block sizes that are and are not powers of two, whatever the batches and tiles."""

import itertools

import numpy as np
import pytest

from xv_cpu.interp import InterpBackend
from xv_cpu_irb import assign, barrier, kernel, run, sp, store, var

pytestmark = pytest.mark.usefixtures("each_backend")

NAMES = ["global_id", "local_id", "group_id", "group_size", "num_groups"]


def builtins_kernel(with_barrier):
    # out[item * 15 + k] = builtin k, where item is the linear global id (x fastest).
    gx, gy, gz = sp("global_id.x"), sp("global_id.y"), sp("global_id.z")
    width = sp("num_groups.x") * sp("group_size.x")
    height = sp("num_groups.y") * sp("group_size.y")
    item = (gz * height + gy) * width + gx
    body = [assign("item", item)] + ([barrier()] if with_barrier else [])
    body += [store("out", var("item") * 15 + k, sp(f"{name}.{axis}"))
             for k, (name, axis) in enumerate(itertools.product(NAMES, "xyz"))]
    return kernel("ids", "buffer<i32> out", body, locals="i32 item")


def expected(grid, block):
    gs = [np.arange(g) for g in grid]
    ls = [np.arange(b) for b in block]
    width, height = grid[0] * block[0], grid[1] * block[1]
    out = np.zeros((grid[2] * block[2], height, width, 15), np.int32)
    for (gz, gy, gx) in itertools.product(gs[2], gs[1], gs[0]):
        for (lz, ly, lx) in itertools.product(ls[2], ls[1], ls[0]):
            g = (gx * block[0] + lx, gy * block[1] + ly, gz * block[2] + lz)
            values = [*g, lx, ly, lz, gx, gy, gz, *block, *grid]
            out[g[2], g[1], g[0]] = values
    return out.reshape(-1)


@pytest.mark.parametrize("grid, block", [
    ((7, 1, 1), (32, 1, 1)), ((5, 1, 1), (12, 1, 1)), ((3, 4, 1), (8, 4, 1)),
    ((2, 3, 2), (4, 3, 2)), ((3, 2, 3), (5, 1, 3)), ((1, 1, 1), (1, 1, 1)), ((4, 3, 1), (1, 1, 1)),
])
@pytest.mark.parametrize("batch_items", [32768, 50, 7, 1])
@pytest.mark.parametrize("with_barrier", [False, True])
def test_builtins_in_every_dimension(grid, block, batch_items, with_barrier):
    n = np.prod(grid) * np.prod(block)
    out = np.full(n * 15, -1, np.int32)
    run(builtins_kernel(with_barrier), {"out": out}, grid=grid, block=block,
        backend=InterpBackend(batch_items), tile_groups=max(1, int(np.prod(grid)) // 3))
    np.testing.assert_array_equal(out, expected(grid, block))
