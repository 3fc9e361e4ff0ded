"""The workloads of the performance suite, each with its peers.

A workload builds its inputs once, runs Xenovectra through the public API
(the way users run it), and offers peers that compute the same result by other
means in the same process.  Every run's output is checked against the numpy
reference before its time counts: a fast wrong answer is a failure, not a
result.

``alu`` measures arithmetic throughput in M item-ops/s: work items times the
arithmetic operations of each item's chain in the kernel's IR
(``vgpucc --emit ir examples/kernels/alu.xvk``), that is 64 per item (:data:`ALU_OPS`:
32 Horner steps of a multiply and an add); the guard, the loop counter, the load
and the store are not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "examples" / "kernels"


@attrs.define
class Workload:
    name: str
    unit: str  # what the rate counts: "Mpix/s", "GFLOPS", "GB/s", "M items/s", "M item-ops/s"
    amount: float  # units of work per run (for the rate)
    kernel_file: str
    make_inputs: Callable[[np.random.Generator], dict[str, np.ndarray]]
    scalars: dict[str, Any]
    launch: dict[str, Any]  # global_size/grid/block for dispatch
    outputs: tuple[str, ...]
    reference: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
    tolerance: float = 0.0  # relative tolerance for float outputs (0 = exact)
    #: name -> fn(inputs), or (fn, amount) for a peer that does a different amount of work
    #: in the same unit (the parallel copy beside saxpy).
    peers: dict[str, Any] = attrs.Factory(dict)
    kernel_name: str | None = None


def _gauss5_numpy(src: np.ndarray) -> np.ndarray:
    w = np.array([1, 4, 6, 4, 1], np.float32)
    p = np.pad(src, 2, mode="edge")
    h, wd = src.shape
    acc = np.zeros_like(src)
    for dy in range(5):
        for dx in range(5):
            acc += w[dx] * w[dy] * p[dy:dy + h, dx:dx + wd]
    return acc / np.float32(256)


def _mandel_numpy(out_shape: tuple[int, int], cx: float, cy: float, scale: float,
                  max_iter: int) -> np.ndarray:
    h, w = out_shape
    f = np.float32
    px = np.arange(w, dtype=f)[None, :]
    py = np.arange(h, dtype=f)[:, None]
    sx, sy = f(w), f(h)
    c_re = f(cx) + f(scale) * (px - f(0.5) * sx) / sy
    c_im = f(cy) + f(scale) * (py - f(0.5) * sy) / sy
    c_re, c_im = np.broadcast_to(c_re, (h, w)), np.broadcast_to(c_im, (h, w))
    zr = np.zeros((h, w), f)
    zi = np.zeros((h, w), f)
    it = np.zeros((h, w), np.int32)
    alive = np.ones((h, w), bool)
    for _ in range(max_iter):
        nzr = zr * zr - zi * zi + c_re
        nzi = f(2.0) * zr * zi + c_im
        zr = np.where(alive, nzr, zr)
        zi = np.where(alive, nzi, zi)
        escaped = alive & (zr * zr + zi * zi > f(4.0))
        alive &= ~escaped
        it += alive
    t = it.astype(f) / f(max_iter)
    phase = np.array([0.0, 0.33, 0.67], f)
    color = f(0.5) + f(0.5) * np.cos(f(6.28318) * (t[:, :, None] + phase))
    color[it == max_iter] = 0
    out = np.ones((h, w, 4), f)
    out[:, :, :3] = color
    return out


#: The Horner steps of examples/kernels/alu.xvk: 8 passes of 4 steps ``p = p * v + c``.
ALU_STEPS = (0.5, -0.25, 0.125, -0.0625) * 8
#: Item-ops per work item of the alu workload: the IR arithmetic operations of the chain, one
#: multiply and one add (or subtract) per step.  Not counted: the bounds guard, the uniform
#: loop counter's compare and increment, the load and the store (the interpreter's
#: ``TileWork.ops``, which counts every IR operation, says 82 per item).
ALU_OPS = 2 * len(ALU_STEPS)


def _alu_numpy(x: np.ndarray) -> np.ndarray:
    """The chain of alu.xvk in float32, in the kernel's order (``p * v`` rounded, then the
    constant added), over all items at once, in place."""
    p = np.ones_like(x)
    for c in ALU_STEPS:
        p *= x
        p += np.float32(c)
    return p


def _numba() -> Any:
    """bench.peers_numba, or None when numba is not installed."""
    try:
        from bench import peers_numba
    except ImportError:
        return None
    return peers_numba


def workloads(quick: bool = False) -> list[Workload]:
    """The suite; ``quick`` shrinks every size for a smoke run."""
    nb = _numba()
    n_saxpy = 1 << (20 if quick else 24)
    img = 512 if quick else 2048
    mat = 256 if quick else 1024
    mandel = 256 if quick else 1024
    n_sum = 1 << (20 if quick else 24)
    n_hist = 1 << (20 if quick else 24)
    n_alu = 1 << (18 if quick else 22)
    items: list[Workload] = []

    items.append(Workload(
        "saxpy", "GB/s", 12 * n_saxpy / 1e9, "saxpy.xvk",
        lambda rng: {"x": rng.standard_normal(n_saxpy, dtype=np.float32),
                     "y": rng.standard_normal(n_saxpy, dtype=np.float32)},
        {"a": 2.0}, {"global_size": n_saxpy, "block": 256}, ("y",),
        lambda a: {"y": np.float32(2.0) * a["x"] + a["y"]},
        peers={"numpy": lambda a: np.add(np.float32(2.0) * a["x"], a["y"], out=a["y"]),
               **({"numba prange": lambda a: nb.saxpy(np.float32(2.0), a["x"], a["y"]),
                   "numba parallel copy": (lambda a: nb.copy(a["x"], a["y"]),
                                           8 * n_saxpy / 1e9)} if nb else {})},
    ))
    items.append(Workload(
        "gauss5", "Mpix/s", img * img / 1e6, "gauss5.xvk",
        lambda rng: {"src": rng.random((img, img), dtype=np.float32),
                     "dst": np.zeros((img, img), np.float32)},
        {}, {"global_size": (img, img)}, ("dst",),
        lambda a: {"dst": _gauss5_numpy(a["src"])}, tolerance=1e-5,
        peers={"numpy": lambda a: _gauss5_numpy(a["src"]),
               "scipy.ndimage": lambda a: _scipy_gauss5(a["src"]),
               **({"numba prange": lambda a: nb.gauss5(a["src"], a["dst"], nb.W5)}
                  if nb else {})},
    ))
    items.append(Workload(
        "matmul_tiled", "GFLOPS", 2 * mat ** 3 / 1e9, "matmul_tiled.xvk",
        lambda rng: {"a": rng.random(mat * mat, dtype=np.float32),
                     "b": rng.random(mat * mat, dtype=np.float32),
                     "c": np.zeros(mat * mat, np.float32)},
        {"n": mat}, {"global_size": (mat, mat)}, ("c",),
        lambda a: {"c": (a["a"].reshape(mat, mat) @ a["b"].reshape(mat, mat)).ravel()},
        tolerance=1e-4, kernel_name="matmul",
        peers={"numpy (BLAS)": lambda a: a["a"].reshape(mat, mat) @ a["b"].reshape(mat, mat),
               **({"numba prange i-k-j": lambda a: nb.matmul_ikj(
                   a["a"].reshape(mat, mat), a["b"].reshape(mat, mat), a["c"].reshape(mat, mat))}
                  if nb else {})},
    ))
    items.append(Workload(
        "mandelbrot", "Mpix/s", mandel * mandel / 1e6, "mandelbrot.xvk",
        lambda rng: {"out": np.zeros((mandel, mandel, 4), np.float32)},
        {"cx": -0.5, "cy": 0.0, "scale": 3.0, "max_iter": 256},
        {"global_size": (mandel, mandel), "block": (16, 16)}, ("out",),
        lambda a: {"out": _mandel_numpy((mandel, mandel), -0.5, 0.0, 3.0, 256)},
        tolerance=-1.0,  # chaotic: compared by the share of pixels that agree, see check()
        peers={"numpy": lambda a: _mandel_numpy((mandel, mandel), -0.5, 0.0, 3.0, 256),
               **({"numba prange": lambda a: nb.mandelbrot(a["out"], -0.5, 0.0, 3.0, 256)}
                  if nb else {})},
    ))
    groups = n_sum // 256
    items.append(Workload(
        "block_sum", "GB/s", 4 * n_sum / 1e9, "block_sum.xvk",
        lambda rng: {"x": rng.random(n_sum, dtype=np.float32),
                     "partial": np.zeros(groups, np.float32)},
        {}, {"global_size": n_sum}, ("partial",),
        lambda a: {"partial": a["x"].reshape(groups, 256).sum(axis=1, dtype=np.float64)
                   .astype(np.float32)}, tolerance=1e-5,
        peers={"numpy": lambda a: a["x"].reshape(groups, 256).sum(axis=1),
               **({"numba prange": lambda a: nb.block_sum(a["x"], a["partial"], 256)}
                  if nb else {})},
    ))
    items.append(Workload(
        "histogram", "M items/s", n_hist / 1e6, "histogram.xvk",
        lambda rng: {"values": rng.random(n_hist, dtype=np.float32),
                     "bins": np.zeros(256, np.int32)},
        {"lo": 0.0, "hi": 1.0}, {"global_size": n_hist, "block": 256}, ("bins",),
        lambda a: {"bins": np.bincount(np.clip(np.floor(a["values"] * np.float32(256))
                                               .astype(np.int32), 0, 255), minlength=256)
                   .astype(np.int32)},
        peers={"numpy": lambda a: np.bincount(np.clip((a["values"] * 256).astype(np.int32), 0, 255),
                                              minlength=256),
               **({"numba prange": lambda a: _numba_histogram(nb, a)} if nb else {})},
    ))
    items.append(Workload(
        "alu", "M item-ops/s", n_alu * ALU_OPS / 1e6, "alu.xvk",
        lambda rng: {"x": rng.random(n_alu, dtype=np.float32),
                     "y": np.zeros(n_alu, np.float32)},
        {}, {"global_size": n_alu, "block": 256}, ("y",),
        lambda a: {"y": _alu_numpy(a["x"])}, tolerance=1e-5,
        peers={"numpy": lambda a: _alu_numpy(a["x"]),
               **({"numba prange": lambda a: nb.alu(a["x"], a["y"])} if nb else {})},
    ))
    return items


def _numba_histogram(nb: Any, a: dict[str, np.ndarray]) -> None:
    a["bins"][:] = 0
    nb.histogram(a["values"], a["bins"], np.float32(0.0), np.float32(1.0), 4 * nb.threads())


def _scipy_gauss5(src: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    w = np.array([1, 4, 6, 4, 1], np.float32) / 16
    return ndimage.correlate1d(ndimage.correlate1d(src, w, axis=0, mode="nearest"), w, axis=1,
                               mode="nearest")


def check(workload: Workload, got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> str | None:
    """Why ``got`` is not the reference result (None if it is)."""
    for name in workload.outputs:
        g, w = got[name], want[name]
        if g.shape != w.shape:
            return f"{name}: shape {g.shape} != {w.shape}"
        if workload.tolerance < 0:
            # Escape-time fractals amplify the last bit of f32 rounding at the set's boundary.
            agree = np.mean(np.all(np.abs(g - w) <= 1e-3, axis=-1))
            if agree < 0.999:
                return f"{name}: only {agree:.4%} of pixels agree with the reference"
        elif workload.tolerance == 0:
            if not np.array_equal(g, w):
                return f"{name}: differs from the reference"
        elif not np.allclose(g, w, rtol=workload.tolerance, atol=workload.tolerance):
            return f"{name}: max abs error {np.max(np.abs(g - w)):.3g}"
    return None
