"""xv_net: remote compute nodes through Dask distributed (see README.md)."""

from xv_net.component import NetComponent, NetOptions

__all__ = ["NetComponent", "NetOptions"]
