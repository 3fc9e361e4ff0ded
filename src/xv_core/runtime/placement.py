"""Scheduling policies: which component each tile of a dispatch runs on.

The runtime places a dispatch's tiles one at a time, in tile order.  For each tile it offers
the policy one :class:`Candidate` per compute component of the fabric, in fabric order, holding
what the modelled fabric expects if the tile ran there: when the data it reads would be there
(transfers from where its pages live, over the links between, as the timing engine estimates
them), when a lane would be free, how long the compute would take (the device profile's roofline
on the tile's estimated work) and so when it would finish.  The policy returns the index of the
candidate it chooses; the runtime then commits the tile there (its transfers start, the
component's lanes and the links are booked) before asking about the next tile.

Policies are plugins: ``xv_schedulers`` returns :class:`~xv_core.registry.SchedulerSpec` entries
whose ``factory()`` builds a policy, once per fabric.  The core ships:

* ``eft`` — earliest finish time: the candidate that would finish first (HEFT's processor
  selection; StarPU's ``dmda``, which adds expected transfer time to expected start and length);
* ``round-robin`` — tile ``i`` on component ``i mod n``, whatever the cost;
* ``locality`` — where most of the bytes the tile touches already are (fewest bytes moved),
  the earliest finish among equals.

``docs/scheduling.md`` describes them with the estimates behind a candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs

from xv_core.runtime.interfaces import Tile


@attrs.frozen
class Candidate:
    """What the model expects of one tile on one component (times in virtual seconds).

    ``ready_s``: when every byte the tile reads would be on the component (and what it waits
    for has finished); ``start_s``: when it would start (ready and a lane free); ``compute_s``:
    its estimated compute time there; ``finish_s`` = ``start_s`` + ``compute_s``.
    ``local_bytes`` of the tile's footprint are already where the component can use them,
    ``moved_bytes`` would have to be transferred, taking ``transfer_s`` (estimated, one after
    the other on busy links).
    """

    component: str
    kind: str
    ready_s: float
    start_s: float
    compute_s: float
    finish_s: float
    local_bytes: int
    moved_bytes: int
    transfer_s: float


class SchedulingPolicy(Protocol):
    """What a scheduling policy's factory returns."""

    name: str

    def choose(self, tile: Tile, candidates: Sequence[Candidate]) -> int:
        """The index in ``candidates`` (one per compute component, in fabric order) of the
        component ``tile`` runs on.  Must depend only on its arguments (and the policy's own
        state), never on wall time, so that runs are deterministic."""
        ...


class EarliestFinish:
    """``eft``: the earliest estimated finish; ties go to fewer bytes moved, then fabric order."""

    name = "eft"

    def choose(self, tile: Tile, candidates: Sequence[Candidate]) -> int:
        if len(candidates) == 1:
            return 0
        return min(range(len(candidates)),
                   key=lambda i: (candidates[i].finish_s, candidates[i].moved_bytes, i))


class RoundRobin:
    """``round-robin``: tile ``i`` of a dispatch on component ``i mod n``, in fabric order."""

    name = "round-robin"

    def choose(self, tile: Tile, candidates: Sequence[Candidate]) -> int:
        return tile.index % len(candidates)


class Locality:
    """``locality``: run where the data is.  The candidate that moves the fewest bytes; among
    those, the earliest finish; then fabric order."""

    name = "locality"

    def choose(self, tile: Tile, candidates: Sequence[Candidate]) -> int:
        if len(candidates) == 1:
            return 0
        return min(range(len(candidates)),
                   key=lambda i: (candidates[i].moved_bytes, candidates[i].finish_s, i))


#: The core's policies, by name (registered through ``xv_schedulers`` by the core's plugin).
BUILTIN_POLICIES: dict[str, tuple[type, str]] = {
    "eft": (EarliestFinish, "earliest estimated finish time, transfers included (HEFT, "
                            "StarPU dmda)"),
    "round-robin": (RoundRobin, "tile i on compute component i mod n"),
    "locality": (Locality, "where the tile's bytes already are; earliest finish among equals"),
}

#: The policy a fabric without ``scheduler:`` uses.
DEFAULT_POLICY = "eft"

__all__ = ["BUILTIN_POLICIES", "Candidate", "DEFAULT_POLICY", "EarliestFinish", "Locality",
           "RoundRobin", "SchedulingPolicy"]
