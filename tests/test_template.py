"""The plugin template in templates/plugin works as docs/plugins.md says."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from xv_core.config.fabric import parse_fabric
from xv_core.errors import ConfigError
from xv_core.plugins import load_plugins
from xv_core.runtime.api import open_fabric

ROOT = Path(__file__).resolve().parents[1]


def _template_plugin():
    path = ROOT / "templates" / "plugin" / "src" / "xv_example" / "plugin.py"
    spec = importlib.util.spec_from_file_location("xv_example_plugin", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_template_component_runs_saxpy_beside_cpu():
    plugins = load_plugins(extra=[("xv_example", _template_plugin())])
    assert plugins.provided_by("xv_example") == {"component kind": ["example"]}
    config = parse_fabric({"name": "t", "components": [
        {"name": "ex0", "kind": "example", "workers": 2}]}, plugins, "t.yaml")
    with open_fabric(config, plugins=plugins) as fabric:
        assert fabric.model.profiles["ex0"].lanes == 2  # the timeline's lanes are its workers
        saxpy = fabric.kernel(ROOT / "examples" / "kernels" / "saxpy.xvk")
        x0 = np.arange(300_000, dtype=np.float32)
        x, y = fabric.buffer(x0), fabric.zeros(x0.size, "f32")
        result = fabric.dispatch(saxpy, global_size=x0.size, block=64, args={"a": 3.0, "x": x, "y": y})
        assert np.array_equal(y.read(), np.float32(3) * x0)
        assert set(result.tiles_per_component()) == {"ex0"}


def test_the_template_options_are_validated():
    plugins = load_plugins(extra=[("xv_example", _template_plugin())])
    with pytest.raises(ConfigError) as err:
        parse_fabric({"name": "t", "components": [{"name": "ex0", "kind": "example", "workers": 0,
                                                   "colour": "red"}]}, plugins, "t.yaml")
    assert str(err.value).splitlines() == [
        "t.yaml: 'workers' must be >= 1: 0 @ $.components[0].workers",
        "t.yaml: unknown key 'colour' @ $.components[0].colour "
        "(hint: known keys: name, kind, timing, workers, backend)",
    ]
