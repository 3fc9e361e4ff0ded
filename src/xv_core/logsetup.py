"""structlog configuration: readable lines by default, JSON lines on request.

Logs go to standard error so that command output on standard out stays clean.
"""

from __future__ import annotations

import logging
import sys

import structlog

LEVELS = ("debug", "info", "warning", "error")


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing, so a logger
    configured once keeps working when stderr is swapped (test runners, daemons)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(fmt: str = "console", level: str = "warning") -> None:
    """Configure structlog once per process (called by the CLI; library users
    may call it too, or configure structlog themselves)."""
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if fmt == "json" else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),
        cache_logger_on_first_use=False,
    )


def enabled(level: int = logging.DEBUG) -> bool:
    """Whether a log call at ``level`` may emit anything: False only when structlog is
    configured with a filtering bound logger set above it (as :func:`configure` does).  A
    hot path tests this before building a log call's arguments: a filtered call still costs
    microseconds through structlog's lazy logger proxy."""
    wrapper = structlog.get_config().get("wrapper_class")
    try:
        return bool(wrapper.is_enabled_for(None, level))  # type: ignore[union-attr]
    except (AttributeError, TypeError):  # another wrapper class: it decides per call
        return True
