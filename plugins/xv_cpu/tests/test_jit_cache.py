"""The jit's disk cache: a second process compiles nothing; the cache is private and checked."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from xv_cpu_kernels import histogram_kernel

from xv_cpu.jit import JitBackend
from xv_cpu.jit import backend as jit_backend
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
    cache = tmp_path / "cache"
    first = run_process(cache)
    second = run_process(cache)
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
    from xv_cpu.jit.cache import default_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XV_CACHE_DIR", value)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    expected = Path(value) if value else tmp_path / "xdg" / "xenovectra" / "jit"
    assert default_dir() == expected
