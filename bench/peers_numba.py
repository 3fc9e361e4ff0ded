"""Hand-written numba kernels: the native peers of the performance suite.

Each is the straightforward parallel loop a numba user would write (``prange`` over
rows or chunks, no tricks), compiled once with ``parallel=True`` and run on every core.
They compute the same results as the Xenovectra kernels (the harness checks them
against the numpy references too).  Import is lazy: without numba the suite runs
without these peers.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

W5 = np.array([1.0, 4.0, 6.0, 4.0, 1.0], np.float32)


@njit(parallel=True, cache=False)
def saxpy(a, x, y):
    for i in prange(x.shape[0]):
        y[i] = a * x[i] + y[i]


@njit(parallel=True, cache=False)
def copy(src, dst):
    for i in prange(src.shape[0]):
        dst[i] = src[i]


@njit(parallel=True, cache=False)
def gauss5(src, dst, w):
    h, wd = src.shape
    for y in prange(h):
        for x in range(wd):
            acc = np.float32(0.0)
            for dy in range(-2, 3):
                sy = min(max(y + dy, 0), h - 1)
                for dx in range(-2, 3):
                    sx = min(max(x + dx, 0), wd - 1)
                    acc += w[dx + 2] * w[dy + 2] * src[sy, sx]
            dst[y, x] = acc / np.float32(256.0)


@njit(parallel=True, cache=False)
def matmul_ikj(a, b, c):
    n = a.shape[0]
    for i in prange(n):
        for j in range(n):
            c[i, j] = 0.0
        for k in range(n):
            aik = a[i, k]
            for j in range(n):
                c[i, j] += aik * b[k, j]


@njit(parallel=True, cache=False)
def mandelbrot(out, cx, cy, scale, max_iter):
    h, w = out.shape[0], out.shape[1]
    f = np.float32
    for py in prange(h):
        for px in range(w):
            c_re = f(cx) + f(scale) * (f(px) - f(0.5) * f(w)) / f(h)
            c_im = f(cy) + f(scale) * (f(py) - f(0.5) * f(h)) / f(h)
            zr = f(0.0)
            zi = f(0.0)
            i = 0
            while i < max_iter:
                t = zr * zr - zi * zi + c_re
                zi = f(2.0) * zr * zi + c_im
                zr = t
                if zr * zr + zi * zi > f(4.0):
                    break
                i += 1
            if i == max_iter:
                out[py, px, 0] = 0.0
                out[py, px, 1] = 0.0
                out[py, px, 2] = 0.0
            else:
                t = f(i) / f(max_iter)
                out[py, px, 0] = f(0.5) + f(0.5) * np.cos(f(6.28318) * (t + f(0.0)))
                out[py, px, 1] = f(0.5) + f(0.5) * np.cos(f(6.28318) * (t + f(0.33)))
                out[py, px, 2] = f(0.5) + f(0.5) * np.cos(f(6.28318) * (t + f(0.67)))
            out[py, px, 3] = 1.0


@njit(parallel=True, cache=False)
def block_sum(x, partial, block):
    for g in prange(partial.shape[0]):
        s = np.float32(0.0)
        for j in range(g * block, min((g + 1) * block, x.shape[0])):
            s += x[j]
        partial[g] = s


@njit(parallel=True, cache=False)
def histogram(values, bins, lo, hi, chunks):
    nb = bins.shape[0]
    n = values.shape[0]
    local = np.zeros((chunks, nb), np.int32)
    step = (n + chunks - 1) // chunks
    for c in prange(chunks):
        for i in range(c * step, min((c + 1) * step, n)):
            b = int(np.floor((values[i] - lo) / (hi - lo) * np.float32(nb)))
            b = min(max(b, 0), nb - 1)
            local[c, b] += 1
    for c in range(chunks):
        for b in range(nb):
            bins[b] += local[c, b]


@njit(parallel=True, cache=False)
def alu(x, y):
    # The Horner chain of alu.xvk, written out as a numba user would: 8 passes of 4 steps.
    for i in prange(x.shape[0]):
        v = x[i]
        p = np.float32(1.0)
        for _ in range(8):
            p = p * v + np.float32(0.5)
            p = p * v - np.float32(0.25)
            p = p * v + np.float32(0.125)
            p = p * v - np.float32(0.0625)
        y[i] = p


def threads() -> int:
    import numba

    return numba.get_num_threads()
