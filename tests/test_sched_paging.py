"""Paging on the modelled timeline: the model drives a pager (the VRAM's data-less twin) in
placement order and puts what it moves on the timeline.  These tests use a small pager of
their own (LRU over pages, a backing below), so they pin the model's side of the contract."""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import xv_core as xv
from xv_core.runtime.interfaces import PageMove as Move
from xv_core.runtime.model import PAGER, FabricModel

ROOT = Path(__file__).resolve().parents[1]
SAXPY = ROOT / "examples" / "kernels" / "saxpy.xvk"


class LruPager:
    """Pages of ``page_size`` in ``frames`` frames, LRU; pages of a tile are pinned."""

    def __init__(self, frames: int, page_size: int, fault_s: float = 0.0):
        self.frames, self.page_size, self.fault_s = frames, page_size, fault_s
        self.resident: OrderedDict[tuple[str, int], bool] = OrderedDict()  # -> dirty
        self.written: set[tuple[str, int]] = set()
        self.sizes: dict[str, int] = {}
        self.pinned: set[tuple[str, int]] = set()
        self.calls: list[tuple] = []

    def allocate(self, name, nbytes, *, filled):
        self.sizes[name] = nbytes
        self.calls.append(("allocate", name, nbytes, filled))

    def free(self, name):
        for key in [k for k in self.resident if k[0] == name]:
            del self.resident[key]
        self.calls.append(("free", name))

    def host_write(self, name):
        self.calls.append(("host_write", name))
        for p in range(-(-self.sizes[name] // self.page_size)):
            self.written.add((name, p))
        return []

    @contextmanager
    def tile(self):
        yield
        self.pinned.clear()

    def access(self, name, ranges, *, write):
        moves = []
        faults = 0
        for a, b in ranges:
            for p in range(a, b):
                key = (name, p)
                self.pinned.add(key)
                if key in self.resident:
                    self.resident.move_to_end(key)
                    self.resident[key] |= write
                    continue
                faults += 1
                while len(self.resident) >= self.frames:
                    victim = next(k for k in self.resident if k not in self.pinned)
                    dirty = self.resident.pop(victim)
                    if dirty:
                        self.written.add(victim)
                        moves.append(Move("down", victim[0], victim[1], 1, self.page_size,
                                          "vram", "backing"))
                source = "backing" if key in self.written else "zero"
                moves.append(Move("in", name, p, 1, self.page_size if source == "backing"
                                  else 0, source, "vram"))
                self.resident[key] = write
        if faults and self.fault_s:
            moves.insert(0, Move("fault", name, 0, 0, 0, "vram", "vram", self.fault_s, faults))
        return moves


def paged_fabric(tmp_path, pager):
    path = tmp_path / "f.yaml"
    path.write_text("vram: {capacity: 256KiB, page_size: 64KiB, link: pcie3-x4}\n"
                    "components: [{name: alu, kind: cpu, threads: 2}]\n")
    fabric = xv.open_fabric(path)
    fabric.model = FabricModel(fabric.config, fabric.plugins, pager=pager)
    return fabric


def saxpy_twice(fabric, n=1 << 17):
    x = fabric.buffer(np.arange(n, dtype=np.float32))
    y = fabric.buffer(np.ones(n, dtype=np.float32))
    saxpy = fabric.kernel(SAXPY)
    for _ in range(2):
        fabric.dispatch(saxpy, global_size=n, block=256, args={"a": 2.0, "x": x, "y": y})
    return x, y


def test_page_ins_evictions_and_fault_batches_are_on_the_timeline(tmp_path):
    pager = LruPager(frames=4, page_size=64 << 10, fault_s=40e-6)
    with paged_fabric(tmp_path, pager) as fabric:
        x, y = saxpy_twice(fabric)  # 512 KiB each: 8 pages each, 4 frames
        report = fabric.timing_report()
    paging = report["paging"]
    link = paging["links"]["vram:host"]
    assert "vram:host" not in report["links"] and PAGER not in report["components"]
    # Every page moved in was counted, and the link carried exactly those bytes plus the
    # dirty pages written back.
    assert paging["in"] > 0 and paging["down"] > 0
    assert link["bytes"] == paging["in_bytes"] + paging["down_bytes"]
    assert paging["fault_batches"] > 0 and paging["pager"]["busy_s"] == pytest.approx(
        paging["fault_batches"] * 40e-6)
    events = fabric.model.timeline.events()
    tags = [e.tag for e in events]
    assert any("/in/" in t and "backing>vram" in t for t in tags)
    assert any("/down/" in t and "vram>backing" in t for t in tags)
    assert ("allocate", x.name, 1 << 19, False) in pager.calls
    assert ("host_write", x.name) in pager.calls


FILL = """
kernel fill(buffer<f32> out, f32 v) {
    i32 i = global_id.x;
    if (i < out.length) { out[i] = v; }
}
"""


def fill_twice(fabric, n=1 << 18):
    out = fabric.zeros(n)
    fill = fabric.compile(FILL).kernels[0]
    for v in (1.0, 2.0):
        fabric.dispatch(fill, global_size=n, block=256, args={"out": out, "v": v})
    return out


@pytest.mark.parametrize("job", [saxpy_twice, fill_twice], ids=["read-write", "write-only"])
def test_a_tile_computes_after_its_pages_are_in_and_evictions_wait_for_their_users(tmp_path,
                                                                                   job):
    pager = LruPager(frames=4, page_size=64 << 10)
    with paged_fabric(tmp_path, pager) as fabric:
        timeline = fabric.model.timeline
        waits: dict[int, tuple] = {}
        submitted = []
        real = timeline.transfer

        def transfer(route, nbytes, *, tag=None, after=()):
            act = real(route, nbytes, tag=tag, after=after)
            waits[id(act)] = tuple(after)
            submitted.append(act)
            return act

        timeline.transfer = transfer
        job(fabric)
        fabric.model.run()
        placed_steps = fabric.model._steps
        computes = {f"s{s.index}/t{p.tile.index}": p.compute
                    for s in placed_steps for p in s.tiles}
    ins = [a for a in submitted if "/in/" in a.tag]
    downs = [a for a in submitted if "/down/" in a.tag]
    assert downs and (ins or job is fill_twice)  # fill's pages come in zero-filled
    for act in ins:  # the tile that needed the page computes once it is in
        tile = "/".join(act.tag.split("/")[:2])
        assert act.end <= computes[tile].start
    order = [(s.index, p.tile.index) for s in placed_steps for p in s.tiles]
    for act in downs:  # a page leaves VRAM once every tile placed before that used it is done
        tile = tuple(int(x[1:]) for x in act.tag.split("/")[:2])
        name, where = act.tag.split("/")[4], act.tag.split("/")[5]
        page = int(where[1:].split("+")[0])
        users = [p.compute for s in placed_steps for p in s.tiles
                 if (s.index, p.tile.index) < tile and any(
                     n == name and a <= page < b for n, a, b in p.reads + p.writes)]
        assert users and all(u.end <= act.start for u in users), act.tag
    assert order
    # Page-ins for a tile start while earlier tiles still compute.
    assert job is fill_twice or any(a.start < computes[f"s0/t{int(a.tag.split('/')[1][1:]) - 1}"].end
               for a in ins if a.tag.startswith("s0/") and not a.tag.startswith("s0/t0/"))


def test_paging_on_the_timeline_is_the_same_every_run(tmp_path):
    spans = []
    for _ in range(2):
        with paged_fabric(tmp_path, LruPager(frames=4, page_size=64 << 10, fault_s=1e-5)) as f:
            saxpy_twice(f)
            report = f.timing_report()
            spans.append((report["virtual_s"], report["paging"],
                          [(e.tag, e.time) for e in f.model.timeline.events()]))
    assert spans[0] == spans[1]


@pytest.mark.parametrize("fabric", ["small-vram", "uvm-vram"])
def test_an_oversubscribed_job_pages_on_the_timeline_the_same_every_run(tmp_path, fabric):
    """The example job with 4x its fabric's VRAM, run twice: the real VRAM's statistics may
    differ (prefetching races the tiles), the modelled timeline and its paging do not."""
    import json
    import shutil

    from typer.testing import CliRunner

    from xv_core.cli.main import app

    reports = []
    for run in range(2):
        work = tmp_path / f"run{run}"
        shutil.copytree(ROOT / "examples/jobs", work / "jobs",
                        ignore=shutil.ignore_patterns("out", "data"))
        shutil.copytree(ROOT / "examples/kernels", work / "kernels")
        shutil.copy(ROOT / f"examples/fabrics/{fabric}.yaml", work / "f.yaml")
        result = CliRunner().invoke(app, ["fabric", "run", str(work / "f.yaml"),
                                          str(work / "jobs/oversubscribe.yaml"), "--json"])
        assert result.exit_code == 0, result.output
        reports.append(json.loads(result.output))
    first, second = reports
    paging = first["paging"]
    assert paging == second["paging"] and first["virtual_s"] == second["virtual_s"]
    assert [s["virtual_end_s"] for s in first["steps"]] == \
        [s["virtual_end_s"] for s in second["steps"]]
    assert paging["links"]["vram:host"]["bytes"] > 0
    if fabric == "uvm-vram":  # far faults in batches, serviced one batch at a time
        assert paging["fault_batches"] > 0 and paging["faults"] >= paging["fault_batches"]
        assert paging["pager"]["busy_s"] > 0
    else:
        assert paging["in"] > 0 and paging["down"] > 0 and paging["fault_batches"] == 0


def test_a_persistent_buffer_reopened_is_paged_in_from_its_file(tmp_path):
    """A persistent buffer's pages come back from its file (on the timeline too), not as
    zeros, when a later run reopens it."""
    path = tmp_path / "f.yaml"
    path.write_text(f"vram: {{capacity: 256KiB, page_size: 64KiB, persistent: [w], "
                    f"path: {tmp_path / 'vram'}}}\n"
                    "components: [{name: alu, kind: cpu, threads: 2}]\n")
    n = 1 << 17  # 512 KiB: twice the VRAM
    with xv.open_fabric(path) as fabric:
        w = fabric.zeros(n, name="w")
        w.write(np.arange(n, dtype=np.float32))
        fabric.vram.flush()
    with xv.open_fabric(path) as fabric:
        w = fabric.zeros(n, name="w")  # reopened with its contents
        y = fabric.zeros(n, name="y")
        fabric.dispatch(fabric.kernel(SAXPY), global_size=n, block=256,
                        args={"a": 1.0, "x": w, "y": y})
        assert np.array_equal(y.read(), np.arange(n, dtype=np.float32))
        paging = fabric.timing_report()["paging"]
    # every page of w came in from the file (y's pages start as zeros)
    assert paging["in_bytes"] >= n * 4


def test_a_tile_waits_for_the_write_back_that_frees_its_frame(tmp_path):
    """One frame: B's page is zero-filled into the frame A's dirty page held, so B computes
    only once A's page is written back, and that only once A's tile is done with it."""
    from xv_core.runtime.footprint import BufferFootprint, TileFootprint
    from xv_core.runtime.interfaces import Tile, TileWork

    page = 64 << 10
    with paged_fabric(tmp_path, LruPager(frames=1, page_size=page)) as fabric:
        model = fabric.model
        model.allocate("A", page, filled=False)
        model.allocate("B", page, filled=False)

        class First:
            def choose(self, tile, candidates):
                return 0

        def write_one_page(step, name, ops):
            footprint = TileFootprint({"o": BufferFootprint((), ((0, 1),))})
            work = TileWork(ops=ops)
            placed = model.place(step, "k", [Tile(0, None, 0, 1)], [footprint], {"o": name},
                                 [work], First())
            model.finish(placed, [work], [0.0])
            return placed[0]

        a = write_one_page(0, "A", 10 ** 7)
        b = write_one_page(1, "B", 10)
        model.run()
        down = [e for e in model.timeline.events() if "/down/A/" in e.tag]
    assert down and down[0].kind == "transfer_start"
    assert a.compute.end <= down[0].time  # A's page leaves once A's tile is done
    assert b.compute.start >= down[-1].time  # B's tile computes once the frame is free


def test_a_failed_dispatch_leaves_the_same_modelled_paging_every_time(tmp_path):
    """Tiles fail at different moments of a run, but the modelled VRAM takes every placed tile
    of the failed dispatch, so what later dispatches page is the same every time."""
    from xv_core.errors import KernelRuntimeError

    bad = """
kernel bad(buffer<i32> out, buffer<i32> inp) {
    i32 i = global_id.x;
    if (i < out.length) { out[i] = inp[i] / i; }
}
"""
    path = tmp_path / "f.yaml"
    path.write_text("vram: {capacity: 256KiB, page_size: 4KiB, profile: uvm}\n"
                    "components: [{name: alu, kind: cpu, threads: 2}]\n")
    n = 1 << 18
    reports = []
    for _ in range(3):
        with xv.open_fabric(path) as fabric:
            out, inp = fabric.zeros(n, dtype="i32"), fabric.buffer(np.arange(n, dtype=np.int32))
            with pytest.raises(KernelRuntimeError):
                fabric.dispatch(fabric.compile(bad).kernels[0], global_size=n, block=256,
                                args={"out": out, "inp": inp})
            x, y = fabric.buffer(np.arange(n, dtype=np.float32)), fabric.zeros(n)
            fabric.dispatch(fabric.kernel(SAXPY), global_size=n, block=256,
                            args={"a": 2.0, "x": x, "y": y})
            report = fabric.timing_report()
            assert all(p.paging is not None for p in fabric.model._steps[0].tiles)
            reports.append((report["virtual_s"], report["paging"]))
    assert reports[0] == reports[1] == reports[2]
