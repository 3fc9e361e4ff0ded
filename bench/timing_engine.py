"""How fast the virtual clock runs: transfer events per second with 100 concurrent flows on a
fabric of 10 links, beside plain SimPy timeouts timed the same way in the same run.

    .venv/bin/python bench/timing_engine.py            # every scenario, best of 3
    .venv/bin/python bench/timing_engine.py --quick    # fewer transfers

Each scenario keeps 100 transfers in flight: every transfer's end starts the next one (a random
route and a size from 4 KiB to 4 MiB, from a seeded generator), until 40,000 transfers have run.
An event is a line of the timeline's log: a transfer's start or its end, two per transfer.

Scenarios (10 links each):

* ``star``  — host to 10 devices, one PCIe 4.0 x16 link each; transfers go either way between
  the host and a device.  Flows meet only on their own link direction.
* ``tree``  — host to a switch (PCIe 4.0 x16 uplink), switch to 9 devices (PCIe 4.0 x4); every
  transfer crosses the uplink and a device link (host -> switch -> device, or back), so all
  flows of one direction share the uplink and one connected component.
* ``mesh``  — the star, with one transfer in five going device to device through the host:
  every flow is connected to every other, the worst case for incremental solving.

The peer: SimPy (``pip install simpy``; not needed by the tests) with 100 processes that each
wait on timeouts in a loop — the cheapest event a discrete-event library can process.  Both are
timed in CPU seconds of this process (``time.process_time``), so that other work on a shared
machine does not count; wall seconds are printed beside them.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import sys
import time
from datetime import date

from xv_core.profiles import get_profile
from xv_core.timing import Link, Timeline

FLOWS = 100


def fabric(kind: str) -> tuple[list[Link], list[tuple[str, str]]]:
    """The links of a scenario and the (src, dst) pairs its transfers pick from."""
    if kind == "tree":
        links = [Link("up", "host", "switch", get_profile("pcie4-x16"))]
        devices = [f"dev{i}" for i in range(9)]
        links += [Link(f"to-{d}", "switch", d, get_profile("pcie4-x4")) for d in devices]
        pairs = [("host", d) for d in devices] + [(d, "host") for d in devices]
        return links, pairs
    devices = [f"dev{i}" for i in range(10)]
    links = [Link(f"to-{d}", "host", d, get_profile("pcie4-x16")) for d in devices]
    pairs = [("host", d) for d in devices] + [(d, "host") for d in devices]
    if kind == "mesh":
        pairs = pairs * 18 + [(a, b) for a in devices for b in devices if a != b]  # 1 in 5
    return links, pairs


def run_engine(kind: str, bus: str, transfers: int, seed: int = 1) -> dict[str, float]:
    links, pairs = fabric(kind)
    tl = Timeline(links, bus=bus)
    routes = [tl.route(src, dst) for src, dst in pairs]
    rng = random.Random(seed)
    picks = [routes[rng.randrange(len(routes))] for _ in range(transfers)]
    sizes = [rng.randint(4096, 4 << 20) for _ in range(transfers)]
    following = iter(range(FLOWS, transfers))
    transfer = tl.transfer

    def next_one(_done: object) -> None:
        i = next(following, None)
        if i is not None:
            transfer(picks[i], sizes[i], on_done=next_one)

    for i in range(FLOWS):
        transfer(picks[i], sizes[i], on_done=next_one)
    wall, cpu = time.perf_counter(), time.process_time()
    tl.run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    events = tl.event_count
    stats = tl.solver_stats
    return {"events": events, "cpu_s": cpu, "wall_s": wall, "events_per_cpu_s": events / cpu,
            "events_per_wall_s": events / wall, "virtual_s": tl.end,
            "relevels": stats["relevels"], "solved_from_scratch": stats["components"],
            "classes_per_scratch_solve": stats["classes"] / max(1, stats["components"])}


def run_simpy(events: int) -> dict[str, float] | None:
    try:
        import simpy
    except ImportError:
        return None
    env = simpy.Environment()
    count = [0]
    per_process = events // FLOWS

    def waiter(env: simpy.Environment, k: int):
        for _ in range(per_process):
            yield env.timeout(1.0 + k * 1e-3)
            count[0] += 1

    for k in range(FLOWS):
        env.process(waiter(env, k))
    wall, cpu = time.perf_counter(), time.process_time()
    env.run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"events": count[0], "cpu_s": cpu, "wall_s": wall,
            "events_per_cpu_s": count[0] / cpu, "events_per_wall_s": count[0] / wall}


def best(results: list[dict[str, float]]) -> dict[str, float]:
    return max(results, key=lambda r: r["events_per_cpu_s"])


def machine() -> dict[str, str]:
    info = {"python": platform.python_version(), "date": date.today().isoformat()}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)"):
                info[key.strip()] = value.strip()
    except (OSError, subprocess.CalledProcessError):
        info["Model name"] = platform.processor() or "unknown"
    with open("/proc/loadavg") as f:
        info["load average"] = " ".join(f.read().split()[:3])
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer transfers, one repeat")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    transfers, repeats = (8000, 1) if args.quick else (40000, 3)
    results: dict[str, object] = {"machine": machine(), "transfers": transfers,
                                  "flows": FLOWS, "links": 10}
    peer = [r for r in (run_simpy(2 * transfers) for _ in range(repeats)) if r]
    results["simpy"] = best(peer) if peer else None
    rows = {}
    for kind in ("star", "tree", "mesh"):
        for bus in ("shared", "tcp", "fifo"):
            n = transfers if kind != "mesh" or bus == "fifo" else transfers // 8
            rows[f"{kind}/{bus}"] = best([run_engine(kind, bus, n) for _ in range(repeats)])
    results["engine"] = rows
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return
    m = results["machine"]
    print(f"{m.get('Model name')}, {m.get('CPU(s)')} CPUs, Python {m['python']}, {m['date']}, "
          f"load average {m['load average']}")
    if peer:
        s = results["simpy"]
        print(f"simpy timeouts      {s['events_per_cpu_s']:>10,.0f} events/CPU-s "
              f"{s['events_per_wall_s']:>10,.0f} events/wall-s")
    else:
        print("simpy timeouts      not installed (pip install simpy) - the peer is skipped")
    for name, r in rows.items():
        ratio = (f"{r['events_per_cpu_s'] / results['simpy']['events_per_cpu_s']:.2f} x simpy"
                 if peer else "")
        print(f"{name:<19} {r['events_per_cpu_s']:>10,.0f} events/CPU-s "
              f"{r['events_per_wall_s']:>10,.0f} events/wall-s  {ratio:>12}  "
              f"re-levelled {r['relevels']:>6}, solved from scratch {r['solved_from_scratch']:>6} "
              f"(x{r['classes_per_scratch_solve']:.1f} classes)")


if __name__ == "__main__":
    main()
