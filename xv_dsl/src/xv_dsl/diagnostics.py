"""Collecting located problems and turning them into one SourceError.

The parser and the checker report through a :class:`Reporter`; a phase
ends by calling :meth:`Reporter.raise_if_any`, so a person sees every
problem found, each as ``file:line:col: message``, the source line, a caret
and a hint.
"""

from __future__ import annotations

from collections.abc import Iterable

from xv_core.errors import Diagnostic, SourceError, SourceSpan, closest_name

#: More problems than this in one file are summarised, not listed.
MAX_DIAGNOSTICS = 50


class Reporter:
    """The problems of one source file, in the order they were found."""

    def __init__(self, text: str, path: str):
        self.text = text
        self.path = path
        self.diagnostics: list[Diagnostic] = []
        self._seen: set[tuple[int, int, str]] = set()

    def error(self, span: SourceSpan, message: str, hint: str | None = None) -> None:
        key = (span.line, span.col, message)
        if key in self._seen:  # the same problem reached twice (e.g. a function checked twice)
            return
        self._seen.add(key)
        self.diagnostics.append(Diagnostic(span, message, hint))

    def __bool__(self) -> bool:
        return bool(self.diagnostics)

    def raise_if_any(self) -> None:
        if not self.diagnostics:
            return
        diags = sorted(self.diagnostics, key=lambda d: (d.span.line, d.span.col))
        if len(diags) > MAX_DIAGNOSTICS:
            rest = len(diags) - MAX_DIAGNOSTICS
            last = diags[MAX_DIAGNOSTICS - 1].span
            diags = diags[:MAX_DIAGNOSTICS] + [
                Diagnostic(SourceSpan(last.path, last.line, last.col),
                           f"{rest} more problems not shown")
            ]
        raise SourceError(diags, self.text)


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``name`` (a likely misspelling), or None."""
    return closest_name(name, candidates)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    best = closest(name, candidates)
    return f"did you mean '{best}'?" if best else None
