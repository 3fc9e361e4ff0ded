"""``xv fabric run`` on the jit: selection by --backend and by the fabric, the compile time and
cache hits in the summary, and a second process that compiles nothing."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


def job_dir(tmp_path):
    """The saxpy example job, copied so its outputs land in tmp_path."""
    (tmp_path / "kernels").mkdir()
    shutil.copy(ROOT / "examples" / "kernels" / "saxpy.xvk", tmp_path / "kernels")
    jobs = tmp_path / "jobs"
    shutil.copytree(ROOT / "examples" / "jobs" / "data", jobs / "data")
    shutil.copy(ROOT / "examples" / "jobs" / "saxpy.yaml", jobs)
    return jobs / "saxpy.yaml"


def xv(*args, cache):
    env = {**os.environ, "XV_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, "-m", "xv_core.cli.main", *map(str, args)], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_fabric_run_reports_native_compiles_and_a_second_process_compiles_nothing(tmp_path):
    job = job_dir(tmp_path)
    cache = tmp_path / "cache"
    first = xv("fabric", "run", "default", job, cache=cache)
    assert "  native code: 1 compiled in " in first and ", 0 from the cache" in first
    second = json.loads(xv("fabric", "run", "default", job, "--json", cache=cache))
    assert second["native_compile"] == {"compile_s": 0.0, "compiles": 0, "cache_hits": 1}
    x = np.load(job.parent / "data" / "saxpy_x.npy")
    y = np.load(job.parent / "data" / "saxpy_y.npy")
    np.testing.assert_array_equal(np.load(job.parent / "out" / "saxpy_y.npy"),
                                  np.float32(2.0) * x + y)
    interp = xv("fabric", "run", "default", job, "--backend", "interp", cache=cache)
    assert "native code" not in interp
    np.testing.assert_array_equal(np.load(job.parent / "out" / "saxpy_y.npy"),
                                  np.float32(2.0) * x + y)


def test_the_fabric_chooses_the_backend_per_component(tmp_path):
    job = job_dir(tmp_path)
    fabric = tmp_path / "fabric.yaml"
    fabric.write_text(yaml.safe_dump({"name": "one", "components": [
        {"name": "alu", "kind": "cpu", "threads": 2, "backend": "interp"}]}))
    out = json.loads(xv("fabric", "run", fabric, job, "--json", cache=tmp_path / "c"))
    assert out["native_compile"]["compiles"] == 0
    out = json.loads(xv("fabric", "run", fabric, job, "--json", "--backend", "jit",
                        cache=tmp_path / "c"))
    assert out["native_compile"]["compiles"] == 1


def test_the_registered_bounds_promise_is_the_backends_own():
    """jit-unchecked is registered as not checking bounds (conformance suites skip its
    out-of-bounds tests for it) and is built unchecked; jit is registered and built checked."""
    from xv_core.plugins import load_plugins
    from xv_core.registry import BackendSpec

    backends = load_plugins().backends
    for name, checked in (("jit", True), ("jit-unchecked", False)):
        spec = backends.get(name)
        assert spec.checks_bounds is checked and spec.factory().checked is checked
    assert backends.get("interp").checks_bounds is True
    with pytest.raises(TypeError, match="checks_bounds"):
        BackendSpec("b", object, checks_bounds=0)
