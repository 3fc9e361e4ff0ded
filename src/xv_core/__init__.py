"""Xenovectra: a virtual GPU on ordinary hardware.

The runtime API in a few lines::

    import numpy as np
    import xv_core as xv

    with xv.open_fabric("default") as fabric:
        saxpy = fabric.kernel("examples/kernels/saxpy.xvk")
        x = fabric.buffer(np.arange(1000, dtype=np.float32))
        y = fabric.buffer(np.ones(1000, dtype=np.float32))
        fabric.dispatch(saxpy, global_size=1000, block=256, args={"a": 2.0, "x": x, "y": y})
        print(y.read())
"""

from xv_core.hookspecs import hookimpl

__version__ = "0.1.0"


def open_fabric(*args, **kwargs):  # noqa: ANN002, ANN003 - forwards to the runtime
    """Open a fabric: see :func:`xv_core.runtime.api.open_fabric`."""
    from xv_core.runtime.api import open_fabric as _open

    return _open(*args, **kwargs)


__all__ = ["hookimpl", "open_fabric", "__version__"]
