"""Entry point of xv_net: the ``net`` component kind (remote nodes through Dask)."""

from __future__ import annotations

from xv_core import hookimpl
from xv_core.registry import ComponentKind

from xv_net.component import NetComponent, NetOptions


@hookimpl
def xv_component_kinds() -> list[ComponentKind]:
    return [ComponentKind("net", NetOptions, NetComponent,
                          "tiles on remote nodes through Dask distributed (a local cluster "
                          "by default)", compute=True)]
