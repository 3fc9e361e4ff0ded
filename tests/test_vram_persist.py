"""Persistent buffers: reopened by name with their contents, flushed explicitly or at the end
of a job, and crash-safe: a process killed in the middle of a flush leaves the old contents or
the new, never a mix."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from xv_buffer.backing import DATA_OFFSET, read_header
from xv_buffer.vram import RamVram
from xv_core.cli.main import app
from xv_core.errors import XvError

ROOT = Path(__file__).resolve().parents[1]
KiB = 1 << 10


def vram(folder: Path, paging: bool = True, capacity: int | None = None) -> RamVram:
    # Without paging the buffers must fit; with it, VRAM is smaller than the buffers.
    capacity = capacity or (64 * KiB if paging else 256 * KiB)
    return RamVram(capacity, 4 * KiB, paging=paging, path=folder, persistent=["acc", "w"])


def stored(folder: Path, name: str) -> np.ndarray:
    path = folder / f"{name}.xvbuf"
    header = read_header(path)
    data = np.fromfile(path, dtype=np.dtype(header["dtype"]), offset=DATA_OFFSET)
    return data.reshape(header["shape"])


@pytest.mark.parametrize("paging", [True, False])
def test_reopened_by_name_with_contents_after_an_explicit_flush(tmp_path, paging):
    first = vram(tmp_path, paging)
    w = first.allocate("w", (50_000,), np.float32)  # 200KiB: with paging, over 64KiB of VRAM
    assert not w.read().any()
    data = np.linspace(0, 1, 50_000, dtype=np.float32)
    w.write(data)
    first.flush(w)
    w.write(data * 2)  # not flushed: dropped when the VRAM closes
    first.close()
    np.testing.assert_array_equal(stored(tmp_path, "w"), data)

    second = vram(tmp_path, paging)
    w = second.allocate("w", (50_000,), np.float32)
    np.testing.assert_array_equal(w.read(), data)
    lease = second.make_resident(w, [(0, 4)], write=True)
    w.array()[:10] = -1
    lease.release()
    second.flush()  # every persistent buffer
    data[:10] = -1
    np.testing.assert_array_equal(stored(tmp_path, "w"), data)
    assert second.stats()["tiers"]["backing"]["flushes"] == 1
    with pytest.raises(XvError) as err:  # one process per persistent buffer
        vram(tmp_path, paging).allocate("w", (50_000,), np.float32)
    assert str(err.value).startswith(f"persistent buffer 'w': another process is using "
                                     f"{tmp_path / 'w.xvbuf'}")
    second.close()


def test_a_file_of_another_shape_is_refused_not_overwritten(tmp_path):
    first = vram(tmp_path)
    first.allocate("w", (10,), np.float32)
    first.flush()
    first.close()
    with pytest.raises(XvError) as err:
        vram(tmp_path).allocate("w", (12,), np.float32)
    assert str(err.value) == (
        f"persistent buffer 'w': {tmp_path / 'w.xvbuf'} holds float32 [10], but the buffer is "
        f"float32 [12] (hint: give the buffer its old dtype and shape, or delete the file to "
        f"start it afresh)")
    assert stored(tmp_path, "w").shape == (10,)


def test_a_job_keeps_a_persistent_buffer_from_one_run_to_the_next(tmp_path):
    """acc += 1 each run: saxpy with a = 1, x = ones and y the persistent buffer."""
    (tmp_path / "fabric.yaml").write_text(
        "name: keep\n"
        "vram: {capacity: 1MiB, page_size: 4KiB, persistent: [acc], path: state}\n"
        "components:\n  - {name: alu, kind: cpu, threads: 2}\n")
    np.save(tmp_path / "ones.npy", np.ones(3000, np.float32))
    (tmp_path / "job.yaml").write_text(
        f"kernels: {ROOT / 'examples/kernels/saxpy.xvk'}\n"
        "buffers:\n  x: {load: ones.npy}\n  acc: {zeros: [3000], dtype: f32}\n"
        "steps:\n  - {kernel: saxpy, global: [3000], block: [256], args: {a: 1.0, x: x, y: acc}}\n"
        "outputs:\n  acc: acc.npy\n")
    for run in (1, 2, 3):
        result = CliRunner().invoke(app, ["fabric", "run", str(tmp_path / "fabric.yaml"),
                                          str(tmp_path / "job.yaml")])
        assert result.exit_code == 0, result.output
        assert (np.load(tmp_path / "acc.npy") == run).all()
        assert (stored(tmp_path / "state", "acc") == run).all()  # flushed at the end of the job
        faulted_in = "0B" if run == 1 else "12.0KiB"  # zero-filled the first time, then read
        assert f"    acc             3        3        0  {faulted_in:>8}        0B\n" \
            in result.output
        assert "1 writes; " in result.output and "; 1 flushes\n" in result.output


def _child(folder: Path, size: int) -> None:
    """Flush generation after generation until killed."""
    try:
        mem = vram(folder, paging=True, capacity=256 * KiB)
        acc = mem.allocate("acc", (size,), np.int32)
        for generation in range(1, 1 << 30):
            acc.write(np.full(size, generation, np.int32))
            mem.flush(acc)
    finally:
        os._exit(1)


def test_flush_killed_at_random_points_leaves_old_or_new_contents(tmp_path):
    size = 256 * KiB  # 1MiB of int32: each flush takes a while
    mem = vram(tmp_path)
    mem.allocate("acc", (size,), np.int32)
    mem.flush()  # generation 0 on disk
    mem.close()
    rng = random.Random(5)
    mid_flush, seen = 0, set()
    deadline = time.monotonic() + 20
    rounds = 0
    while rounds < 60 and time.monotonic() < deadline:
        rounds += 1
        pid = os.fork()
        if pid == 0:
            _child(tmp_path, size)
        time.sleep(rng.uniform(0.0, 0.05))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if list(tmp_path.glob("acc.xvbuf.tmp*")):
            mid_flush += 1  # killed while writing the new file
        data = stored(tmp_path, "acc")
        assert data.shape == (size,)
        assert (data == data[0]).all(), f"a mix of generations {np.unique(data)[:5]}"
        seen.add(int(data[0]))
        reopened = vram(tmp_path)  # clears the leftover, reads what the file holds
        assert (reopened.allocate("acc", (size,), np.int32).read() == data[0]).all()
        reopened.close()
        assert not list(tmp_path.glob("acc.xvbuf.tmp*"))
    assert rounds >= 20
    assert mid_flush >= rounds // 4, (mid_flush, rounds)  # most kills landed inside a flush
    assert len(seen) > 1  # and some after a complete one


def test_killed_between_writing_the_new_file_and_renaming_it(tmp_path):
    """The one instant a random kill rarely hits: the new file complete, not yet renamed."""
    size = 1000
    mem = vram(tmp_path)
    acc = mem.allocate("acc", (size,), np.int32)
    acc.write(np.full(size, 7, np.int32))
    mem.flush()
    mem.close()
    pid = os.fork()
    if pid == 0:
        try:
            child = vram(tmp_path)
            buf = child.allocate("acc", (size,), np.int32)
            buf.write(np.full(size, 8, np.int32))
            child.flush(buf, before_rename=lambda: os.kill(os.getpid(), signal.SIGKILL))
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    leftover = list(tmp_path.glob("acc.xvbuf.tmp*"))
    assert len(leftover) == 1 and leftover[0].stat().st_size == DATA_OFFSET + 4 * size
    assert (stored(tmp_path, "acc") == 7).all()
    reopened = vram(tmp_path)
    assert (reopened.allocate("acc", (size,), np.int32).read() == 7).all()
    reopened.close()
    assert not list(tmp_path.glob("acc.xvbuf.tmp*"))
