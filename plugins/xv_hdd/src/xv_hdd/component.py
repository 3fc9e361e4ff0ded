"""The ``hdd`` component: compute tiles that belong to a directory on a disk.

First cut (issue 2).  What it does:

* resolves ``path`` against the fabric's working directory, creates the
  directory if it is missing and takes an exclusive lock on it
  (``.xv-hdd.lock``, an ``flock`` released when the component closes or the
  process dies), so two components never share one disk directory;
* runs each submitted tile on its own pool of ``workers`` threads with the
  backend named by ``backend`` (through ``ComponentContext.prepare``, so a
  run's ``--backend`` override applies), on the buffers it is given.

What it does not do yet: keep tile data in files under ``path`` (the
directory is created and owned but holds only the lock), nor model the
latency and throughput of a disk -- modelled time arrives with issue 6, and
the directory's role as a backing store with issue 5's tiers.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import structlog

from xv_core.errors import XvError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows; the lock is then advisory-free
    fcntl = None  # type: ignore[assignment]

log = structlog.get_logger("xv.hdd")

LOCK_NAME = ".xv-hdd.lock"


def _non_empty(_instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


def _at_least_one(_instance: object, attribute: attrs.Attribute, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value!r}")


@attrs.frozen
class HddOptions:
    """Keys of an ``hdd`` component in a fabric.

    ``path``: the component's directory (created if missing; relative paths
    resolve against the fabric's working directory).  ``backend``: the IR
    backend its tiles run with.  ``workers``: threads running tiles at once.
    """

    path: str = attrs.field(validator=_non_empty)
    backend: str = attrs.field(default="interp", validator=_non_empty)
    workers: int = attrs.field(default=1, validator=_at_least_one)


class DirectoryLock:
    """An exclusive ``flock`` on ``directory/.xv-hdd.lock`` held by ``owner``."""

    def __init__(self, directory: Path, owner: str):
        self.path = directory / LOCK_NAME
        self._fd: int | None = None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
                os.close(fd)
                raise XvError(f"directory {directory} is in use by {holder}",
                              where=f"component {owner!r}",
                              hint="give each hdd component a path of its own") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"hdd component {owner!r} (pid {os.getpid()})".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            # Closing the descriptor drops the flock; the file stays (removing it would race
            # with a component that is opening it).
            os.close(self._fd)
            self._fd = None


class HddComponent:
    """A running ``hdd`` component (implements :class:`xv_core.runtime.interfaces.Component`)."""

    kind = "hdd"

    def __init__(self, name: str, options: HddOptions, context: Any):
        self.name = name
        self.options = options
        self.workers = options.workers
        self._context = context
        path = Path(os.path.expanduser(options.path))
        if not path.is_absolute():
            path = Path(context.workdir) / path
        self.path = path
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise XvError(f"cannot create directory {path}: {exc.strerror}",
                          where=f"component {name!r}",
                          hint="check the permissions, or choose another path") from None
        self._lock = DirectoryLock(path, name)
        self._pool = ThreadPoolExecutor(options.workers, thread_name_prefix=f"xv-hdd-{name}")
        self._closed = False
        self._state = threading.Lock()
        log.debug("hdd component opened", component=name, path=str(path), workers=self.workers)

    def submit(self, kernel: Any, tile: Any, args: Mapping[str, Any]) -> Future[Any]:
        """Run ``tile`` of ``kernel`` on one of this component's worker threads."""
        with self._state:
            if self._closed:
                raise XvError("component is closed", where=f"component {self.name!r}")
            return self._pool.submit(self._run, kernel, tile, args)

    def _run(self, kernel: Any, tile: Any, args: Mapping[str, Any]) -> Any:
        prepared = self._context.prepare(kernel, self.options.backend)
        start = time.perf_counter()
        work = prepared.run_tile(tile, args)
        log.debug("hdd tile", component=self.name, tile=tile.index,
                  wall_s=round(time.perf_counter() - start, 6))
        return work

    def close(self) -> None:
        """Wait for running tiles, stop the workers and release the directory (kept on disk)."""
        with self._state:
            if self._closed:
                return
            self._closed = True
        self._pool.shutdown(wait=True)
        self._lock.release()
