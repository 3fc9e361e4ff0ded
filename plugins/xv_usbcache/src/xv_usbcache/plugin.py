"""Entry point of xv_usbcache: the ``usbcache`` component kind."""

from __future__ import annotations

from xv_core import hookimpl
from xv_core.registry import ComponentKind

from xv_usbcache.component import UsbCache, UsbCacheOptions


@hookimpl
def xv_component_kinds() -> list[ComponentKind]:
    return [ComponentKind("usbcache", UsbCacheOptions, UsbCache,
                          "verified kernel repositories found on mounted devices", compute=False)]
