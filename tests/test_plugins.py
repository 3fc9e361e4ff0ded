"""The plugin manager and the registries."""

from __future__ import annotations

import importlib.metadata
import sys
import types

import attrs
import pytest

from xv_core import hookimpl, plugins
from xv_core.errors import PluginError, UnknownNameError
from xv_core.registry import BackendSpec, ComponentKind, Registry


@attrs.frozen
class _Opts:
    pass


def _module(name: str, **hooks) -> types.ModuleType:
    mod = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(mod, hook_name, hookimpl(fn))
    return mod


def _kind_plugin(name: str, kind: str) -> types.ModuleType:
    return _module(name, xv_component_kinds=lambda: [ComponentKind(kind, _Opts, object)])


def _fake_entry_points(monkeypatch, modules: dict[str, str]) -> None:
    eps = [importlib.metadata.EntryPoint(name=n, value=v, group="xenovectra")
           for n, v in modules.items()]
    monkeypatch.setattr(plugins, "_entry_points", lambda: sorted(eps, key=lambda e: e.name))


def test_the_manager_is_built_by_a_factory_not_at_import():
    a = plugins.load_plugins(entry_points=False)
    b = plugins.load_plugins(entry_points=False)
    assert a.pm is not b.pm
    assert "ideal" in a.bus_models and a.bus_models.plugin_of("ideal") == "xenovectra"


def test_broken_plugin_is_reported_by_name_and_the_others_still_load(monkeypatch):
    good = _kind_plugin("good_plugin_mod", "goodkind")
    monkeypatch.setitem(sys.modules, "good_plugin_mod", good)
    _fake_entry_points(monkeypatch, {"broken": "no_such_module_xv_test", "good": "good_plugin_mod"})
    loaded = plugins.load_plugins()
    assert "goodkind" in loaded.components
    assert [(f.name, f.reason) for f in loaded.failures] == [
        ("broken", "ModuleNotFoundError: No module named 'no_such_module_xv_test'")
    ]


def test_a_misspelt_hook_makes_its_plugin_fail_and_only_it(monkeypatch):
    bad = _module("typo_plugin_mod", xv_component_kind=lambda: [])  # missing the final s
    good = _kind_plugin("good_plugin_mod2", "cpu2")
    monkeypatch.setitem(sys.modules, "typo_plugin_mod", bad)
    monkeypatch.setitem(sys.modules, "good_plugin_mod2", good)
    _fake_entry_points(monkeypatch, {"typo": "typo_plugin_mod", "good": "good_plugin_mod2"})
    loaded = plugins.load_plugins()
    assert "cpu2" in loaded.components
    assert len(loaded.failures) == 1
    failure = loaded.failures[0]
    assert failure.name == "typo"
    assert "unknown hook 'xv_component_kind'" in failure.reason


def test_a_plugin_whose_registration_raises_is_reported(monkeypatch):
    def boom():
        raise RuntimeError("disk not found")

    loaded = plugins.load_plugins(entry_points=False, extra=[
        ("exploding", _module("exploding", xv_backends=boom)),
        ("fine", _module("fine", xv_backends=lambda: [BackendSpec("b1", object)])),
    ])
    assert "b1" in loaded.backends
    assert [(f.name, f.reason) for f in loaded.failures] == [
        ("exploding", "xv_backends raised RuntimeError: disk not found")
    ]


def test_a_hook_returning_the_wrong_spec_class_is_reported():
    loaded = plugins.load_plugins(entry_points=False, extra=[
        ("wrong", _module("wrong", xv_backends=lambda: ["interp"])),
    ])
    assert [(f.name, f.reason) for f in loaded.failures] == [
        ("wrong", "xv_backends returned str, expected BackendSpec")
    ]


def test_a_plugin_with_a_failing_hook_is_left_out_whole():
    """Nothing of a plugin that failed registers: not the good entries its failing hook returned
    before the bad one, not its other hooks' results, not its event hooks."""
    from xv_core.registry import BusModelSpec, SchedulerSpec

    heard = []
    half = _module(
        "half",
        xv_bus_models=lambda: [BusModelSpec("good-bus", object), "bad"],
        xv_schedulers=lambda: [SchedulerSpec("half-sched", object)],
        xv_on_dispatch=lambda event: heard.append(event))
    loaded = plugins.load_plugins(entry_points=False, extra=[
        ("half", half),
        ("fine", _module("fine", xv_backends=lambda: [BackendSpec("b1", object)])),
    ])
    assert [(f.name, f.reason) for f in loaded.failures] == [
        ("half", "xv_bus_models returned str, expected BusModelSpec")]
    assert "good-bus" not in loaded.bus_models and "half-sched" not in loaded.schedulers
    assert "b1" in loaded.backends
    assert "half" not in {info.name for info in loaded.loaded}
    assert not loaded.pm.has_plugin("half") and loaded.provided_by("half") == {}
    loaded.pm.hook.xv_on_dispatch(event="e")
    assert heard == []


@pytest.mark.parametrize("kinds,reason", [
    (["", "k1"], "xv_component_kinds returned a component kind without a name"),
    (["k1", "k1"], "xv_component_kinds returned the component kind 'k1' twice"),
])
def test_a_plugin_s_own_naming_mistake_leaves_only_it_out(kinds, reason):
    loaded = plugins.load_plugins(entry_points=False, extra=[
        ("sloppy", _module("sloppy", xv_component_kinds=lambda: [
            ComponentKind(k, _Opts, object) for k in kinds])),
        ("fine", _kind_plugin("fine", "finekind")),
    ])
    assert [(f.name, f.reason) for f in loaded.failures] == [("sloppy", reason)]
    assert "finekind" in loaded.components and "k1" not in loaded.components


class _TwoImpls:
    """A plugin implementing one hook twice (pluggy's ``specname``)."""

    def __init__(self, first: str, second: str):
        self.first, self.second = first, second

    @hookimpl(specname="xv_component_kinds")
    def kinds_a(self):
        return [ComponentKind(self.first, _Opts, object)]

    @hookimpl(specname="xv_component_kinds")
    def kinds_b(self):
        return [ComponentKind(self.second, _Opts, object)]


def test_a_name_a_plugin_returns_from_two_implementations_leaves_only_it_out():
    loaded = plugins.load_plugins(entry_points=False, extra=[
        ("twice", _TwoImpls("dup", "dup")),
        ("fine", _kind_plugin("fine2", "finekind2")),
    ])
    assert [(f.name, f.reason) for f in loaded.failures] == [
        ("twice", "xv_component_kinds returned the component kind 'dup' twice")]
    assert "finekind2" in loaded.components and "dup" not in loaded.components
    assert "twice" not in [info.name for info in loaded.loaded]
    # Two implementations returning different names both register.
    both = plugins.load_plugins(entry_points=False, extra=[("two", _TwoImpls("ka", "kb"))])
    assert both.failures == []
    assert both.components.plugin_of("ka") == both.components.plugin_of("kb") == "two"


def test_duplicate_kinds_name_both_providers():
    with pytest.raises(PluginError) as err:
        plugins.load_plugins(entry_points=False, extra=[
            ("first_gpu", _kind_plugin("first_gpu", "gpu")),
            ("second_gpu", _kind_plugin("second_gpu", "gpu")),
        ])
    assert str(err.value) == (
        "component kind 'gpu' is provided by both 'first_gpu' and 'second_gpu' "
        "(hint: uninstall one of the two distributions)"
    )


def test_unknown_name_lists_installed_ones_and_suggests():
    registry: Registry[str] = Registry("component kind")
    registry.add("cpu", "c", "xv_cpu")
    registry.add("hdd", "h", "xv_hdd")
    with pytest.raises(UnknownNameError) as err:
        registry.get("cpus", where="$.components[0].kind")
    assert str(err.value) == (
        "$.components[0].kind: unknown component kind 'cpus' (installed: cpu, hdd) "
        "(hint: did you mean 'cpu'?)"
    )
    with pytest.raises(UnknownNameError) as err:
        registry.get("quantum")
    assert str(err.value) == ("unknown component kind 'quantum' (installed: cpu, hdd) "
                              "(hint: install the plugin that provides it)")


def test_installed_distributions_are_discovered_with_what_they_provide():
    loaded = plugins.load_plugins()
    assert loaded.failures == []
    names = {info.name: info.distribution for info in loaded.loaded}
    assert names["xv_cpu"] == "xenovectra-cpu"
    assert loaded.provided_by("xenovectra") == {"bus model": ["fifo", "ideal", "shared", "tcp"],
                                                "scheduling policy": ["eft", "locality",
                                                                      "round-robin"]}
