"""The jit's disk cache: a second process compiles nothing; the cache is private, checked and
bounded."""

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from xv_cpu_kernels import histogram_kernel

from xv_cpu.jit import JitBackend
from xv_cpu.jit import backend as jit_backend
from xv_cpu.jit import cache as jit_cache
from xv_cpu.jit.cache import DiskCache
from xv_core.runtime.interfaces import Launch, Tile

KERNELS = Path(__file__).resolve().parents[3] / "examples" / "kernels"

# Runs the matmul and the histogram kernels through the jit in a fresh process and prints
# what compiling cost: the process has nothing compiled, so only the disk cache can help.
SCRIPT = r"""
import json, sys
import numpy as np
from xv_dsl import compile_file
from xv_cpu.jit import JitBackend
from xv_core.runtime.interfaces import Launch, Tile

report = {}
for name, args, grid in (
        ("matmul_tiled", lambda: {"a": np.ones(32 * 32, np.float32),
                                  "b": np.ones(32 * 32, np.float32),
                                  "c": np.zeros(32 * 32, np.float32), "n": np.int32(32)},
         (2, 2, 1)),
        ("saxpy", lambda: {"a": np.float32(2), "x": np.ones(512, np.float32),
                           "y": np.ones(512, np.float32)}, (2, 1, 1))):
    kernel = compile_file(sys.argv[1] + f"/{name}.xvk").kernels[0]
    prepared = JitBackend().prepare(kernel)
    block = kernel.workgroup or (256, 1, 1)
    launch = Launch(grid, tuple(block))
    a = args()
    prepared.run_tile(Tile(0, launch, 0, launch.groups), a)
    report[name] = {"compiles": prepared.compiles, "hits": prepared.cache_hits,
                    "compile_s": prepared.compile_s,
                    "sum": float(a["c" if name == "matmul_tiled" else "y"].sum())}
print(json.dumps(report))
"""


def run_process(cache_dir):
    env = {**os.environ, "XV_CACHE_DIR": str(cache_dir)}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(KERNELS)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_a_second_process_compiles_nothing(tmp_path):
    root = tmp_path / "cache"  # $XV_CACHE_DIR: the jit's entries are in its jit/ folder
    cache = root / "jit"
    first = run_process(root)
    second = run_process(root)
    for name in ("matmul_tiled", "saxpy"):
        assert first[name]["compiles"] == 1 and first[name]["hits"] == 0
        assert first[name]["compile_s"] > 0
        assert second[name]["compiles"] == 0 and second[name]["hits"] == 1
        assert second[name]["compile_s"] == 0
        assert second[name]["sum"] == first[name]["sum"]
    assert first["matmul_tiled"]["sum"] == 32 * 32 * 32
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    entries = list(cache.glob("*.xvjit"))
    assert len(entries) == 2
    assert all(stat.S_IMODE(e.stat().st_mode) == 0o600 for e in entries)


def fresh_run(cache, kernel, grid=4):
    jit_backend._process.clear()  # forget what this process compiled: only the disk counts
    prepared = JitBackend(cache=cache).prepare(kernel)
    values = np.random.default_rng(0).random(grid * 256).astype(np.float32)
    bins = np.zeros(8, np.int32)
    prepared.run_tile(Tile(0, Launch((grid, 1, 1), (256, 1, 1)), 0, grid),
                      {"values": values, "bins": bins, "lo": np.float32(0), "hi": np.float32(1)})
    np.testing.assert_array_equal(bins, np.bincount((values * 8).astype(int), minlength=8))
    return prepared


def test_a_corrupted_entry_is_recompiled_never_run(tmp_path):
    cache = DiskCache(tmp_path / "c")
    kernel = histogram_kernel()
    assert fresh_run(cache, kernel).compiles == 1
    (entry,) = (tmp_path / "c").glob("*.xvjit")
    data = bytearray(entry.read_bytes())
    data[-100] ^= 0xFF  # inside the object code
    entry.write_bytes(bytes(data))
    again = fresh_run(cache, kernel)
    assert (again.compiles, again.cache_hits) == (1, 0)
    assert (fresh_run(cache, kernel).compiles, fresh_run(cache, kernel).cache_hits) == (0, 1)


def test_a_cache_others_can_write_is_not_used(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)
    cache = DiskCache(shared)
    assert not cache.usable
    prepared = fresh_run(cache, histogram_kernel())
    assert prepared.compiles == 1
    assert list(shared.iterdir()) == []


def test_entries_are_keyed_by_the_specialisation(tmp_path):
    cache = DiskCache(tmp_path / "c")
    kernel = histogram_kernel()
    prepared = JitBackend(cache=cache).prepare(kernel)
    from xv_cpu.jit.codegen import Spec

    keys = {prepared.key(Spec((256, 1, 1))), prepared.key(Spec((128, 1, 1))),
            prepared.key(Spec((256, 1, 1), checked=False)),
            prepared.key(Spec((256, 1, 1), private=("bins",)))}
    assert len(keys) == 4


@pytest.mark.parametrize("value", ["", "relative/dir"])
def test_cache_directory_from_the_environment(monkeypatch, tmp_path, value):
    """The jit's folder of the per-user cache directory, which $XV_CACHE_DIR moves as it moves
    the others (native helpers, parser tables)."""
    from xv_core.cachedir import user_cache_dir
    from xv_cpu.jit.cache import default_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XV_CACHE_DIR", value)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    expected = (Path(value) if value else tmp_path / "xdg" / "xenovectra") / "jit"
    assert default_dir() == expected
    assert user_cache_dir("jit").resolve() == expected.resolve()


def entry(cache, key, nbytes, used):
    """A valid entry of about ``nbytes`` whose last use was ``used`` seconds ago."""
    cache.put(key, {"symbol": key}, b"\0" * nbytes)
    when = os.path.getmtime(cache.path(key)) - used
    os.utime(cache.path(key), (when, when))


def test_the_cache_keeps_under_its_bound_dropping_what_was_used_least_recently(
        tmp_path, monkeypatch):
    """A kernel edited or a new version of the backend makes new entries; the old ones go
    once the cache is over its bound, the least recently used first, down to nine tenths of
    the bound; a hit counts as a use; the entry just written stays."""
    monkeypatch.setenv("XV_JIT_CACHE_MB", str(20_000 / (1 << 20)))  # 20,000 bytes
    monkeypatch.setattr(jit_cache, "TRIM_EVERY_S", 0.0)  # check at every write
    cache = DiskCache(tmp_path / "c")
    for i in range(8):  # 2 KB each, used 800 s ago for e0 ... 100 s ago for e7
        entry(cache, f"e{i}", 2000, used=800 - 100 * i)
    assert cache.get("e1") is not None  # e1 is used now
    entry(cache, "new", 4000, used=0)  # 8 x 2,057 + 4,059 bytes: over 20,000
    left = sorted(p.stem for p in (tmp_path / "c").glob("*.xvjit"))
    # The oldest uses go until the rest fits in 18,000 bytes: e0, then e2 (e1 was just used).
    assert left == ["e1", "e3", "e4", "e5", "e6", "e7", "new"]
    assert sum(p.stat().st_size for p in (tmp_path / "c").iterdir()) <= 18_000
    assert cache.get("new") == ({"symbol": "new"}, b"\0" * 4000)


def test_trimming_keeps_the_entry_just_written_and_clears_stale_temporary_files(tmp_path):
    cache = DiskCache(tmp_path / "c")
    entry(cache, "old", 1000, used=10)
    entry(cache, "big", 5000, used=0)
    stale, fresh = tmp_path / "c" / ".tmp-stale", tmp_path / "c" / ".tmp-writing"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, (0, 0))  # a writer killed long ago
    assert cache.trim(keep="big", limit=3000) == 1  # only "old" may go: "big" stays, over
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        ".tmp-writing", ".trimmed", "big.xvjit"]
    assert cache.trim(limit=1 << 20) == 0


def test_the_size_is_checked_once_an_hour_at_most(tmp_path, monkeypatch):
    """Looking at every entry costs time on a large cache: writes check the size when the last
    check (by any process, recorded in the cache's .trimmed file) is an hour old."""
    monkeypatch.setenv("XV_JIT_CACHE_MB", str(3000 / (1 << 20)))
    cache = DiskCache(tmp_path / "c")
    marker = tmp_path / "c" / ".trimmed"
    for i in range(3):
        entry(cache, f"e{i}", 2000, used=10 - i)
    assert sorted(p.stem for p in (tmp_path / "c").glob("*.xvjit")) == ["e0", "e1", "e2"]
    assert marker.exists()  # the first write checked (the cache then held one entry)
    os.utime(marker, (time.time() - 3601,) * 2)
    entry(cache, "e3", 2000, used=0)  # an hour later: over 3,000 bytes, the oldest go
    assert sorted(p.stem for p in (tmp_path / "c").glob("*.xvjit")) == ["e3"]


def test_a_check_time_in_the_future_does_not_stop_the_checks(tmp_path, monkeypatch):
    """A clock set back (or a cache copied from elsewhere) leaves .trimmed in the future: the
    next write checks, instead of none until then."""
    monkeypatch.setenv("XV_JIT_CACHE_MB", str(3000 / (1 << 20)))
    cache = DiskCache(tmp_path / "c")
    entry(cache, "e0", 2000, used=10)
    marker = tmp_path / "c" / ".trimmed"
    os.utime(marker, (time.time() + 30 * 86400,) * 2)
    entry(cache, "e1", 2000, used=0)
    assert sorted(p.stem for p in (tmp_path / "c").glob("*.xvjit")) == ["e1"]


def test_a_file_trimming_cannot_remove_does_not_stop_it(tmp_path):
    cache = DiskCache(tmp_path / "c")
    entry(cache, "old", 2000, used=10)
    entry(cache, "new", 2000, used=0)
    odd = tmp_path / "c" / ".tmp-folder"
    odd.mkdir()
    os.utime(odd, (0, 0))
    assert cache.trim(limit=3000) == 1
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        ".tmp-folder", ".trimmed", "new.xvjit"]


def test_the_default_cache_is_refused_when_its_root_is_not_private(tmp_path, monkeypatch):
    """Whoever can write $XV_CACHE_DIR could swap its jit folder for one of theirs: the root
    must be private too, as the native helpers' and the parser's folders require."""
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o777)
    monkeypatch.setenv("XV_CACHE_DIR", str(root))
    assert not DiskCache().usable
    root.chmod(0o700)
    assert DiskCache().usable and stat.S_IMODE((root / "jit").stat().st_mode) == 0o700


def test_the_default_cache_creates_its_root_private(tmp_path, monkeypatch):
    monkeypatch.setenv("XV_CACHE_DIR", str(tmp_path / "new" / "root"))
    assert DiskCache().usable
    assert stat.S_IMODE((tmp_path / "new" / "root").stat().st_mode) == 0o700


def test_entries_of_the_old_layout_go_at_the_next_check(tmp_path, monkeypatch):
    """Entries used to be written straight into $XV_CACHE_DIR; now they are in its jit
    folder, and the old ones, never read again, go when the size is next checked."""
    monkeypatch.setenv("XV_CACHE_DIR", str(tmp_path / "root"))
    cache = DiskCache()
    old = tmp_path / "root" / ("ab" * 32 + ".xvjit")
    old.write_bytes(b"XVJIT1\n" + b"\0" * 100)
    (tmp_path / "root" / "notes.txt").write_text("mine")
    cache.put("k", {"symbol": "k"}, b"code")  # the first write checks
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["jit", "notes.txt"]
    assert cache.get("k") == ({"symbol": "k"}, b"code")


@pytest.mark.parametrize("value, expected", [("", 256 << 20), ("64", 64 << 20),
                                             ("0.5", 1 << 19), ("0", 256 << 20),
                                             ("lots", 256 << 20), ("inf", 256 << 20),
                                             ("nan", 256 << 20), ("1e303", 256 << 20)])
def test_the_bound_comes_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("XV_JIT_CACHE_MB", value)
    assert jit_cache.max_bytes() == expected


def test_compiling_under_a_small_bound_keeps_the_cache_small(tmp_path, monkeypatch):
    """Specialisations compiled one after another under a bound of two and a half entries'
    size: the cache never holds more, and the kernel still runs from it or compiles again."""
    from xv_cpu.jit.codegen import Spec

    cache = DiskCache(tmp_path / "c")
    kernel = histogram_kernel()
    fresh_run(cache, kernel)
    (one,) = (tmp_path / "c").glob("*.xvjit")
    bound = 2.5 * one.stat().st_size
    monkeypatch.setenv("XV_JIT_CACHE_MB", str(bound / (1 << 20)))
    monkeypatch.setattr(jit_cache, "TRIM_EVERY_S", 0.0)
    jit_backend._process.clear()
    prepared = JitBackend(cache=cache).prepare(kernel)
    for block in (128, 64, 32, 16):
        prepared.compiled(Spec((block, 1, 1)))
        entries = list((tmp_path / "c").glob("*.xvjit"))
        assert sum(p.stat().st_size for p in entries) <= bound
    assert prepared.compiles == 4 and 1 <= len(entries) <= 2
    fresh_run(cache, kernel)  # checks the histogram
