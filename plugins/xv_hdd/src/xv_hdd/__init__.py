"""xv_hdd: compute tiles that own a directory on a disk path (see README.md)."""

from xv_hdd.component import HddComponent, HddOptions

__all__ = ["HddComponent", "HddOptions"]
