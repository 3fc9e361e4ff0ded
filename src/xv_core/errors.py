"""The small family of errors Xenovectra shows to people.

Every error carries a location a person can act on: a source position
(``file:line:col`` with the line and a caret), a ``$.path`` into a YAML
document, or the name of the thing that failed.  The CLI prints
``str(error)`` and nothing else unless ``XV_DEBUG=1``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence

import attrs


@attrs.frozen
class SourceSpan:
    """A position in a source file: 1-based line and column."""

    path: str
    line: int
    col: int
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


class XvError(Exception):
    """Base of every error Xenovectra raises on purpose.

    ``message`` says what went wrong, ``where`` where (a span, a ``$.path``
    or a name) and ``hint`` what to try next.
    """

    def __init__(self, message: str, *, where: object | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where is not None else self.message
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class ConfigError(XvError):
    """A fabric or job document is wrong; ``where`` is the file and ``$.path``.

    One ConfigError may carry several problems, one line each.
    """

    def __init__(self, problems: Sequence[str], *, source: str | None = None):
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        if not self.source:
            return "\n".join(self.problems)
        # A problem that starts with its position ("3:42: ...") reads file:3:42:, as compilers
        # and editors expect.
        return "\n".join(f"{self.source}:{p}" if _POSITION.match(p) else f"{self.source}: {p}"
                          for p in self.problems)


_POSITION = re.compile(r"\d+:\d+: ")


class PluginError(XvError):
    """A plugin could not be loaded, or two plugins claim the same name."""


class UnknownNameError(XvError):
    """A kind, backend, policy, bus model or front end that no plugin provides."""


class IRError(XvError):
    """A ``.xvir`` file or IR module is malformed; ``where`` names file and node path."""


class KernelRuntimeError(XvError):
    """A kernel did something illegal while running (out of bounds, division by zero)."""


class JobError(XvError):
    """A job cannot run as written (arguments, shapes, files)."""


class TileCancelled(XvError):
    """A tile stopped before its end because its dispatch was interrupted (see
    :meth:`xv_core.runtime.interfaces.PreparedKernel`'s optional ``cancel``)."""

    @classmethod
    def of(cls, kernel: str) -> TileCancelled:
        return cls(f"kernel {kernel!r}: the tile was stopped (its dispatch was interrupted)")


def closest_name(word: object, choices: Iterable[str]) -> str | None:
    """The one of ``choices`` a person most likely meant by ``word`` (for a "did you mean"
    hint), or None: the same name in another case first (``F32`` -> ``f32``), else the closest
    spelling (``difflib``, cutoff 0.6)."""
    names = sorted(set(choices))
    text = str(word)
    same = [n for n in names if n.lower() == text.lower()]
    if same:
        return same[0]
    close = difflib.get_close_matches(text, names, n=1)
    return close[0] if close else None


def _caret_block(source_line: str, col: int, end_col: int | None) -> str:
    width = max(1, (end_col or col + 1) - col)
    # Tabs are kept so the caret lines up under the same characters.
    pad = "".join("\t" if ch == "\t" else " " for ch in source_line[: col - 1])
    return f"    {source_line}\n    {pad}{'^' * width}"


@attrs.frozen
class Diagnostic:
    """One located problem in a source file."""

    span: SourceSpan
    message: str
    hint: str | None = None

    def render(self, source_text: str | None) -> str:
        text = f"{self.span}: {self.message}"
        if source_text is not None:
            # Lines as the lexers count them: split at '\n' only (str.splitlines also splits
            # at form feeds, '\x85', '\u2028', ..., which would shift the caret's line).
            lines = source_text.split("\n")
            if 1 <= self.span.line <= len(lines):
                text += "\n" + _caret_block(lines[self.span.line - 1], self.span.col, self.span.end_col)
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class SourceError(XvError):
    """One or more located problems in a kernel source (syntax or types)."""

    def __init__(self, diagnostics: Iterable[Diagnostic], source_text: str | None = None):
        self.diagnostics = list(diagnostics)
        self.source_text = source_text
        first = self.diagnostics[0] if self.diagnostics else None
        super().__init__(first.message if first else "invalid source", where=first.span if first else None)

    def __str__(self) -> str:
        return "\n".join(d.render(self.source_text) for d in self.diagnostics)
