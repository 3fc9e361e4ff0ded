"""The scheduler at run time: modelled time in every dispatch, work stealing by idle CPU
workers, determinism whatever the threads, transfers overlapping compute, measured clocks, and
what `xv fabric run` reports."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import xv_core as xv
from xv_core import hookimpl
from xv_core.cli.main import app
from xv_core.config import parse_fabric
from xv_core.errors import XvError
from xv_core.plugins import load_plugins
from xv_core.registry import ComponentKind, SchedulerSpec
from xv_core.runtime import scheduler

ROOT = Path(__file__).resolve().parents[1]
SAXPY = ROOT / "examples/kernels/saxpy.xvk"
GAUSS = ROOT / "examples/kernels/gauss5.xvk"
MATMUL = ROOT / "examples/kernels/matmul_tiled.xvk"


@attrs.frozen
class SlowOptions:
    delay: float = 0.03


class SlowComponent:
    """A compute component that takes ``delay`` seconds more per tile, one tile at a time."""

    kind = "slow"

    def __init__(self, name, options, context):
        self.name, self.options, self._context = name, options, context
        self.workers = 1
        self._pool = ThreadPoolExecutor(1)

    def submit(self, kernel, tile, args):
        def run():
            time.sleep(self.options.delay)
            return self._context.prepare(kernel, "interp").run_tile(tile, args)

        return self._pool.submit(run)

    def close(self):
        self._pool.shutdown(wait=True)


class Bad:
    name = "bad"

    def choose(self, tile, candidates):
        return len(candidates)


class NumpyFirst:
    """The fastest candidate by numpy's argmin: a numpy integer, a valid index."""

    def choose(self, tile, candidates):
        return np.argmin([c.finish_s for c in candidates])


class NotANumber:
    def choose(self, tile, candidates):
        return 0.0


class Raises:
    name = "its-own-name"  # the fabric's name for it wins in messages

    def choose(self, tile, candidates):
        if tile.index == 1:
            raise ZeroDivisionError("division by zero")
        return 0


class SchedPlugin:
    def __init__(self):
        self.transfers = []

    @hookimpl
    def xv_on_transfer(self, event):
        self.transfers.append(event)

    @hookimpl
    def xv_component_kinds(self):
        return [ComponentKind("slow", SlowOptions, SlowComponent, "a slow compute tile")]

    @hookimpl
    def xv_schedulers(self):
        return [SchedulerSpec("bad", Bad, "chooses no candidate"),
                SchedulerSpec("numpy-first", NumpyFirst, "chooses with numpy"),
                SchedulerSpec("float", NotANumber, "chooses a float"),
                SchedulerSpec("raises", Raises, "raises on the second tile")]


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("test-sched", SchedPlugin())])


def recorder(plugins) -> SchedPlugin:
    return plugins.pm.get_plugin("test-sched")


def fabric_of(plugins, doc, name="t.yaml"):
    return parse_fabric(doc, plugins, name)


def saxpy_on(fabric, n=1 << 20, seed=0):
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(n).astype(np.float32)
    y0 = rng.standard_normal(n).astype(np.float32)
    x, y = fabric.buffer(x0), fabric.buffer(y0)
    result = fabric.dispatch(fabric.kernel(SAXPY), global_size=n, block=256,
                             args={"a": 2.0, "x": x, "y": y})
    assert np.array_equal(y.read(), np.float32(2.0) * x0 + y0)
    return result


def test_every_dispatch_builds_a_modelled_timeline():
    with xv.open_fabric("default") as fabric:
        result = saxpy_on(fabric)
        report = fabric.timing_report()
    assert report["virtual_s"] > 0 and len(report["steps"]) == 1
    cpu = report["components"]["cpu"]
    assert cpu["tiles"] == len(result.tiles) and cpu["ops"] == result.work.ops
    assert report["steps"][0]["placement"] == {"cpu": len(result.tiles)}
    # a cpu no link names shares the host's memory: nothing crosses a link
    assert report["nodes"] == {"cpu": "host"} and report["links"] == {}
    assert report["bound"]["ratio"] >= 1.0


def test_the_model_keeps_pages_in_runs_that_follow_the_tiles():
    """What a dispatch costs the model grows with its tiles, not its pages: a 1,024-page
    buffer that tiles read and write stays a run per tile at most, also after a host write."""
    n = 1 << 24  # 64 MiB of f32: 1,024 pages of 64 KiB
    with xv.open_fabric("default") as fabric:
        x, y = fabric.zeros(n), fabric.zeros(n)
        saxpy = fabric.kernel(SAXPY)
        for _ in range(3):
            result = fabric.dispatch(saxpy, global_size=n, block=256,
                                     args={"a": 2.0, "x": x, "y": y})
        runs = {b.name: len(fabric.model._buffers[b.name].segs) for b in (x, y)}
        assert 1 <= runs[x.name] <= len(result.tiles) and 1 <= runs[y.name] <= len(result.tiles)
        assert sum(s.stop - s.start for s in fabric.model._buffers[y.name].segs) == 1024
        y.write(np.ones(n, np.float32))
        assert len(fabric.model._buffers[y.name].segs) <= len(result.tiles)
        # Before any tile touched it, a buffer is one run.
        z = fabric.zeros(n)
        assert len(fabric.model._buffers[z.name].segs) == 1


def test_readers_a_later_reader_waits_for_are_dropped_and_others_kept():
    """The readers of a page only ever read do not grow with every dispatch when each new
    reader waits for the old ones (saxpy over the same x and y: each tile waits for the tile
    before it that wrote its y), so an eviction or a later write waits for a few activities,
    not for every dispatch's; readers that nothing orders are all kept."""
    n = 1 << 20
    with xv.open_fabric("default") as fabric:
        x, y = fabric.zeros(n), fabric.zeros(n)
        saxpy = fabric.kernel(SAXPY)
        for _ in range(20):
            fabric.dispatch(saxpy, global_size=n, block=256, args={"a": 2.0, "x": x, "y": y})
        last = {id(t.compute) for t in fabric.model._steps[-1].tiles}
        segs = fabric.model._buffers[x.name].segs
        assert all(len(seg.readers) == 1 and id(seg.readers[0]) in last for seg in segs)
        # Fresh outputs: no dispatch waits for another, so x keeps a reader per dispatch.
        for _ in range(5):
            out = fabric.zeros(n)
            fabric.dispatch(saxpy, global_size=n, block=256, args={"a": 2.0, "x": x, "y": out})
        assert all(len(seg.readers) == 6 for seg in fabric.model._buffers[x.name].segs)
        assert fabric.timing_report()["virtual_s"] > 0


def test_a_dispatch_leaves_few_objects_in_the_model():
    """The model keeps a record of every dispatch (the report lists them), but only what the
    report and later placements read: a tiny dispatch leaves five objects the garbage
    collector tracks (its step, the step's list of tiles, the tile's record, its compute on
    the timeline, the list of computes waiting for the one before it), not the eleven it did
    (every one makes the collector's full passes, and a long run of dispatches, slower)."""
    import gc

    with xv.open_fabric("default") as fabric:
        x, y = fabric.zeros(256), fabric.zeros(256)
        saxpy = fabric.kernel(SAXPY)

        def dispatch() -> None:
            fabric.dispatch(saxpy, global_size=256, block=256, args={"a": 2.0, "x": x, "y": y})

        for _ in range(50):
            dispatch()
        gc.collect()
        before = len(gc.get_objects())
        for _ in range(400):
            dispatch()
        gc.collect()
        kept = (len(gc.get_objects()) - before) / 400
        step = fabric.model._steps[-1]
        (tile,) = step.tiles
        assert tile.compute is not None and tile.candidate is None
        assert tile.after == tile.depends == tile.paging == step.transfers == ()
        assert fabric.timing_report()["steps"][-1]["placement"] == {"cpu": 1}
    assert 4.5 < kept < 6.0, kept


def test_a_timing_report_is_a_synchronisation_point():
    """Taking the report runs the timeline to its end: a later dispatch starts no earlier
    than the time it reached, as after a device-wide synchronise.  Without it, two
    independent dispatches on a fabric with two compute components overlap (docs/timing.md,
    "What a report does")."""
    def spans(report_between: bool) -> list[tuple[float, float]]:
        with xv.open_fabric(ROOT / "examples/fabrics/workstation.yaml") as fabric:
            saxpy, n = fabric.kernel(SAXPY), 1 << 20
            x, y, z, w = (fabric.buffer(np.ones(n, np.float32)) for _ in range(4))
            fabric.dispatch(saxpy, global_size=n, block=256, args={"a": 2.0, "x": x, "y": y})
            if report_between:
                first_end = fabric.timing_report()["virtual_s"]
            fabric.dispatch(saxpy, global_size=n, block=256, args={"a": 2.0, "x": z, "y": w})
            report = fabric.timing_report()
            if report_between:
                assert report["steps"][0]["virtual_end_s"] == first_end
            return [(s["virtual_start_s"], s["virtual_end_s"]) for s in report["steps"]]

    (a0, a1), (b0, b1) = spans(False)
    assert a0 == 0.0 < b0 < a1 < b1  # the second overlaps the first
    (c0, c1), (d0, d1) = spans(True)
    assert (c0, c1) == (a0, a1) and d0 == c1 and d1 > b1  # it waits for the report's time
    assert spans(True) == [(c0, c1), (d0, d1)]  # and does so every run


def test_idle_cpu_workers_steal_from_a_slow_component(plugins):
    doc = {"scheduler": "round-robin",
           "components": [{"name": "alu", "kind": "cpu", "threads": 2},
                          {"name": "tortoise", "kind": "slow", "delay": 0.05}]}
    with xv.open_fabric(fabric_of(plugins, doc), plugins=plugins) as fabric:
        result = saxpy_on(fabric)
        slow_events = fabric.model.timeline.events()
    assert result.placement() == {"alu": len(result.tiles) // 2 + len(result.tiles) % 2,
                                  "tortoise": len(result.tiles) // 2}
    ran = result.tiles_per_component()
    assert result.stolen > 0 and ran["alu"] > result.placement()["alu"]
    assert all(t.component == "alu" for t in result.tiles if t.planned != t.component)
    # the modelled timeline follows the placement, not where tiles really ran
    doc["components"][1]["delay"] = 0.0
    with xv.open_fabric(fabric_of(plugins, doc), plugins=plugins) as fabric:
        saxpy_on(fabric)
        assert fabric.model.timeline.events() == slow_events


def multi_step(fabric):
    """gauss5, saxpy and matmul steps with dependencies between them."""
    rng = np.random.default_rng(3)
    img = fabric.buffer(rng.random((256, 256), dtype=np.float32))
    blur = fabric.zeros((256, 256))
    fabric.dispatch(fabric.kernel(GAUSS), global_size=[256, 256],
                    args={"src": img, "dst": blur})
    n = 65536
    x = fabric.buffer(rng.random(n, dtype=np.float32))
    y = fabric.buffer(rng.random(n, dtype=np.float32))
    fabric.dispatch(fabric.kernel(SAXPY), global_size=n, block=256,
                    args={"a": 0.5, "x": x, "y": y})
    b, c = fabric.buffer(rng.random(n, dtype=np.float32)), fabric.zeros(n)
    fabric.dispatch(fabric.kernel(MATMUL), global_size=[256, 256],
                    args={"a": x, "b": b, "c": c, "n": 256})
    c.read()
    blur.read()


def test_the_timeline_is_the_same_whatever_the_threads(plugins):
    runs = []
    for threads in (1, 2, 4, 2):
        doc = {"components": [
            {"name": "alu", "kind": "cpu", "threads": threads, "timing": {"lanes": 2}},
            {"name": "dev", "kind": "cpu", "threads": threads, "timing": {"lanes": 2}}],
            "links": [{"name": "pcie0", "between": ["host", "dev"], "profile": "pcie3-x4"}]}
        with xv.open_fabric(fabric_of(plugins, doc), plugins=plugins) as fabric:
            multi_step(fabric)
            report = fabric.timing_report()
            runs.append((fabric.model.timeline.events(), report["virtual_s"],
                         report["links"], report["components"]))
    assert runs[0][0] and all(run == runs[0] for run in runs[1:])


def test_transfers_for_upcoming_tiles_overlap_compute(plugins):
    doc = {"components": [{"name": "dev", "kind": "cpu", "threads": 2,
                           "timing": {"lanes": 1}}],
           "links": [{"name": "usb0", "between": ["host", "dev"], "profile": "usb3"}]}
    recorder(plugins).transfers.clear()
    with xv.open_fabric(fabric_of(plugins, doc), plugins=plugins) as fabric:
        saxpy_on(fabric, n=1 << 20)
        report = fabric.timing_report()  # runs the timeline
        events = fabric.model.timeline.events()
    spans: dict[str, list[float]] = {}
    for e in events:
        spans.setdefault(e.tag, []).append(e.time)
    computes = [spans[e.tag] for e in events if e.kind == "compute_start"]
    uploads = [spans[e.tag] for e in events if e.kind == "transfer_start" and "host>dev" in e.tag]
    assert len(computes) > 1 and uploads
    overlapping = sum(1 for a, b in uploads for c, d in computes if a < d and b > c)
    assert overlapping > 0
    # x and y go up (8 MiB), y comes back (4 MiB)
    assert report["links"]["usb0"]["bytes"] == 12 << 20
    assert report["readback_bytes"] == 4 << 20
    # every transfer was announced to the xv_on_transfer hook
    seen = recorder(plugins).transfers
    assert {(e.link, e.src, e.dst) for e in seen} == {("usb0", "host", "dev"),
                                                       ("usb0", "dev", "host")}
    assert sum(e.nbytes for e in seen if e.dst == "dev") == 8 << 20
    assert sum(e.nbytes for e in seen if e.dst == "host") == 4 << 20
    assert {e.buffer for e in seen} == {"buf1", "buf2"}


def test_a_measured_clock_times_tiles_by_their_wall_time(plugins):
    doc = {"clock": "measured", "components": [{"name": "alu", "kind": "cpu", "threads": 2}]}
    with xv.open_fabric(fabric_of(plugins, doc), plugins=plugins) as fabric:
        result = saxpy_on(fabric)
        fabric.timing_report()
        events = fabric.model.timeline.events()
    start = {e.tag: e.time for e in events if e.kind == "compute_start"}
    end = {e.tag: e.time for e in events if e.kind == "compute_end"}
    for t in result.tiles:
        assert end[f"s0/t{t.tile}"] - start[f"s0/t{t.tile}"] == pytest.approx(t.wall_s,
                                                                             rel=1e-9)


def test_a_policy_that_chooses_no_candidate_is_reported(plugins):
    doc = {"scheduler": "bad", "components": [{"name": "alu", "kind": "cpu", "threads": 1}]}
    with xv.open_fabric(fabric_of(plugins, doc), plugins=plugins) as fabric:
        with pytest.raises(XvError) as err:
            saxpy_on(fabric, n=1000)
    assert str(err.value) == ("scheduling policy 'bad' chose 1 for tile 0, not a candidate's "
                              "index (0 to 0) (hint: report this to the policy's authors)")
    doc["scheduler"] = "float"
    with xv.open_fabric(fabric_of(plugins, doc), plugins=plugins) as fabric:
        with pytest.raises(XvError, match=r"^scheduling policy 'float' chose 0\.0 for tile 0, "
                                          r"not a candidate's index \(0 to 0\)"):
            saxpy_on(fabric, n=1000)


def test_a_policy_that_raises_says_which_policy_and_tile(plugins, monkeypatch):
    monkeypatch.setattr(scheduler, "MIN_TILE_ITEMS", 256)
    doc = {"scheduler": "raises", "components": [{"name": "alu", "kind": "cpu", "threads": 2}]}
    with xv.open_fabric(fabric_of(plugins, doc), plugins=plugins) as fabric:
        with pytest.raises(ZeroDivisionError) as err:
            saxpy_on(fabric, n=4096)
    assert err.value.__notes__ == [
        "raised by scheduling policy 'raises' choosing a component for tile 1"]


def test_a_policy_may_choose_with_a_numpy_integer(plugins):
    doc = {"scheduler": "numpy-first", "components": [{"name": "alu", "kind": "cpu", "threads": 1}]}
    with xv.open_fabric(fabric_of(plugins, doc), plugins=plugins) as fabric:
        result = saxpy_on(fabric, n=1 << 16)
        assert fabric.timing_report()["steps"][0]["placement"] == {"alu": len(result.tiles)}


@pytest.fixture
def hetero_job(tmp_path):
    doc = yaml.safe_load((ROOT / "examples/jobs/hetero_integrate.yaml").read_text())
    doc["kernels"] = [str(ROOT / "examples/jobs" / k) for k in doc["kernels"]]
    doc["outputs"] = {"partial": str(tmp_path / "partial.npy")}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(doc))
    fabric = {"components": [{"name": "cpu", "kind": "cpu", "threads": 2},
                             {"name": "far", "kind": "cpu", "threads": 1,
                              "timing": {"profile": "net", "lanes": 4}}],
              "links": [{"name": "eth0", "between": ["host", "far"], "profile": "1gbe",
                         "model": "tcp"}]}
    (tmp_path / "fabric.yaml").write_text(yaml.safe_dump(fabric))
    return tmp_path


def test_fabric_run_json_reports_virtual_time_links_components_and_bound(hetero_job):
    out = CliRunner().invoke(app, ["fabric", "run", str(hetero_job / "fabric.yaml"),
                                   str(hetero_job / "job.yaml"), "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    for key in ("wall_s", "virtual_s", "steps", "links", "components", "vram", "outputs"):
        assert key in summary
    assert summary["scheduler"] == "eft" and summary["clock"] == "modelled"
    step = summary["steps"][0]
    assert step["virtual_end_s"] > step["virtual_start_s"] >= 0
    assert step["placement"]["cpu"] + step["placement"].get("far", 0) == step["tiles"]
    eth = summary["links"]["eth0"]
    assert eth["model"] == "tcp" and eth["profile"] == "1gbe"
    assert eth["bytes"] > 0 and eth["bandwidth"] > 0
    assert summary["components"]["far"]["lanes"] == 4
    bound = summary["bound"]
    assert bound["ratio"] == pytest.approx(summary["virtual_s"] / bound["lower_bound_s"])


def test_fabric_run_prints_virtual_time_and_takes_a_scheduler(hetero_job):
    out = CliRunner().invoke(app, ["fabric", "run", str(hetero_job / "fabric.yaml"),
                                   str(hetero_job / "job.yaml"), "--scheduler", "round-robin"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert "(scheduler round-robin, bus shared, clock modelled)" in lines[0]
    assert any("wall time" in ln and "virtual time" in ln for ln in lines)
    assert any(ln.startswith("  makespan / lower bound: ") for ln in lines)
    assert any(ln.startswith("    eth0         host <-> far  ") and "achieved" in ln
               for ln in lines)
    assert any(ln.startswith("    far          ") and "4 lanes" in ln for ln in lines)
    bad = CliRunner().invoke(app, ["fabric", "run", str(hetero_job / "fabric.yaml"),
                                   str(hetero_job / "job.yaml"), "--scheduler", "rr"])
    assert bad.exit_code != 0
    assert "unknown scheduling policy 'rr' (installed: eft, locality, round-robin)" in bad.output
