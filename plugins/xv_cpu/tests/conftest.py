"""Makes the IR builder helpers (``xv_cpu_irb``) importable from the tests, and runs the
kernel tests on every backend of xv_cpu.

A test module opts in with ``pytestmark = pytest.mark.usefixtures("each_backend")``: its
tests then run once per backend, and ``xv_cpu_irb.run`` runs kernels on that backend
(replacing an ``InterpBackend`` the test passes, whose batch size only matters to the
interpreter).  The jit's disk cache lives in the session's private cache directory (the
repository's ``conftest.py``).
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import xv_cpu_irb  # noqa: E402

BACKENDS = ("interp", "jit")


@pytest.fixture(params=BACKENDS)
def each_backend(request):
    xv_cpu_irb.BACKEND = request.param
    yield request.param
    xv_cpu_irb.BACKEND = "interp"
