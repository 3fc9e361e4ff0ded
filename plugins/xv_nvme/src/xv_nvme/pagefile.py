"""A page file: fixed-size pages stored in slots of one file on a fast disk.

The cache tier behind VRAM stores evicted pages here and reads them back on the
next fault (it implements :class:`xv_core.runtime.interfaces.PageTier`).  Layout of the file: one header page (a magic line,
so a file that is not a page file is never overwritten), then ``slots``
pages.  The file is created sparse, so unused slots cost no disk space.  An
in-memory index maps each key to its slot and length; free slots are reused
lowest first, which keeps the file's used part compact.

A page file is a cache: it is not reopened with its contents.  With
``keep=True`` the file is left on disk after :meth:`PageFile.close` (for
inspection); the next run starts it empty.
"""

from __future__ import annotations

import heapq
import os
import threading
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

from xv_core.config.units import format_size
from xv_core.errors import XvError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: no lock there
    fcntl = None  # type: ignore[assignment]

MAGIC = b"XVNVME1\n"


class PageFileFull(XvError):
    """Every slot is taken: the caller must drop (evict) a page first."""


class PageFile:
    """Pages of ``page_size`` bytes under hashable keys, in the file at ``path``.

    ``capacity`` bytes of pages (``capacity // page_size`` slots) plus one
    header page.  Thread-safe: every operation holds one lock.
    """

    def __init__(self, path: str | os.PathLike[str], capacity: int, page_size: int, *,
                 keep: bool = False, name: str | None = None, profile: str | None = None):
        self.path = Path(path)
        self.page_size = int(page_size)
        self.keep = keep
        # As a VRAM cache tier (xv_core.runtime.interfaces.PageTier): its name in statistics,
        # and the link profile that times its transfers.
        self.name = name or self.path.name
        self.profile = profile
        where = f"page file {self.path}"
        if self.page_size < 1:
            raise XvError("page size must be at least 1 byte", where=where)
        self.slots = int(capacity) // self.page_size
        if self.slots < 1:
            raise XvError(f"capacity {format_size(int(capacity))} holds no page of "
                          f"{format_size(self.page_size)}", where=where,
                          hint="raise capacity to at least one page")
        self._index: dict[Hashable, tuple[int, int]] = {}  # key -> (slot, length)
        self._released: list[int] = []  # heap of freed slots
        self._fresh = 0  # slots below this have been used at least once
        self._lock = threading.Lock()
        self._fd: int | None = None
        self.reads = self.writes = self.misses = 0
        self.bytes_read = self.bytes_written = 0
        self._fd = self._open(where)

    def _open(self, where: str) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise XvError(f"cannot open: {exc.strerror}", where=where,
                          hint="check the permissions, or choose another path") from None
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise XvError("the file is in use by another page file", where=where,
                                  hint="give each nvme component a path of its own") from None
            head = os.pread(fd, len(MAGIC), 0)
            if head and head != MAGIC:
                raise XvError("the file exists and is not an xv_nvme page file", where=where,
                              hint="choose another path, or delete the file if it is not needed")
            # Start empty and sparse: drop what a kept file held, then size it.
            os.ftruncate(fd, 0)
            os.pwrite(fd, MAGIC, 0)
            os.ftruncate(fd, self.page_size * (self.slots + 1))
        except OSError as exc:
            os.close(fd)
            raise XvError(f"cannot prepare: {exc.strerror}", where=where) from None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _check_open(self) -> int:
        if self._fd is None:
            raise XvError("page file is closed", where=f"page file {self.path}")
        return self._fd

    def _offset(self, slot: int) -> int:
        return self.page_size * (slot + 1)  # slot 0 follows the header page

    # -- pages --------------------------------------------------------------------------
    def write_page(self, key: Hashable, data: Any) -> int:
        """Store ``data`` (bytes-like, at most one page) under ``key``; returns its slot.

        Overwriting a key reuses its slot.  Raises :class:`PageFileFull` when
        the key is new and no slot is free.
        """
        view = memoryview(data).cast("B")
        if view.nbytes > self.page_size:
            raise XvError(f"page {key!r} is {view.nbytes} bytes, more than the page size "
                          f"({self.page_size})", where=f"page file {self.path}")
        with self._lock:
            fd = self._check_open()
            entry = self._index.get(key)
            if entry is not None:
                slot = entry[0]
            elif self._released:
                slot = heapq.heappop(self._released)
            elif self._fresh < self.slots:
                slot = self._fresh
                self._fresh += 1
            else:
                raise PageFileFull(
                    f"all {self.slots} pages ({format_size(self.slots * self.page_size)}) are "
                    f"taken", where=f"page file {self.path}",
                    hint="drop a page first, or raise the nvme component's capacity")
            offset, done = self._offset(slot), 0
            try:
                while done < view.nbytes:  # pwrite may write less than asked
                    done += os.pwrite(fd, view[done:], offset + done)
            except OSError as exc:
                if entry is None:
                    heapq.heappush(self._released, slot)
                else:
                    del self._index[key]  # its slot now holds neither old nor new bytes
                    heapq.heappush(self._released, slot)
                raise XvError(f"cannot write page {key!r}: {exc.strerror}",
                              where=f"page file {self.path}") from None
            self._index[key] = (slot, view.nbytes)
            self.writes += 1
            self.bytes_written += view.nbytes
            return slot

    def read_page(self, key: Hashable) -> bytes | None:
        """The bytes stored under ``key``, or None when it is not in the file."""
        with self._lock:
            fd = self._check_open()
            entry = self._index.get(key)
            if entry is None:
                self.misses += 1
                return None
            slot, length = entry
            offset, parts, done = self._offset(slot), [], 0
            try:
                while done < length:
                    chunk = os.pread(fd, length - done, offset + done)
                    if not chunk:
                        raise OSError(0, "file is shorter than its index says")
                    parts.append(chunk)
                    done += len(chunk)
            except OSError as exc:
                raise XvError(f"cannot read page {key!r}: {exc.strerror}",
                              where=f"page file {self.path}") from None
            self.reads += 1
            self.bytes_read += length
            return b"".join(parts)

    def read_into(self, key: Hashable, out: Any) -> int | None:
        """Copy the bytes stored under ``key`` into the writable buffer ``out`` (at least
        as long as them); return how many, or None when the key is not in the file."""
        view = memoryview(out).cast("B")
        with self._lock:
            fd = self._check_open()
            entry = self._index.get(key)
            if entry is None:
                self.misses += 1
                return None
            slot, length = entry
            if length > view.nbytes:
                raise XvError(f"page {key!r} is {length} bytes, more than the {view.nbytes} "
                              f"bytes given", where=f"page file {self.path}")
            offset, done = self._offset(slot), 0
            try:
                while done < length:
                    n = os.preadv(fd, [view[done:length]], offset + done)
                    if n == 0:
                        raise OSError(0, "file is shorter than its index says")
                    done += n
            except OSError as exc:
                raise XvError(f"cannot read page {key!r}: {exc.strerror}",
                              where=f"page file {self.path}") from None
            self.reads += 1
            self.bytes_read += length
            return length

    def drop(self, key: Hashable) -> bool:
        """Forget ``key`` and free its slot; False when it was not stored."""
        with self._lock:
            self._check_open()
            entry = self._index.pop(key, None)
            if entry is None:
                return False
            heapq.heappush(self._released, entry[0])
            return True

    def slot_of(self, key: Hashable) -> int | None:
        with self._lock:
            entry = self._index.get(key)
            return None if entry is None else entry[0]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._index

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)

    def keys(self) -> Iterator[Hashable]:
        with self._lock:
            return iter(list(self._index))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"path": str(self.path), "page_size": self.page_size, "slots": self.slots,
                    "used": len(self._index), "free": self.slots - len(self._index),
                    "reads": self.reads, "writes": self.writes, "misses": self.misses,
                    "bytes_read": self.bytes_read, "bytes_written": self.bytes_written}

    def close(self) -> None:
        """Close the file and delete it unless ``keep``.  Closing twice is fine."""
        with self._lock:
            if self._fd is None:
                return
            fd, self._fd = self._fd, None
            self._index.clear()
            if not self.keep:
                # Unlink before closing, while the lock still proves the file is ours.
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
            os.close(fd)

    def __enter__(self) -> PageFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
