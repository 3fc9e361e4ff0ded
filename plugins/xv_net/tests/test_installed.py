"""xv_net is installed and discovered through its entry point."""

from xv_core.plugins import load_plugins


def test_discovered():
    plugins = load_plugins()
    assert not [f for f in plugins.failures if f.name == "xv_net"]
    assert plugins.provided_by("xv_net") == {"component kind": ["net"]}
    assert plugins.components.get("net").compute is True
    assert {p.name: p.distribution for p in plugins.loaded}["xv_net"] == "xenovectra-net"
