"""xv_hdd is installed and discovered through its entry point."""

from xv_core.plugins import load_plugins


def test_discovered():
    plugins = load_plugins()
    assert not [f for f in plugins.failures if f.name == "xv_hdd"]
    assert plugins.provided_by("xv_hdd") == {"component kind": ["hdd"]}
    kind = plugins.components.get("hdd")
    assert kind.compute is True
    assert {p.name: p.distribution for p in plugins.loaded}["xv_hdd"] == "xenovectra-hdd"
