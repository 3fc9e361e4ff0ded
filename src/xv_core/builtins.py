"""The core's own plugin: built-in providers registered through the same hooks
third parties use (as datasette does with its default plugins)."""

from __future__ import annotations

from xv_core.hookspecs import hookimpl
from xv_core.registry import BusModelSpec


class IdealBus:
    """Transfers take no time: the model for studying compute alone."""

    name = "ideal"

    def duration(self, nbytes: int, bandwidth: float, latency: float) -> float:
        """Seconds one transfer of ``nbytes`` takes alone on a link."""
        return 0.0


@hookimpl
def xv_bus_models() -> list[BusModelSpec]:
    return [BusModelSpec("ideal", IdealBus, "no transfer cost: compute only")]
