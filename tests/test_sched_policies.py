"""Scheduling policies on the heterogeneous example fabric (a fast cpu, a slow disk tile, a
remote node behind 1 GbE): eft beats round-robin and every everything-on-one-component
placement, and stays within 1.5x of the lower bound, on both example jobs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from xv_core import hookimpl
from xv_core.config import load_fabric, parse_fabric
from xv_core.config.job import load_job
from xv_core.plugins import load_plugins
from xv_core.registry import SchedulerSpec
from xv_core.runtime.api import Fabric
from xv_core.runtime.interfaces import Launch, Tile
from xv_core.runtime.job import run_job
from xv_core.runtime.placement import Candidate, EarliestFinish, Locality, RoundRobin

ROOT = Path(__file__).resolve().parents[1]
HETERO = ROOT / "examples/fabrics/hetero.yaml"
JOBS = ("hetero_darts", "hetero_integrate")


class Only:
    """Everything on one component (a policy from a test plugin, through the same hook)."""

    def __init__(self, component: str):
        self.name = f"only-{component}"
        self.component = component

    def choose(self, tile, candidates):
        return [c.component for c in candidates].index(self.component)


class OnlyPolicies:
    @hookimpl
    def xv_schedulers(self):
        return [SchedulerSpec(f"only-{c}", lambda c=c: Only(c), f"every tile on {c}")
                for c in ("cpu", "hdd", "net")]


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("only", OnlyPolicies())])


def modelled_hetero(plugins, tmp_path):
    """The example fabric with its remote node modelled by a cpu component timed as a net node
    behind the same 1 GbE link (no Dask cluster to start): the timeline is the same."""
    doc = yaml.safe_load(HETERO.read_text())
    doc["components"] = [
        {"name": "cpu", "kind": "cpu", "threads": 2},
        {"name": "hdd", "kind": "hdd", "path": str(tmp_path / "hdd")},
        {"name": "net", "kind": "cpu", "threads": 1, "timing": {"profile": "net", "lanes": 4}},
    ]
    return parse_fabric(doc, plugins, str(tmp_path / "hetero-modelled.yaml"))


def job_in(tmp_path, name):
    """The example job, its outputs written under tmp_path."""
    doc = yaml.safe_load((ROOT / "examples/jobs" / f"{name}.yaml").read_text())
    doc["kernels"] = [str(ROOT / "examples/jobs" / k) for k in doc["kernels"]]
    doc["outputs"] = {k: str(tmp_path / Path(v).name) for k, v in doc["outputs"].items()}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_job(path)


def run(config, plugins, job, scheduler=None):
    with Fabric(config, plugins, scheduler=scheduler) as fabric:
        result = run_job(job, fabric)
    return result


def check_result(name, tmp_path):
    partial = np.load(tmp_path / f"{name}_partial.npy").astype(np.float64)
    if name == "hetero_darts":
        assert abs(4 * partial.sum() / (524288 * 32) - math.pi) < 0.01
    else:
        assert abs(partial.sum() - 0.39981946) < 1e-4


@pytest.mark.parametrize("name", JOBS)
def test_eft_beats_round_robin_and_one_component_within_the_bound(name, plugins, tmp_path):
    config = modelled_hetero(plugins, tmp_path)
    job = job_in(tmp_path, name)
    makespans = {}
    for policy in ("eft", "round-robin", "only-cpu", "only-hdd", "only-net"):
        result = run(config, plugins, job, policy)
        check_result(name, tmp_path)
        makespans[policy] = result.timing["virtual_s"]
        if policy == "eft":
            bound = result.timing["bound"]
            placement = result.timing["steps"][0]["placement"]
    assert bound["lower_bound_s"] > 0
    assert bound["ratio"] <= 1.5, bound
    # eft uses the remote node for part of the compute-heavy step, and the cpu for the rest
    assert placement["cpu"] > 0 and placement["net"] > 0
    for other in ("round-robin", "only-cpu", "only-hdd", "only-net"):
        assert makespans["eft"] < makespans[other], (other, makespans)
    # the bound bounds every placement
    assert all(m >= bound["lower_bound_s"] for m in makespans.values())


def test_the_example_fabric_with_a_real_remote_node_times_the_same(plugins, tmp_path):
    """The example fabric itself (its net node a local Dask cluster): eft within 1.5x of the
    bound, and the timeline exactly that of the modelled stand-in, event for event -- where
    tiles really ran (and how long) does not change virtual time."""
    name = "hetero_darts"
    job = job_in(tmp_path, name)
    real = run(load_fabric(HETERO, plugins), plugins, job)
    check_result(name, tmp_path)
    stand_in = run(modelled_hetero(plugins, tmp_path), plugins, job)
    assert real.timing["bound"]["ratio"] <= 1.5
    assert real.timing["virtual_s"] == stand_in.timing["virtual_s"]
    assert real.timing["components"] == stand_in.timing["components"]
    assert real.timing["links"] == stand_in.timing["links"]


def candidates(*finishes, moved=None):
    moved = moved or [0] * len(finishes)
    return [Candidate(f"c{i}", "cpu", 0.0, 0.0, f, f, 0, m, 0.0)
            for i, (f, m) in enumerate(zip(finishes, moved))]


def test_policies_choose_as_documented():
    tile = Tile(5, Launch((8, 1, 1), (1, 1, 1)), 5, 1)
    assert EarliestFinish().choose(tile, candidates(3.0, 1.0, 2.0)) == 1
    assert EarliestFinish().choose(tile, candidates(1.0, 1.0, moved=[10, 0])) == 1  # ties
    assert EarliestFinish().choose(tile, candidates(1.0, 1.0)) == 0  # then fabric order
    assert RoundRobin().choose(tile, candidates(1.0, 1.0, 1.0)) == 5 % 3
    assert Locality().choose(tile, candidates(1.0, 5.0, 2.0, moved=[100, 0, 0])) == 2


def test_the_area_bound_is_work_over_throughput_and_below_the_relaxation():
    from xv_core.runtime.model import _area_bound

    rng = np.random.default_rng(5)
    lanes = [2, 1, 4]
    # tiles that differ only in size (related machines): exactly total work / total throughput
    work, speed = rng.random(50) + 1, np.array([1.0, 0.05, 0.6])
    times = work[:, None] / speed[None, :]
    assert _area_bound(times.tolist(), lanes) == pytest.approx(
        work.sum() / float(np.dot(lanes, speed)), rel=1e-12)
    # unrelated tiles: never above the fractional optimum, and close to it
    linprog = pytest.importorskip("scipy.optimize").linprog
    for _ in range(5):
        t = rng.random((30, 3)) * np.array([1.0, 20.0, 2.0]) + 0.1
        n, m = t.shape
        # variables: x[i, c] then T; minimise T
        cost = np.zeros(n * m + 1)
        cost[-1] = 1
        eq = np.zeros((n, n * m + 1))
        for i in range(n):
            eq[i, i * m:(i + 1) * m] = 1
        ub = np.zeros((m, n * m + 1))
        for c in range(m):
            ub[c, c:n * m:m] = t[:, c]
            ub[c, -1] = -lanes[c]
        best = linprog(cost, A_ub=ub, b_ub=np.zeros(m), A_eq=eq, b_eq=np.ones(n)).fun
        bound = _area_bound(t.tolist(), lanes)
        assert bound <= best * (1 + 1e-9)
        assert bound >= 0.95 * best
