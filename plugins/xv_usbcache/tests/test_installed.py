"""xv_usbcache is installed and discovered through its entry point."""

from xv_core.plugins import load_plugins


def test_discovered():
    plugins = load_plugins()
    assert not [f for f in plugins.failures if f.name == "xv_usbcache"]
    assert plugins.provided_by("xv_usbcache") == {"component kind": ["usbcache"]}
    assert plugins.components.get("usbcache").compute is False
    assert ({p.name: p.distribution for p in plugins.loaded}["xv_usbcache"]
            == "xenovectra-usbcache")
