"""The six conformance kernels of issue 3, compiled from examples/kernels/*.xvk by whichever
front end is installed for .xvk (found through the plugin registry, not imported), run on the
interpreter and compared with numpy references."""

from pathlib import Path

import numpy as np
import pytest

from xv_core.plugins import load_plugins
from xv_cpu.interp import InterpBackend
from xv_cpu_irb import run
from xv_cpu_kernels import gauss5_reference, tree_reference

pytestmark = pytest.mark.usefixtures("each_backend")

KERNELS = Path(__file__).resolve().parents[3] / "examples" / "kernels"
PLUGINS = load_plugins()


def compiled(name):
    path = KERNELS / f"{name}.xvk"
    if not path.exists():
        pytest.skip(f"{path} is not in this checkout")
    try:
        frontend = PLUGINS.frontend_for(path)
    except Exception:  # noqa: BLE001 - no front end installed: nothing to compile with
        pytest.skip("no front end for .xvk is installed")
    (kernel,) = frontend.compile(path.read_text(), str(path)).kernels
    return kernel


BATCHES = [InterpBackend(), InterpBackend(300)]


@pytest.mark.parametrize("backend", BATCHES)
def test_saxpy(backend):
    n = 1000
    rng = np.random.default_rng(0)
    x, y = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    expected = np.float32(3) * x + y
    run(compiled("saxpy"), {"a": np.float32(3), "x": x, "y": y}, grid=4, block=256,
        backend=backend, tile_groups=3)
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("backend", BATCHES)
def test_gauss5(backend):
    src = np.random.default_rng(1).random((45, 70), dtype=np.float32)
    dst = np.zeros_like(src)
    run(compiled("gauss5"), {"src": src, "dst": dst}, grid=(5, 3), block=(16, 16),
        backend=backend, tile_groups=4)
    np.testing.assert_allclose(dst, gauss5_reference(src), rtol=1e-6)


@pytest.mark.parametrize("backend", BATCHES)
def test_matmul_tiled(backend):
    n = 48
    rng = np.random.default_rng(2)
    a = rng.integers(-3, 4, (n, n)).astype(np.float32)
    b = rng.integers(-3, 4, (n, n)).astype(np.float32)
    c = np.zeros(n * n, np.float32)
    run(compiled("matmul_tiled"), {"a": a.ravel(), "b": b.ravel(), "c": c, "n": np.int32(n)},
        grid=(3, 3), block=(16, 16), backend=backend, tile_groups=2)
    np.testing.assert_array_equal(c.reshape(n, n), a @ b)


def mandelbrot_reference(w, h, cx, cy, scale, max_iter):
    """The kernel's float32 operations in the kernel's order, vectorised over pixels."""
    f = np.float32
    py, px = np.mgrid[0:h, 0:w]
    sx, sy = f(w), f(h)
    c_x = f(cx) + f(scale) * (px.astype(f) - f(0.5) * sx) / sy
    c_y = f(cy) + f(scale) * (py.astype(f) - f(0.5) * sy) / sy
    zx = np.zeros((h, w), f)
    zy = np.zeros((h, w), f)
    it = np.zeros((h, w), np.int32)
    active = np.ones((h, w), bool)
    for _ in range(max_iter):
        tx = zx * zx - zy * zy + c_x
        ty = f(2.0) * zx * zy + c_y
        zx = np.where(active, tx, zx)
        zy = np.where(active, ty, zy)
        escaped = active & (zx * zx + zy * zy > f(4.0))
        active &= ~escaped
        it += active
    t = it.astype(f) / f(max_iter)
    out = np.zeros((h, w, 4), f)
    for lane, off in enumerate((0.0, 0.33, 0.67)):
        pal = f(0.5) + f(0.5) * np.cos(f(6.28318) * (t + f(off)))
        out[..., lane] = np.where(it == max_iter, f(0), pal)
    out[..., 3] = 1
    return out


@pytest.mark.parametrize("backend", BATCHES)
def test_mandelbrot(backend):
    w, h, max_iter = 70, 45, 64
    out = np.zeros((h, w, 4), np.float32)
    run(compiled("mandelbrot"), {"out": out, "cx": np.float32(-0.5), "cy": np.float32(0.0),
                                 "scale": np.float32(3.0), "max_iter": np.int32(max_iter)},
        grid=(5, 3), block=(16, 16), backend=backend, tile_groups=4)
    expected = mandelbrot_reference(w, h, -0.5, 0.0, 3.0, max_iter)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert (out[..., :3] == 0).all(axis=-1).sum() > 100  # points inside the set are black


@pytest.mark.parametrize("backend", BATCHES)
def test_histogram(backend):
    values = np.random.default_rng(3).normal(0.5, 0.3, 5000).astype(np.float32)
    bins = np.zeros(20, np.int32)
    run(compiled("histogram"), {"values": values, "bins": bins, "lo": np.float32(0),
                                "hi": np.float32(1)},
        grid=20, block=256, backend=backend, tile_groups=3)
    b = np.floor((values - np.float32(0)) / (np.float32(1) - np.float32(0)) * np.float32(20))
    np.testing.assert_array_equal(bins, np.bincount(np.clip(b, 0, 19).astype(int), minlength=20))


@pytest.mark.parametrize("backend", BATCHES)
def test_block_sum(backend):
    n = 256 * 6 + 100
    x = np.random.default_rng(4).random(n, dtype=np.float32)
    partial = np.zeros(7, np.float32)
    run(compiled("block_sum"), {"x": x, "partial": partial}, grid=7, block=256,
        backend=backend, tile_groups=2)
    np.testing.assert_array_equal(partial, tree_reference(x, 7))
