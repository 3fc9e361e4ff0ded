"""xv_nvme: a file-backed page cache tier for VRAM pages (see README.md)."""

from xv_nvme.component import NvmeOptions, NvmeTier
from xv_nvme.pagefile import MAGIC, PageFile, PageFileFull

__all__ = ["MAGIC", "NvmeOptions", "NvmeTier", "PageFile", "PageFileFull"]
