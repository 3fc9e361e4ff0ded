"""The per-user cache directory is private or refused."""

from __future__ import annotations

import os
import stat

import pytest

from xv_core.cachedir import user_cache_dir
from xv_core.errors import XvError


def test_created_private_and_overridable(tmp_path, monkeypatch):
    monkeypatch.setenv("XV_CACHE_DIR", str(tmp_path / "c"))
    path = user_cache_dir("jit")
    assert path == tmp_path / "c" / "jit" and path.is_dir()
    assert stat.S_IMODE(os.stat(tmp_path / "c").st_mode) & 0o077 == 0


def test_a_world_writable_cache_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "c"
    root.mkdir()
    root.chmod(0o777)
    monkeypatch.setenv("XV_CACHE_DIR", str(root))
    with pytest.raises(XvError) as err:
        user_cache_dir()
    assert str(err.value) == (f"{root}: the cache directory is not private to this user "
                              "(hint: remove it, or point XV_CACHE_DIR at a directory only you "
                              "can write)")
