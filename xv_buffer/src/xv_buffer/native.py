"""The replay loops of ``_replay.c``, compiled on first use and called through ctypes.

Replaying a trace one access at a time in Python costs a few hundred nanoseconds per access
for the simpler policies and about a microsecond for ARC, LFU or Belady; in C every policy
replays tens of millions of accesses per second.  The library is built with the system C
compiler (``$CC``, else Python's, else ``cc``) into the private per-user cache directory
(``xv_core.cachedir``: ``$XV_CACHE_DIR``, else ``$XDG_CACHE_HOME/xenovectra`` or
``~/.cache/xenovectra``, refused when another user could write there, since a library
planted there would be loaded), named by a hash of the source, so it is built once per
version.
Without a compiler the Python loops are used, with the same results (the tests compare both);
``XV_NATIVE=0`` forces them.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import subprocess
import sysconfig
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from xv_core.cachedir import user_cache_dir
from xv_core.errors import XvError

log = structlog.get_logger("xv.vram")

_SOURCE = Path(__file__).with_name("_replay.c")
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_tried = False
#: Why the compiled loops are not in use (None when they are, or were not tried yet).
unavailable: str | None = None

_I64 = ctypes.c_int64
_P32 = ctypes.POINTER(ctypes.c_int32)
_P64 = ctypes.POINTER(ctypes.c_int64)
_SIGNATURES: dict[str, list[Any]] = {
    "xv_lru": [_P32, _I64, _I64, _I64, _P64],
    "xv_fifo": [_P32, _I64, _I64, _I64, _P64],
    "xv_clock": [_P32, _I64, _I64, _I64, _P64],
    "xv_lfu": [_P32, _I64, _I64, _I64, _I64, _P64],
    "xv_arc": [_P32, _I64, _I64, _I64, _P64],
    "xv_s3fifo": [_P32, _I64, _I64, _I64, _I64, _I64, _P64],
    "xv_belady": [_P32, _P64, _I64, _I64, _I64, _P64],
}


def _cache_dir() -> Path:
    return user_cache_dir("native")


def _compiler() -> list[str]:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(cc)


def _build() -> ctypes.CDLL:
    source = _SOURCE.read_bytes()
    tag = hashlib.sha256(source + platform.machine().encode() + platform.system().encode())
    target = _cache_dir() / f"xv_replay-{tag.hexdigest()[:16]}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            cmd = [*_compiler(), "-O2", "-shared", "-fPIC", "-o", tmp, str(_SOURCE)]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise OSError(f"{' '.join(cmd)} failed: {done.stderr.strip()[:500]}")
            os.replace(tmp, target)  # atomic: a parallel build never loads half a file
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    lib = ctypes.CDLL(str(target))
    for name, args in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = _I64
    return lib


def library() -> ctypes.CDLL | None:
    """The compiled loops, or None (see :data:`unavailable`)."""
    global _lib, _tried, unavailable
    if os.environ.get("XV_NATIVE", "1") == "0":
        return None
    with _lock:
        if not _tried:
            _tried = True
            try:
                _lib = _build()
            except (OSError, subprocess.SubprocessError, AttributeError, XvError) as exc:
                unavailable = str(exc)
                log.info("vram replay uses the Python loops", reason=unavailable)
        return _lib


def _ptr(array: np.ndarray, kind: Any) -> Any:
    return array.ctypes.data_as(kind)


def replay(name: str, keys: np.ndarray, capacity: int, **params: int) -> tuple[int, int] | None:
    """(misses, resident keys at the end) of policy ``name`` over integer ``keys``; None when
    the compiled loops are not available."""
    lib = library()
    if lib is None:
        return None
    n = len(keys)
    if n == 0:
        return 0, 0
    _, dense = np.unique(keys, return_inverse=True)
    ids = np.ascontiguousarray(dense.reshape(-1), dtype=np.int32)
    nkeys = int(ids.max()) + 1
    resident = ctypes.c_int64(0)
    out = ctypes.byref(resident)
    p = _ptr(ids, _P32)
    if name == "lfu":
        maxfreq = int(np.bincount(ids).max())
        misses = lib.xv_lfu(p, n, nkeys, capacity, maxfreq, out)
    elif name == "s3fifo":
        misses = lib.xv_s3fifo(p, n, nkeys, capacity, params["small"], params["ghost"], out)
    elif name == "belady":
        from xv_buffer.policies import NEVER, next_uses

        nxt = next_uses(ids)
        never = nxt == NEVER
        nxt[never] = n + np.flatnonzero(never)
        nxt = np.ascontiguousarray(nxt, dtype=np.int64)
        misses = lib.xv_belady(p, _ptr(nxt, _P64), n, nkeys, capacity, out)
    else:
        misses = getattr(lib, f"xv_{name}")(p, n, nkeys, capacity, out)
    if misses < 0:
        raise MemoryError(f"replaying {n} accesses with {name}")
    return int(misses), int(resident.value)
