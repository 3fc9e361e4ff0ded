"""The third-party eviction policy of docs/vram.md, registered as its entry point would be:
a fabric pages with it, and traces replay through it."""

from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np

from xv_core.cli.vram_cmd import replay_misses
from xv_core.config.fabric import parse_fabric
from xv_core.plugins import load_plugins
from xv_core.runtime.api import open_fabric

ROOT = Path(__file__).resolve().parents[1]


def documented_plugin() -> types.ModuleType:
    text = (ROOT / "docs/vram.md").read_text()
    section = text.split("### A third-party policy is one entry point", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    module = types.ModuleType("xv_mru.plugin")
    exec(compile(code, "docs/vram.md", "exec"), module.__dict__)
    return module


def test_the_documented_policy_pages_a_fabric_and_replays():
    plugins = load_plugins(extra=[("xv_mru", documented_plugin())])
    assert plugins.eviction_policies.plugin_of("mru") == "xv_mru"
    config = parse_fabric({"vram": {"capacity": "96KiB", "page_size": "4KiB", "eviction": "mru"},
                           "components": [{"name": "alu", "kind": "cpu", "threads": 1}]},
                          plugins, "mru.yaml")
    with open_fabric(config, plugins=plugins) as fabric:
        saxpy = fabric.kernel(ROOT / "examples/kernels/saxpy.xvk")
        n = 10_000  # 40KiB a buffer: a pair fits in VRAM, two pairs do not
        pairs = [(fabric.buffer(np.arange(n, dtype=np.float32), name=f"x{i}"),
                  fabric.buffer(np.ones(n, dtype=np.float32), name=f"y{i}")) for i in (0, 1)]
        for _ in range(3):
            for x, y in pairs:
                fabric.dispatch(saxpy, global_size=n, block=256, args={"a": 2.0, "x": x, "y": y})
        for x, y in pairs:
            np.testing.assert_array_equal(y.read(), 1 + 6 * np.arange(n, dtype=np.float32))
        stats = fabric.vram.stats()["tiers"]["vram"]
        assert stats["evictions"] > 0 and stats["writebacks"] > 0
        assert stats["overcommit_peak"] == 0
    policy = plugins.eviction_policies.get("mru").factory(2)
    assert replay_misses(policy, np.array([0, 1, 2, 0, 3, 0, 1], dtype=np.int64)) == 6
