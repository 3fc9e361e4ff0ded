"""The runtime and the paged VRAM: a tile's pages are made resident as pages it only reads and
pages it may write (only those become dirty), and with paging on the tiles coming next are
prefetched while earlier tiles compute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import xv_core as xv

ROOT = Path(__file__).resolve().parents[1]
SAXPY = ROOT / "examples" / "kernels" / "saxpy.xvk"

# Work enough per item that a tile computes far longer than its pages take to load.
SLOW_SAXPY = """
kernel slow_saxpy(f32 a, buffer<f32> x, buffer<f32> y) {
    i32 i = global_id.x;
    if (i < x.length) {
        f32 v = x[i];
        for (i32 k = 0; k < 400; k += 1) { v = v * 0.999 + 0.001; }
        y[i] = a * x[i] + y[i] + 0.0 * v;
    }
}
"""


@pytest.fixture
def paged(tmp_path):
    path = tmp_path / "paged.yaml"
    path.write_text(
        "name: paged\n"
        f"vram: {{capacity: 4MiB, page_size: 64KiB, backing: file, path: {tmp_path / 'vram'}}}\n"
        "components: [{name: alu, kind: cpu, threads: 2}]\n")
    with xv.open_fabric(path) as fabric:
        yield fabric


SHIFT = """
kernel shift(buffer<f32> b) {
    i32 i = global_id.x;
    i32 half = b.length / 2;
    if (i < half) { b[i] = b[i + half] + 1.0; }
}
"""


def test_pages_a_tile_only_reads_are_never_written_back(paged):
    """Each tile reads pages of the upper half of ``b`` and writes pages of the lower half: the
    upper pages are made resident for reading only, so evicting them writes nothing back."""
    n = 1 << 21  # 8 MiB, 128 pages: twice the VRAM
    b0 = np.arange(n, dtype=np.float32)
    b = paged.buffer(b0, name="b")
    kernel = paged.compile(SHIFT).kernels[0]
    paged.dispatch(kernel, global_size=n // 2, block=256, args={"b": b})
    paged.vram.wait_prefetches()
    before = paged.vram.stats()["buffers"]["b"]
    for _ in range(2):
        paged.dispatch(kernel, global_size=n // 2, block=256, args={"b": b})
    paged.vram.wait_prefetches()
    after = paged.vram.stats()["buffers"]["b"]
    want = b0.copy()
    want[: n // 2] = b0[n // 2:] + 1
    assert np.array_equal(b.read(), want)
    evicted = after["evictions"] - before["evictions"]
    written_back = after["writebacks"] - before["writebacks"]
    # Both halves go through VRAM twice; only the 64 lower pages are ever dirty, so at most
    # they are written back, each once per dispatch and once for what the first one left
    # dirty (were the upper pages dirty too, every eviction would write back).
    assert evicted >= 128 and written_back <= 3 * 64 and written_back < evicted


def test_the_tiles_coming_next_are_prefetched_while_earlier_ones_compute(paged):
    n = 1 << 20  # 4 MiB per buffer: together twice the VRAM
    rng = np.random.default_rng(4)
    x0, y0 = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    x, y = paged.buffer(x0, name="x"), paged.buffer(y0, name="y")
    kernel = paged.compile(SLOW_SAXPY).kernels[0]
    asked: list[tuple[str, tuple[tuple[int, int], ...]]] = []
    real = paged.vram.prefetch

    def spy(buffer, ranges):
        asked.append((buffer.name, tuple(ranges)))
        real(buffer, ranges)

    paged.vram.prefetch = spy
    result = paged.dispatch(kernel, global_size=n, block=256, args={"a": 3.0, "x": x, "y": y})
    paged.vram.wait_prefetches()
    np.testing.assert_allclose(y.read(), np.float32(3.0) * x0 + y0, rtol=1e-6)
    tiles = len(result.tiles)
    assert tiles == 8
    # Each tile handed over asks for the one handed over next: two ahead (two workers, a
    # tile each in flight; the buffers do not fit in VRAM, so no tile waits in the
    # component's queue): tiles 2..7, x and y.
    pages = 64 // tiles  # 64 pages per buffer, split evenly
    want = [(name, ((t * pages, (t + 1) * pages),)) for t in range(2, tiles)
            for name in ("x", "y")]
    assert sorted(asked) == sorted(want)
    vram = paged.vram.stats()["tiers"]["vram"]
    assert vram["prefetched"] > 0 and vram["prefetch_hits"] > 0


def _spy_leases(fabric):
    calls: list[tuple[str, tuple[tuple[int, int], ...], bool]] = []
    released: list[int] = []
    real = fabric.vram.make_resident

    class Counted:
        def __init__(self, lease):
            self.lease = lease

        def release(self):
            released.append(1)
            self.lease.release()

    def spy(buffer, ranges, *, write):
        calls.append((buffer.name, tuple(ranges), write))
        return Counted(real(buffer, ranges, write=write))

    fabric.vram.make_resident = spy
    return calls, released


def test_a_dispatch_that_fits_in_vram_leases_its_pages_once(paged):
    n = 1 << 18  # 1 MiB per buffer: both fit in the 4 MiB VRAM
    rng = np.random.default_rng(5)
    x0, y0 = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    x, y = paged.buffer(x0, name="x"), paged.buffer(y0, name="y")
    kernel = paged.kernel(SAXPY)
    calls, released = _spy_leases(paged)
    result = paged.dispatch(kernel, global_size=n, block=256, args={"a": 2.0, "x": x, "y": y})
    np.testing.assert_allclose(y.read(), np.float32(2.0) * x0 + y0, rtol=1e-6)
    assert len(result.tiles) > 1
    # x only read, y read and written: one call each, for all 16 pages, for every tile.
    assert calls == [("x", ((0, 16),), False), ("y", ((0, 16),), True)]
    assert len(released) == 2


def test_a_dispatch_that_overflows_vram_leases_each_tiles_pages_while_it_runs(paged):
    n = 1 << 20  # 4 MiB per buffer: together twice the VRAM
    x = paged.buffer(np.ones(n, np.float32), name="x")
    y = paged.buffer(np.ones(n, np.float32), name="y")
    kernel = paged.kernel(SAXPY)
    calls, released = _spy_leases(paged)
    result = paged.dispatch(kernel, global_size=n, block=256, args={"a": 2.0, "x": x, "y": y})
    assert np.all(y.read() == 3.0)
    tiles = len(result.tiles)
    pages = 64 // tiles
    want = sorted((name, ((t * pages, (t + 1) * pages),), name == "y")
                  for t in range(tiles) for name in ("x", "y"))
    assert sorted(calls) == want
    assert len(released) == 2 * tiles


def test_whether_a_dispatch_fits_in_vram_counts_whole_pages(tmp_path, monkeypatch):
    # Two buffers of 5 KiB: 10 KiB of data in a 12 KiB VRAM, but four 4 KiB pages (16 KiB)
    # once pinned: the dispatch does not fit, and leases each tile's pages as it runs.
    from xv_core.runtime import scheduler

    monkeypatch.setattr(scheduler, "MIN_TILE_ITEMS", 256)
    path = tmp_path / "small.yaml"
    path.write_text("name: small\nvram: {capacity: 12KiB, page_size: 4KiB, paging: true}\n"
                    "components: [{name: alu, kind: cpu, threads: 2}]\n")
    with xv.open_fabric(path) as fabric:
        n = 1280
        x = fabric.buffer(np.arange(n, dtype=np.float32), name="x")
        y = fabric.buffer(np.ones(n, np.float32), name="y")
        calls, released = _spy_leases(fabric)
        result = fabric.dispatch(fabric.kernel(SAXPY), global_size=n, block=256,
                                 args={"a": 2.0, "x": x, "y": y})
        np.testing.assert_array_equal(y.read(), np.float32(2.0) * np.arange(n) + 1)
        assert len(result.tiles) == 5
        assert len(calls) == 2 * 5 and len(released) == 2 * 5
