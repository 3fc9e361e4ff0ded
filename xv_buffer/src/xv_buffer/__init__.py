"""xv_buffer: emulated VRAM for Xenovectra (allocator and eviction policies).

See README.md.  Paging between tiers and persistent backing arrive with issue 5.
"""

from xv_buffer.policies import FIFO, LRU, POLICIES, EvictionPolicy
from xv_buffer.vram import RamBuffer, RamVram, RunAllocator, ram_vram_factory

__all__ = ["EvictionPolicy", "FIFO", "LRU", "POLICIES", "RamBuffer", "RamVram", "RunAllocator",
           "ram_vram_factory"]
