"""Fabric and job files: reading, checking and structuring them into frozen attrs objects.

``load_fabric(spec, plugins)`` and ``load_job(path)`` are the entry points; both raise
:class:`xv_core.errors.ConfigError` listing every problem, one located line each.

The names below are imported on first use, so that a plugin importing only
``xv_core.config.units`` does not pay for YAML, cattrs and numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xv_core.config.fabric import (
        HOST, ComponentConfig, FabricConfig, LinkConfig, VramConfig, builtin_fabrics,
        load_fabric, parse_fabric,
    )
    from xv_core.config.job import BufferSpec, JobConfig, StepSpec, load_job, parse_job
    from xv_core.config.units import Size, SizeError, format_size, parse_size

_WHERE = {
    **dict.fromkeys(("HOST", "ComponentConfig", "FabricConfig", "LinkConfig", "VramConfig",
                     "builtin_fabrics", "load_fabric", "parse_fabric"), "xv_core.config.fabric"),
    **dict.fromkeys(("BufferSpec", "JobConfig", "StepSpec", "load_job", "parse_job"),
                    "xv_core.config.job"),
    **dict.fromkeys(("Size", "SizeError", "format_size", "parse_size"), "xv_core.config.units"),
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module 'xv_core.config' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)
