"""Where a buffer's pages live when they are not in VRAM: host RAM, a file, a persistent file.

A backing holds a whole buffer, page by page; pages never written read as zeros.  The pager
moves pages between it and VRAM with :meth:`Backing.read_into` and :meth:`Backing.write_from`
(explicit ``pread``/``pwrite`` into and out of the pager's own memory: see ``docs/vram.md``
for the measurements behind that choice over ``mmap``).

* :class:`RamBacking`: host memory, allocated on the first write (untouched pages of an
  anonymous mapping cost nothing).
* :class:`FileBacking`: a scratch file under ``vram.path``, unlinked as soon as it is open so
  that a crashed run leaves nothing behind; sparse, so unwritten pages take no disk space.
* :class:`PersistentBacking`: a named file that keeps a buffer from one run to the next.
  Pages written back during a run go to a scratch overlay, never into the file; only
  :meth:`PersistentBacking.commit` changes the file, by writing a complete new one beside it
  and renaming it over the old (``rename`` is atomic), so a process killed at any moment
  leaves the old contents or the new, never a mix.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from xv_core.config.units import format_size
from xv_core.errors import XvError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: no lock there
    fcntl = None  # type: ignore[assignment]

#: First bytes of a persistent buffer file; then a uint32 header length, the JSON header,
#: zero padding to :data:`DATA_OFFSET`, and the buffer's bytes.
MAGIC = b"XVBUF1\n"
DATA_OFFSET = 4096
SUFFIX = ".xvbuf"


def _pread_into(fd: int, out: memoryview, offset: int) -> int:
    """Read up to ``len(out)`` bytes at ``offset``; the rest of ``out`` (past the end of the
    file) is zero-filled.  Returns the bytes read."""
    done = 0
    while done < len(out):
        n = os.preadv(fd, [out[done:]], offset + done)
        if n == 0:
            out[done:] = bytes(len(out) - done)
            break
        done += n
    return done


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    done = 0
    while done < len(data):  # pwrite may write less than asked
        done += os.pwrite(fd, data[done:], offset + done)


class Backing:
    """A buffer's pages outside VRAM.  ``kind`` names it in statistics."""

    kind = "?"

    def __init__(self, nbytes: int, page_size: int):
        self.nbytes = nbytes  # whole pages: the pager's view of the buffer
        self.page_size = page_size

    def read_into(self, page: int, out: memoryview) -> int:
        """Copy pages ``page ..`` into ``out`` (a whole number of pages); return the bytes
        that came from storage (0 for pages never written)."""
        raise NotImplementedError

    def write_from(self, page: int, data: memoryview) -> None:
        """Store ``data`` (a whole number of pages) as pages ``page ..``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the storage.  Closing twice is fine."""


class RamBacking(Backing):
    """Pages in host RAM (the 'system memory' a GPU pages to)."""

    kind = "ram"

    def __init__(self, nbytes: int, page_size: int):
        super().__init__(nbytes, page_size)
        self._data: np.ndarray | None = None

    def read_into(self, page: int, out: memoryview) -> int:
        start = page * self.page_size
        if self._data is None:
            out[:] = bytes(len(out))
            return 0
        out[:] = self._data[start:start + len(out)].data
        return len(out)

    def write_from(self, page: int, data: memoryview) -> None:
        if self._data is None:
            try:
                self._data = np.zeros(self.nbytes, dtype=np.uint8)  # calloc: lazily backed
            except MemoryError:
                raise XvError(f"the host has no RAM left to back {format_size(self.nbytes)}",
                              hint="lower the job's sizes, or use vram.backing: file") from None
        start = page * self.page_size
        self._data[start:start + len(data)] = np.frombuffer(data, dtype=np.uint8)

    def close(self) -> None:
        self._data = None


class FileBacking(Backing):
    """Pages in a scratch file in ``folder`` (unlinked at once: nothing outlives the run)."""

    kind = "file"

    def __init__(self, folder: Path, name: str, nbytes: int, page_size: int):
        super().__init__(nbytes, page_size)
        self._fd: int | None = None
        where = f"buffer {name!r}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder, os.O_RDWR | os.O_TMPFILE, 0o600)
        except (OSError, AttributeError):
            fd = self._named_scratch(folder, name, where)
        try:
            os.ftruncate(fd, nbytes)  # sparse
        except OSError as exc:
            os.close(fd)
            raise XvError(f"cannot size its backing file: {exc.strerror}", where=where) from None
        self._fd = fd

    @staticmethod
    def _named_scratch(folder: Path, name: str, where: str) -> int:
        # No O_TMPFILE (some filesystems): create a unique file and unlink it at once.
        for attempt in range(100):
            path = folder / f".{name}.{os.getpid()}.{attempt}.scratch"
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            except OSError as exc:
                raise XvError(f"cannot create a backing file in {folder}: {exc.strerror}",
                              where=where, hint="check vram.path") from None
            path.unlink()
            return fd
        raise XvError(f"cannot create a backing file in {folder}", where=where)

    def read_into(self, page: int, out: memoryview) -> int:
        assert self._fd is not None
        return _pread_into(self._fd, out, page * self.page_size)

    def write_from(self, page: int, data: memoryview) -> None:
        assert self._fd is not None
        _pwrite_all(self._fd, data, page * self.page_size)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def persistent_path(folder: Path, name: str) -> Path:
    return folder / (name + SUFFIX)


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of a persistent buffer file; XvError if it is not one."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC) + 4)
            if len(head) < len(MAGIC) + 4 or head[:len(MAGIC)] != MAGIC:
                raise XvError("the file is not a persistent buffer file", where=str(path),
                              hint="move it away; vram.path holds only .xvbuf files")
            (length,) = struct.unpack("<I", head[len(MAGIC):])
            if length > DATA_OFFSET - len(MAGIC) - 4:
                raise XvError("the file's header is damaged", where=str(path))
            header = json.loads(f.read(length).decode("utf-8"))
    except OSError as exc:
        raise XvError(f"cannot read: {exc.strerror}", where=str(path)) from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise XvError("the file's header is damaged", where=str(path)) from None
    return header


def _header_bytes(header: dict[str, Any]) -> bytes:
    text = json.dumps(header, sort_keys=True).encode("utf-8")
    head = MAGIC + struct.pack("<I", len(text)) + text
    return head + bytes(DATA_OFFSET - len(head))


class PersistentBacking(Backing):
    """A buffer kept in ``folder/<name>.xvbuf`` across runs; see the module docstring.

    ``existed`` is True when the file was there with the buffer's contents.  A file holding
    another dtype or shape is an error (never overwritten).  While open, an exclusive lock on
    ``<name>.xvbuf.lock`` keeps another process off the buffer.
    """

    kind = "persistent"

    def __init__(self, folder: Path, name: str, dtype: np.dtype[Any], shape: tuple[int, ...],
                 nbytes: int, page_size: int):
        super().__init__(nbytes, page_size)
        self.name = name
        self.path = persistent_path(folder, name)
        self.header = {"name": name, "dtype": np.dtype(dtype).str, "shape": list(shape),
                       "nbytes": int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize}
        self._where = f"persistent buffer {name!r}"
        self._lock_fd: int | None = None
        self._fd: int | None = None  # the committed file (None: not written yet)
        self._overlay = FileBacking(folder, name, nbytes, page_size)
        self._in_overlay = bytearray(nbytes // page_size)
        try:
            self._lock(folder)
            self._remove_leftovers(folder)
            self.existed = self._open_committed()
        except BaseException:
            self.close()
            raise

    def _lock(self, folder: Path) -> None:
        path = folder / (self.name + SUFFIX + ".lock")
        try:
            self._lock_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise XvError(f"cannot open its lock file: {exc.strerror}", where=self._where,
                          hint="check vram.path") from None
        if fcntl is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise XvError(f"another process is using {self.path}", where=self._where,
                              hint="wait for it to finish, or give this fabric another "
                                   "vram.path") from None

    def _remove_leftovers(self, folder: Path) -> None:
        # A commit killed before its rename leaves its new file behind; we hold the lock, so
        # no other process is writing one.
        for stale in folder.glob(self.name + SUFFIX + ".tmp*"):
            stale.unlink(missing_ok=True)

    def _open_committed(self) -> bool:
        if not self.path.exists():
            return False
        header = read_header(self.path)
        if (header.get("dtype"), header.get("shape")) != (self.header["dtype"],
                                                            self.header["shape"]):
            have = f"{np.dtype(header.get('dtype', '|u1'))} {header.get('shape')}"
            want = f"{np.dtype(self.header['dtype'])} {self.header['shape']}"
            raise XvError(f"{self.path} holds {have}, but the buffer is {want}",
                          where=self._where,
                          hint="give the buffer its old dtype and shape, or delete the file "
                               "to start it afresh")
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise XvError(f"cannot open {self.path}: {exc.strerror}", where=self._where) from None
        return True

    def read_into(self, page: int, out: memoryview) -> int:
        pages = len(out) // self.page_size
        got, run = 0, 0
        ps = self.page_size
        while run < pages:
            # Consecutive pages from the same place are read with one call.
            in_overlay = self._in_overlay[page + run]
            end = run + 1
            while end < pages and self._in_overlay[page + end] == in_overlay:
                end += 1
            part = out[run * ps:end * ps]
            if in_overlay:
                got += self._overlay.read_into(page + run, part)
            elif self._fd is not None:
                got += _pread_into(self._fd, part, DATA_OFFSET + (page + run) * ps)
            else:
                part[:] = bytes(len(part))
            run = end
        return got

    def write_from(self, page: int, data: memoryview) -> None:
        self._overlay.write_from(page, data)
        self._in_overlay[page:page + len(data) // self.page_size] = \
            b"\x01" * (len(data) // self.page_size)

    def commit(self, newest: Callable[[int, memoryview], None], *,
               before_rename: Callable[[], None] | None = None) -> None:
        """Replace the file with the buffer's current contents, crash-safely.

        ``newest(page, out)`` fills ``out`` (one page) with the page's current bytes.
        ``before_rename`` is a test hook called once the new file is complete.
        """
        folder = self.path.parent
        tmp = folder / f"{self.path.name}.tmp{os.getpid()}"
        ps = self.page_size
        chunk_pages = max(1, (1 << 20) // ps)
        chunk = bytearray(chunk_pages * ps)
        view = memoryview(chunk)
        total = self.header["nbytes"]
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise XvError(f"cannot write {tmp}: {exc.strerror}", where=self._where) from None
        try:
            os.write(fd, _header_bytes(self.header))
            pages = self.nbytes // ps
            written = 0
            for first in range(0, pages, chunk_pages):
                count = min(chunk_pages, pages - first)
                for i in range(count):
                    newest(first + i, view[i * ps:(i + 1) * ps])
                size = min(count * ps, total - written)
                if size > 0:
                    _pwrite_all(fd, view[:size], DATA_OFFSET + written)
                    written += size
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise XvError(f"cannot write {tmp}: {exc.strerror}", where=self._where) from None
        os.close(fd)
        if before_rename is not None:
            before_rename()
        try:
            os.replace(tmp, self.path)
            _fsync_dir(folder)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise XvError(f"cannot replace {self.path}: {exc.strerror}",
                          where=self._where) from None
        # The new file holds every page: read from it from now on, forget the overlay.
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDONLY)
        self._in_overlay[:] = bytes(len(self._in_overlay))
        self.existed = True

    def close(self) -> None:
        self._overlay.close()
        for attr in ("_fd", "_lock_fd"):
            fd = getattr(self, attr, None)
            if fd is not None:
                os.close(fd)
                setattr(self, attr, None)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the rename is still atomic
    finally:
        os.close(fd)
