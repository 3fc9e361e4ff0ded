"""The core's own plugin: built-in providers registered through the same hooks
third parties use."""

from __future__ import annotations

from xv_core.hookspecs import hookimpl
