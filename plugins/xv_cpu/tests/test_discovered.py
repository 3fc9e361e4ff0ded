"""First test of the distribution: it is installed and discovered."""

from xv_core.plugins import load_plugins


def test_installed_and_discovered():
    plugins = load_plugins()
    assert not [f for f in plugins.failures if f.name == "xv_cpu"]
    assert "cpu" in plugins.components
    assert "interp" in plugins.backends
    assert plugins.provided_by("xv_cpu") == {"component kind": ["cpu"],
                                             "backend": ["interp", "jit", "jit-unchecked"]}
    backend = plugins.backends.get("interp").factory()
    assert backend.name == "interp"
