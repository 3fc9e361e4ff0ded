"""Fabric and job files: reading, checking and structuring them into frozen attrs objects.

``load_fabric(spec, plugins)`` and ``load_job(path)`` are the entry points; both raise
:class:`xv_core.errors.ConfigError` listing every problem, one located line each.
"""

from xv_core.config.fabric import (
    HOST, ComponentConfig, FabricConfig, LinkConfig, VramConfig, builtin_fabrics, load_fabric,
    parse_fabric,
)
from xv_core.config.job import BufferSpec, JobConfig, StepSpec, load_job, parse_job
from xv_core.config.units import Size, SizeError, format_size, parse_size

__all__ = [
    "HOST", "BufferSpec", "ComponentConfig", "FabricConfig", "JobConfig", "LinkConfig", "Size",
    "SizeError", "StepSpec", "VramConfig", "builtin_fabrics", "format_size", "load_fabric",
    "load_job", "parse_fabric", "parse_job", "parse_size",
]
