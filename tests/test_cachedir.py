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


PROBE = ("from xv_buffer import native; lib = native.library(); "
         "print('native' if lib is not None else 'python:' + str(native.unavailable))")


def _probe(env_dir) -> str:
    import subprocess
    import sys

    env = {**os.environ, "XV_CACHE_DIR": str(env_dir)}
    env.pop("XV_NATIVE", None)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]  # after any log line


def test_the_native_replay_library_is_built_in_the_private_cache(tmp_path):
    out = _probe(tmp_path / "c")
    if out.startswith("python:") and "not private" not in out:
        pytest.skip(f"no C compiler here: {out}")
    assert out == "native"
    assert list((tmp_path / "c" / "native").glob("xv_replay-*.so"))


def test_a_shared_cache_is_not_trusted_with_the_native_library(tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    root.chmod(0o777)  # anyone could plant a library here: the Python loops are used
    out = _probe(root)
    assert out.startswith("python:") and "not private to this user" in out
    assert not list(root.rglob("*.so"))
