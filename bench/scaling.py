"""Real parallelism: how much faster a compute-bound job runs on the ``cpu`` component with two
worker threads than with one.

    .venv/bin/python bench/scaling.py                      # jit backend, threads 1 and 2
    .venv/bin/python bench/scaling.py --backend interp     # the numpy interpreter
    .venv/bin/python bench/scaling.py --threads 1 2 4 --repeat 7 --json

The job: the Monte Carlo darts kernel of ``examples/jobs/darts.xvk`` (every work item throws
``--throws`` darts with its own xorshift generator, workgroups reduce their counts in shared
memory): compute-bound, with one number per workgroup written back.  For each thread count a
fabric with one ``cpu`` component of that many threads runs the dispatch once to warm up
(compile, caches), then ``--repeat`` times; the best and the median wall time are reported, and
the speedup of each thread count over one thread (best over best; median over median), and
the process's CPU seconds per wall second while dispatching (about the number of threads when
they all run at once: on a machine other work keeps busy, the speedup falls but this still
shows whether the threads ran in parallel).  The result is checked against a run with one
thread (the same counts, bit for bit).

Tiles are cut for the fabric's modelled lanes, which a ``cpu`` component takes from its
``threads``: more threads, more (smaller) tiles; ``--tiles-lanes`` fixes the modelled lanes
instead, so that every thread count runs the very same tiles.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ROOT / "examples/jobs/darts.xvk"


def fabric_config(plugins, threads: int, backend: str, lanes: int | None):
    from xv_core.config import parse_fabric

    component = {"name": "cpu", "kind": "cpu", "threads": threads, "backend": backend}
    if lanes:
        component["timing"] = {"lanes": lanes}
    return parse_fabric({"components": [component]}, plugins, f"scaling-{threads}.yaml")


def measure(plugins, threads: int,
            args: argparse.Namespace) -> tuple[list[float], list[float], np.ndarray]:
    import xv_core as xv

    with xv.open_fabric(fabric_config(plugins, threads, args.backend, args.tiles_lanes),
                        plugins=plugins) as fabric:
        kernel = fabric.kernel(KERNEL)
        groups = args.items // 256
        hits = fabric.zeros(groups)
        run_args = {"hits": hits, "seed": 7, "throws": args.throws}
        fabric.dispatch(kernel, global_size=args.items, args=run_args)  # warm up
        times, cpu = [], []
        for _ in range(args.repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            result = fabric.dispatch(kernel, global_size=args.items, args=run_args)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        tiles = len(result.tiles)
        out = hits.read()
    print(f"  threads {threads}: {tiles} tiles, best {min(times) * 1e3:.1f} ms, median "
          f"{statistics.median(times) * 1e3:.1f} ms, {sum(cpu) / sum(times):.2f} CPU-s per "
          f"wall-s", file=sys.stderr)
    return times, cpu, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="jit",
                        help="IR backend of the cpu component (jit, interp, ...)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--items", type=int, default=1 << 20, help="work items (x256)")
    parser.add_argument("--throws", type=int, default=256, help="darts per work item")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tiles-lanes", type=int, default=None,
                        help="modelled lanes to cut tiles for (default: the threads)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    from xv_core.plugins import load_plugins

    plugins = load_plugins()
    if args.backend not in plugins.backends:
        print(f"backend {args.backend!r} is not installed (installed: "
              f"{', '.join(plugins.backends)})", file=sys.stderr)
        return 2
    print(f"darts, {args.items:,} items x {args.throws} throws on the {args.backend} backend",
          file=sys.stderr)
    results: dict[int, list[float]] = {}
    busy: dict[int, float] = {}
    reference = None
    for threads in args.threads:
        times, cpu, out = measure(plugins, threads, args)
        results[threads] = times
        busy[threads] = sum(cpu) / sum(times)
        if reference is None:
            reference = out
        elif not np.array_equal(out, reference):
            print(f"threads {threads} computed different counts", file=sys.stderr)
            return 1
    base = args.threads[0]
    rows = []
    for threads, times in results.items():
        rows.append({
            "threads": threads, "best_s": min(times), "median_s": statistics.median(times),
            "speedup_best": min(results[base]) / min(times),
            "speedup_median": statistics.median(results[base]) / statistics.median(times),
            "cpu_per_wall": busy[threads],
        })
    pi = 4 * float(np.asarray(reference, dtype=np.float64).sum()) / (args.items * args.throws)
    report = {
        "date": date.today().isoformat(), "python": platform.python_version(),
        "cpus": os.cpu_count(), "cpu": _cpu_model(), "backend": args.backend,
        "items": args.items, "throws": args.throws, "repeat": args.repeat, "pi": pi,
        "load_average": os.getloadavg(), "rows": rows,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("| threads | best | median | speedup (best) | speedup (median) | CPU-s per wall-s |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in rows:
            print(f"| {r['threads']} | {r['best_s'] * 1e3:.1f} ms | {r['median_s'] * 1e3:.1f} ms "
                  f"| {r['speedup_best']:.2f} | {r['speedup_median']:.2f} "
                  f"| {r['cpu_per_wall']:.2f} |")
        print(f"\npi ~= {pi:.5f}; load average {report['load_average']}")
    return 0


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor()
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
