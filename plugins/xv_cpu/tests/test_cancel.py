"""Ctrl-C stops a dispatch's running tiles: both backends stop at their next workgroup (the jit
at its next span of at most 4,096 work items, the interpreter at its next batch)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import xv_core
from xv_core.errors import TileCancelled

SPIN = """kernel spin(buffer<f32> out, i32 n) {
    f32 acc = 0.0;
    for (i32 i = 0; i < n; i = i + 1) { acc = acc + 1.0; }
    out[global_id.x] = acc;
}"""
ITEMS = 1 << 16
#: Iterations per work item of the command-line test: a span of 4,096 items takes about half
#: a second on the jit (the in-process test times its own, `_spins_for_tiles_of`).
SPINS = {"jit": 500_000}


@pytest.fixture(autouse=True)
def ctrl_c_raises():
    """Ctrl-C raises KeyboardInterrupt here and in the `xv` these tests start, whatever this
    process was given: a shell starts a background job (`make test &`) with SIGINT ignored,
    which Python keeps (and its children inherit), and these tests would then see nothing."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _default_sigint() -> None:
    """In the child before exec: SIGINT back to its default, so that Python installs its
    handler (an ignored signal stays ignored across exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _spins_for_tiles_of(seconds: float, fabric, kernel, out) -> int:
    """Iterations per work item for which a tile of the spin dispatch (four tiles, two at a
    time) takes about ``seconds`` on this machine: timed here, not assumed (a faster host ran
    the interpreter's 150,000 iterations within the half second before Ctrl-C)."""
    n = 100
    while True:
        began = time.perf_counter()
        fabric.dispatch(kernel, args={"out": out, "n": n}, global_size=ITEMS, block=64)
        spent = time.perf_counter() - began
        if spent >= 0.05:
            return max(n, int(n * seconds * 2 / spent))
        n *= 4


def _interrupt_main_in(seconds: float) -> threading.Timer:
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(seconds, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    return timer


@pytest.mark.parametrize("backend", ["jit", "interp"])
def test_ctrl_c_stops_the_running_tiles_and_the_kernel_runs_again(backend):
    with xv_core.open_fabric("default", backend=backend) as fabric:
        kernel = fabric.compile(SPIN).kernels[0]
        out = fabric.buffer(np.zeros(ITEMS, np.float32))
        fabric.dispatch(kernel, args={"out": out, "n": 1}, global_size=ITEMS, block=64)
        spins = _spins_for_tiles_of(1.5, fabric, kernel, out)  # (compiled: timed alone)
        out.write(np.zeros(ITEMS, np.float32))
        timer = _interrupt_main_in(0.5)
        try:
            with pytest.raises(KeyboardInterrupt):
                fabric.dispatch(kernel, args={"out": out, "n": spins},
                                global_size=ITEMS, block=64)
        finally:
            timer.cancel()
        # The tiles running stopped before their end (the dispatch's four tiles of 16,384
        # items, two at a time, each some 1.5 seconds: without stopping, every item would hold
        # n), and nothing still runs: the buffer no longer changes (the running tiles, left
        # to run, would write theirs within the second and a half).
        first = out.read()
        assert (first == 0).sum() > ITEMS // 2
        assert set(np.unique(first)) <= {0.0, float(spins)}
        time.sleep(1.5)
        assert np.array_equal(out.read(), first)
        # The kernel runs again, whole.
        fabric.dispatch(kernel, args={"out": out, "n": 3}, global_size=ITEMS, block=64)
        assert np.array_equal(out.read(), np.full(ITEMS, 3.0, np.float32))


def test_a_cancelled_preparation_refuses_tiles_until_resumed():
    with xv_core.open_fabric("default", backend="jit") as fabric:
        kernel = fabric.compile(SPIN).kernels[0]
        out = fabric.buffer(np.zeros(ITEMS, np.float32))
        fabric.dispatch(kernel, args={"out": out, "n": 1}, global_size=ITEMS, block=64)
        (prepared,) = fabric._context.prepared_of(kernel)
        prepared.cancel()
        with pytest.raises(TileCancelled, match=r"^kernel 'spin': the tile was stopped"):
            fabric.dispatch(kernel, args={"out": out, "n": 1}, global_size=ITEMS, block=64)
        prepared.resume()
        fabric.dispatch(kernel, args={"out": out, "n": 2}, global_size=ITEMS, block=64)
        assert np.array_equal(out.read(), np.full(ITEMS, 2.0, np.float32))


def test_ctrl_c_on_xv_fabric_run_exits_130_and_writes_nothing(tmp_path):
    # A long job of short spans: 2^20 items in eight tiles of 32 spans.
    (tmp_path / "spin.xvk").write_text(SPIN)
    (tmp_path / "job.yaml").write_text(
        "kernels: spin.xvk\n"
        f"buffers: {{out: {{zeros: [{ITEMS * 16}], dtype: f32}}}}\n"
        "steps:\n"
        f"  - {{kernel: spin, global: [{ITEMS * 16}], block: [64], "
        f"args: {{out: out, n: {SPINS['jit']}}}}}\n"
        "outputs: {out: out.npy}\n")
    xv = Path(sys.executable).parent / "xv"
    proc = subprocess.Popen([str(xv), "fabric", "run", "default", "job.yaml"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "XV_DEBUG": ""}, preexec_fn=_default_sigint)
    try:
        time.sleep(3.0)  # loaded, compiled and running
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        # Stopped at the running tiles' next span (0.8 s here), not at their end (6 s).
        stdout, stderr = proc.communicate(timeout=4)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr == "interrupted\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.yaml", "spin.xvk"]
