"""xv_buffer: emulated VRAM for Xenovectra: allocator, paging between tiers, backings,
eviction policies and page traces (see README.md)."""

from xv_buffer.policies import (
    ARC, FIFO, LFU, LRU, POLICIES, S3FIFO, Belady, Clock, EvictionPolicy, next_uses,
)
from xv_buffer.pager import PageMove, Pager
from xv_buffer.vram import Lease, PagedBuffer, RamBuffer, RamVram, RunAllocator, ram_vram_factory

__all__ = ["ARC", "Belady", "Clock", "EvictionPolicy", "FIFO", "LFU", "LRU", "Lease", "POLICIES",
           "PageMove", "PagedBuffer", "Pager", "RamBuffer", "RamVram", "RunAllocator", "S3FIFO",
           "next_uses", "ram_vram_factory"]
