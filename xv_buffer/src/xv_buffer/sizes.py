"""Byte sizes in xv_buffer: read with the core's parser, printed in its spelling."""

from __future__ import annotations

from typing import Any

from xv_core.config.units import format_size, parse_size

__all__ = ["format_size", "to_bytes"]


def to_bytes(value: Any, what: str) -> int:
    """``value`` (an int of bytes, or a string such as ``"256MiB"``) as bytes.

    The core structures ``vram.capacity`` into an int already; strings are
    accepted so a config object built by hand (tests, scripts) works too.
    Raises ValueError naming ``what``.
    """
    try:
        return parse_size(value)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
