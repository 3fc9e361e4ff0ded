"""xv_usbcache: verified kernel repositories on removable media (see README.md)."""

from xv_usbcache.component import UsbCache, UsbCacheOptions
from xv_usbcache.repository import (
    MANIFEST, Entry, KernelCache, Repository, RepositoryError, read_manifest, read_verified, scan,
)

__all__ = ["MANIFEST", "Entry", "KernelCache", "Repository", "RepositoryError", "UsbCache",
           "UsbCacheOptions", "read_manifest", "read_verified", "scan"]
