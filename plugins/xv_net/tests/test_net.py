"""The net component against an in-process Dask cluster."""

import numpy as np
import pytest

from xv_core.errors import KernelRuntimeError, UnknownNameError, XvError
from xv_core.runtime.interfaces import TileWork
from xv_net.component import NetComponent, NetOptions


def test_local_cluster_binds_to_localhost_only(net):
    assert net.address.startswith("tcp://127.0.0.1:")
    assert net.workers == 1 and net.kind == "net"


def test_saxpy_tiles_run_remotely_and_write_back(net, lib):
    rng = np.random.default_rng(5)
    x = rng.random(1000, dtype=np.float32)
    y = rng.random(1000, dtype=np.float32)
    expected = np.float32(3.0) * x + y
    args = {"a": np.float32(3.0), "x": x, "y": y}
    futures = [net.submit(lib.saxpy_ir(), t, args) for t in lib.tiles(1000, 64, 5)]
    works = [f.result(timeout=60) for f in futures]
    np.testing.assert_array_equal(y, expected)
    total = sum(works, TileWork())
    assert total.ops > 0 and total.bytes_written == 4 * 1000


def test_atomic_adds_from_several_tiles_all_count(net, lib):
    keys = np.arange(1000, dtype=np.int32) % 7
    bins = np.full(7, 100, dtype=np.int32)  # existing counts must be kept
    futures = [net.submit(lib.histogram_ir(), t, {"keys": keys, "bins": bins})
               for t in lib.tiles(1000, 32, 4)]
    for f in futures:
        f.result(timeout=60)
    assert bins.tolist() == (100 + np.bincount(keys, minlength=7)).tolist()


def test_kernel_errors_come_back_located(net, lib):
    """A kernel error on the node reaches the caller as the same located error as locally."""
    from xv_core.plugins import load_plugins

    tile = lib.tiles(10, 16, 1)[0]
    local = load_plugins().backends.get("interp").factory().prepare(lib.overrun_ir())
    with pytest.raises(KernelRuntimeError) as here:
        local.run_tile(tile, {"y": np.zeros(10, dtype=np.float32)})
    y = np.zeros(10, dtype=np.float32)
    fut = net.submit(lib.overrun_ir(), tile, {"y": y})
    with pytest.raises(KernelRuntimeError) as there:
        fut.result(timeout=60)
    assert str(there.value) == str(here.value)
    assert str(there.value).startswith("overrun.xvk:3: out-of-bounds write y[10]")
    assert not y.any()  # a failed tile writes nothing back


def test_unknown_backend_on_the_node(lib):
    comp = NetComponent("node1", NetOptions(backend="warp-drive"), lib.Context())
    try:
        fut = comp.submit(lib.saxpy_ir(), lib.tiles(4, 4, 1)[0],
                          {"a": np.float32(1), "x": np.zeros(4, np.float32),
                           "y": np.zeros(4, np.float32)})
        with pytest.raises(UnknownNameError) as err:
            fut.result(timeout=60)
        assert str(err.value).startswith("remote node: unknown backend 'warp-drive' (installed: ")
    finally:
        comp.close()
    comp.close()
    with pytest.raises(XvError, match=r"^component 'node1': component is closed"):
        comp.submit(lib.saxpy_ir(), lib.tiles(4, 4, 1)[0], {})


def test_unreachable_scheduler(lib, monkeypatch):
    import socket

    from xv_net import component

    monkeypatch.setattr(component, "CONNECT_TIMEOUT_S", 1)
    with socket.socket() as s:  # a port on this machine that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(XvError) as err:
        NetComponent("far", NetOptions(address=f"tcp://127.0.0.1:{port}"), lib.Context())
    assert str(err.value).startswith(f"component 'far': cannot reach the Dask scheduler at "
                                     f"tcp://127.0.0.1:{port}: ")
    assert str(err.value).endswith("(hint: start it with `dask scheduler`, or leave address out "
                                   "for a local cluster)")


def test_options_validation():
    assert NetOptions() == NetOptions(address=None, backend="interp")
    with pytest.raises(ValueError, match="address must be a scheduler address like "
                                         "tcp://127.0.0.1:8786, or null for a local cluster"):
        NetOptions(address="localhost")
    with pytest.raises(ValueError, match="backend must not be empty"):
        NetOptions(backend="")
