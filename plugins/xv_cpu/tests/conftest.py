"""Makes the IR builder helpers (``xv_cpu_irb``) importable from the tests, and runs the
kernel tests on every backend of xv_cpu.

A test module opts in with ``pytestmark = pytest.mark.usefixtures("each_backend")``: its
tests then run once per backend, and ``xv_cpu_irb.run`` runs kernels on that backend
(replacing an ``InterpBackend`` the test passes, whose batch size only matters to the
interpreter).  The jit's disk cache lives in a temporary directory for the session.
"""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import xv_cpu_irb  # noqa: E402

BACKENDS = ("interp", "jit")


@pytest.fixture(scope="session", autouse=True)
def _private_jit_cache(tmp_path_factory):
    old = os.environ.get("XV_CACHE_DIR")
    os.environ["XV_CACHE_DIR"] = str(tmp_path_factory.mktemp("jit-cache"))
    yield
    if old is None:
        os.environ.pop("XV_CACHE_DIR", None)
    else:
        os.environ["XV_CACHE_DIR"] = old


@pytest.fixture(params=BACKENDS)
def each_backend(request):
    xv_cpu_irb.BACKEND = request.param
    yield request.param
    xv_cpu_irb.BACKEND = "interp"
