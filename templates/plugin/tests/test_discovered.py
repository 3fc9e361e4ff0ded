"""First test of every plugin: it is installed and discovered."""

from xv_core.plugins import load_plugins


def test_installed_and_discovered():
    plugins = load_plugins()
    assert "example" in plugins.components
    assert plugins.provided_by("xv_example") == {"component kind": ["example"]}
