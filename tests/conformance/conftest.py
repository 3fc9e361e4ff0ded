"""Fixtures of the conformance suite: one fabric per registered backend, and a runner that
takes numpy arrays in and gives numpy arrays back through the public API.

Every test that asks for ``run`` is run once per backend in
``xv_core.plugins.load_plugins().backends.names()`` (so a backend that registers later inherits
the whole suite) and, through the ``geometry`` parameter, twice per backend:

* ``one-tile``: the dispatch as the scheduler makes it; the grids here are small, so that is
  one tile;
* ``many-tiles``: the scheduler's minimum tile size lowered to one work item, so every dispatch
  of more than one workgroup is split into several tiles that the fabric's worker threads run
  concurrently (tiles see each other only through buffers and atomics, as workgroups do).

``XV_CONFORMANCE_BACKENDS=jit`` (comma-separated) restricts the run to some backends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xv_core as xv
from xv_core.ir import Kernel
from xv_core.plugins import load_plugins
from xv_core.runtime import scheduler
from xv_core.runtime.api import DispatchResult, Fabric

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples" / "kernels"
BACKENDS = tuple(load_plugins().backends.names())
# XV_CONFORMANCE_BACKENDS=jit,interp runs the suite on those backends only.
_CHOSEN = [b for b in os.environ.get("XV_CONFORMANCE_BACKENDS", "").split(",") if b]
if _CHOSEN:
    _unknown = sorted(set(_CHOSEN) - set(BACKENDS))
    if _unknown:
        raise pytest.UsageError(f"XV_CONFORMANCE_BACKENDS names unknown backends {_unknown} "
                                f"(installed: {', '.join(BACKENDS)})")
    BACKENDS = tuple(_CHOSEN)
GEOMETRIES = ("one-tile", "many-tiles")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def fabric(backend: str) -> Iterator[Fabric]:
    with xv.open_fabric("default", backend=backend) as fab:
        yield fab


_KERNELS: dict[tuple[str, str | None], Kernel] = {}


def load_kernel(fab: Fabric, path: Path, name: str | None = None) -> Kernel:
    """``fabric.kernel(path, name)``, compiled once per session (kernels are plain data)."""
    key = (str(path), name)
    if key not in _KERNELS:
        _KERNELS[key] = fab.kernel(path, name)
    return _KERNELS[key]


class Runner:
    """Runs one kernel through the public API: arrays become fabric buffers, scalars stay
    scalars, and after the dispatch every buffer is read back and freed."""

    def __init__(self, fab: Fabric, backend: str, geometry: str):
        self.fabric = fab
        self.backend = backend
        self.geometry = geometry
        self.last: DispatchResult | None = None

    def kernel(self, file: str, name: str | None = None) -> Kernel:
        path = Path(file) if Path(file).is_absolute() else HERE / file
        return load_kernel(self.fabric, path, name)

    def __call__(self, file: str, args: Mapping[str, Any], *, name: str | None = None,
                 global_size: Any = None, grid: Any = None, block: Any = None,
                 ) -> dict[str, np.ndarray]:
        kernel = self.kernel(file, name)
        buffers = {k: self.fabric.buffer(np.ascontiguousarray(v))
                   for k, v in args.items() if isinstance(v, np.ndarray)}
        try:
            call_args = {k: buffers.get(k, v) for k, v in args.items()}
            self.last = self.fabric.dispatch(kernel, args=call_args, global_size=global_size,
                                             grid=grid, block=block)
            if self.geometry == "many-tiles" and self.last.launch.groups > 1:
                # The geometry must really be what its name says, or half the suite tests
                # nothing new.
                assert len(self.last.tiles) > 1, "the many-tiles geometry gave one tile"
            return {k: b.read() for k, b in buffers.items()}
        finally:
            for b in buffers.values():
                b.free()


@pytest.fixture(params=GEOMETRIES)
def geometry(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "many-tiles":
        monkeypatch.setattr(scheduler, "MIN_TILE_ITEMS", 1)
    return request.param


@pytest.fixture
def run(fabric: Fabric, backend: str, geometry: str) -> Runner:
    return Runner(fabric, backend, geometry)
