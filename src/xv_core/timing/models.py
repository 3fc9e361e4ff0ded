"""Bus models: how a link turns bytes into virtual seconds.

A bus model does not run anything itself: it sets the parameters of one of the three ways the
engine (:mod:`xv_core.timing.engine`) can carry bytes over a link:

``ideal``
    the link costs nothing: no latency, no bandwidth limit, no contention.
``fluid``
    SimGrid's flow-level model.  A transfer first waits the route's latency (without loading the
    links), then flows at the rate max-min fairness gives it on every link of its route,
    recomputed whenever a transfer starts or ends.  Consecutive fluid links of a route form one
    flow (cut-through): the slowest share along the way sets its rate.
``fifo``
    store and forward: a link transmits one transfer at a time, in arrival order, each for
    ``size / bandwidth``; the bytes reach the far end ``latency`` later, and only then start on
    the next link.

Models are plain frozen records, so a plugin provides a new one by filling in the numbers
(``BusModel("tcp-cubic", "fluid", latency_factor=...)``) and returning it from
``xv_bus_models``.  The four built-ins are :data:`IDEAL`, :data:`SHARED`, :data:`FIFO` and
:data:`TCP`; ``docs/timing.md`` derives what each computes.
"""

from __future__ import annotations

import math

import attrs

#: How a link carries bytes (see the module docstring).
DISCIPLINES = ("ideal", "fluid", "fifo")

#: SimGrid's LV08 corrections (Velho & Legrand, SIMUTools 2009; SimGrid's "The SimGrid Models"
#: page and ``surf_network_model_init_LegrandVelho``).
LV08_LATENCY_FACTOR = 13.01
LV08_BANDWIDTH_FACTOR = 0.97
LV08_WEIGHT_S = 20537.0
#: The share of a transfer's rate its acknowledgements take on the way back (SimGrid's
#: ``network/crosstraffic``: the reverse route is charged 0.05 of the flow's rate).
LV08_CROSS_TRAFFIC = 0.05
#: SimGrid's default ``network/TCP-gamma``: the largest TCP window, in bytes.
TCP_GAMMA = 4194304.0


def _discipline(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in DISCIPLINES:
        raise ValueError(f"{attribute.name} must be one of {', '.join(DISCIPLINES)}, "
                         f"got {value!r}")


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be zero or more, got {value!r}")


def _gamma(instance: object, attribute: attrs.Attribute[float | None], value: float | None) -> None:
    if value is not None:
        _positive(instance, attribute, value)


@attrs.frozen
class BusModel:
    """The numbers one bus model gives the engine.

    * ``discipline`` — ``"ideal"``, ``"fluid"`` or ``"fifo"``.
    * ``latency_factor`` — a link's latency is multiplied by it (TCP slow start in LV08).
    * ``bandwidth_factor`` — a link's bandwidth is multiplied by it (header overhead in LV08).
    * ``cross_traffic`` — each transfer also loads the reverse direction of its links with this
      fraction of its rate (TCP acknowledgements).  On a half-duplex link both directions are
      one resource, so a lone transfer gets ``bandwidth / (1 + cross_traffic)``.
    * ``tcp_gamma`` — the largest TCP window in bytes, or None: a flow's rate never exceeds
      ``tcp_gamma / (2 * latency)``, ``latency`` being its route's declared (uncorrected)
      latency, as in SimGrid's CM02.
    * ``weight_s`` — None shares a link max-min fairly.  A number makes sharing RTT-unfair as
      SimGrid's LMM does: each flow's share is inversely proportional to its penalty
      ``latency + sum(weight_s / bandwidth)`` over its links (SimGrid's LV08 uses 20537).

    ``fluid`` honours every parameter; ``fifo`` only the two factors; ``ideal`` none.
    """

    name: str
    discipline: str = attrs.field(validator=_discipline)
    description: str = ""
    latency_factor: float = attrs.field(default=1.0, validator=_positive)
    bandwidth_factor: float = attrs.field(default=1.0, validator=_positive)
    cross_traffic: float = attrs.field(default=0.0, validator=_non_negative)
    tcp_gamma: float | None = attrs.field(default=None, validator=_gamma)
    weight_s: float | None = attrs.field(default=None, validator=_gamma)

    def duration(self, nbytes: float, bandwidth: float, latency: float, *,
                 full_duplex: bool = True) -> float:
        """Seconds one transfer of ``nbytes`` takes alone on an otherwise idle link.

        The closed form of what the engine computes for a lone transfer; the scheduler uses it
        for estimates.  ``full_duplex=False`` makes both directions one resource, so
        ``cross_traffic`` competes with the transfer itself (SimGrid's shared links).
        """
        if self.discipline == "ideal":
            return 0.0
        lat = latency * self.latency_factor
        if nbytes <= 0:
            return lat
        rate = self.rate_alone(bandwidth, latency, full_duplex=full_duplex)
        return lat + nbytes / rate

    def rate_alone(self, bandwidth: float, latency: float, *, full_duplex: bool = True) -> float:
        """Bytes/s a lone transfer reaches on a link of ``bandwidth`` and ``latency``."""
        if self.discipline == "ideal":
            return math.inf
        rate = bandwidth * self.bandwidth_factor
        if self.discipline == "fluid":
            if not full_duplex:
                rate /= 1.0 + self.cross_traffic
            if self.tcp_gamma is not None and latency > 0:
                rate = min(rate, self.tcp_gamma / (2.0 * latency))
        return rate


IDEAL = BusModel("ideal", "ideal", "no transfer cost: compute only")
SHARED = BusModel("shared", "fluid",
                  "flow-level model: latency, then max-min fair shares of every link on the route")
FIFO = BusModel("fifo", "fifo",
                "store and forward: one transfer at a time per link, in arrival order")
TCP = BusModel("tcp", "fluid",
               "SimGrid LV08: shared, with latency x13.01, bandwidth x0.97, the TCP window bound "
               "and 5% reverse traffic for acknowledgements",
               latency_factor=LV08_LATENCY_FACTOR, bandwidth_factor=LV08_BANDWIDTH_FACTOR,
               cross_traffic=LV08_CROSS_TRAFFIC, tcp_gamma=TCP_GAMMA)

#: The core's built-in models by name.
BUILTIN_MODELS: dict[str, BusModel] = {m.name: m for m in (IDEAL, SHARED, FIFO, TCP)}
