"""xv_buffer is installed and discovered through its entry point."""

from xv_core.plugins import load_plugins


def test_discovered():
    plugins = load_plugins()
    assert not [f for f in plugins.failures if f.name == "xv_buffer"]
    assert "ram" in plugins.vram_managers
    assert plugins.vram_managers.plugin_of("ram") == "xv_buffer"
    assert plugins.provided_by("xv_buffer") == {
        "eviction policy": ["arc", "belady", "clock", "fifo", "lfu", "lru", "s3fifo"],
        "VRAM manager": ["ram"],
    }
    dist = {p.name: p.distribution for p in plugins.loaded}
    assert dist["xv_buffer"] == "xenovectra-buffer"


def test_factories_build_working_objects():
    plugins = load_plugins()

    class Config:
        capacity = 1 << 20
        page_size = 4096
        eviction = "lru"
        paging = False
        manager = "ram"

    vram = plugins.vram_managers.get("ram").factory(Config(), None)
    buf = vram.allocate("x", (10,), "float32")
    assert buf.array().sum() == 0
    vram.close()
    lru = plugins.eviction_policies.get("lru").factory(2)
    assert [lru.access(k) for k in "abab"] == [False, False, True, True]
