"""The net kind in a fabric file, through the core's loader and the runtime API."""

import numpy as np
import pytest

import xv_core as xv
from xv_core.config import load_fabric
from xv_core.errors import ConfigError
from xv_core.plugins import load_plugins


def write(tmp_path, components):
    path = tmp_path / "fabric.yaml"
    path.write_text("name: t\nvram: {capacity: 16MiB, page_size: 64KiB, eviction: lru}\n"
                    "components:\n" + "".join(f"  - {c}\n" for c in components))
    return path


def at(path, line, token):
    """``path:line:col`` of the first ``token`` on ``line`` of the file (1-based)."""
    text = path.read_text().splitlines()[line - 1]
    return f"{path}:{line}:{text.index(token) + 1}"


def test_bad_options_are_located(tmp_path):
    path = write(tmp_path, ["{name: n0, kind: net, address: localhost, backend: ''}"])
    with pytest.raises(ConfigError) as err:
        load_fabric(path, load_plugins())
    assert str(err.value).splitlines() == [
        f"{at(path, 4, 'localhost')}: address must be a scheduler address like "
        f"tcp://127.0.0.1:8786, or null "
        f"for a local cluster @ $.components[0].address",
        at(path, 4, "''") + ": backend must not be empty @ $.components[0].backend",
    ]


def test_tiles_shared_between_cpu_and_a_remote_node(tmp_path, lib):
    plugins = load_plugins()
    if "cpu" not in plugins.components:
        pytest.skip("xenovectra-cpu is not installed")
    path = write(tmp_path, ["{name: alu, kind: cpu, threads: 1}", "{name: node0, kind: net}"])
    n = 300_007
    x = np.linspace(-1, 1, n, dtype=np.float32)
    # round-robin: eft would rightly keep a memory-bound saxpy off a node behind 1 GbE
    with xv.open_fabric(path, plugins=plugins, scheduler="round-robin") as fabric:
        bx, by = fabric.buffer(x), fabric.buffer(np.full(n, 0.5, dtype=np.float32))
        result = fabric.dispatch(lib.saxpy_ir(), global_size=n, block=256,
                                 args={"a": -3.0, "x": bx, "y": by})
        out = by.read()
    placed = result.tiles_per_component()
    assert placed["node0"] >= 1 and placed["alu"] >= 1
    np.testing.assert_array_equal(out, np.float32(-3) * x + np.float32(0.5))
