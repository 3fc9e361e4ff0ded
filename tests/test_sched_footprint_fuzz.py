"""Footprints are sound on random kernels: a tile run on inputs poisoned everywhere outside
its read footprint writes exactly what it writes on the real inputs, and changes nothing
outside its write footprint.

The kernels mix counted and data-dependent loops with break and continue, if/else, early
returns, locals carried across iterations, clamps, min/max, division, remainder, shifts and
masks, indices loaded from memory, and guarded reads and writes -- everything the interval
analysis has a rule for, and the cases where it must give up (and fall back to the whole
buffer).  Pages are 16 bytes (four elements), so a footprint one element too small is caught.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from xv_core.plugins import load_plugins
from xv_core.runtime.footprint import BufferInfo, tile_footprints
from xv_core.runtime.interfaces import Launch, Tile

PAGE = 16
N_X, N_IDX, N_OUT = 700, 300, 900
ITEMS, BLOCK = 512, 32


class Gen:
    def __init__(self, seed: int):
        self.r = random.Random(seed)
        self.loops: list[str] = []
        self.depth = 0
        self.counter = 0

    def atom(self) -> str:
        r = self.r
        names = ["i", "a", "b", "n"] + self.loops
        return r.choice([r.choice(names), str(r.randint(-4, 40)), "x.length - 1",
                         "local_id.x", "group_id.x"])

    def expr(self, depth: int = 0) -> str:
        r = self.r
        if depth > 2 or r.random() < 0.3:
            return self.atom()
        a, b = self.expr(depth + 1), self.expr(depth + 1)
        return r.choice([
            f"({a} + {b})", f"({a} - {b})", f"({a} * {r.randint(-3, 3)})", f"min({a}, {b})",
            f"max({a}, {b})", f"clamp({a}, 0, {r.randint(5, 60)})", f"({a} / {r.randint(1, 5)})",
            f"({a} % {r.randint(1, 9)})", f"({a} >> {r.randint(0, 3)})", f"({a} & 31)",
            f"({a} << {r.randint(0, 2)})", f"abs({a})",
            f"idx[clamp({a}, 0, idx.length - 1)]",
        ])

    def cond(self) -> str:
        a, b = self.expr(1), self.expr(1)
        op = self.r.choice(["<", "<=", ">", ">=", "==", "!="])
        c = f"{a} {op} {b}"
        if self.r.random() < 0.2:
            c = f"({c}) && ({self.expr(1)} < {self.expr(1)})"
        return c

    def read(self) -> str:
        return (f"e = {self.expr()};\n"
                f"if (e >= 0 && e < x.length) {{ acc += x[e]; }}\n")

    def stmts(self, count: int) -> str:
        return "".join(self.stmt() for _ in range(count))

    def stmt(self) -> str:
        r = self.r
        choice = r.random()
        if self.depth >= 3 or choice < 0.35:
            return r.choice([self.read, self.read,
                             lambda: f"a = {self.expr()};\n", lambda: f"b = {self.expr()};\n",
                             lambda: f"if ({self.cond()}) {{ a += 1; }}\n"])()
        self.depth += 1
        try:
            if choice < 0.55:
                return (f"if ({self.cond()}) {{\n{self.stmts(2)}}} else {{\n"
                        f"{self.stmts(1)}}}\n")
            if choice < 0.62 and not self.loops:
                return f"if ({self.cond()}) {{ return; }}\n"
            self.counter += 1
            var = f"t{self.counter}"
            start, stride = r.randint(-3, 5), r.randint(1, 3)
            limit = r.choice([str(r.randint(0, 12)), "n", f"min(n, {self.expr(1)})"])
            self.loops.append(var)
            body = self.stmts(2)
            exits = ""
            if r.random() < 0.4:
                exits += f"if ({self.cond()}) {{ break; }}\n"
            if r.random() < 0.3:
                exits += f"if ({self.cond()}) {{ continue; }}\n"
            self.loops.pop()
            return (f"for (i32 {var} = {start}; {var} < {limit}; {var} += {stride}) {{\n"
                    f"{exits}{body}}}\n")
        finally:
            self.depth -= 1

    def kernel(self) -> str:
        body = self.stmts(4)
        return (
            "kernel k(buffer<f32> out, buffer<f32> x, buffer<i32> idx, i32 n) {\n"
            "i32 i = global_id.x;\n"
            "i32 a = i % 13;\n"
            "i32 b = 0;\n"
            "i32 e = 0;\n"
            "f32 acc = 0.0;\n"
            f"{body}"
            f"i32 w = {self.expr()};\n"
            "if (w >= 0 && w < out.length) { out[w] = acc + f32(i); }\n"
            "}\n")


def poisoned(array: np.ndarray, pages: tuple[tuple[int, int], ...], poison) -> np.ndarray:
    """A copy of ``array`` with every element outside ``pages`` replaced by ``poison``."""
    keep = np.zeros(array.size, dtype=bool)
    per_page = PAGE // array.itemsize
    for a, b in pages:
        keep[a * per_page:b * per_page] = True
    out = np.full_like(array, poison)
    out[keep] = array[keep]
    return out


def covered(changed: np.ndarray, pages: tuple[tuple[int, int], ...], itemsize: int) -> bool:
    per_page = PAGE // itemsize
    inside = np.zeros(changed.size, dtype=bool)
    for a, b in pages:
        inside[a * per_page:b * per_page] = True
    return not np.any(changed & ~inside)


@pytest.fixture(scope="module")
def tools():
    plugins = load_plugins()
    return plugins.frontend_for("k.xvk"), plugins.backends.get("interp").factory()


@pytest.mark.parametrize("seed", range(60))
def test_random_kernels_touch_nothing_outside_their_footprints(tools, seed):
    frontend, interp = tools
    source = Gen(seed).kernel()
    kernel = frontend.compile(source, f"random{seed}.xvk").kernels[0]
    prepared = interp.prepare(kernel)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(N_X).astype(np.float32)
    idx = rng.integers(-20, N_X + 20, N_IDX).astype(np.int32)
    start = rng.standard_normal(N_OUT).astype(np.float32)
    n = int(rng.integers(0, 10))
    launch = Launch((ITEMS // BLOCK, 1, 1), (BLOCK, 1, 1))
    tiles = [Tile(k, launch, k * 4, 4) for k in range(ITEMS // BLOCK // 4)]
    infos = {"out": BufferInfo(start.dtype, start.shape, start.nbytes),
             "x": BufferInfo(x.dtype, x.shape, x.nbytes),
             "idx": BufferInfo(idx.dtype, idx.shape, idx.nbytes)}
    footprints = tile_footprints(kernel, tiles, {"n": n}, infos, PAGE)
    for tile, fp in zip(tiles, footprints):
        clean_out, dirty_out = start.copy(), start.copy()
        prepared.run_tile(tile, {"out": clean_out, "x": x, "idx": idx, "n": np.int32(n)})
        prepared.run_tile(tile, {"out": dirty_out,
                                 "x": poisoned(x, fp["x"].reads, np.float32(1e30)),
                                 "idx": poisoned(idx, fp["idx"].reads, np.int32(7_777_777)),
                                 "n": np.int32(n)})
        assert np.array_equal(clean_out, dirty_out, equal_nan=True), (seed, tile, source)
        changed = ~((clean_out == start) | (np.isnan(clean_out) & np.isnan(start)))
        assert covered(changed, fp["out"].writes, 4), (seed, tile, source)
