"""Device profiles: how fast a component computes, by a roofline model.

A tile's modelled time comes from the work the backend really counted (:class:`TileWork`):

    time = launch_latency + max(ops / (ops_per_lane_per_s * lanes),
                                (bytes_read + bytes_written) / (mem_bandwidth * lanes / all_lanes))

where ``lanes`` is how many of the component's ``all_lanes`` the tile occupies.  A tile that uses
every lane is exactly the classic roofline (Williams, Waterman & Patterson, CACM 2009): compute-
bound when its arithmetic intensity ``ops / bytes`` exceeds ``peak ops/s / memory bandwidth``,
memory-bound below.  A tile on fewer lanes gets the same fraction of the memory bandwidth, so
tiles running side by side on one component never add up to more bandwidth than it has.

``docs/timing.md`` gives the source of each default number.
"""

from __future__ import annotations

import math
from typing import Any

import attrs


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be zero or more, got {value!r}")


def _lanes(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be a whole number of at least 1, got {value!r}")


@attrs.frozen
class DeviceProfile:
    """What one component can do: ``ops_per_lane_per_s`` operations per second on each of its
    ``lanes``, ``mem_bandwidth`` bytes/s of local memory shared by all lanes, and
    ``launch_latency`` seconds before any tile starts computing."""

    name: str
    ops_per_lane_per_s: float = attrs.field(validator=_positive)
    lanes: int = attrs.field(validator=_lanes)
    mem_bandwidth: float = attrs.field(validator=_positive)
    launch_latency: float = attrs.field(validator=_non_negative)
    description: str = ""
    source: str = ""

    @property
    def peak_ops(self) -> float:
        """Operations per second with every lane busy."""
        return self.ops_per_lane_per_s * self.lanes

    def with_lanes(self, lanes: int) -> DeviceProfile:
        """This profile with ``lanes`` lanes (a ``cpu`` component's ``threads``, say)."""
        return attrs.evolve(self, lanes=lanes)

    def compute_time(self, ops: float, nbytes: float, lanes: int | None = None) -> float:
        """Seconds a tile of ``ops`` operations touching ``nbytes`` bytes takes on ``lanes``
        lanes (all of them by default): the roofline above."""
        used = self.lanes if lanes is None else lanes
        if not 1 <= used <= self.lanes:
            raise ValueError(f"a tile on {self.name!r} can use 1 to {self.lanes} lanes, "
                             f"not {used}")
        compute = ops / (self.ops_per_lane_per_s * used)
        memory = nbytes / (self.mem_bandwidth * used / self.lanes)
        return self.launch_latency + max(compute, memory)

    def tile_time(self, work: Any, lanes: int | None = None) -> float:
        """:meth:`compute_time` of a :class:`~xv_core.runtime.interfaces.TileWork`."""
        return self.compute_time(work.ops, work.bytes_read + work.bytes_written, lanes)

    def ridge_point(self) -> float:
        """Operations per byte above which a full-width tile is compute-bound."""
        return self.peak_ops / self.mem_bandwidth


_GB = 1e9
_MB = 1e6

#: Default profiles of the built-in compute kinds, by kind name.  ``lanes`` is a placeholder the
#: runtime replaces with the component's own count (``threads``, ``workers``) through
#: :meth:`DeviceProfile.with_lanes`.
DEFAULT_DEVICE_PROFILES: dict[str, DeviceProfile] = {
    "cpu": DeviceProfile(
        "cpu", ops_per_lane_per_s=24e9, lanes=4, mem_bandwidth=40 * _GB, launch_latency=20e-6,
        description="one worker thread per lane on a 3 GHz x86-64 core with 8-wide (AVX2) f32 "
                    "SIMD; dual-channel DDR4-3200",
        source="3.0 GHz x 8 f32 lanes x 1 vector op per cycle = 24e9 ops/s per core; DDR4-3200 "
               "(JEDEC JESD79-4): 25.6 GB/s per channel, 2 channels = 51.2 GB/s peak, about 40 "
               "GB/s sustained (STREAM triad reaches 75-80 %); launch: a thread-pool hand-off of "
               "a few tens of microseconds in CPython"),
    "hdd": DeviceProfile(
        "hdd", ops_per_lane_per_s=24e9, lanes=1, mem_bandwidth=200 * _MB,
        launch_latency=12.7e-3,
        description="tiles computed next to a 7200 rpm disk: the data streams from the platter",
        source="compute as one cpu lane; bytes at the disk's 200 MB/s sequential rate and one "
               "seek plus half a turn (8.5 + 4.17 ms) before each tile (link profile hdd-7200)"),
    "net": DeviceProfile(
        "net", ops_per_lane_per_s=24e9, lanes=4, mem_bandwidth=40 * _GB, launch_latency=1e-3,
        description="a remote node (Dask worker) with a cpu like the host's",
        source="node as the cpu profile; launch: Dask's per-task scheduling overhead, 'somewhere "
               "between 200us and 1ms' (Dask best practices), the upper end taken; the bytes "
               "to and from the node cross its link (1gbe), which the bus model times"),
}


def device_profile(kind: str, lanes: int | None = None) -> DeviceProfile:
    """The default profile of component ``kind`` (KeyError if there is none), with ``lanes``."""
    profile = DEFAULT_DEVICE_PROFILES[kind]
    return profile if lanes is None else profile.with_lanes(lanes)
