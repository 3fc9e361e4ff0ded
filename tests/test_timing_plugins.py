"""The built-in bus models are registered the way a plugin's would be, and plug into a timeline."""

from __future__ import annotations

import math

from xv_core import plugins
from xv_core.profiles import LinkProfile
from xv_core.timing import BUILTIN_MODELS, BusModel, Link, Timeline


def test_the_core_registers_its_four_bus_models():
    loaded = plugins.load_plugins(entry_points=False)
    registry = loaded.bus_models
    assert {"ideal", "shared", "fifo", "tcp"} <= set(registry.names())
    for name in ("ideal", "shared", "fifo", "tcp"):
        assert registry.plugin_of(name) == "xenovectra"
        model = registry.get(name).factory()
        assert isinstance(model, BusModel) and model is BUILTIN_MODELS[name]
        assert registry.get(name).description == model.description != ""


def test_a_timeline_takes_its_models_from_the_registry():
    registry = plugins.load_plugins(entry_points=False).bus_models
    models = {name: registry.get(name).factory() for name in registry.names()}
    link = LinkProfile("sg", 125_000, 0.01, "SimGrid's example link", "SimGrid docs",
                       full_duplex=False)
    tl = Timeline([Link("l", "a", "b", link)], bus="tcp", models=models)
    done = tl.transfer(("a", "b"), 100_000)
    tl.run()
    assert round(done.end, 6) == 0.996079


def test_a_plugin_model_is_just_numbers():
    slow_start = BusModel("slow-start", "fluid", "latency doubled", latency_factor=2.0)
    link = LinkProfile("x", 1e6, 0.5, "a link", "made up")
    tl = Timeline([Link("l", "a", "b", link)], bus=slow_start)
    done = tl.transfer(("a", "b"), 1_000_000)
    tl.run()
    assert math.isclose(done.end, 2.0, rel_tol=1e-12)
    assert math.isclose(slow_start.duration(1_000_000, 1e6, 0.5), 2.0, rel_tol=1e-12)


def test_ideal_duration_is_zero_and_shared_is_latency_plus_size_over_bandwidth():
    assert BUILTIN_MODELS["ideal"].duration(10**9, 1e6, 1.0) == 0.0
    assert BUILTIN_MODELS["shared"].duration(10**6, 1e6, 0.5) == 1.5
    assert BUILTIN_MODELS["fifo"].duration(10**6, 1e6, 0.5) == 1.5
