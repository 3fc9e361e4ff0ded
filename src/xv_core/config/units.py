"""Sizes in bytes as people write them: ``256MiB``, ``64KiB``, ``1GB``, ``4096``.

Binary units (``KiB MiB GiB TiB``) are powers of 1024, decimal units (``KB MB GB TB``) powers of
1000, as the IEC and SI define them; ``B`` is one byte.  Units are case-sensitive because ``Mb``
(megabits) and ``MB`` differ; a near miss such as ``256mib`` is refused with the right spelling as
the hint rather than guessed.

``Size`` marks an attrs field that holds bytes: the config converter accepts ``256MiB`` or a plain
integer for it.  Plugin option classes may use it too (``cache: Size = 1 << 30``).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import NewType

#: An int of bytes that config files may write with a unit (``"256MiB"``).
Size = NewType("Size", int)

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

UNITS: dict[str, int] = {
    "B": 1,
    "KiB": KiB, "MiB": MiB, "GiB": GiB, "TiB": TiB,
    "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
}

#: The largest size a document may give: 2^60 bytes (1 EiB), beyond any machine's memory or
#: file system, and far from the 64-bit limits of the arrays and files sized from it.
MAX_SIZE = 1 << 60

_SIZE = re.compile(r"\s*(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[A-Za-z]*)\s*")


class SizeError(ValueError):
    """A size that cannot be read; ``message`` says why and ``hint`` what to write instead."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


def _unit_list() -> str:
    return ", ".join(UNITS)


def parse_size(value: object) -> int:
    """Bytes in ``value``: a non-negative int, or a string such as ``"256MiB"``, ``"1.5GiB"``,
    ``"4096"``.

    Raises :class:`SizeError` (a ``ValueError``) with a message naming the value and the
    accepted units for anything else: negative numbers, unknown units, fractions of a byte,
    booleans and floats (write ``1.5GiB``, not ``1.5``).
    """
    if isinstance(value, bool):
        raise SizeError(f"expected a size, got {str(value).lower()}",
                        hint="write a number of bytes or a size like 256MiB")
    if isinstance(value, int):
        if value < 0:
            raise SizeError(f"a size cannot be negative, got {value}")
        return _bounded(value, value)
    if isinstance(value, float):
        spelled = f"{value:g}"  # 1.5 -> 1.5GiB; not 1e+30, nan or inf, which no size reads
        hint = (f"write the unit, like {spelled}GiB, or an integer" if spelled[-1].isdigit()
                and "e" not in spelled else "write a number and a unit, like 1.5GiB")
        raise SizeError(f"expected a whole number of bytes or a size with a unit, got {value!r}",
                        hint=hint)
    if not isinstance(value, str):
        raise SizeError(f"expected a size like 256MiB, got {type(value).__name__}")
    text = value.strip()
    if text.startswith("-"):
        raise SizeError(f"a size cannot be negative, got {value!r}")
    match = _SIZE.fullmatch(text)
    if match is None:
        raise SizeError(f"{value!r} is not a size",
                        hint=f"write a number and a unit ({_unit_list()}), like 256MiB")
    number, unit = match["number"], match["unit"] or "B"
    if unit not in UNITS:
        prefix = unit.lower().removesuffix("ib").removesuffix("b").upper()
        if prefix in ("K", "M", "G", "T"):
            hint = f"did you mean {number}{prefix}iB (binary) or {number}{prefix}B (decimal)?"
        else:
            hint = f"units: {_unit_list()}"
        raise SizeError(f"unknown size unit {unit!r} in {value!r}", hint=hint)
    nbytes = Fraction(number) * UNITS[unit]
    if nbytes.denominator != 1:
        raise SizeError(f"{value!r} is not a whole number of bytes",
                        hint="use a smaller unit" if unit != "B" else None)
    return _bounded(int(nbytes), value)


def _bounded(nbytes: int, value: object) -> int:
    if nbytes > MAX_SIZE:
        raise SizeError(f"{value!r} is more than any memory or file holds (at most "
                        f"{format_size(MAX_SIZE)}, 2^60 bytes)")
    return nbytes


def format_size(nbytes: int) -> str:
    """The shortest exact binary spelling of ``nbytes``: ``268435456`` -> ``"256MiB"``,
    ``1000`` -> ``"1000B"``; the inverse of :func:`parse_size` for those strings."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        scale = UNITS[unit]
        if nbytes and nbytes % scale == 0:
            return f"{nbytes // scale}{unit}"
    return f"{nbytes}B"
