"""The ``nvme`` component: a page cache tier for VRAM, backed by one file.

The component opens its :class:`~xv_nvme.pagefile.PageFile` (``path``,
``capacity``, ``page_size``) and closes it with the fabric.  It runs no tiles
(``compute=False``); it offers the page file as its ``page_tier``, which the
runtime hands to the VRAM manager as the cache tier between VRAM and file
backings.  ``profile`` names the link profile that times its transfers in the
VRAM statistics (the virtual clock that uses them arrives with issue 6).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs
import structlog

from xv_core.config.convert import Invalid
from xv_core.config.units import Size, format_size, parse_size
from xv_core.profiles import PROFILES, unknown_profile

from xv_nvme.pagefile import PageFile

log = structlog.get_logger("xv.nvme")


def _non_empty(_instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


def _positive(_instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1 byte")


def _at_least_one_page(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    # attrs runs validators once every field is set, so page_size is known here.
    if 1 <= instance.page_size and value < instance.page_size:
        raise ValueError(f"capacity ({format_size(value)}) must hold at least one page "
                         f"({format_size(instance.page_size)})")


def _known_profile(_instance: object, _attribute: attrs.Attribute, value: str) -> None:
    if value not in PROFILES:
        unknown = unknown_profile(value)
        raise Invalid(unknown.message, unknown.hint)


@attrs.frozen
class NvmeOptions:
    """Keys of an ``nvme`` component in a fabric.

    ``path``: the page file (created; its folder too; a relative path
    resolves against the fabric's working directory).  ``capacity``: bytes of
    pages it holds (``8GiB`` or an integer).  ``page_size``: bytes per page;
    keep it equal to ``vram.page_size``.  ``keep``: leave the file on disk
    after the run (it is started empty all the same).  ``profile``: the link
    profile that times its transfers (a storage profile such as ``nvme-gen4``).
    """

    path: str = attrs.field(validator=_non_empty)
    capacity: Size = attrs.field(converter=parse_size, validator=_at_least_one_page)
    page_size: Size = attrs.field(default=64 << 10, converter=parse_size, validator=_positive)
    keep: bool = False
    profile: str = attrs.field(default="nvme-gen4", validator=_known_profile)


def check(options: NvmeOptions, fabric: Any) -> list[tuple[str | None, str, str | None]]:
    """What a fabric's ``nvme`` component must agree with: its pages each hold a VRAM page
    (``ComponentKind.check``)."""
    vram_page = fabric.vram.page_size
    if options.page_size < vram_page:
        return [("page_size", f"its page size ({format_size(options.page_size)}) is smaller "
                 f"than vram.page_size ({format_size(vram_page)})",
                 f"set its page_size to {format_size(vram_page)}")]
    return []


class NvmeTier:
    """A running ``nvme`` component: it holds the open page file in ``pages``."""

    kind = "nvme"

    def __init__(self, name: str, options: NvmeOptions, context: Any):
        self.name = name
        self.options = options
        path = Path(os.path.expanduser(options.path))
        if not path.is_absolute():
            path = Path(context.workdir) / path
        self.pages = PageFile(path, options.capacity, options.page_size, keep=options.keep,
                              name=name, profile=options.profile)
        #: What the runtime hands the VRAM manager as a cache tier.
        self.page_tier = self.pages
        log.debug("nvme tier opened", component=name, path=str(path),
                  capacity=options.capacity, page_size=options.page_size)

    @property
    def path(self) -> Path:
        return self.pages.path

    def stats(self) -> dict[str, Any]:
        return self.pages.stats()

    def close(self) -> None:
        self.pages.close()
