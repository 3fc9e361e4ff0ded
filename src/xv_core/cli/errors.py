"""The CLI's one error boundary.

Every command runs under :func:`handle_errors`: a Xenovectra error prints its
message (which carries its location) and exits 1; anything else is a bug and
says so in one line.  ``XV_DEBUG=1`` lets the traceback through instead.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from xv_core.errors import XvError

F = TypeVar("F", bound=Callable[..., Any])


def debug_enabled() -> bool:
    return os.environ.get("XV_DEBUG", "") not in ("", "0")


def handle_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except XvError as exc:
            if debug_enabled():
                raise
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(1) from None
        except BrokenPipeError:
            # The reader of our output went away (`xv ... | head`): not an error of ours.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(130) from None
        except Exception as exc:
            if debug_enabled():
                raise
            print(f"internal error: {type(exc).__name__}: {exc} "
                  f"(this is a bug in Xenovectra; run with XV_DEBUG=1 for the traceback and report it)",
                  file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
