"""The usbcache kind in a fabric file, through the core's loader and the runtime API."""

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
    path = write(tmp_path, ["{name: u0, kind: usbcache, paths: []}",
                            "{name: u1, kind: usbcache, paths: /media}"])
    with pytest.raises(ConfigError) as err:
        load_fabric(path, load_plugins())
    assert str(err.value).splitlines() == [
        f"{path}:4:3: no component can run kernels @ $.components (hint: add a component of a "
        f"compute kind (cpu, hdd, net))",
        f"{at(path, 4, '[]')}: paths must list at least one folder to scan @ $.components[0].paths",
        f"{at(path, 5, '/media')}: expected a list, got '/media' (a string) "
        f"@ $.components[1].paths",
    ]


def test_a_kernel_from_a_stick_runs(tmp_path, repo):
    plugins = load_plugins()
    if "cpu" not in plugins.components:
        pytest.skip("a fabric needs a compute component: xenovectra-cpu is not installed")
    path = write(tmp_path, ["{name: alu, kind: cpu, threads: 1}",
                            "{name: usb, kind: usbcache, paths: [media]}"])
    with xv.open_fabric(path, plugins=plugins) as fabric:
        kernel = fabric.components["usb"].get("triple")
        y = fabric.buffer(np.arange(10, dtype=np.float32))
        fabric.dispatch(kernel, global_size=10, block=4, args={"y": y})
        np.testing.assert_array_equal(y.read(), 3 * np.arange(10, dtype=np.float32))
