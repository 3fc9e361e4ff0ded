"""The ``usbcache`` component: kernels from verified repositories on mounted devices.

It scans ``paths`` when the fabric opens and holds a :class:`KernelCache`;
``get(name)`` returns a verified IR kernel.  It runs no tiles
(``compute=False``).  The runtime does not yet ask components for kernels by
name (jobs name kernel files); until it does, the cache is reached through
the component object (``fabric.components[name].get("saxpy")``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs
import structlog

from xv_core.ir import Kernel

from xv_usbcache.repository import KernelCache, scan

log = structlog.get_logger("xv.usbcache")


def _paths(_instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{attribute.name} must list at least one folder to scan")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"{attribute.name}[{i}] must be a non-empty path")


@attrs.frozen
class UsbCacheOptions:
    """Keys of a ``usbcache`` component: ``paths``, the mount points (or any folders) to scan
    for kernel repositories; relative paths resolve against the fabric's working directory."""

    paths: list[str] = attrs.field(validator=_paths)


class UsbCache:
    """A running ``usbcache`` component."""

    kind = "usbcache"

    def __init__(self, name: str, options: UsbCacheOptions, context: Any):
        self.name = name
        self.options = options
        base = Path(context.workdir)
        self.paths = [p if p.is_absolute() else base / p
                      for p in (Path(os.path.expanduser(s)) for s in options.paths)]
        self.cache = KernelCache(scan(self.paths))
        log.debug("usbcache opened", component=name, repositories=len(self.cache.repositories),
                  kernels=self.cache.names())

    def rescan(self) -> None:
        """Scan again (a device was plugged in); kernels already loaded are loaded again."""
        self.cache = KernelCache(scan(self.paths))

    def names(self) -> list[str]:
        return self.cache.names()

    def get(self, name: str) -> Kernel:
        return self.cache.get(name)

    def close(self) -> None:
        """Nothing to release: files are read and closed as kernels are loaded."""
