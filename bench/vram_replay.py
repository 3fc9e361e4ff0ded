"""Replay speed of the eviction policies: page accesses per second, per policy.

    .venv/bin/python bench/vram_replay.py [--accesses 1000000] [--repeat 3]

Replays synthetic traces of a million page accesses (Zipf 0.9 over 100k pages, and a loop
over 60k pages with 10 % noise) at two capacities through every policy of xenovectra-buffer,
the way ``xv vram replay`` does (``policy.replay(keys)``: the compiled loop), and through the
Python loops that stand in when no C compiler is available.  Prints a markdown table: the best
of ``--repeat`` runs of each, in millions of accesses per second.  The issue asks for at least
1M/s per policy; bench/RESULTS-vram.md keeps the numbers of a run with machine and date.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import numpy as np

from xv_buffer import native
from xv_buffer.policies import POLICIES


def zipf(n: int, rng: np.random.Generator) -> np.ndarray:
    weights = 1.0 / np.arange(1, 100_001) ** 0.9
    return rng.choice(100_000, n, p=weights / weights.sum()).astype(np.int64) + (3 << 32)


def loop(n: int, rng: np.random.Generator) -> np.ndarray:
    keys = np.arange(n, dtype=np.int64) % 60_000
    noise = rng.random(n) < 0.1
    keys[noise] = 60_000 + rng.integers(0, 200_000, int(noise.sum()))
    return keys + (5 << 32)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accesses", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-python", action="store_true", help="skip the Python loops")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    traces = {"zipf": zipf(args.accesses, rng), "loop": loop(args.accesses, rng)}
    native.library()  # build it before timing anything
    print(f"{platform.node()}: {cpu_model()} ({platform.machine()}), "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}, "
          f"{datetime.date.today()}; load average {os.getloadavg()[0]:.2f}")
    print(f"compiled loops: {'yes' if native.library() else 'no (' + str(native.unavailable) + ')'}")
    print()
    print("| trace | capacity (pages) | policy | misses | compiled M/s | Python M/s |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for label, keys in traces.items():
        n = len(keys)
        for capacity in (1_000, 30_000):
            for name, cls in POLICIES.items():
                misses = cls(capacity).replay(keys)
                compiled = n / best(lambda: cls(capacity).replay(keys), args.repeat) / 1e6
                python = "-"
                if not args.no_python:
                    listed = keys.tolist()
                    seconds = best(lambda: cls(capacity)._replay(listed), 1)
                    python = f"{n / seconds / 1e6:.2f}"
                print(f"| {label} | {capacity:,} | {name} | {misses:,} | {compiled:.1f} "
                      f"| {python} |", flush=True)


if __name__ == "__main__":
    main()
