"""examples/kernels/alu.xvk, the kernel of the bench's ALU-throughput workload: its result, and
the operation count per work item that the workload's rate is defined by."""

from pathlib import Path

import numpy as np
import pytest

from xv_core.plugins import load_plugins
from xv_cpu_irb import run

pytestmark = pytest.mark.usefixtures("each_backend")

KERNEL = Path(__file__).resolve().parents[3] / "examples" / "kernels" / "alu.xvk"
STEPS = (0.5, -0.25, 0.125, -0.0625) * 8


def test_alu_example_is_a_horner_chain_of_64_operations_per_item(each_backend):
    if not KERNEL.exists():
        pytest.skip(f"{KERNEL} is not in this checkout")
    (kernel,) = load_plugins().frontend_for(KERNEL).compile(KERNEL.read_text(),
                                                            str(KERNEL)).kernels
    n = 1000
    x = np.random.default_rng(6).random(n, dtype=np.float32)
    y = np.zeros(n, np.float32)
    work = run(kernel, {"x": x, "y": y}, grid=4, block=256)  # 24 items past the end
    want = np.ones(n, np.float32)
    for c in STEPS:
        want = want * x + np.float32(c)
    if each_backend == "interp":
        np.testing.assert_array_equal(y, want)
    else:  # native code may contract a multiply and an add into one rounding
        np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)
    # The bench counts the chain's multiplies and adds: 2 x 32 per item.  Every IR operation
    # counted: 1024 guards, and per item in range 64 + 9 loop tests + 8 increments.
    assert work.ops == 1024 + n * (64 + 9 + 8)
