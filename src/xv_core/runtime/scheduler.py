"""Splitting a dispatch into tiles and placing tiles on components.

First cut: contiguous tiles of whole workgroups, placed round-robin over the
compute components.  Tiles are sized so every worker gets several (for
balance) while each stays large enough for a vectorising backend to batch
many work items into each operation.
"""

from __future__ import annotations

from collections.abc import Sequence

from xv_core.runtime.interfaces import Launch, Tile

#: Work items a tile aims for at least, so batching backends amortise their overhead.
MIN_TILE_ITEMS = 1 << 16
#: Tiles per worker a dispatch aims for at least, so uneven tiles even out.
TILES_PER_WORKER = 4


def make_tiles(launch: Launch, workers: int) -> list[Tile]:
    """Deterministic tiles covering every workgroup of ``launch`` once, in order."""
    groups = launch.groups
    by_balance = max(1, workers) * TILES_PER_WORKER
    by_size = max(1, (groups * launch.group_items) // MIN_TILE_ITEMS)
    count = max(1, min(groups, by_balance, by_size))
    base, extra = divmod(groups, count)
    tiles, first = [], 0
    for i in range(count):
        n = base + (1 if i < extra else 0)
        tiles.append(Tile(i, launch, first, n))
        first += n
    return tiles


def place_round_robin(tiles: Sequence[Tile], components: Sequence[str]) -> list[str]:
    """The component each tile runs on: in turn, in fabric order."""
    return [components[t.index % len(components)] for t in tiles]
