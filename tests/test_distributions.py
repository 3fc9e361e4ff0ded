"""Every distribution installs on its own beside the core, and is discovered only when installed.

The slow test builds a wheel of each distribution (from a clean copy of its folder, so nothing of
the development checkout leaks in), makes a throwaway virtual environment with the core alone,
then installs the distributions one at a time -- a plain ``pip install`` of the core's wheel and
one distribution's wheel, as a user would -- and after each step asks that environment's Python
what ``load_plugins()`` found: the new distribution's kinds are there, provided by its plugin;
those of the distributions not installed yet are absent.  At the end it runs the saxpy job with
the installed ``xv`` command, and uninstalls one distribution to see its kind go.

Wheels are built with ``--no-build-isolation`` in one shared build environment, which is several
times faster than an isolated build per distribution; pip's cache is reused throughout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import attrs
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@attrs.frozen
class Dist:
    """A distribution of the repository and what it must register (at least)."""

    folder: str  # relative to the repository root; "." is the core
    name: str  # the distribution name on an index
    plugin: str  # its entry-point name in the ``xenovectra`` group
    provides: dict[str, frozenset[str]] = attrs.field(factory=dict)  # registry -> names
    suffixes: frozenset[str] = frozenset()  # front-end file suffixes


CORE = Dist(".", "xenovectra", "xenovectra")
DISTS = [
    Dist("xv_buffer", "xenovectra-buffer", "xv_buffer",
         {"vram_managers": frozenset({"ram"}), "eviction_policies": frozenset({"lru", "fifo"})}),
    Dist("xv_dsl", "xenovectra-dsl", "xv_dsl", suffixes=frozenset({".xvk"})),
    Dist("plugins/xv_cpu", "xenovectra-cpu", "xv_cpu",
         {"components": frozenset({"cpu"}), "backends": frozenset({"interp"})}),
    Dist("plugins/xv_hdd", "xenovectra-hdd", "xv_hdd", {"components": frozenset({"hdd"})}),
    Dist("plugins/xv_nvme", "xenovectra-nvme", "xv_nvme", {"components": frozenset({"nvme"})}),
    Dist("plugins/xv_usbcache", "xenovectra-usbcache", "xv_usbcache",
         {"components": frozenset({"usbcache"})}),
    Dist("plugins/xv_net", "xenovectra-net", "xv_net", {"components": frozenset({"net"})}),
]
REGISTRIES = ("components", "backends", "eviction_policies", "bus_models", "frontends",
              "vram_managers")

# What the throwaway environment's Python reports: one JSON line after a marker.
PROBE = f"""
import json
from xv_core.plugins import load_plugins
p = load_plugins()
print("XV-PROBE " + json.dumps({{
    "loaded": {{i.name: i.distribution for i in p.loaded}},
    "failures": [[f.name, f.reason] for f in p.failures],
    "registries": {{a: {{n: getattr(p, a).plugin_of(n) for n in getattr(p, a)}}
                   for a in {REGISTRIES!r}}},
    "suffixes": {{n: list(p.frontends.get(n).suffixes) for n in p.frontends}},
}}))
"""


def _pyproject(dist: Dist) -> dict:
    return tomllib.loads((ROOT / dist.folder / "pyproject.toml").read_text())


# -- fast: the manifests ---------------------------------------------------------------------


@pytest.mark.parametrize("dist", DISTS, ids=lambda d: d.folder)
def test_pyproject_depends_on_the_core_by_name(dist):
    project = _pyproject(dist)["project"]
    assert project["name"] == dist.name
    deps = project["dependencies"]
    core = [d for d in deps if re.match(r"xenovectra\s*[><=~!]", d)]
    assert core and re.fullmatch(r"xenovectra\s*>=\s*[0-9][0-9.]*", core[0]), deps
    for dep in deps:  # no pins that would break publishing
        assert "@" not in dep and "file:" not in dep and "://" not in dep, dep
    assert _pyproject(dist)["project"]["entry-points"]["xenovectra"] == {
        dist.plugin: f"{dist.plugin}.plugin"}
    assert (ROOT / dist.folder / "README.md").is_file()
    assert (ROOT / dist.folder / "tests").is_dir()


# -- slow: real installs ---------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def _run(args: list[str | Path], *, cwd: Path, timeout: float = 600) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {proc.returncode}\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def _pip(python: Path, *args: str | Path, cwd: Path) -> str:
    # The test runner's pip, pointed at another environment: no pip inside the throwaway ones.
    return _run([sys.executable, "-m", "pip", "--python", python, *args, "--quiet"], cwd=cwd)


def _venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True,
                   env=_env(), timeout=120)
    return path / "bin" / "python"


def _copy_source(dist: Dist, into: Path) -> Path:
    """The files a distribution builds from, without tests, caches or earlier build output."""
    target = into / dist.name
    if dist.folder == ".":
        target.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            shutil.copy(ROOT / name, target / name)
        shutil.copytree(ROOT / "src", target / "src", ignore=_IGNORE)
    else:
        shutil.copytree(ROOT / dist.folder, target, ignore=_IGNORE)
    return target


_IGNORE = shutil.ignore_patterns("tests", "build", "dist", "*.egg-info", "__pycache__",
                                 ".pytest_cache", "*.pyc")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    """A wheel of every distribution, by distribution name."""
    work = tmp_path_factory.mktemp("wheels")
    (work / "src").mkdir()
    sources = [_copy_source(d, work / "src") for d in [CORE, *DISTS]]
    requires = sorted({r for d in [CORE, *DISTS]
                       for r in _pyproject(d)["build-system"]["requires"]})
    builder = _venv(work / "build-env")
    _pip(builder, "install", *requires, cwd=work)
    _pip(builder, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", work / "wheels",
         *sources, cwd=work)
    built = {}
    for dist in [CORE, *DISTS]:
        prefix = dist.name.replace("-", "_") + "-"
        found = [w for w in (work / "wheels").glob("*.whl") if w.name.startswith(prefix)]
        assert len(found) == 1, (dist.name, sorted(p.name for p in (work / "wheels").iterdir()))
        built[dist.name] = found[0]
    return built


def _probe(python: Path, cwd: Path) -> dict:
    out = _run([python, "-c", PROBE], cwd=cwd, timeout=120)
    line = next(line for line in out.splitlines() if line.startswith("XV-PROBE "))
    return json.loads(line[len("XV-PROBE "):])


def _check(report: dict, installed: list[Dist], absent: list[Dist], step: str) -> None:
    assert report["failures"] == [], step
    loaded = report["loaded"]
    regs = report["registries"]
    assert loaded.get("xenovectra") == "xenovectra", step
    for dist in installed:
        assert loaded.get(dist.plugin) == dist.name, (step, dist.name, loaded)
        for registry, names in dist.provides.items():
            for name in names:
                assert regs[registry].get(name) == dist.plugin, (step, dist.name, registry, name)
        for suffix in dist.suffixes:
            owners = [n for n, sfx in report["suffixes"].items() if suffix in sfx]
            assert [regs["frontends"][n] for n in owners] == [dist.plugin], (step, suffix)
    for dist in absent:
        assert dist.plugin not in loaded, (step, dist.name)
        for registry, names in dist.provides.items():
            assert not names & set(regs[registry]), (step, dist.name, registry)
        for suffix in dist.suffixes:
            assert not any(suffix in sfx for sfx in report["suffixes"].values()), (step, suffix)
    # Whatever is registered comes from a loaded plugin (the core's own built-ins included).
    for registry, names in regs.items():
        assert set(names.values()) <= set(loaded), (step, registry, names)


@pytest.mark.slow
def test_each_distribution_is_discovered_once_installed_and_only_then(wheels, tmp_path):
    python = _venv(tmp_path / "venv")
    core = wheels[CORE.name]
    _pip(python, "install", core, cwd=tmp_path)
    report = _probe(python, tmp_path)
    _check(report, [], DISTS, "core alone")
    assert all(owner == "xenovectra" for reg in report["registries"].values()
               for owner in reg.values())

    for i, dist in enumerate(DISTS):
        # ``pip install <core> <dist>``: the core is already there, so this adds one distribution.
        _pip(python, "install", core, wheels[dist.name], cwd=tmp_path)
        _check(_probe(python, tmp_path), DISTS[: i + 1], DISTS[i + 1:], f"after {dist.name}")

    # The installed product runs the example job, from files that are not the checkout's.
    job = tmp_path / "job"
    shutil.copytree(ROOT / "examples" / "jobs", job / "jobs")
    shutil.copytree(ROOT / "examples" / "kernels", job / "kernels")
    for stale in (job / "jobs").glob("out"):
        shutil.rmtree(stale)
    _run([python.parent / "xv", "fabric", "run", "default", job / "jobs" / "saxpy.yaml"],
         cwd=tmp_path, timeout=300)
    x = np.load(job / "jobs" / "data" / "saxpy_x.npy")
    y = np.load(job / "jobs" / "data" / "saxpy_y.npy")
    out = np.load(job / "jobs" / "out" / "saxpy_y.npy")
    np.testing.assert_array_equal(out, np.float32(2.0) * x + y)

    # Uninstalling a distribution takes its kinds away again.
    _run([sys.executable, "-m", "pip", "--python", python, "uninstall", "--yes", "--quiet",
          "xenovectra-hdd"], cwd=tmp_path)
    hdd = next(d for d in DISTS if d.plugin == "xv_hdd")
    _check(_probe(python, tmp_path), [d for d in DISTS if d is not hdd], [hdd], "after uninstall")
