"""First test of the distribution: it is installed and its front end discovered."""

from xv_core.plugins import load_plugins


def test_installed_and_discovered():
    plugins = load_plugins()
    assert "xvk" in plugins.frontends
    assert plugins.provided_by("xv_dsl") == {"front end": ["xvk"]}
    spec = plugins.frontend_for("kernels/saxpy.xvk")
    assert spec.name == "xvk" and spec.suffixes == (".xvk",)
    from xv_dsl import compile_source

    assert spec.compile is compile_source
