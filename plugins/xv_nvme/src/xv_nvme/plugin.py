"""Entry point of xv_nvme: the ``nvme`` component kind (a page cache tier)."""

from __future__ import annotations

from xv_core import hookimpl
from xv_core.registry import ComponentKind

from xv_nvme.component import NvmeOptions, NvmeTier, check


@hookimpl
def xv_component_kinds() -> list[ComponentKind]:
    return [ComponentKind("nvme", NvmeOptions, NvmeTier,
                          "a page cache tier for VRAM, backed by one file", compute=False,
                          check=check)]
