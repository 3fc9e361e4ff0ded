"""Xenovectra: a virtual GPU on ordinary hardware."""

from xv_core.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
