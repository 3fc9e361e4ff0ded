"""The hdd kind in a fabric file, through the core's loader and the runtime API."""

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
    path = write(tmp_path, ["{name: d0, kind: hdd, path: a, workers: 0, colour: red}",
                            "{name: d1, kind: hdd}"])
    with pytest.raises(ConfigError) as err:
        load_fabric(path, load_plugins())
    assert str(err.value).splitlines() == [
        f"{at(path, 4, '0, colour')}: workers must be at least 1, got 0 @ $.components[0].workers",
        f"{at(path, 4, 'colour')}: unknown key 'colour' @ $.components[0].colour "
        f"(hint: known keys: name, "
        f"kind, timing, path, backend, workers)",
        f"{path}:5:5: missing required key 'path' @ $.components[1]",
    ]


def test_a_fabric_of_hdd_tiles_runs_saxpy(tmp_path, saxpy):
    plugins = load_plugins()
    if "interp" not in plugins.backends:
        pytest.skip("the interp backend (xenovectra-cpu) is not installed")
    path = write(tmp_path, ["{name: d0, kind: hdd, path: disk0, workers: 2}"])
    n = 200_001
    x = np.arange(n, dtype=np.float32)
    with xv.open_fabric(path, plugins=plugins) as fabric:
        assert fabric.compute == ["d0"]
        bx, by = fabric.buffer(x), fabric.buffer(np.ones(n, dtype=np.float32))
        result = fabric.dispatch(saxpy, global_size=n, block=128, args={"a": 2.0, "x": bx,
                                                                         "y": by})
        out = by.read()
    assert result.tiles_per_component() == {"d0": len(result.tiles)}
    np.testing.assert_array_equal(out, np.float32(2) * x + 1)
    assert (tmp_path / "disk0").is_dir()


def test_a_folder_that_cannot_be_made_is_located_in_the_fabric(tmp_path):
    """Only opening the fabric finds it; it is reported where the component is written."""
    plugins = load_plugins()
    (tmp_path / "file").write_text("not a directory")
    path = write(tmp_path, ["{name: d0, kind: hdd, path: file/sub}"])
    load_fabric(path, plugins)  # well formed: validate touches nothing on disk
    with pytest.raises(ConfigError) as err:
        xv.open_fabric(path, plugins=plugins)
    assert str(err.value) == (
        f"{path}:4:5: component 'd0': cannot create directory {tmp_path / 'file' / 'sub'}: "
        f"Not a directory @ $.components[0] (hint: check the permissions, or choose another "
        f"path)")
