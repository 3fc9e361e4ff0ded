"""The events passed to the ``xv_on_*`` hooks.  Plain frozen records."""

from __future__ import annotations

import attrs


@attrs.frozen
class DispatchEvent:
    phase: str  # "start" or "end"
    kernel: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    tiles: int
    wall_s: float = 0.0  # on "end": wall time of the whole dispatch


@attrs.frozen
class TileEvent:
    kernel: str
    tile: int
    component: str
    first_group: int
    group_count: int
    wall_s: float
    ops: int = 0
    bytes_read: int = 0
    bytes_written: int = 0


@attrs.frozen
class TransferEvent:
    link: str
    src: str
    dst: str
    nbytes: int
    buffer: str | None = None


@attrs.frozen
class PageEvent:
    kind: str  # "fault", "prefetch" (from the VRAM's prefetch worker), "writeback" or "evict"
    buffer: str
    page: int
    tier: str
