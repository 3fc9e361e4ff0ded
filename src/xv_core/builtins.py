"""The core's own plugin: built-in providers registered through the same hooks
third parties use (as datasette does with its default plugins)."""

from __future__ import annotations

from xv_core.hookspecs import hookimpl
from xv_core.registry import BusModelSpec, SchedulerSpec
from xv_core.runtime.placement import BUILTIN_POLICIES
from xv_core.timing.models import BUILTIN_MODELS, BusModel


def _factory(model: BusModel):
    """``BusModelSpec.factory``: the model itself, its numbers unchanged (no options yet)."""

    def factory() -> BusModel:
        return model

    return factory


@hookimpl
def xv_bus_models() -> list[BusModelSpec]:
    # ideal, shared, fifo, tcp: docs/timing.md derives what each computes.
    return [BusModelSpec(m.name, _factory(m), m.description) for m in BUILTIN_MODELS.values()]


@hookimpl
def xv_schedulers() -> list[SchedulerSpec]:
    # eft, round-robin, locality: docs/scheduling.md says what each chooses.
    return [SchedulerSpec(name, cls, description)
            for name, (cls, description) in BUILTIN_POLICIES.items()]
