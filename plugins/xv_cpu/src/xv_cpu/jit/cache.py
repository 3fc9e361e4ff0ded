"""The on-disk cache of compiled kernels.

Trust model: object code in the cache is run as it is, so the cache must be as private
as the user's own files.  The directory (``jit`` in the per-user cache directory of
:mod:`xv_core.cachedir`: ``$XV_CACHE_DIR/jit``, else ``$XDG_CACHE_HOME/xenovectra/jit``,
else ``~/.cache/xenovectra/jit``) is created with mode 0700; an existing one is used only
when it is owned by the user and writable by nobody else, otherwise the cache is off for
the process (with a warning) and kernels are compiled in memory.  Entries are written
atomically (a temporary file renamed into place) with mode 0600.  Each entry starts with
the SHA-256 of the rest and is verified before use, so a truncated or corrupted entry is
recompiled, never run.  Nothing is unpickled: an entry is the metadata as JSON (numbers
and strings) and the object code.

An entry's name is the hash of everything the code depends on: the kernel's IR, the
backend's version, the specialisation (block size, checked mode, privatised buffers)
and the LLVM version, CPU and CPU features.  A new version of the backend or a kernel
edited makes new entries and leaves the old ones unused, so the cache is bounded
(:data:`DEFAULT_MAX_MB`, ``$XV_JIT_CACHE_MB``): once an hour at most
(:data:`TRIM_EVERY_S`; looking at every entry costs ~13 µs an entry on the project's VM),
writing an entry checks the total, and when it is over the bound the entries used least
recently (by modification time, which a hit refreshes) go until it is under nine tenths of
it.  Temporary files a killed writer left behind go too.  The bound is soft: what is written
within the hour may take the cache past it until the next check.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog

from xv_core.cachedir import cache_root, user_cache_dir
from xv_core.errors import XvError

log = structlog.get_logger("xv.jit")

MAGIC = b"XVJIT1\n"
SUFFIX = ".xvjit"
#: The bound on the entries' total size, in MiB, unless ``$XV_JIT_CACHE_MB`` gives one.
DEFAULT_MAX_MB = 256
MAX_ENV = "XV_JIT_CACHE_MB"
#: A temporary file older than this (seconds) is a write that never finished.
STALE_TMP_S = 3600.0
#: Seconds between two checks of the cache's size (by any process); the file ``.trimmed``
#: in the cache directory holds the time of the last one.
TRIM_EVERY_S = 3600.0
MARKER = ".trimmed"


def default_dir() -> Path:
    """``jit`` in the per-user cache directory (:func:`xv_core.cachedir.cache_root`)."""
    return cache_root() / "jit"


def max_bytes() -> int:
    """The cache's bound in bytes: ``$XV_JIT_CACHE_MB`` (a positive number of MiB), else
    :data:`DEFAULT_MAX_MB`."""
    value = os.environ.get(MAX_ENV, "").strip()
    if value:
        try:
            mb = float(value)
        except ValueError:
            mb = -1.0
        nbytes = mb * (1 << 20)
        if 0 < nbytes < float("inf"):
            return int(nbytes)
        log.warning("jit cache bound ignored", variable=MAX_ENV, value=value,
                    hint=f"give a positive number of MiB; using {DEFAULT_MAX_MB}")
    return DEFAULT_MAX_MB << 20


class DiskCache:
    """Compiled kernels by key, in ``directory`` (by default the ``jit`` folder of the
    per-user cache directory, which must be private too: whoever can write it could swap
    the folder).  ``get`` and ``put`` never raise for cache trouble: a cache that cannot be
    used costs a compile, not a failed run."""

    def __init__(self, directory: Path | None = None):
        self.root = cache_root() if directory is None else None
        self.directory = directory or default_dir()
        self.usable = self._prepare()

    def _prepare(self) -> bool:
        if self.root is not None:  # the per-user cache directory's own rule, root and folder
            try:
                user_cache_dir("jit")
            except XvError as exc:
                log.warning("jit cache not private: not used", path=exc.where, hint=exc.hint)
                return False
            except OSError as exc:
                log.warning("jit cache unusable", path=str(self.directory), error=str(exc))
                return False
            return True
        d = self.directory
        try:
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = d.stat()
        except OSError as exc:
            log.warning("jit cache unusable", path=str(d), error=str(exc))
            return False
        if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            log.warning("jit cache not private: not used", path=str(d),
                        hint="the cache directory must belong to you and be writable by "
                             "nobody else (chmod 700)")
            return False
        return True

    def path(self, key: str) -> Path:
        return self.directory / f"{key}{SUFFIX}"

    def get(self, key: str) -> tuple[dict[str, Any], bytes] | None:
        if not self.usable:
            return None
        try:
            data = self.path(key).read_bytes()
        except OSError:
            return None
        head = len(MAGIC)
        if data[:head] != MAGIC or len(data) < head + 36:
            log.warning("jit cache entry malformed: recompiling", key=key)
            return None
        digest, payload = data[head:head + 32], data[head + 32:]
        if hashlib.sha256(payload).digest() != digest:
            log.warning("jit cache entry fails its hash: recompiling", key=key)
            return None
        (meta_len,) = struct.unpack("<I", payload[:4])
        try:
            meta = json.loads(payload[4:4 + meta_len].decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        try:  # used now: the last entries to go when the cache is trimmed
            os.utime(self.path(key))
        except OSError:
            pass
        return meta, payload[4 + meta_len:]

    def put(self, key: str, meta: dict[str, Any], obj: bytes) -> None:
        if not self.usable:
            return
        blob = json.dumps(meta, separators=(",", ":")).encode("utf-8")
        payload = struct.pack("<I", len(blob)) + blob + obj
        data = MAGIC + hashlib.sha256(payload).digest() + payload
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.chmod(tmp, 0o600)
                os.replace(tmp, self.path(key))
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("jit cache write failed", key=key, error=str(exc))
            return
        if self._trim_due():
            self.trim(keep=key)

    def _trim_due(self) -> bool:
        """Whether the last check of the size is :data:`TRIM_EVERY_S` old (then this one is
        recorded as the last)."""
        marker = self.directory / MARKER
        try:
            if 0 <= time.time() - marker.stat().st_mtime < TRIM_EVERY_S:
                return False  # (a time in the future, from a clock set back, is due)
            os.utime(marker)
        except FileNotFoundError:
            try:
                marker.touch(mode=0o600)
            except OSError:
                return False
        except OSError:
            return False
        return True

    def trim(self, keep: str | None = None, limit: int | None = None) -> int:
        """Remove the least recently used entries while the cache is over ``limit`` bytes
        (:func:`max_bytes`), down to nine tenths of it, temporary files older than
        :data:`STALE_TMP_S`, and entries an earlier layout left in the per-user cache
        directory itself (never read again); never the entry ``keep`` (just written).
        Returns the entries removed.  Other processes may trim or read at the same time: an
        entry gone by the time it is read is compiled again."""
        if not self.usable:
            return 0
        if self.root is not None:
            _remove_old_layout(self.root)
        limit = max_bytes() if limit is None else limit
        entries: list[tuple[float, str, int, Path]] = []
        total = 0
        now = time.time()
        try:
            with os.scandir(self.directory) as it:
                for e in it:
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError:
                        continue  # removed meanwhile
                    if e.name.startswith(".tmp-"):
                        if now - st.st_mtime > STALE_TMP_S:
                            try:
                                Path(e.path).unlink(missing_ok=True)
                            except OSError:
                                pass  # not ours to remove after all (a folder, say)
                        continue
                    if e.name.endswith(SUFFIX) and e.is_file(follow_symlinks=False):
                        entries.append((st.st_mtime, e.name, st.st_size, Path(e.path)))
                        total += st.st_size
        except OSError as exc:
            log.warning("jit cache not trimmed", path=str(self.directory), error=str(exc))
            return 0
        if total <= limit:
            return 0
        removed = 0
        target = limit * 9 // 10
        kept = f"{keep}{SUFFIX}" if keep is not None else None
        for _, name, size, path in sorted(entries):  # oldest use first (then by name)
            if total <= target:
                break
            if name == kept:
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                pass  # another process trimmed it
            except OSError:
                continue
            total -= size
            removed += 1
        log.debug("jit cache trimmed", removed=removed, bytes=total, limit=limit)
        return removed


def _remove_old_layout(root: Path) -> None:
    """Entries written straight into the per-user cache directory, where ``$XV_CACHE_DIR``
    used to put them (now ``$XV_CACHE_DIR/jit``): nothing reads them any more."""
    try:
        with os.scandir(root) as it:
            old = [Path(e.path) for e in it
                   if e.name.endswith(SUFFIX) and e.is_file(follow_symlinks=False)]
    except OSError:
        return
    for path in old:
        try:
            path.unlink()
        except OSError:
            pass
