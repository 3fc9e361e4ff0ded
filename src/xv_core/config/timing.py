"""The timing keys of a fabric: rates, durations and a component's ``timing:`` overrides.

``docs/fabric.md`` documents the keys; :mod:`xv_core.config.fabric` reads them with the hooks
registered here.  Rates are bytes per second (``40GB``, ``40GB/s``, ``125000000``), durations
seconds (``20us``, ``1.5ms``, ``0.01``).
"""

from __future__ import annotations

import re
from typing import Any, NewType

import attrs

from xv_core.config.convert import Invalid
from xv_core.config.problems import describe
from xv_core.config.units import UNITS

#: Bytes per second, written ``40GB``, ``40GB/s`` or as a number.
Rate = NewType("Rate", float)
#: Seconds, written ``20us``, ``1.5ms``, ``2s`` or as a number of seconds.
Duration = NewType("Duration", float)
#: Operations per second, written ``24e9``, ``24G`` or as a number (YAML 1.1 reads ``24e9``
#: as a string: it is accepted here).
Throughput = NewType("Throughput", float)

#: Units of durations, as the divisor that turns them into seconds (dividing keeps ``20us``
#: exactly 2e-05, where multiplying by 1e-6 would not).
DURATION_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "µs": 1e6, "ns": 1e9}
_NUMBER = r"(?P<number>[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)"
_RATE = re.compile(rf"\s*{_NUMBER}\s*(?P<unit>[A-Za-z]*)\s*(?P<per>/\s*s)?\s*")
_DURATION = re.compile(rf"\s*{_NUMBER}\s*(?P<unit>[A-Za-zµ]*)\s*")
_THROUGHPUT = re.compile(rf"\s*{_NUMBER}\s*(?P<unit>[kMGT]?)\s*")
_PREFIXES = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}

#: The clocks a fabric can ask for.
CLOCKS = ("modelled", "measured")
#: The bus model of links that name none, when the fabric names none either.
DEFAULT_BUS = "shared"


def parse_rate(value: object) -> float:
    """Bytes per second in ``value``: a positive number, or a size with an optional ``/s``
    (``40GB``, ``1.5GiB/s``).  Raises :class:`Invalid` with a hint otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Invalid(f"expected a rate like 40GB/s, got {describe(value)}")
    if isinstance(value, str):
        match = _RATE.fullmatch(value)
        if match is None:
            raise Invalid(f"{value!r} is not a rate", "write a number and a unit, like 40GB/s")
        unit = match["unit"] or "B"
        if unit not in UNITS:
            raise Invalid(f"unknown unit {unit!r} in rate {value!r}",
                          f"use bytes per second: {', '.join(UNITS)} (then optionally /s)")
        rate = float(match["number"]) * UNITS[unit]
    else:
        rate = float(value)
    if not rate > 0 or rate == float("inf"):
        raise Invalid(f"a rate must be more than 0, got {value!r}")
    return rate


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a number of seconds (0 or more) or a number and a unit
    (``s ms us ns``).  Raises :class:`Invalid` with a hint otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Invalid(f"expected a duration like 20us, got {describe(value)}")
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match is None:
            raise Invalid(f"{value!r} is not a duration",
                          "write a number and a unit (s, ms, us, ns), like 20us")
        unit = match["unit"] or "s"
        if unit not in DURATION_UNITS:
            raise Invalid(f"unknown unit {unit!r} in duration {value!r}",
                          "use s, ms, us or ns")
        seconds = float(match["number"]) / DURATION_UNITS[unit]
    else:
        seconds = float(value)
    if not seconds >= 0 or seconds == float("inf"):
        raise Invalid(f"a duration must be 0 or more, got {value!r}")
    return seconds


def parse_throughput(value: object) -> float:
    """Operations per second in ``value``: a positive number, or a number with an optional
    ``k M G T`` prefix (``24e9``, ``24G``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Invalid(f"expected operations per second like 24e9, got {describe(value)}")
    if isinstance(value, str):
        match = _THROUGHPUT.fullmatch(value)
        if match is None:
            raise Invalid(f"{value!r} is not a number of operations per second",
                          "write a number, optionally with k, M, G or T, like 24G or 24e9")
        ops = float(match["number"]) * _PREFIXES[match["unit"]]
    else:
        ops = float(value)
    if not 0 < ops < float("inf"):
        raise Invalid(f"operations per second must be more than 0, got {value!r}")
    return ops


def _structure_throughput(value: object, _type: object) -> float:
    return parse_throughput(value)


def _structure_rate(value: object, _type: object) -> float:
    return parse_rate(value)


def _structure_duration(value: object, _type: object) -> float:
    return parse_duration(value)


def add_timing_hooks(conv: Any) -> Any:
    """Teach a config converter (:func:`~xv_core.config.convert.make_converter`) to read
    :data:`Rate` and :data:`Duration` fields."""
    conv.register_structure_hook(Rate, _structure_rate)
    conv.register_structure_hook(Duration, _structure_duration)
    conv.register_structure_hook(Throughput, _structure_throughput)
    return conv


def _device_profile(_inst: object, _attribute: attrs.Attribute, value: str | None) -> None:
    from xv_core.timing.devices import DEFAULT_DEVICE_PROFILES

    if value is not None and value not in DEFAULT_DEVICE_PROFILES:
        known = ", ".join(DEFAULT_DEVICE_PROFILES)
        from xv_core.config.problems import did_you_mean

        raise Invalid(f"unknown device profile {value!r} (known: {known})",
                      did_you_mean(value, list(DEFAULT_DEVICE_PROFILES)))


#: The most lanes a component may have (the model keeps a clock per lane).
MAX_LANES = 65536


def _lanes(_inst: object, _attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and value < 1:
        raise Invalid(f"lanes must be at least 1, got {value}")
    if value is not None and value > MAX_LANES:
        raise Invalid(f"lanes must be at most {MAX_LANES}, got {value}")


@attrs.frozen
class DeviceTiming:
    """A component's ``timing:`` key: how the modelled fabric times its tiles.

    ``profile`` names the device profile to start from (``cpu``, ``hdd``, ``net``; default: the
    one of the component's kind, or ``cpu`` for kinds without one); the other keys override its
    numbers.  ``lanes`` defaults to the component's ``threads`` or ``workers`` when it sets them
    (else the profile's).
    """

    profile: str | None = attrs.field(default=None, validator=_device_profile)
    lanes: int | None = attrs.field(default=None, validator=_lanes)
    ops_per_lane_per_s: Throughput | None = None
    mem_bandwidth: Rate | None = None
    launch_latency: Duration | None = None


__all__ = ["CLOCKS", "DEFAULT_BUS", "DURATION_UNITS", "DeviceTiming", "Duration", "Rate",
           "Throughput", "add_timing_hooks", "parse_duration", "parse_rate", "parse_throughput"]
