"""``vgpucc``: compile a ``.xvk`` kernel source into a ``.xvir`` IR file.

::

    vgpucc saxpy.xvk                 # writes saxpy.xvir next to the source
    vgpucc saxpy.xvk -o out.xvir     # or where -o says
    vgpucc saxpy.xvk --emit ir       # prints the readable IR instead

Source errors print every diagnostic (``file:line:col: message``, the line,
a caret, a hint) and exit 1; ``XV_DEBUG=1`` shows tracebacks.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path

import typer

from xv_core.errors import XvError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="Compile .xvk kernel sources to .xvir IR files.")


class Emit(str, Enum):
    xvir = "xvir"
    ir = "ir"


def _debug() -> bool:
    return os.environ.get("XV_DEBUG", "") not in ("", "0")


@app.command()
def compile(
    source: Path = typer.Argument(..., help="The .xvk kernel source."),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="Where to write the .xvir (default: next to SOURCE)."),
    emit: Emit = typer.Option(Emit.xvir, "--emit",
                              help="xvir writes the IR file; ir prints its readable text form."),
) -> None:
    """Compile SOURCE into IR."""
    from xv_core import ir
    from xv_dsl import compile_file

    try:
        module = compile_file(source)
        if emit is Emit.ir:
            typer.echo(ir.module_text(module), nl=False)
            return
        target = output if output is not None else source.with_suffix(".xvir")
        try:
            ir.save(module, target)
        except OSError as exc:
            raise XvError(f"cannot write {target}: {exc.strerror}", where=str(target)) from None
        typer.echo(f"wrote {target} ({len(module.kernels)} kernel"
                   f"{'s' if len(module.kernels) != 1 else ''}: "
                   f"{', '.join(k.name for k in module.kernels)})")
    except XvError as exc:
        if _debug():
            raise
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except Exception as exc:  # a compiler bug: say so in one line unless debugging
        if _debug():
            raise
        typer.echo(f"internal error: {type(exc).__name__}: {exc} (this is a bug in vgpucc; "
                   "run with XV_DEBUG=1 for the traceback and report it)", err=True)
        raise typer.Exit(2) from None


def main() -> None:
    app(prog_name="vgpucc")


if __name__ == "__main__":
    sys.exit(main())
