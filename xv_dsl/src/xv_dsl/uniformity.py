"""Barriers under divergent control flow (placeholder until the analysis lands)."""

from __future__ import annotations

from xv_dsl.checker import CheckedProgram
from xv_dsl.diagnostics import Reporter


def check_barriers(checked: CheckedProgram, reporter: Reporter) -> None:
    return None
