"""The one lock behind every atomic operation on device memory in this process.

Backends and components run tiles on several threads at once, and different
components may run tiles of the same dispatch (a ``cpu`` component on the ``jit``
and one on the ``interp``, or a ``cpu`` and a ``net`` component, say).  Atomics are
only atomic if every party that performs or merges them agrees: they all go through
:data:`ATOMICS_LOCK`.  Components never import each other, so it lives in the core.

Two kinds of party:

* *software* read-modify-writes (numpy's ``ufunc.at``, the merge of a private copy
  or of a remote tile's results) hold the lock **exclusively**: ``with ATOMICS_LOCK:``;
* *hardware* atomics (native code using the CPU's atomic instructions) are atomic
  among themselves, so tiles doing them hold the lock **shared** for as long as they
  run: ``with ATOMICS_LOCK.shared():``.  They exclude the software parties, not each
  other, so two native tiles still run in parallel.

Writers (exclusive holders) are preferred: once one waits, new shared holders wait
behind it, so a merge is not starved by a stream of native tiles.  The lock is not
re-entrant: a thread must not take it exclusively while holding it shared.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class AtomicsLock:
    """A shared/exclusive lock; ``with lock:`` takes it exclusively (as a ``threading.Lock``)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    def acquire(self) -> None:
        with self._cond:
            self._waiting += 1
            try:
                while self._exclusive or self._shared:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._exclusive = True

    def release(self) -> None:
        with self._cond:
            if not self._exclusive:
                raise RuntimeError("ATOMICS_LOCK released without being held exclusively")
            self._exclusive = False
            self._cond.notify_all()

    def __enter__(self) -> AtomicsLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the lock shared: for a tile whose atomics are the CPU's own instructions."""
        with self._cond:
            while self._exclusive or self._waiting:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                if not self._shared:
                    self._cond.notify_all()


#: Taken exclusively by software atomics and merges, shared by native atomic tiles.
ATOMICS_LOCK = AtomicsLock()
