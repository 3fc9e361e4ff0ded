"""min and max of equal operands (-0.0 and 0.0) give the second operand on every backend and
on both of the interpreter's paths (uniform scalars and per-item arrays), as numpy's
minimum/maximum do; NaN in either operand gives NaN."""

from __future__ import annotations

import numpy as np
import pytest

import xv_core as xv

KERNEL = """
kernel zeros(f32 a, f32 b, buffer<f32> x, buffer<f32> y, buffer<f32> out) {
    i32 i = global_id.x;
    out[4 * i + 0] = min(a, b);        // uniform: the interpreter's scalar path
    out[4 * i + 1] = max(a, b);
    out[4 * i + 2] = min(x[i], y[i]);  // per item
    out[4 * i + 3] = max(x[i], y[i]);
}
"""

CASES = [(-0.0, 0.0), (0.0, -0.0), (1.0, float("nan")), (float("nan"), 1.0), (2.0, 3.0)]


@pytest.mark.parametrize("backend", ["interp", "jit"])
@pytest.mark.parametrize("a, b", CASES)
def test_min_and_max_of_equal_operands_give_the_second(backend, a, b):
    with xv.open_fabric("default", backend=backend) as fabric:
        kernel = fabric.compile(KERNEL).kernels[0]
        n = 64
        x = fabric.buffer(np.full(n, a, np.float32))
        y = fabric.buffer(np.full(n, b, np.float32))
        out = fabric.zeros(4 * n)
        fabric.dispatch(kernel, global_size=n, block=64,
                        args={"a": a, "b": b, "x": x, "y": y, "out": out})
        got = out.read().reshape(n, 4)
    fa, fb = np.float32(a), np.float32(b)
    want = np.array([np.minimum(fa, fb), np.maximum(fa, fb)] * 2, np.float32)
    for row in got:
        assert np.array_equal(row, want, equal_nan=True)
        assert np.array_equal(np.signbit(row), np.signbit(want))
