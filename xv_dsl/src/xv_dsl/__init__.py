"""The .xvk kernel language: parser, checker and lowering to the Xenovectra IR.

``compile_source(text, path)`` and ``compile_file(path)`` return a verified
:class:`xv_core.ir.Module` or raise :class:`xv_core.errors.SourceError`
carrying every problem found, each located in the source.
"""

from __future__ import annotations

import os
from pathlib import Path

from xv_core.errors import Diagnostic, SourceError, SourceSpan
from xv_core.ir import Module

__all__ = ["compile_file", "compile_source"]


def compile_source(text: str, path: str = "<source>") -> Module:
    """Compile kernel source ``text`` (read from ``path``, used in messages)."""
    from xv_core.ir.verify import ensure_recursion_headroom
    from xv_dsl import checker, lower, parser, uniformity
    from xv_dsl.diagnostics import Reporter

    # The passes walk the program recursively, calls inlined (up to MAX_CALL_DEPTH deep):
    # the same headroom whether or not a verifier already ran in this process.
    ensure_recursion_headroom()
    # As a file is read: a byte-order mark is not source, and any line end is a '\n'.
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    try:
        program = parser.parse(text, path)
        reporter = Reporter(text, path)
        checked = checker.check(program, text, reporter)
        reporter.raise_if_any()
        uniformity.check_barriers(checked, reporter)
        reporter.raise_if_any()
        return lower.lower(checked)
    except RecursionError:
        # Nesting is bounded by the parser; this is a last line of defence.
        raise SourceError([Diagnostic(SourceSpan(path, 1, 1), "the program nests too deeply",
                                      "split deeply nested expressions into statements")],
                          text) from None


def compile_file(path: str | os.PathLike[str]) -> Module:
    """Read and compile a ``.xvk`` file."""
    from xv_dsl.parser import MAX_SOURCE_CHARS

    p = Path(path)
    try:
        if p.exists() and not p.is_file():  # a folder, or a device or pipe read without end
            raise SourceError([Diagnostic(SourceSpan(str(p), 1, 1),
                                          "cannot read the file: not a regular file")])
        with p.open("rb") as fh:  # at most one byte past the limit: no unbounded read
            data = fh.read(4 * MAX_SOURCE_CHARS + 4)
        if len(data) > 4 * MAX_SOURCE_CHARS + 3:
            raise SourceError([Diagnostic(SourceSpan(str(p), 1, 1),
                                          f"source is larger than {MAX_SOURCE_CHARS} "
                                          f"characters")])
        text = data.decode("utf-8-sig")  # a byte-order mark is not part of the source
    except UnicodeDecodeError as exc:
        raise SourceError([Diagnostic(SourceSpan(str(p), 1, 1),
                                      f"the file is not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise SourceError([Diagnostic(SourceSpan(str(p), 1, 1),
                                      f"cannot read the file: {exc.strerror}")]) from None
    return compile_source(text, str(p))
