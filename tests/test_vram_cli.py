"""``xv vram replay``: miss-ratio curves of recorded page traces, and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from xv_buffer.vram import RamVram
from xv_core.cli.main import app
from xv_core.cli.vram_cmd import read_page_trace, replay_misses, trace_keys


@pytest.fixture
def trace(tmp_path):
    """Four sequential passes over five 4KiB pages of one buffer."""
    vram = RamVram(64 << 10, 4096, paging=True, path=tmp_path)
    path = tmp_path / "loop.pages"
    vram.record_pages(path)
    a = vram.allocate("a", (5 * 4096,), np.uint8)
    for _ in range(4):
        for page in range(5):
            vram.make_resident(a, [(page, page + 1)], write=False).release()
    vram.close()
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, ["vram", *args])


def test_replay_prints_a_miss_ratio_curve(trace):
    result = invoke("replay", str(trace), "--policy", "lru,fifo", "-p", "belady",
                    "--capacity", "16KiB,20KiB")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:4] == [
        f"trace {trace}: 20 page accesses (4KiB pages, 1 buffer)",
        "miss ratio            lru      fifo    belady",
        "16KiB (4 pages)   100.00%   100.00%    40.00%",  # a loop one page too long for lru
        "20KiB (5 pages)    25.00%    25.00%    25.00%",  # only the first pass misses
    ]
    assert lines[4].startswith("replay speed (accesses per second): lru ")


def test_replay_json(trace):
    result = invoke("replay", str(trace), "-p", "arc", "-c", "16KiB", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["accesses"], data["page_size"], data["buffers"]) == (20, 4096, 1)
    [row] = data["results"]
    assert (row["policy"], row["capacity"], row["pages"], row["misses"]) == ("arc", 16384, 4, 20)
    assert row["miss_ratio"] == 1.0


@pytest.mark.parametrize("args, message", [
    (["-p", "lru,mur", "-c", "16KiB"],
     "error: --policy: unknown eviction policy 'mur' (installed: arc, belady, clock, fifo, lfu, "
     "lru, s3fifo) (hint: install the plugin that provides it)"),
    (["-c", "16mb"],
     "error: --capacity: unknown size unit 'mb' in '16mb' (hint: did you mean 16MiB (binary) or "
     "16MB (decimal)?)"),
    (["-c", "1KiB"], "error: --capacity: capacity 1KiB holds no page of the trace (4KiB)"),
])
def test_replay_errors(trace, args, message):
    result = invoke("replay", str(trace), *args)
    assert result.exit_code == 1
    assert result.output.strip() == message


def test_files_that_are_not_traces(tmp_path):
    (tmp_path / "x.pages").write_text("hello")
    for name, text in (("x.pages", "not a page-trace file"), ("none.pages", "no such page-trace "
                                                                            "file")):
        result = invoke("replay", str(tmp_path / name), "-c", "1MiB")
        assert result.exit_code == 1
        assert result.output.strip() == (
            f"error: {tmp_path / name}: {text} (hint: record one with `xv fabric run FABRIC JOB "
            f"--record-pages FILE`)")


def test_trace_keys_expand_runs_of_pages(trace):
    header, records = read_page_trace(trace)
    keys = trace_keys(records)
    assert keys.tolist() == [p for _ in range(4) for p in range(5)]  # buffer 0: key = page


def test_a_policy_without_replay_is_driven_access_by_access():
    class MostRecentlyUsed:  # the protocol only: no replay method
        offline = False

        def __init__(self, capacity):
            self.capacity, self.order = capacity, []

        def hit(self, key):
            self.order.remove(key)
            self.order.append(key)

        def miss(self, key):
            pass

        def evict(self, pinned):
            for key in reversed(self.order):
                if key not in pinned:
                    self.order.remove(key)
                    return key
            return None

        def insert(self, key):
            self.order.append(key)

        def remove(self, key):
            self.order.remove(key)

        def __contains__(self, key):
            return key in self.order

        def __len__(self):
            return len(self.order)

    keys = np.array([0, 1, 2, 0, 3, 0, 1], dtype=np.int64)
    # mru, 2 slots: 0 1 | 2 evicts 1 | 0 hit | 3 evicts 0 | 0 evicts 3 | 1 evicts 0
    assert replay_misses(MostRecentlyUsed(2), keys) == 6
