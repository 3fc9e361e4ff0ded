"""The virtual clock against closed forms, against a plain reference simulation, and itself.

Every expected time below is worked out by hand (or by the flow-by-flow reference at the end)
and compared to a relative 1e-9.
"""

from __future__ import annotations

import math
import random

import pytest

from xv_core.errors import UnknownNameError, XvError
from xv_core.profiles import LinkProfile, get_profile
from xv_core.runtime.interfaces import TileWork
from xv_core.timing import (
    FIFO, SHARED, TCP, BusModel, DeviceProfile, Link, NoRouteError, Timeline,
)
from xv_core.timing.maxmin import Flow, maxmin_rates

REL = 1e-9


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-15)


def profile(bandwidth: float, latency: float, name: str = "test", *,
            full_duplex: bool = True) -> LinkProfile:
    return LinkProfile(name, bandwidth, latency, "a test link", "made up for the test",
                       full_duplex=full_duplex)


def one_link(bus: str | BusModel = "shared", bandwidth: float = 1e9, latency: float = 1e-3,
             **kw: object) -> Timeline:
    return Timeline([Link("l0", "host", "dev", profile(bandwidth, latency, **kw))], bus=bus)


# --------------------------------------------------------------------------
# Closed forms
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pcie4-x16", "sata3", "1gbe", "hdd-7200", "usb2"])
def test_one_transfer_takes_latency_plus_size_over_bandwidth(name):
    prof = get_profile(name)
    tl = Timeline([Link("l0", "host", "dev", prof)])
    done = tl.transfer(("host", "dev"), 12_345_678, start_at=0.25)
    tl.run()
    assert done.start == 0.25
    assert close(done.end, 0.25 + prof.latency + 12_345_678 / prof.bandwidth)
    assert close(done.end, 0.25 + prof.transfer_time(12_345_678))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100])
def test_n_equal_transfers_started_together_each_end_at_latency_plus_n_sizes(n):
    tl = one_link(bandwidth=3e9, latency=2e-6)
    done = [tl.transfer(("host", "dev"), 1_000_000, tag=f"t{i:03d}") for i in range(n)]
    tl.run()
    for d in done:
        assert close(d.end, 2e-6 + n * 1_000_000 / 3e9)


def test_a_transfer_that_starts_while_another_runs():
    # A (4 MB) flows alone from 1 ms; B (1 MB) starts at 1 ms and flows from 2 ms.  By then A
    # has 3 MB left; they share 1 GB/s until B ends at 4 ms; A's last 2 MB end at 6 ms.
    tl = one_link()
    a = tl.transfer(("host", "dev"), 4_000_000, tag="a")
    b = tl.transfer(("host", "dev"), 1_000_000, start_at=1e-3, tag="b")
    tl.run()
    assert close(b.end, 4e-3) and close(a.end, 6e-3)


def test_a_two_link_route_is_limited_by_its_slower_link():
    tl = Timeline([Link("fast", "host", "sw", profile(10e9, 1e-6)),
                   Link("slow", "sw", "dev", profile(1e9, 3e-6))])
    route = tl.route("host", "dev")
    assert route.links == ("fast", "slow")
    done = tl.transfer(route, 5_000_000)
    tl.run()
    assert close(done.end, 1e-6 + 3e-6 + 5_000_000 / 1e9)
    assert close(tl.transfer_estimate(route, 5_000_000), done.end)


def test_two_routes_sharing_a_link_with_private_bottlenecks_get_max_min_shares():
    # Shared link 10 B/us; A's private link allows 2, B's 100.  Max-min: A = 2, B = 8 (the
    # rest of the shared link).  A (20 bytes) ends at 10 us; B then gets the whole link: its
    # 120 bytes = 80 in the first 10 us + 40 at 10/us, ending at 14 us.
    tl = Timeline([Link("shared", "host", "sw", profile(10e6, 0.0)),
                   Link("pa", "sw", "a", profile(2e6, 0.0)),
                   Link("pb", "sw", "b", profile(100e6, 0.0))])
    a = tl.transfer(("host", "a"), 20)
    b = tl.transfer(("host", "b"), 120)
    tl.run()
    assert close(a.end, 10e-6) and close(b.end, 14e-6)
    assert maxmin_rates({"s": 10, "pa": 2, "pb": 100},
                        [Flow({"s": 1, "pa": 1}), Flow({"s": 1, "pb": 1})]) == [2, 8]


def test_max_min_on_the_classic_parking_lot():
    # Three links in a row of capacity 1; one long flow crosses all three, one short flow per
    # link: every flow gets 1/2.  Then give the middle link capacity 3: the long flow is
    # still held to 1/2 by the outer links, the middle short flow takes the other 2.5.
    flows = [Flow({0: 1, 1: 1, 2: 1}), Flow({0: 1}), Flow({1: 1}), Flow({2: 1})]
    assert maxmin_rates({0: 1, 1: 1, 2: 1}, flows) == [0.5, 0.5, 0.5, 0.5]
    assert maxmin_rates({0: 1, 1: 3, 2: 1}, flows) == [0.5, 0.5, 2.5, 0.5]
    tl = Timeline([Link(f"l{i}", f"n{i}", f"n{i + 1}", profile(c, 0.0))
                   for i, c in enumerate((1e6, 3e6, 1e6))])
    long = tl.transfer(("n0", "n3"), 1000)
    short = [tl.transfer((f"n{i}", f"n{i + 1}"), size) for i, size in enumerate((500, 2500, 500))]
    tl.run()
    # At 1 ms every short flow is done and the long one has 500 bytes left, alone at 1 MB/s.
    assert all(close(s.end, 1e-3) for s in short) and close(long.end, 1.5e-3)


def test_fifo_against_shared_on_the_same_input():
    n, size, bandwidth, latency = 5, 2_000_000, 1e9, 1e-4
    ends = {}
    for bus in ("shared", "fifo"):
        tl = one_link(bus, bandwidth, latency)
        done = [tl.transfer(("host", "dev"), size, tag=f"t{i}") for i in range(n)]
        tl.run()
        ends[bus] = [d.end for d in done]
    # Shared: everyone ends together.  Fifo: one at a time, in tag order; the last one ends at
    # the same time, the mean is lower.
    assert all(close(e, latency + n * size / bandwidth) for e in ends["shared"])
    assert all(close(e, (k + 1) * size / bandwidth + latency) for k, e in enumerate(ends["fifo"]))
    assert close(max(ends["fifo"]), max(ends["shared"]))
    assert sum(ends["fifo"]) < sum(ends["shared"])


def test_fifo_stores_and_forwards_hop_by_hop():
    links = [Link("a", "host", "sw", profile(2e9, 1e-6)),
             Link("b", "sw", "dev", profile(1e9, 5e-6))]
    fifo = Timeline(links, bus="fifo")
    first = fifo.transfer(("host", "dev"), 1_000_000, tag="1")
    second = fifo.transfer(("host", "dev"), 1_000_000, tag="2")
    fifo.run()
    # Each hop: transmit then latency, the next hop only once every byte has arrived.
    assert close(first.end, (1e6 / 2e9 + 1e-6) + (1e6 / 1e9 + 5e-6))
    # The second waits for link a (0.5 ms), then for link b, busy until 1.501 ms.
    assert close(second.end, 1e-6 + 0.5e-3 + 1e6 / 1e9 + 1e6 / 1e9 + 5e-6)
    assert close(fifo.transfer_estimate(("host", "dev"), 1_000_000), first.end)


def test_tcp_reproduces_simgrids_lv08_example():
    # SimGrid's "The SimGrid Models" page: 100 kB over a 1 Mbps, 10 ms link (a shared link:
    # both directions one resource) takes 0.01 * 13.01 + 800000 / ((0.97 * 1e6) / 1.05)
    # = 0.996079 s.  Here in bytes: 100,000 B over 125,000 B/s.
    tl = one_link("tcp", bandwidth=1e6 / 8, latency=0.01, full_duplex=False)
    done = tl.transfer(("host", "dev"), 100_000)
    tl.run()
    expected = 0.01 * 13.01 + 800000 / ((0.97 * 1e6) / 1.05)
    assert close(done.end, expected)
    assert round(done.end, 6) == 0.996079
    assert close(TCP.duration(100_000, 1e6 / 8, 0.01, full_duplex=False), expected)


def test_tcp_on_a_full_duplex_link_loses_nothing_to_acks_until_traffic_comes_back():
    tl = one_link("tcp", bandwidth=1e6, latency=0.0)
    alone = tl.transfer(("host", "dev"), 970_000)
    tl.run()
    assert close(alone.end, 1.0)  # 0.97 x 1 MB/s, the acks ride the idle reverse direction
    # Two opposite transfers: each direction carries one flow (1) and the other's acks (0.05).
    tl = one_link("tcp", bandwidth=1.05e6, latency=0.0)
    fwd = tl.transfer(("host", "dev"), 970_000)
    back = tl.transfer(("dev", "host"), 970_000)
    tl.run()
    assert close(fwd.end, 1.0) and close(back.end, 1.0)


def test_tcp_window_bounds_a_long_fat_link():
    # gamma / (2 x latency) = 4194304 / 0.2 = 20.97 MB/s < 0.97 x 100 MB/s.
    tl = one_link("tcp", bandwidth=100e6, latency=0.1)
    done = tl.transfer(("host", "dev"), 41_943_040)
    tl.run()
    assert close(done.end, 0.1 * 13.01 + 41_943_040 / (4194304 / 0.2))
    assert close(TCP.duration(41_943_040, 100e6, 0.1), done.end)


def test_rtt_unfair_sharing_with_simgrids_weight_s():
    # Penalty = latency + weight_s / bandwidth per link; shares are inversely proportional.
    model = BusModel("lmm", "fluid", weight_s=1000.0)
    tl = Timeline([Link("near", "a", "sw", profile(1e9, 0.001)),
                   Link("far", "b", "sw", profile(1e9, 0.004)),
                   Link("out", "sw", "dst", profile(1e6, 0.0))], bus=model)
    # Penalties: near 0.001 + 1e-6 + 1e-3 = 0.002001; far 0.004 + 1e-6 + 1e-3 = 0.005001.
    pa, pb = 0.001 + 1000 / 1e9 + 1000 / 1e6, 0.004 + 1000 / 1e9 + 1000 / 1e6
    ra, rb = 1e6 * (1 / pa) / (1 / pa + 1 / pb), 1e6 * (1 / pb) / (1 / pa + 1 / pb)
    assert maxmin_rates({"out": 1e6}, [Flow({"out": 1}, penalty=pa),
                                       Flow({"out": 1}, penalty=pb)]) == pytest.approx([ra, rb])
    # Both start flowing at 4 ms (a waits from 3 ms); a's 1000 bytes end first.
    a = tl.transfer(("a", "dst"), 1000, start_at=0.003)
    b = tl.transfer(("b", "dst"), 10_000)
    tl.run()
    assert close(a.end, 0.004 + 1000 / ra)
    assert close(b.end, a.end + (10_000 - rb * (a.end - 0.004)) / 1e6)


def test_ideal_costs_nothing():
    tl = one_link("ideal")
    done = [tl.transfer(("host", "dev"), 10**9, start_at=0.5, tag=str(i)) for i in range(3)]
    tl.run()
    assert [d.end for d in done] == [0.5, 0.5, 0.5]
    assert tl.transfer_estimate(("host", "dev"), 10**9) == 0.0


def test_half_duplex_links_share_both_directions():
    for full, expected in ((True, 1e-3), (False, 2e-3)):
        tl = one_link(latency=0.0, full_duplex=full)
        up = tl.transfer(("host", "dev"), 1_000_000)
        down = tl.transfer(("dev", "host"), 1_000_000)
        tl.run()
        assert close(up.end, expected) and close(down.end, expected)


def test_a_link_may_pick_its_own_model():
    tl = Timeline([Link("pcie", "host", "sw", profile(10e9, 0.0)),
                   Link("eth", "sw", "node", profile(125e6, 50e-6), model="tcp")])
    assert [m.name for m in tl.link_models] == ["shared", "tcp"]
    done = tl.transfer(("host", "node"), 1_000_000)
    tl.run()
    assert close(done.end, 50e-6 * 13.01 + 1_000_000 / (125e6 * 0.97))


def test_mixed_route_runs_fluid_then_fifo_stages_in_turn():
    tl = Timeline([Link("a", "host", "sw", profile(1e9, 1e-6)),
                   Link("b", "sw", "dev", profile(2e9, 2e-6), model=FIFO)], bus=SHARED)
    done = tl.transfer(("host", "dev"), 1_000_000)
    tl.run()
    assert close(done.end, (1e-6 + 1e-3) + (0.5e-3 + 2e-6))


def test_zero_byte_transfers_pay_latency_only():
    for bus in ("shared", "fifo", "tcp"):
        tl = one_link(bus, latency=1e-3)
        done = tl.transfer(("host", "dev"), 0)
        tl.run()
        factor = 13.01 if bus == "tcp" else 1.0
        assert close(done.end, 1e-3 * factor)


# --------------------------------------------------------------------------
# Computes: the roofline, lanes, dependencies
# --------------------------------------------------------------------------

CPU = DeviceProfile("cpu", ops_per_lane_per_s=1e9, lanes=4, mem_bandwidth=8e9,
                    launch_latency=1e-5)


def test_roofline_compute_bound():
    # 8e9 ops on 4 lanes = 2 s; 1.6e9 bytes at 8 GB/s = 0.2 s: compute-bound.
    work = TileWork(ops=8_000_000_000, bytes_read=1_000_000_000, bytes_written=600_000_000)
    assert close(CPU.tile_time(work), 1e-5 + 2.0)
    assert work.ops / (work.bytes_read + work.bytes_written) > CPU.ridge_point()


def test_roofline_memory_bound():
    # 4e8 ops on 4 lanes = 0.1 s; 4e9 bytes at 8 GB/s = 0.5 s: memory-bound.
    work = TileWork(ops=400_000_000, bytes_read=3_000_000_000, bytes_written=1_000_000_000)
    assert close(CPU.tile_time(work), 1e-5 + 0.5)
    # On one lane of four: a quarter of the compute and a quarter of the memory bandwidth.
    assert close(CPU.tile_time(work, lanes=1), 1e-5 + max(0.4, 2.0))
    with pytest.raises(ValueError):
        CPU.tile_time(work, lanes=5)


def test_computes_queue_for_lanes_in_arrival_order():
    tl = Timeline(components={"cpu": CPU})
    work = TileWork(ops=4_000_000_000)  # 1 s on 4 lanes, 4 s on one
    a = tl.compute("cpu", work, tag="a")
    b = tl.compute("cpu", work, lanes=2, tag="b")
    c = tl.compute("cpu", work, lanes=2, tag="c")
    tl.run()
    assert (a.start, a.end) == (0.0, pytest.approx(1 + 1e-5, rel=REL))
    # b and c run side by side on two lanes each once a frees the four.
    assert close(b.start, a.end) and close(c.start, a.end)
    assert close(b.end, a.end + 1e-5 + 2.0) and close(c.end, b.end)
    report = tl.report()["components"]["cpu"]
    assert report["tiles"] == 3 and close(report["busy_s"], c.end)
    assert close(report["lane_utilisation"], (4 * a.duration + 2 * 2 * b.duration) / (4 * c.end))


def test_a_tile_waits_for_its_inputs_and_its_output_for_the_tile():
    tl = Timeline([Link("pcie", "host", "cpu", profile(1e9, 1e-6))], components={"cpu": CPU})
    x = tl.transfer(("host", "cpu"), 1_000_000, tag="x")
    y = tl.transfer(("host", "cpu"), 3_000_000, tag="y")
    tile = tl.compute("cpu", ops=4_000_000, nbytes=0, after=[x, y], tag="tile")
    out = tl.transfer(("cpu", "host"), 2_000_000, after=[tile], tag="out")
    end = tl.run()
    assert close(x.end, 1e-6 + 2e-3) and close(y.end, 1e-6 + 4e-3)
    assert tile.start == y.end and close(tile.end, y.end + 1e-5 + 1e-3)
    assert out.start == tile.end and close(out.end, tile.end + 1e-6 + 2e-3)
    assert end == out.end == tl.report()["virtual_s"]


def test_measured_durations_replace_the_roofline():
    tl = Timeline(components={"cpu": CPU})
    done = tl.compute("cpu", TileWork(ops=10**12), duration=0.125)
    tl.run()
    assert done.end == 0.125


def test_callbacks_submit_follow_up_work_in_virtual_time():
    tl = one_link(latency=0.0)
    seen = []

    def again(activity):
        seen.append((activity.tag, activity.end))
        if len(seen) < 3:
            tl.transfer(("host", "dev"), 1_000_000, tag=f"next{len(seen)}", on_done=again)

    tl.transfer(("host", "dev"), 1_000_000, tag="first", on_done=again)
    tl.run()
    assert [t for t, _ in seen] == ["first", "next1", "next2"]
    assert all(close(end, (k + 1) * 1e-3) for k, (_, end) in enumerate(seen))


# --------------------------------------------------------------------------
# Report and log
# --------------------------------------------------------------------------


def test_report_has_bytes_busy_time_and_achieved_bandwidth_per_link():
    tl = Timeline([Link("a", "host", "sw", profile(1e9, 1e-3)),
                   Link("b", "sw", "dev", profile(1e9, 0.0))])
    tl.transfer(("host", "dev"), 1_000_000)
    tl.transfer(("host", "sw"), 1_000_000, start_at=0.01)
    tl.run()
    report = tl.report()
    assert close(report["virtual_s"], 0.01 + 1e-3 + 1e-3)
    a, b = report["links"]["a"], report["links"]["b"]
    assert (a["bytes"], a["transfers"], b["bytes"], b["transfers"]) == (2_000_000, 2, 1_000_000, 1)
    # Busy while bytes flow, not during latency: 1 ms each time.
    assert close(a["busy_s"], 2e-3) and close(a["bandwidth"], 1e9)
    assert close(b["busy_s"], 1e-3)
    assert close(a["utilisation"], 2e6 / (1e9 * report["virtual_s"]))
    assert a["model"] == "shared" and a["between"] == ["host", "sw"]


def test_the_log_lists_starts_and_ends_with_where_and_bytes():
    tl = Timeline([Link("a", "host", "sw", profile(1e9, 0.0)),
                   Link("b", "sw", "dev", profile(1e9, 0.0))], components={"dev": CPU})
    t = tl.transfer(("host", "dev"), 1000, tag="in")
    tl.compute("dev", ops=4000, nbytes=0, after=[t], tag="tile")
    tl.run()
    kinds = [(e.kind, e.tag, e.where, e.nbytes) for e in tl.events()]
    assert kinds == [("transfer_start", "in", "a+b", 1000), ("transfer_end", "in", "a+b", 1000),
                     ("compute_start", "tile", "dev", 0), ("compute_end", "tile", "dev", 0)]
    assert tl.event_count == 4


# --------------------------------------------------------------------------
# Determinism and incremental solving
# --------------------------------------------------------------------------


def _busy_fabric(bus: str) -> list[Link]:
    links = [Link("up", "host", "sw", get_profile("pcie4-x16"))]
    links += [Link(f"d{i}", "sw", f"dev{i}", get_profile("pcie4-x4")) for i in range(4)]
    links += [Link("eth", "host", "node", get_profile("1gbe"), model="tcp" if bus != "fifo"
                   else None)]
    return links


def _submissions(seed: int) -> list[tuple[str, str, int, float, str]]:
    rng = random.Random(seed)
    ends = ["host", "node"] + [f"dev{i}" for i in range(4)]
    jobs = []
    for i in range(200):
        src, dst = rng.sample(ends, 2)
        # Starts on a coarse grid so that many events are simultaneous.
        jobs.append((src, dst, rng.choice([0, 4096, 65536, 1 << 20]), rng.randrange(8) * 1e-4,
                     f"t{i:03d}"))
    return jobs


@pytest.mark.parametrize("bus", ["shared", "fifo", "tcp"])
def test_same_input_in_any_submission_order_gives_the_same_event_list(bus):
    runs = []
    for order_seed in range(4):
        jobs = _submissions(7)
        random.Random(order_seed).shuffle(jobs)
        tl = Timeline(_busy_fabric(bus), components={"dev0": CPU}, bus=bus)
        for src, dst, nbytes, start, tag in jobs:
            tl.transfer((src, dst), nbytes, start_at=start, tag=tag)
        for k in range(5):
            tl.compute("dev0", ops=10**6 * (k + 1), nbytes=10**5, start_at=1e-4 * k,
                       lanes=1 + k % 2, tag=f"c{k}")
        tl.run()
        runs.append((tl.events(), tl.report()))
    assert all(run == runs[0] for run in runs[1:])
    assert len(runs[0][0]) == 2 * 205


def test_only_the_connected_flows_are_solved_again():
    tl = Timeline([Link("a", "host", "x", profile(1e9, 0.0)),
                   Link("b", "host", "y", profile(1e9, 0.0))])
    for i in range(3):
        tl.transfer(("host", "x"), 10**9, tag=f"long{i}")
    tl.run(until=0.5)
    solved = dict(tl.solver_stats)
    (version_of_a,) = {c.round.group.version for c in tl._classes.values() if c.n}
    # Short transfers on link b start and end: the flows on link a are never recomputed.
    for i in range(5):
        tl.transfer(("host", "y"), 1000, start_at=0.5 + i * 1e-3, tag=f"short{i}")
    tl.run(until=0.6)
    after = tl.solver_stats
    # Each short transfer is solved alone when it starts (one class, from scratch) and leaves
    # nothing to solve when it ends; the long flows on link a are never touched again.
    assert after["classes"] - solved["classes"] == 5
    assert after["components"] - solved["components"] == 5
    assert after["relevels"] == solved["relevels"]
    longs = [c for c in tl._classes.values() if c.n == 3]
    assert len(longs) == 1 and longs[0].round.group.version == version_of_a


# --------------------------------------------------------------------------
# Against a flow-by-flow reference simulation
# --------------------------------------------------------------------------


def _reference(links: list[Link], models: list[BusModel],
               jobs: list[tuple[list[tuple[int, int]], int, float]]) -> list[float]:
    """Time each job (hops, bytes, start) by the textbook method: after each event, solve
    max-min for every flowing transfer from scratch; step to the next start or end."""
    capacity, flows, latency = {}, [], []
    for i, (link, model) in enumerate(zip(links, models)):
        for d in (0, 1):
            resource = (i, d if link.profile.full_duplex else 0)
            capacity[resource] = link.profile.bandwidth * model.bandwidth_factor
    for hops, _, _ in jobs:
        terms, lat, raw, gammas, weight, weighted = {}, 0.0, 0.0, [], 0.0, False
        for i, d in hops:
            link, model = links[i], models[i]
            full = link.profile.full_duplex
            fwd, back = (i, d if full else 0), (i, 1 - d if full else 0)
            terms[fwd] = terms.get(fwd, 0.0) + 1.0
            if model.cross_traffic:
                terms[back] = terms.get(back, 0.0) + model.cross_traffic
            lat += link.profile.latency * model.latency_factor
            raw += link.profile.latency
            if model.tcp_gamma:
                gammas.append(model.tcp_gamma)
            if model.weight_s is not None:
                weighted, weight = True, weight + model.weight_s / link.profile.bandwidth
        bound = min(gammas) / (2 * raw) if gammas and raw > 0 else math.inf
        flows.append(Flow(terms, bound, raw + weight if weighted and raw > 0 else 1.0))
        latency.append(lat)
    end = [math.inf] * len(jobs)
    left = [float(nbytes) for _, nbytes, _ in jobs]
    active: set[int] = set()
    waiting = {k: start + latency[k] for k, (_, _, start) in enumerate(jobs)}
    for k, (_, nbytes, start) in enumerate(jobs):
        if nbytes == 0:
            end[k] = start + latency[k]
            del waiting[k]
    now = 0.0
    while active or waiting:
        order = sorted(active)
        rates = dict(zip(order, maxmin_rates(capacity, [flows[k] for k in order])))
        step = min([left[k] / rates[k] for k in order] + [t - now for t in waiting.values()])
        now += step
        for k in order:
            left[k] -= rates[k] * step
            if left[k] <= 1e-9 * jobs[k][1]:
                end[k] = now
                active.discard(k)
        for k, t in list(waiting.items()):
            if t <= now:
                active.add(k)
                del waiting[k]
    return end


@pytest.mark.parametrize("seed", range(12))
def test_random_fabrics_match_the_reference(seed):
    rng = random.Random(seed)
    n_nodes = rng.randint(3, 6)
    nodes = [f"n{i}" for i in range(n_nodes)]
    links = []
    for i in range(1, n_nodes):  # a random tree, plus a few extra links
        links.append(Link(f"l{i}", nodes[rng.randrange(i)], nodes[i],
                          profile(rng.choice([1e6, 2e6, 5e6]), rng.choice([0.0, 1e-4, 1e-3]),
                                  full_duplex=rng.random() < 0.7)))
    models = [rng.choice(MENU) for _ in links]
    links = [Link(ln.name, ln.a, ln.b, ln.profile, m) for ln, m in zip(links, models)]
    tl = Timeline(links)
    jobs, done = [], []
    for k in range(rng.randint(5, 40)):
        src, dst = rng.sample(nodes, 2)
        nbytes = rng.choice([0, rng.randint(1, 10**6)])
        start = rng.choice([0.0, rng.uniform(0, 0.5)])
        route = tl.route(src, dst)
        jobs.append((list(route.hops), nbytes, start))
        done.append(tl.transfer(route, nbytes, start_at=start, tag=f"j{k:02d}"))
    tl.run()
    expected = _reference(links, models, jobs)
    for activity, want in zip(done, expected):
        assert math.isclose(activity.end, want, rel_tol=1e-9), (activity, want)


MENU = [SHARED, TCP, BusModel("w", "fluid", cross_traffic=0.1, weight_s=500.0),
        BusModel("f", "fluid", latency_factor=2.0, bandwidth_factor=0.5),
        BusModel("g", "fluid", tcp_gamma=2000.0)]  # a window small enough to bind


@pytest.mark.parametrize("seed", range(8))
def test_busy_switched_fabrics_match_the_reference(seed):
    # Host -> switch -> devices and device -> device through the switch: one shared uplink,
    # many flows starting and ending, classes appearing and emptying all the time.
    rng = random.Random(100 + seed)
    devices = [f"d{i}" for i in range(rng.randint(3, 7))]
    links = [Link("up", "host", "sw", profile(rng.choice([4e6, 8e6]), rng.choice([0.0, 1e-4]),
                                              full_duplex=rng.random() < 0.8),
                  rng.choice(MENU))]
    for d in devices:
        links.append(Link(f"to-{d}", "sw", d,
                          profile(rng.choice([1e6, 2e6, 3e6]), rng.choice([0.0, 2e-4, 1e-3])),
                          rng.choice(MENU)))
    tl = Timeline(links)
    ends = ["host"] + devices
    jobs, done = [], []
    for k in range(rng.randint(40, 150)):
        src, dst = rng.sample(ends, 2)
        route = tl.route(src, dst)
        nbytes = rng.randint(1, 200_000)
        start = rng.choice([0.0, 0.01, rng.uniform(0, 0.2)])
        jobs.append((list(route.hops), nbytes, start))
        done.append(tl.transfer(route, nbytes, start_at=start, tag=f"j{k:03d}"))
    tl.run()
    models = [tl.link_models[i] for i in range(len(links))]
    expected = _reference(links, models, jobs)
    for activity, want in zip(done, expected):
        assert math.isclose(activity.end, want, rel_tol=1e-9), (activity, want)
    stats = tl.solver_stats
    assert stats["relevels"] > 0 and stats["components"] > 0  # both paths were taken


@pytest.mark.parametrize("seed", range(6))
def test_busy_meshes_match_the_reference(seed):
    # A star where devices also send to each other through the host: every flow is connected
    # to every other, groups merge and split all the time.
    rng = random.Random(200 + seed)
    devices = [f"d{i}" for i in range(rng.randint(4, 8))]
    links = [Link(f"to-{d}", "host", d,
                  profile(rng.choice([1e6, 2e6]), rng.choice([0.0, 1e-4, 5e-4]),
                          full_duplex=rng.random() < 0.8), rng.choice(MENU)) for d in devices]
    tl = Timeline(links)
    ends = ["host"] + devices
    jobs, done = [], []
    for k in range(rng.randint(80, 200)):
        src, dst = rng.sample(ends, 2)
        route = tl.route(src, dst)
        nbytes = rng.randint(1, 100_000)
        start = rng.choice([0.0, rng.uniform(0, 0.5)])
        jobs.append((list(route.hops), nbytes, start))
        done.append(tl.transfer(route, nbytes, start_at=start, tag=f"j{k:03d}"))
    tl.run()
    expected = _reference(links, list(tl.link_models), jobs)
    for activity, want in zip(done, expected):
        assert math.isclose(activity.end, want, rel_tol=1e-9), (activity, want)


@pytest.mark.parametrize("seed", range(6))
def test_a_closed_loop_of_transfers_matches_the_reference(seed):
    # Ten transfers in flight, each end starting the next one, host <-> devices and device to
    # device: hundreds of starts and ends re-shape the groups of the solver again and again.
    rng = random.Random(300 + seed)
    devices = [f"d{i}" for i in range(4)]
    links = [Link(f"to-{d}", "host", d, profile(1e6 * (1 + i), 1e-4 * i), rng.choice(MENU))
             for i, d in enumerate(devices)]
    tl = Timeline(links)
    ends = ["host"] + devices
    routes = [tl.route(a, b) for a in ends for b in ends if a != b]
    done = []
    following = iter(range(10, 400))

    def start(k: int) -> None:
        route = routes[rng.randrange(len(routes))]
        done.append((route, tl.transfer(route, rng.randint(1000, 400_000), tag=f"j{k:03d}",
                                        on_done=next_one)))

    def next_one(_activity):
        k = next(following, None)
        if k is not None:
            start(k)

    for k in range(10):
        start(k)
    tl.run()
    assert len(done) == 400
    jobs = [(list(route.hops), a.nbytes, a.start) for route, a in done]
    expected = _reference(links, list(tl.link_models), jobs)
    for (_, activity), want in zip(done, expected):
        assert math.isclose(activity.end, want, rel_tol=1e-9), (activity, want)


# --------------------------------------------------------------------------
# Mistakes the runtime can make
# --------------------------------------------------------------------------


def test_routes_are_found_or_refused_with_the_reason():
    tl = Timeline([Link("a", "host", "sw", profile(1e9, 0.0)),
                   Link("b", "sw", "dev", profile(1e9, 0.0)),
                   Link("c", "island", "far", profile(1e9, 0.0))])
    assert tl.route("dev", "host").links == ("b", "a")
    assert tl.route_through("host", ["a", "b"]).dst == "dev"
    with pytest.raises(NoRouteError) as info:
        tl.route("host", "far")
    assert str(info.value) == ("timeline: no route from 'host' to 'far' "
                               "(hint: add a link joining them)")
    with pytest.raises(NoRouteError) as info:
        tl.route_through("host", ["b"])
    assert str(info.value) == ("timeline: link 'b' joins 'sw' and 'dev', not 'host' "
                               "(hint: list the links in the order they are crossed)")


def test_unknown_models_and_components_are_named():
    with pytest.raises(UnknownNameError) as info:
        one_link("shraed")
    assert str(info.value) == ("timeline: unknown bus model 'shraed' for the timeline's bus "
                               "(installed: fifo, ideal, shared, tcp) (hint: did you mean "
                               "'shared'?)")
    with pytest.raises(UnknownNameError):
        one_link().compute("gpu", ops=1)
    with pytest.raises(XvError):
        Timeline([Link("a", "x", "y", profile(1e9, 0.0))] * 2)


def test_routes_built_per_transfer_share_one_plan():
    tl = Timeline([Link("a", "host", "sw", profile(1e9, 0.0)),
                   Link("b", "sw", "dev", profile(1e9, 0.0))])
    for i in range(50):
        tl.transfer(tl.route_through("host", ["a", "b"]), 1000, tag=f"t{i:02d}")
    tl.run()
    assert len(tl._plans_by_hops) == 1
    assert tl.report()["links"]["b"]["bytes"] == 50_000


def test_run_cannot_be_called_from_its_own_callback():
    tl = one_link()
    tl.transfer(("host", "dev"), 10, on_done=lambda _: tl.run())
    with pytest.raises(RuntimeError):
        tl.run()


def test_the_past_cannot_be_scheduled():
    tl = one_link()
    tl.transfer(("host", "dev"), 10)
    tl.run()
    with pytest.raises(ValueError):
        tl.transfer(("host", "dev"), 10, start_at=0.0)


@pytest.mark.parametrize("bus", ["shared", "fifo", "tcp"])
def test_a_time_past_what_a_float_holds_is_an_error_not_a_crash(bus):
    # A finite latency whose sum with the start overflows: the fuzzer's 1.0e+308 link.
    tl = one_link(bus, bandwidth=1.0, latency=1.0e308)
    tl.transfer(("host", "dev"), 1 << 20, start_at=1.0e308, tag="big")
    with pytest.raises(XvError) as err:
        tl.run()
    assert str(err.value).startswith("the modelled timeline overflows: ")
    assert "would end at an infinite virtual time (hint: a link's latency" in str(err.value)


def test_a_compute_past_what_a_float_holds_is_an_error():
    dev = DeviceProfile("slow", ops_per_lane_per_s=1e-300, lanes=1, mem_bandwidth=1e9,
                        launch_latency=0.0, source="made up")
    tl = Timeline([], {"alu": dev})
    tl.compute("alu", ops=10**10, tag="t0")
    with pytest.raises(XvError, match=r"^the modelled timeline overflows: activity 't0' would "):
        tl.run()
