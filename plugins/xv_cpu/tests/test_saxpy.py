"""The first conformance kernel, built by hand: y = a * x + y."""

import numpy as np
import pytest
from xv_cpu.interp import InterpBackend
from xv_cpu_irb import assign, if_, kernel, length, load, run, sp, store, var

pytestmark = pytest.mark.usefixtures("each_backend")


def saxpy_kernel():
    i = var("i")
    return kernel("saxpy", "f32 a, buffer<f32> x, buffer<f32> y", [
        assign("i", sp("global_id.x"), line=3),
        if_(i.lt(length("x")), [
            store("y", i, var("a", "f32") * load("x", i, line=5) + load("y", i, line=5), line=5),
        ], line=4),
    ], locals="i32 i")


@pytest.mark.parametrize("n", [1, 255, 1000, 4097])
@pytest.mark.parametrize("batch_items", [32768, 100])
def test_saxpy_matches_numpy_for_lengths_not_multiple_of_block(n, batch_items):
    rng = np.random.default_rng(n)
    x = rng.random(n, dtype=np.float32)
    y = rng.random(n, dtype=np.float32)
    expected = np.float32(2.5) * x + y
    blocks = -(-n // 256)
    work = run(saxpy_kernel(), {"a": np.float32(2.5), "x": x, "y": y}, grid=blocks, block=256,
               backend=InterpBackend(batch_items), tile_groups=2)
    np.testing.assert_array_equal(y, expected)
    # Every launched item compares; n of them multiply and add, read two and write one f32.
    assert work.ops == blocks * 256 + 2 * n
    assert work.bytes_read == 8 * n
    assert work.bytes_written == 4 * n
