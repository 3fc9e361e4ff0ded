"""The ``net`` component: tiles run on remote nodes through Dask distributed.

``address: null`` (the default) starts an in-process ``LocalCluster`` for
tests and demos: one worker with one thread, TCP bound to 127.0.0.1 only, no
dashboard.  Otherwise ``address`` names a running Dask scheduler
(``tcp://host:8786``) whose workers have ``xenovectra``, ``xenovectra-net``
and the backend's plugin installed.

Each submitted tile becomes one Dask task (:func:`xv_net.remote.run_tile`):
the kernel is sent as ``.xvir`` JSON, the arguments as numpy arrays, and the
elements the tile changed come back and are merged into the caller's arrays
before the tile's future completes.

First cut: every tile carries every buffer argument in full, both ways only
for written ones -- simple and correct, not economical on a real network.
The run's ``--backend`` override does not reach remote nodes (they use the
``backend`` option).  Modelled network time arrives with issue 6.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np
import structlog

from xv_core import ir
from xv_core.errors import XvError
from xv_core.ir import Kernel, Module
from xv_core.runtime.atomics import ATOMICS_LOCK
from xv_core.runtime.interfaces import Tile, TileWork

from xv_net.remote import merge, run_tile, written_buffers

log = structlog.get_logger("xv.net")

#: Seconds to wait for a remote scheduler when connecting.
CONNECT_TIMEOUT_S = 10


def _optional_address(_instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value is not None and (not isinstance(value, str) or "://" not in value):
        raise ValueError(f"{attribute.name} must be a scheduler address like "
                         f"tcp://127.0.0.1:8786, or null for a local cluster")


def _non_empty(_instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


@attrs.frozen
class NetOptions:
    """Keys of a ``net`` component: ``address`` of a Dask scheduler (null: an
    in-process local cluster) and the ``backend`` remote nodes run tiles with."""

    address: str | None = attrs.field(default=None, validator=_optional_address)
    backend: str = attrs.field(default="interp", validator=_non_empty)


class NetComponent:
    """A running ``net`` component (implements :class:`xv_core.runtime.interfaces.Component`)."""

    kind = "net"

    def __init__(self, name: str, options: NetOptions, context: Any):
        self.name = name
        self.options = options
        self._cluster: Any = None
        self._client: Any = None
        self._kernels: dict[int, tuple[Kernel, str, dict[str, str]]] = {}
        self._lock = threading.Lock()
        self._keys = itertools.count()
        self._closed = False
        self._connect()
        try:
            self.workers = max(1, sum(self._client.nthreads().values()))
        except Exception:
            self.close()
            raise
        log.debug("net component opened", component=name, scheduler=self.address,
                  workers=self.workers)

    def _connect(self) -> None:
        from dask.distributed import Client, LocalCluster  # heavy: only when a net component opens

        where = f"component {self.name!r}"
        if self.options.address is None:
            try:
                # Loopback only, random ports.  With the dashboard off the scheduler still
                # serves its health routes, on 8787 unless told otherwise: a random port too.
                self._cluster = LocalCluster(
                    n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                    host="127.0.0.1", dashboard_address=None, worker_dashboard_address=None,
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
                self._client = Client(self._cluster, set_as_default=False)
            except Exception as exc:
                self.close()
                raise XvError(f"cannot start a local Dask cluster: {exc}", where=where) from exc
        else:
            try:
                self._client = Client(self.options.address, set_as_default=False,
                                      timeout=CONNECT_TIMEOUT_S)
            except Exception as exc:
                self.close()
                raise XvError(f"cannot reach the Dask scheduler at {self.options.address}: "
                              f"{exc}", where=where,
                              hint="start it with `dask scheduler`, or leave address out for a "
                                   "local cluster") from None

    @property
    def address(self) -> str | None:
        return None if self._client is None else self._client.scheduler.address

    def _encoded(self, kernel: Kernel) -> tuple[str, dict[str, str]]:
        with self._lock:
            hit = self._kernels.get(id(kernel))
            if hit is not None and hit[0] is kernel:
                return hit[1], hit[2]
            encoded = (ir.dumps(Module((kernel,))), written_buffers(kernel))
            self._kernels[id(kernel)] = (kernel, *encoded)
            return encoded

    def submit(self, kernel: Kernel, tile: Tile,
               args: Mapping[str, Any]) -> concurrent.futures.Future[TileWork]:
        """Send ``tile`` to the cluster; the future completes once its writes are merged."""
        if self._closed:
            raise XvError("component is closed", where=f"component {self.name!r}")
        ir_json, written = self._encoded(kernel)
        plain_tile = (tile.index, tuple(tile.launch.grid), tuple(tile.launch.block),
                      tile.first_group, tile.group_count)
        remote = self._client.submit(
            run_tile, ir_json, kernel.name, self.options.backend, plain_tile, dict(args), written,
            key=f"xv-{self.name}-{kernel.name}-{tile.index}-{next(self._keys)}", pure=False)
        done: concurrent.futures.Future[TileWork] = concurrent.futures.Future()
        done.set_running_or_notify_cancel()

        def finish(fut: Any) -> None:
            try:
                result = fut.result()
                with ATOMICS_LOCK:  # shared with every backend's atomics in this process
                    for name, (mode, index, values) in result["writes"].items():
                        target = args[name]
                        if isinstance(target, np.ndarray):
                            merge(target, index, values, mode)
                done.set_result(TileWork(result["ops"], result["bytes_read"],
                                         result["bytes_written"]))
            except XvError as exc:  # a located error from the node (kernel, IR, backend)
                done.set_exception(exc)
            except BaseException as exc:  # the node or the transport failed
                done.set_exception(XvError(f"tile {tile.index} failed on the remote node: "
                                           f"{type(exc).__name__}: {exc}",
                                           where=f"component {self.name!r}"))

        remote.add_done_callback(finish)
        return done

    def close(self) -> None:
        """Disconnect; a local cluster is shut down.  Closing twice is fine."""
        self._closed = True
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        for thing in (client, cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception as exc:  # closing goes on; the reason is logged
                    log.warning("net component failed to close cleanly", component=self.name,
                                error=str(exc))
