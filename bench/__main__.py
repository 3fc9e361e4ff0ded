"""The performance suite: ``python -m bench`` (or ``make bench``).

For each workload it runs Xenovectra on every registered backend and the
peers in the same process, checks every result against the numpy reference,
and prints medians of ``--runs`` runs after one warm-up, as rates and as
ratios to the first peer.  ``--write`` records the table in
``bench/RESULTS.md`` with the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.workloads import KERNELS, Workload, check, workloads

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines()
                      if ln.startswith("Model name")), platform.processor())
    except (OSError, subprocess.CalledProcessError):
        model = platform.processor() or "unknown CPU"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}, "
            f"numpy {np.__version__}")


def timed(fn, runs: int) -> list[float]:
    fn()  # warm-up: caches, compilation, page faults
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def run_xv(w: Workload, backend: str, inputs: dict[str, np.ndarray], runs: int) -> tuple[float, str | None]:
    import xv_core as xv

    with xv.open_fabric("default", backend=backend) as fabric:
        kernel = fabric.kernel(KERNELS / w.kernel_file, w.kernel_name)
        buffers = {name: fabric.buffer(arr, name=name) for name, arr in inputs.items()}
        args = {**w.scalars, **buffers}

        def once() -> None:
            for name, arr in inputs.items():  # every run starts from the same inputs
                if name in w.outputs:
                    buffers[name].write(arr)
            fabric.dispatch(kernel, args=args, **w.launch)

        times = timed(once, runs)
        got = {name: buffers[name].read() for name in w.outputs}
    why = check(w, got, w.reference(inputs))
    return statistics.median(times), why


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="timed runs after a warm-up (>= 5)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", default="", help="comma-separated workload names")
    parser.add_argument("--backends", default="", help="comma-separated backends (default: all)")
    parser.add_argument("--write", action="store_true", help="record the table in bench/RESULTS.md")
    opts = parser.parse_args(argv)

    from xv_core.plugins import load_plugins

    backends = opts.backends.split(",") if opts.backends else load_plugins().backends.names()
    only = set(filter(None, opts.only.split(",")))
    rows: list[tuple[str, str, str, float, float | None, str]] = []
    failed = False
    for w in workloads(opts.quick):
        if only and w.name not in only:
            continue
        rng = np.random.default_rng(2026)
        inputs = w.make_inputs(rng)
        peer_rates: dict[str, float] = {}
        for peer, fn in w.peers.items():
            copies = {k: v.copy() for k, v in inputs.items()}
            t = statistics.median(timed(lambda: fn(copies), opts.runs))
            peer_rates[peer] = w.amount / t
            rows.append((w.name, peer, w.unit, w.amount / t, None, ""))
        first_peer = next(iter(peer_rates.values()), None)
        for backend in backends:
            t, why = run_xv(w, backend, {k: v.copy() for k, v in inputs.items()}, opts.runs)
            rate = w.amount / t
            ratio = rate / first_peer if first_peer else None
            rows.append((w.name, f"xenovectra {backend}", w.unit, rate, ratio, why or ""))
            failed |= why is not None
        print_rows(rows[-(len(w.peers) + len(backends)):])
    if opts.write:
        write_results(rows, opts)
    return 1 if failed else 0


def print_rows(rows) -> None:
    for name, who, unit, rate, ratio, why in rows:
        ratio_s = f"{ratio:6.3f}x first peer" if ratio is not None else ""
        print(f"{name:<13} {who:<22} {rate:10.3f} {unit:<10} {ratio_s} {'WRONG: ' + why if why else ''}")
    sys.stdout.flush()


def write_results(rows, opts) -> None:
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {machine()}.",
        f"Date: {datetime.date.today().isoformat()}. Command: `python -m bench --runs {opts.runs}"
        f"{' --quick' if opts.quick else ''}`. Medians of {opts.runs} runs after a warm-up; every "
        "Xenovectra result checked against the numpy reference.",
        "",
        "| workload | who | rate | unit | ratio to first peer | check |",
        "| --- | --- | ---: | --- | ---: | --- |",
    ]
    for name, who, unit, rate, ratio, why in rows:
        ratio_s = f"{ratio:.3f}" if ratio is not None else ""
        lines.append(f"| {name} | {who} | {rate:.3f} | {unit} | {ratio_s} | "
                     f"{'WRONG: ' + why if why else ('ok' if who.startswith('xenovectra') else '')} |")
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
