"""The per-user cache directory (compiled kernels, parser tables, native helpers).

``$XV_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/xenovectra``, else
``~/.cache/xenovectra``.  Trust model: what is cached there is only ever
produced by Xenovectra itself, for this user, so the directory must belong to
the user and be writable by nobody else; it is created with mode 0700 and
refused (with a clear error) when another user could plant files in it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from xv_core.errors import XvError


def cache_root() -> Path:
    explicit = os.environ.get("XV_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "xenovectra"


def user_cache_dir(sub: str | None = None) -> Path:
    """The cache directory (or its subdirectory ``sub``), created 0700 and checked."""
    root = cache_root()
    path = root / sub if sub else root
    root.parent.mkdir(parents=True, exist_ok=True)
    root.mkdir(mode=0o700, exist_ok=True)
    path.mkdir(mode=0o700, exist_ok=True)
    for part in (root, path):
        st = part.stat()
        if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise XvError(
                "the cache directory is not private to this user",
                where=str(part),
                hint="remove it, or point XV_CACHE_DIR at a directory only you can write",
            )
    return path
