"""Entry point of xv_buffer: the ``ram`` VRAM manager and the ``lru`` and ``fifo`` policies."""

from __future__ import annotations

from xv_core import hookimpl
from xv_core.registry import EvictionPolicySpec, VramSpec

from xv_buffer.policies import FIFO, LRU
from xv_buffer.vram import ram_vram_factory


@hookimpl
def xv_vram_managers() -> list[VramSpec]:
    return [VramSpec("ram", ram_vram_factory,
                     "VRAM in host RAM: page-aligned allocation within the declared capacity")]


@hookimpl
def xv_eviction_policies() -> list[EvictionPolicySpec]:
    return [
        EvictionPolicySpec("lru", LRU, "least recently used page is evicted first"),
        EvictionPolicySpec("fifo", FIFO, "page admitted longest ago is evicted first"),
    ]
