"""Tile footprints by bounds inference: exact windows on the example kernels (saxpy, gauss5's
clamped 5x5 window, matmul_tiled's row bands and whole B), whole-buffer fallbacks where an index
depends on data or may overflow, and soundness against the elements a tile really touches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xv_core.plugins import load_plugins
from xv_core.runtime.footprint import (
    BufferInfo, estimate_work, group_boxes, merge_ranges, subtract_ranges, tile_footprints,
)
from xv_core.runtime.interfaces import Launch, Tile
from xv_core.runtime.scheduler import make_tiles

ROOT = Path(__file__).resolve().parents[1]
F32 = np.dtype(np.float32)
I32 = np.dtype(np.int32)
KiB = 1024


@pytest.fixture(scope="module")
def compile_():
    frontend = load_plugins().frontend_for("k.xvk")

    def compile_(source: str | Path):
        if isinstance(source, Path):
            return frontend.compile(source.read_text(), str(source)).kernels[0]
        return frontend.compile(source, "k.xvk").kernels[0]

    return compile_


def buf(n: int, dtype=F32, *extra: int) -> BufferInfo:
    shape = (n, *extra)
    return BufferInfo(dtype, shape, int(np.prod(shape)) * dtype.itemsize)


def img(h: int, w: int, dtype=F32) -> BufferInfo:
    return BufferInfo(dtype, (h, w), h * w * dtype.itemsize)


def pages(lo_byte: int, hi_byte: int, page: int) -> tuple[int, int]:
    """Pages of bytes [lo, hi)."""
    return lo_byte // page, (hi_byte - 1) // page + 1


def test_saxpy_tiles_read_and_write_their_own_slice(compile_):
    saxpy = compile_(ROOT / "examples/kernels/saxpy.xvk")
    n, page = 1_000_000, 64 * KiB
    launch = Launch((-(-n // 256), 1, 1), (256, 1, 1))
    tiles = make_tiles(launch, 2)
    fps = tile_footprints(saxpy, tiles, {"a": 2.0}, {"x": buf(n), "y": buf(n)}, page)
    for tile, fp in zip(tiles, fps):
        first = tile.first_group * 256
        last = min(n, (tile.first_group + tile.group_count) * 256) - 1  # guarded by i < length
        want = (pages(first * 4, (last + 1) * 4, page),)
        assert fp["x"].reads == want and fp["x"].writes == ()
        assert fp["y"].reads == want and fp["y"].writes == want
        assert fp["x"].inferred and fp["y"].inferred
    # the guard keeps the last tile inside the buffer: its last page is the buffer's last
    assert fps[-1]["y"].writes[-1][1] == -(-n * 4 // page)


def test_gauss5_reads_a_clamped_window_and_writes_its_band(compile_):
    gauss = compile_(ROOT / "examples/kernels/gauss5.xvk")
    h = w = 1024
    page = 4 * KiB  # one image row is exactly one page
    launch = Launch((w // 16, h // 16, 1), (16, 16, 1))
    tiles = make_tiles(launch, 2)  # 8 tiles of 8 group rows (128 pixel rows) each
    assert [t.group_count for t in tiles] == [512] * 8
    fps = tile_footprints(gauss, tiles, {}, {"src": img(h, w), "dst": img(h, w)}, page)
    for i, fp in enumerate(fps):
        y0, y1 = i * 128, i * 128 + 127
        # two rows of halo each side, clamped to the image at its edges
        assert fp["src"].reads == ((max(0, y0 - 2), min(h - 1, y1 + 2) + 1),)
        assert fp["dst"].writes == ((y0, y1 + 1),) and fp["dst"].reads == ()
        assert fp["src"].inferred


def test_gauss5_column_window_of_a_partial_row(compile_):
    gauss = compile_(ROOT / "examples/kernels/gauss5.xvk")
    h = w = 256
    launch = Launch((16, 16, 1), (16, 16, 1))
    # groups 3..5 of group row 2: pixels x 48..95, y 32..47; read x 46..97, y 30..49
    tile = Tile(0, launch, 2 * 16 + 3, 3)
    (fp,) = tile_footprints(gauss, [tile], {}, {"src": img(h, w), "dst": img(h, w)}, 64)
    row = w * 4
    want = merge_ranges(pages(y * row + 46 * 4, y * row + 98 * 4, 64) for y in range(30, 50))
    assert fp["src"].reads == want


def test_matmul_reads_its_rows_of_a_and_all_of_b(compile_):
    matmul = compile_(ROOT / "examples/kernels/matmul_tiled.xvk")
    n, page = 256, 4 * KiB  # a matrix row is one KiB: four rows a page
    launch = Launch((n // 16, n // 16, 1), (16, 16, 1))
    tiles = make_tiles(launch, 1)  # 4 tiles of 4 group rows = 64 matrix rows
    infos = {"a": buf(n * n), "b": buf(n * n), "c": buf(n * n)}
    fps = tile_footprints(matmul, tiles, {"n": n}, infos, page)
    assert len(fps) == 4
    for i, fp in enumerate(fps):
        band = pages(i * 64 * n * 4, (i + 1) * 64 * n * 4, page)
        assert fp["a"].reads == (band,)
        assert fp["b"].reads == ((0, n * n * 4 // page),)  # every column of every row of B
        assert fp["c"].writes == (band,) and fp["c"].reads == ()
        assert all(fp[k].inferred for k in "abc")


def test_an_index_loaded_from_memory_falls_back_to_the_whole_buffer(compile_):
    gather = compile_("""
        kernel gather(buffer<f32> out, buffer<f32> x, buffer<i32> idx) {
            i32 i = global_id.x;
            out[i] = x[idx[i]];
        }""")
    launch = Launch((64, 1, 1), (64, 1, 1))
    tiles = make_tiles(launch, 4)
    infos = {"out": buf(4096), "x": buf(100_000), "idx": buf(4096, I32)}
    fp = tile_footprints(gather, tiles, {}, infos, 1024)[0]
    assert not fp["x"].inferred and fp["x"].reads == ((0, 391),)
    assert fp["idx"].inferred and fp["out"].inferred  # its own slice of idx and out


def test_a_clamped_data_dependent_index_is_bounded_by_the_clamp(compile_):
    histogram = compile_(ROOT / "examples/kernels/histogram.xvk")
    launch = Launch((16, 1, 1), (256, 1, 1))
    infos = {"values": buf(4096), "bins": buf(64_000, I32)}
    (fp,) = tile_footprints(histogram, [Tile(0, launch, 0, 16)], {"lo": 0.0, "hi": 1.0},
                            infos, 4096)
    # b = clamp(b, 0, nbins - 1): the whole of bins, read and written (atomic), but bounded
    assert fp["bins"].inferred
    assert fp["bins"].reads == fp["bins"].writes == ((0, 63),)


def test_an_index_that_may_overflow_falls_back(compile_):
    wrap = compile_("""
        kernel wrap(buffer<f32> out, i32 k) {
            i32 i = global_id.x;
            out[i * k] = 1.0;
        }""")
    launch = Launch((4, 1, 1), (64, 1, 1))
    infos = {"out": buf(1 << 20)}
    (small,) = tile_footprints(wrap, [Tile(0, launch, 0, 4)], {"k": 3}, infos, 4096)
    assert small["out"].inferred and small["out"].writes == ((0, 1),)
    (big,) = tile_footprints(wrap, [Tile(0, launch, 0, 4)], {"k": 1 << 30}, infos, 4096)
    assert not big["out"].inferred and big["out"].writes == ((0, 1024),)


def test_loops_selects_breaks_and_shifts(compile_):
    kernel = compile_("""
        kernel k(buffer<f32> out, buffer<f32> x, i32 taps) {
            i32 i = global_id.x;
            f32 acc = 0.0;
            for (i32 t = 0; t < taps; t += 1) {
                if (t == 3) { break; }
                acc += x[(i >> 1) + t];
            }
            i32 j = i < 8 ? i : 8;
            acc += x[j % 4 + 1000];
            out[i / 2] = acc;
        }""")
    launch = Launch((1, 1, 1), (64, 1, 1))
    infos = {"out": buf(2048), "x": buf(2048)}
    (fp,) = tile_footprints(kernel, [Tile(0, launch, 0, 1)], {"taps": 100}, infos, 4)
    # x[(i >> 1) + t]: i in 0..63, t in 0..2 (the break) -> 0..33; x[j % 4 + 1000] -> 1000..1003
    assert fp["x"].reads == ((0, 34), (1000, 1004))
    assert fp["out"].writes == ((0, 32),)


def test_vec4_buffers_count_sixteen_bytes_an_element(compile_):
    kernel = compile_("""
        kernel k(buffer<vec4> v) {
            i32 i = global_id.x;
            v[i] = v[i] * 2.0;
        }""")
    launch = Launch((8, 1, 1), (64, 1, 1))
    info = BufferInfo(F32, (512, 4), 512 * 16)
    (fp,) = tile_footprints(kernel, [Tile(0, launch, 2, 2)], {}, {"v": info}, 1024)
    assert fp["v"].reads == fp["v"].writes == ((2, 4),)  # elements 128..255 = bytes 2048..4095


def test_group_boxes_cover_a_tile_exactly():
    launch = Launch((5, 4, 3), (1, 1, 1))
    for first in range(0, 60, 7):
        for count in (1, 4, 5, 9, 20, 33):
            if first + count > 60:
                continue
            boxes = group_boxes(launch, first, count)
            assert len(boxes) <= 5
            covered = sorted(
                x + 5 * y + 20 * z
                for (x0, x1), (y0, y1), (z0, z1) in boxes
                for z in range(z0, z1 + 1) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1))
            assert covered == list(range(first, first + count))


@pytest.mark.parametrize("a,b,c,d", [(1, 0, 1, 0), (2, 5, 1, 3), (3, 1, 2, 0), (1, 7, 4, 2),
                                     (-1, 4095, 1, 0)])
def test_affine_footprints_are_exact_page_hulls(compile_, a, b, c, d):
    """out[a*i + b] = x[c*i + d]: for each tile the pages between the lowest and highest
    element it touches, as numpy computes them."""
    kernel = compile_(f"""
        kernel k(buffer<f32> out, buffer<f32> x) {{
            i32 i = global_id.x;
            out[{a} * i + {b}] = x[{c} * i + {d}];
        }}""")
    n_items, page = 1024, 64
    launch = Launch((n_items // 32, 1, 1), (32, 1, 1))
    infos = {"out": buf(8192), "x": buf(8192)}
    tiles = make_tiles(launch, 2)
    for tile, fp in zip(tiles, tile_footprints(kernel, tiles, {}, infos, page)):
        items = np.arange(tile.first_group * 32, (tile.first_group + tile.group_count) * 32)
        for name, idx in (("out", a * items + b), ("x", c * items + d)):
            touched = {int(e) * 4 // page for e in idx}
            lo, hi = min(touched), max(touched)
            got = fp[name].writes if name == "out" else fp[name].reads
            assert got == ((lo, hi + 1),), (name, tile)


def test_work_estimates_match_what_interp_counts_for_static_kernels(compile_):
    matmul = compile_(ROOT / "examples/kernels/matmul_tiled.xvk")
    n = 256
    infos = {"a": buf(n * n), "b": buf(n * n), "c": buf(n * n)}
    est = estimate_work(matmul, Launch((16, 16, 1), (16, 16, 1)), {"n": n}, infos)
    # per item: 16 steps of 2 loads, the 16-term inner product, the loop tests; 1 store
    assert est.bytes == 16 * 2 * 4 + 4
    import xv_core as xv

    with xv.open_fabric("default") as fabric:
        k = fabric.kernel(ROOT / "examples/kernels/matmul_tiled.xvk")
        bufs = {name: fabric.zeros(n * n) for name in "abc"}
        result = fabric.dispatch(k, global_size=[n, n], args={**bufs, "n": n})
    work = result.work
    assert est.ops * n * n == work.ops
    assert est.bytes * n * n == work.bytes_read + work.bytes_written


def test_subtracting_page_ranges_agrees_with_sets():
    rng = np.random.default_rng(5)
    for _ in range(300):
        def ranges():
            return [tuple(sorted(int(v) for v in rng.integers(0, 40, 2)))
                    for _ in range(int(rng.integers(0, 4)))]
        keep, cut = ranges(), ranges()
        got = subtract_ranges(keep, cut)
        want = {p for a, b in keep for p in range(a, b)} - {p for a, b in cut for p in range(a, b)}
        assert {p for a, b in got for p in range(a, b)} == want
        assert all(b > a for a, b in got) and list(got) == sorted(got)
        assert all(got[i][1] < got[i + 1][0] for i in range(len(got) - 1))  # disjoint, apart


def _chain_kernel(terms: int) -> tuple[str, list[bool]]:
    """A kernel writing y[i] under ((((i < 5) && i < 0) || i < 1) && i < 2) ... of ``terms``
    comparisons, and for i in 0..99 whether the condition holds."""
    cond, truth = "(i < 5)", [i < 5 for i in range(100)]
    for j in range(terms):
        op = "&&" if j % 2 == 0 else "||"
        cond = f"({cond} {op} i < {j})"
        truth = [(t and i < j) if op == "&&" else (t or i < j) for i, t in enumerate(truth)]
    return (f"kernel chain(buffer<i32> y) {{ i32 i = global_id.x; if ({cond}) {{ y[i] = 1; }} }}",
            truth)


@pytest.mark.parametrize("terms", [24, 45])  # (the language nests 100 deep at most)
def test_a_long_chain_of_and_and_or_is_refined_in_linear_steps(compile_, terms, monkeypatch):
    # A chain like this took 2^terms steps (40 terms: hours), in every dispatch's planning.
    from xv_core.runtime import footprint

    source, truth = _chain_kernel(terms)
    kernel = compile_(source)
    launch = Launch((4, 1, 1), (256, 1, 1))
    tiles = make_tiles(launch, 1)
    steps: list[int] = []
    refine = footprint.KernelAnalysis._refine_once

    def counted(self, st, cond, value):
        steps.append(1)
        return refine(self, st, cond, value)

    monkeypatch.setattr(footprint.KernelAnalysis, "_refine_once", counted)
    fps = tile_footprints(kernel, tiles, {}, {"y": buf(1 << 20, I32)}, 256)
    assert len(steps) < 40 * terms * terms
    # Exact: the writes end at the last i the condition holds for (4-byte items, 256-byte
    # pages), where without refinement they would cover the whole tile.
    last = max(i for i, t in enumerate(truth) if t)
    assert fps[0]["y"].writes == ((0, last * 4 // 256 + 1),)


def test_past_its_step_budget_refinement_widens_never_narrows(compile_, monkeypatch):
    from xv_core.runtime import footprint

    source, truth = _chain_kernel(41)
    kernel = compile_(source)
    monkeypatch.setattr(footprint, "MAX_REFINE_STEPS", 3)
    launch = Launch((4, 1, 1), (256, 1, 1))
    fps = tile_footprints(kernel, make_tiles(launch, 1), {}, {"y": buf(1 << 20, I32)}, 256)
    last = max(i for i, t in enumerate(truth) if t)
    (lo, hi), = fps[0]["y"].writes
    assert lo == 0 and hi >= last * 4 // 256 + 1  # a superset of what the items write
