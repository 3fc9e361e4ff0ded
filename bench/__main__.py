"""The performance suite: ``python -m bench`` (or ``make bench``).

For each workload it runs Xenovectra on every registered backend and the
peers in the same process, checks every result against the numpy reference,
and prints medians of ``--runs`` runs after one warm-up, as rates and as
ratios to the hand-written numba peer (the first peer without numba).  Then the
dispatch overhead of a tiny kernel through the Python API (µs per dispatch,
compiled and cached) and the jit's cold-compile time per kernel.  ``--write``
records the tables in ``bench/RESULTS.md`` with the machine and the date.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np

from bench.workloads import KERNELS, Workload, check, workloads

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
#: The line after which bench/RESULTS.md holds notes written by hand (kept by --write).
NOTES = "<!-- notes: kept when the tables above are rewritten -->"


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


def timed(fn, runs: int, setup=None) -> list[float]:
    """Wall times of ``runs`` calls after a warm-up; ``setup`` runs untimed before each."""
    if setup is not None:
        setup()
    fn()  # warm-up: caches, compilation, page faults
    times = []
    for _ in range(runs):
        if setup is not None:
            setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


@attrs.define
class Contestant:
    """One row of a workload: ``once`` does the work, ``reset`` (untimed) restores its inputs,
    ``result`` gives its outputs for the check (None for peers, which are not checked)."""

    label: str
    once: Callable[[], None]
    reset: Callable[[], None] | None = None
    result: Callable[[], dict[str, np.ndarray]] | None = None
    amount: float | None = None  # units of work per run, when not the workload's


def race(contestants: list[Contestant], runs: int) -> dict[str, list[float]]:
    """Wall times of ``runs`` runs of each contestant after one warm-up each, taken in turn
    (run 1 of every row, then run 2, ...): a slow spell of the machine falls on every row of
    the workload alike instead of on whichever was measured then, so the ratios hold."""
    times: dict[str, list[float]] = {c.label: [] for c in contestants}
    for c in contestants:  # warm-up: caches, compilation, page faults
        if c.reset is not None:
            c.reset()
        c.once()
    for _ in range(runs):
        for c in contestants:
            if c.reset is not None:
                c.reset()
            t = time.perf_counter()
            c.once()
            times[c.label].append(time.perf_counter() - t)
    return times


def xv_contestant(w: Workload, backend: str, inputs: dict[str, np.ndarray],
                  stack: contextlib.ExitStack) -> Contestant:
    """Through ``Fabric.dispatch`` on the default fabric, as users run kernels."""
    import xv_core as xv

    fabric = stack.enter_context(xv.open_fabric("default", backend=backend))
    kernel = fabric.kernel(KERNELS / w.kernel_file, w.kernel_name)
    buffers = {name: fabric.buffer(arr, name=name) for name, arr in inputs.items()}
    args = {**w.scalars, **buffers}

    def reset() -> None:
        for name, arr in inputs.items():  # every run starts from the same inputs
            if name in w.outputs:
                buffers[name].write(arr)

    return Contestant(f"xenovectra {backend}",
                      lambda: fabric.dispatch(kernel, args=args, **w.launch), reset,
                      lambda: {name: buffers[name].read() for name in w.outputs})


def backend_only_contestant(w: Workload, backend: str, inputs: dict[str, np.ndarray],
                            stack: contextlib.ExitStack) -> Contestant:
    """The backend alone: the tiles a dispatch on the default fabric cuts, run by the prepared
    kernel on one thread per core, without the runtime's planning, paging and timing model
    around them.  The difference to the dispatch row is what a dispatch costs beyond the
    backend's work."""
    from concurrent.futures import ThreadPoolExecutor

    import xv_core as xv
    from xv_core.runtime.api import launch_geometry
    from xv_core.runtime.args import scalar_value
    from xv_core.runtime.scheduler import make_tiles

    fabric = stack.enter_context(xv.open_fabric("default", backend=backend))
    kernel = fabric.kernel(KERNELS / w.kernel_file, w.kernel_name)
    tiles = make_tiles(launch_geometry(kernel, **w.launch), fabric.model.lanes)
    prepared = fabric.plugins.backends.get(backend).factory().prepare(kernel)
    arrays = {k: v.copy() for k, v in inputs.items()}
    args = {**{p.name: scalar_value(p.type.kind, w.scalars[p.name]) for p in kernel.params
               if p.type.is_scalar}, **arrays}
    pool = stack.enter_context(ThreadPoolExecutor(os.cpu_count() or 1))

    def reset() -> None:
        for name in w.outputs:
            arrays[name][...] = inputs[name]

    def once() -> None:
        for f in [pool.submit(prepared.run_tile, t, args) for t in tiles]:
            f.result()

    return Contestant(f"{backend} backend only", once, reset,
                      lambda: {name: arrays[name] for name in w.outputs})


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
        with contextlib.ExitStack() as stack:
            contestants = []
            for peer, fn in w.peers.items():
                amount = w.amount
                if isinstance(fn, tuple):
                    fn, amount = fn
                copies = {k: v.copy() for k, v in inputs.items()}
                contestants.append(Contestant(peer, functools.partial(fn, copies),
                                              amount=amount))
            for backend in backends:
                copies = {k: v.copy() for k, v in inputs.items()}
                contestants.append(xv_contestant(w, backend, copies, stack))
                if backend == "jit":
                    contestants.append(backend_only_contestant(w, backend, copies, stack))
            times = race(contestants, opts.runs)
            results = {c.label: c.result() for c in contestants if c.result is not None}
        rates = {c.label: (c.amount or w.amount) / statistics.median(times[c.label])
                 for c in contestants}
        reference = w.reference(inputs)
        numba_peer = next((rates[p] for p in w.peers if p.startswith("numba prange")), None)
        first_peer = numba_peer or next((rates[p] for p in w.peers), None)
        for c in contestants:
            if c.result is None:
                rows.append((w.name, c.label, w.unit, rates[c.label], None, ""))
                continue
            why = check(w, results[c.label], reference)
            failed |= why is not None
            ratio = rates[c.label] / first_peer if first_peer else None
            rows.append((w.name, c.label, w.unit, rates[c.label], ratio, why or ""))
        print_rows(rows[-len(contestants):])
    extras: list[str] = []
    if not only or "dispatch" in only:
        extras += dispatch_overhead(backends, opts.runs)
    if not only or "compile" in only:
        extras += cold_compile(opts.quick)
    for line in extras:
        print(line)
    if opts.write:
        write_results(rows, opts, extras)
    return 1 if failed else 0


def dispatch_overhead(backends: list[str], runs: int) -> list[str]:
    """µs per dispatch of a tiny kernel (saxpy of 256 elements, one workgroup) through the
    Python API, the kernel compiled and cached: what a dispatch costs beyond its work.  The
    backends take turns (:func:`race`), as a workload's rows do."""
    import xv_core as xv

    runs = max(runs, 5)
    lines = ["", "Dispatch overhead: saxpy of 256 elements (one workgroup) through "
                 f"`Fabric.dispatch`, compiled and cached; median of {runs} runs of 200 "
                 "dispatches, the backends taking turns.",
             "", "| backend | µs per dispatch |", "| --- | ---: |"]
    with contextlib.ExitStack() as stack:
        contestants = []
        for backend in backends:
            fabric = stack.enter_context(xv.open_fabric("default", backend=backend))
            kernel = fabric.kernel(KERNELS / "saxpy.xvk")
            x = fabric.buffer(np.ones(256, np.float32))
            y = fabric.buffer(np.ones(256, np.float32))

            def many(fabric=fabric, kernel=kernel, args={"a": 2.0, "x": x, "y": y}) -> None:
                for _ in range(200):
                    fabric.dispatch(kernel, args=args, global_size=256, block=256)

            contestants.append(Contestant(backend, many))
        times = race(contestants, runs)
    for backend in backends:
        lines.append(f"| {backend} | {statistics.median(times[backend]) / 200 * 1e6:.1f} |")
    return lines


def cold_compile(quick: bool) -> list[str]:
    """Seconds the jit takes to compile each kernel with nothing cached (code generation,
    LLVM -O3, object code, loading), for the block size its workload uses."""
    import tempfile

    from xv_core.runtime.api import launch_geometry
    from xv_cpu.jit import backend as jit_backend
    from xv_cpu.jit.cache import DiskCache
    from xv_cpu.jit.codegen import Spec
    from xv_dsl import compile_file

    lines = ["", "Cold compile of the jit (nothing in the process or the disk cache; code "
                 "generation, LLVM -O3, object code, loading), per kernel:", "",
             "| kernel | block | seconds |", "| --- | --- | ---: |"]
    with tempfile.TemporaryDirectory() as tmp:
        for w in workloads(quick):
            kernel = compile_file(KERNELS / w.kernel_file).kernels[0]
            launch = launch_geometry(kernel, **w.launch)
            jit_backend._process.clear()  # forget what this process compiled before
            backend = jit_backend.JitBackend(cache=DiskCache(Path(tmp) / w.name))
            prepared = backend.prepare(kernel)
            prepared.compiled(Spec(launch.block, True, ()))
            lines.append(f"| {kernel.name} | {list(launch.block)} | {prepared.compile_s:.3f} |")
    return lines


def print_rows(rows) -> None:
    for name, who, unit, rate, ratio, why in rows:
        ratio_s = f"{ratio:6.3f}x numba" if ratio is not None else ""
        print(f"{name:<13} {who:<24} {rate:10.3f} {unit:<10} {ratio_s} "
              f"{'WRONG: ' + why if why else ''}")
    sys.stdout.flush()


def write_results(rows, opts, extras) -> None:
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {machine()}.",
        f"Date: {datetime.date.today().isoformat()}. Command: `python -m bench --runs {opts.runs}"
        f"{' --quick' if opts.quick else ''}`. Medians of {opts.runs} runs after a warm-up, the "
        "rows of a workload timed in turn (run 1 of each, then run 2, ...); every Xenovectra "
        "result checked against the numpy reference.",
        "",
        "| workload | who | rate | unit | ratio to numba (or first peer) | check |",
        "| --- | --- | ---: | --- | ---: | --- |",
    ]
    for name, who, unit, rate, ratio, why in rows:
        ratio_s = f"{ratio:.3f}" if ratio is not None else ""
        checked = who.startswith(("xenovectra", "jit backend"))
        verdict = f"WRONG: {why}" if why else ("ok" if checked else "")
        lines.append(f"| {name} | {who} | {rate:.3f} | {unit} | {ratio_s} | {verdict} |")
    # The analysis written by hand below NOTES survives a re-run.
    notes = ""
    if RESULTS.exists():
        old = RESULTS.read_text()
        if NOTES in old:
            notes = "\n" + old[old.index(NOTES):]
    RESULTS.write_text("\n".join(lines + extras) + "\n" + notes)


if __name__ == "__main__":
    sys.exit(main())
