"""Entry point of xv_buffer: the ``ram`` VRAM manager and the eviction policies."""

from __future__ import annotations

from xv_core import hookimpl
from xv_core.registry import EvictionPolicySpec, VramSpec

from xv_buffer.policies import ARC, FIFO, LFU, LRU, S3FIFO, Belady, Clock
from xv_buffer.vram import ram_vram_factory


@hookimpl
def xv_vram_managers() -> list[VramSpec]:
    return [VramSpec("ram", ram_vram_factory,
                     "VRAM in host RAM, paged to host RAM, files and cache tiers")]


@hookimpl
def xv_eviction_policies() -> list[EvictionPolicySpec]:
    return [
        EvictionPolicySpec("lru", LRU, "least recently used page is evicted first"),
        EvictionPolicySpec("lfu", LFU, "least frequently used page is evicted first"),
        EvictionPolicySpec("fifo", FIFO, "page admitted longest ago is evicted first"),
        EvictionPolicySpec("clock", Clock, "second chance: a referenced page gets another round"),
        EvictionPolicySpec("arc", ARC, "adaptive replacement: balances recency and frequency"),
        EvictionPolicySpec("s3fifo", S3FIFO, "small, main and ghost FIFO queues (S3-FIFO)"),
        EvictionPolicySpec("belady", Belady,
                           "offline optimum for recorded traces (evicts the page used "
                           "furthest in the future)"),
    ]
