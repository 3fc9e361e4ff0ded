"""The on-disk cache of compiled kernels.

Trust model: object code in the cache is run as it is, so the cache must be as private
as the user's own files.  The directory (``$XV_CACHE_DIR``, else
``$XDG_CACHE_HOME/xenovectra/jit``, else ``~/.cache/xenovectra/jit``) is created with
mode 0700; an existing one is used only when it is owned by the user and writable by
nobody else, otherwise the cache is off for the process (with a warning) and kernels are
compiled in memory.  Entries are written atomically (a temporary file renamed into
place) with mode 0600.  Each entry starts with the SHA-256 of the rest and is verified
before use, so a truncated or corrupted entry is recompiled, never run.  Nothing is
unpickled: an entry is the metadata as JSON (numbers and strings) and the object code.

An entry's name is the hash of everything the code depends on: the kernel's IR, the
backend's version, the specialisation (block size, checked mode, privatised buffers)
and the LLVM version, CPU and CPU features.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import tempfile
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("xv.jit")

MAGIC = b"XVJIT1\n"
ENV = "XV_CACHE_DIR"


def default_dir() -> Path:
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "xenovectra" / "jit"


class DiskCache:
    """Compiled kernels by key.  ``get`` and ``put`` never raise for cache trouble: a
    cache that cannot be used costs a compile, not a failed run."""

    def __init__(self, directory: Path | None = None):
        self.directory = directory or default_dir()
        self.usable = self._prepare()

    def _prepare(self) -> bool:
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
        return self.directory / f"{key}.xvjit"

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
