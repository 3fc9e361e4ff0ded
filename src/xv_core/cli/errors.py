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
            print(unexpected_message(exc), file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def unexpected_message(exc: BaseException) -> str:
    """The one line for an exception nobody raised on purpose: whose bug it is -- an installed
    plugin's, when the innermost frame of the traceback in either the core or a plugin is the
    plugin's (frames of Python's and other libraries' code are passed over), else
    Xenovectra's -- with the notes the runtime added (what was being done)."""
    what = f"{type(exc).__name__}: {exc}"
    notes = [n for n in getattr(exc, "__notes__", ()) if isinstance(n, str)]
    context = f"; {'; '.join(notes)}" if notes else ""
    culprit = _plugin_frame(exc)
    if culprit is None:
        return (f"internal error: {what}{context} (this is a bug in Xenovectra; run with "
                f"XV_DEBUG=1 for the traceback and report it)")
    info, filename, line, function = culprit
    origin = f" ({info.distribution} {info.version})" if info.distribution != "?" else ""
    return (f"error: plugin {info.name!r}{origin} failed: {what}, "
            f"at {filename}:{line} in {function}{context} (hint: this is a bug in that plugin, "
            f"not in your fabric or job: report it to its authors; XV_DEBUG=1 shows the "
            f"traceback)")


def _plugin_frame(exc: BaseException) -> tuple[Any, str, int, str] | None:
    """(plugin, file, line, function) of the plugin code that raised ``exc``, or None."""
    from xv_core.plugins import plugin_packages

    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    packages = None
    for tb in reversed(frames):
        module = tb.tb_frame.f_globals.get("__name__")
        top = module.partition(".")[0] if isinstance(module, str) else ""
        if top == "xv_core":
            return None
        if packages is None:
            packages = plugin_packages()
        info = packages.get(top)
        if info is not None:
            code = tb.tb_frame.f_code
            return info, code.co_filename, tb.tb_lineno, code.co_name
    return None
