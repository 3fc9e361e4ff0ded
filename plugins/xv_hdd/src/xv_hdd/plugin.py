"""Entry point of xv_hdd: the ``hdd`` component kind."""

from __future__ import annotations

from xv_core import hookimpl
from xv_core.registry import ComponentKind

from xv_hdd.component import HddComponent, HddOptions


@hookimpl
def xv_component_kinds() -> list[ComponentKind]:
    return [ComponentKind("hdd", HddOptions, HddComponent,
                          "compute tiles on worker threads, owning a directory on a disk path",
                          compute=True)]
