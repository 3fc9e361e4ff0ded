"""Weighted max-min fair rates by progressive filling: the plain reference.

The engine solves the same problem incrementally, on classes of identical flows
(:mod:`xv_core.timing.engine`); this function is the textbook statement, flow by flow, that
tests compare it with.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import attrs


@attrs.frozen
class Flow:
    """One flow: ``terms`` maps each resource it loads to its coefficient (1 on its own path,
    0.05 for TCP acknowledgements on the way back, ...); ``bound`` caps its rate; ``penalty``
    weighs its share (rate = level / penalty)."""

    terms: Mapping[Hashable, float]
    bound: float = math.inf
    penalty: float = 1.0


def maxmin_rates(capacities: Mapping[Hashable, float], flows: Sequence[Flow]) -> list[float]:
    """The rate of each flow such that no resource carries more than its capacity
    (sum of coefficient x rate), no flow exceeds its bound, and no flow's level (rate x penalty)
    can grow without lowering a level that is not larger: progressive filling raises every
    unfixed flow's level together until a resource saturates or a bound is met, fixes the flows
    that stopped, and repeats."""
    rates: list[float | None] = [None] * len(flows)
    remaining = dict(capacities)
    while any(rate is None for rate in rates):
        level = math.inf
        stop: list[int] = []
        for resource, capacity in remaining.items():
            weight = sum(f.terms[resource] / f.penalty for i, f in enumerate(flows)
                         if rates[i] is None and resource in f.terms)
            if weight > 0:
                candidate = max(capacity, 0.0) / weight
                if candidate < level:
                    level = candidate
                    stop = [i for i, f in enumerate(flows)
                            if rates[i] is None and resource in f.terms]
        for i, f in enumerate(flows):
            if rates[i] is None and f.bound * f.penalty < level:
                level = f.bound * f.penalty
                stop = [i]
        if not stop:  # flows that load no resource and have no bound
            raise ValueError("a flow with no resource and no bound has no finite rate")
        for i in stop:
            rate = rates[i] = level / flows[i].penalty
            for resource, coef in flows[i].terms.items():
                remaining[resource] -= coef * rate
    return [float(r) for r in rates]  # type: ignore[arg-type]
