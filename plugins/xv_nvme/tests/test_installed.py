"""xv_nvme is installed and discovered through its entry point."""

from xv_core.plugins import load_plugins


def test_discovered():
    plugins = load_plugins()
    assert not [f for f in plugins.failures if f.name == "xv_nvme"]
    assert plugins.provided_by("xv_nvme") == {"component kind": ["nvme"]}
    assert plugins.components.get("nvme").compute is False
    assert {p.name: p.distribution for p in plugins.loaded}["xv_nvme"] == "xenovectra-nvme"
