"""The cpu component: options, and tiles on worker threads giving the single-threaded results."""

import os
import threading

import numpy as np
import pytest
from xv_cpu import CpuComponent, CpuOptions
from xv_cpu_irb import assign, atomic, c, if_, kernel, length, load, ret, sp, store, var
from xv_cpu_kernels import gauss5_kernel, gauss5_reference, histogram_kernel

from xv_core.config.fabric import parse_fabric
from xv_core.errors import ConfigError
from xv_core.plugins import load_plugins
from xv_core.runtime.interfaces import Launch, Tile, TileWork

PLUGINS = load_plugins()


class Context:
    """The runtime's side of a component: prepared kernels, cached and shared by threads."""

    def __init__(self):
        self.prepared = {}
        self.calls = []
        self.lock = threading.Lock()

    def prepare(self, kernel, backend):
        with self.lock:
            self.calls.append(backend)
            key = (kernel, backend)
            if key not in self.prepared:
                self.prepared[key] = PLUGINS.backends.get(backend).factory().prepare(kernel)
            return self.prepared[key]

    @property
    def workdir(self):
        return "."


def run_on(component, kernel_, args, grid, block, tile_groups):
    launch = Launch(grid + (1,) * (3 - len(grid)), block + (1,) * (3 - len(block)))
    futures = [component.submit(kernel_, Tile(i, launch, g, min(tile_groups, launch.groups - g)),
                                args)
               for i, g in enumerate(range(0, launch.groups, tile_groups))]
    work = TileWork()
    for f in futures:
        work = work + f.result()
    return work


def test_options_defaults_and_validation():
    assert CpuOptions() == CpuOptions(threads=0, backend="jit")
    with pytest.raises(ValueError, match=r"threads must be >= 0 \(got -1\)"):
        CpuOptions(threads=-1)
    with pytest.raises(ValueError, match="threads must be an integer"):
        CpuOptions(threads=1.5)


@pytest.mark.parametrize("component, message", [
    ({"threads": -2}, "f.yaml: threads must be >= 0 (got -2) @ $.components[0].threads "
                      "(hint: 0 means one per CPU core)"),
    ({"backend": ""}, "f.yaml: backend must be the name of an IR backend (got '') "
                      "@ $.components[0].backend (hint: jit and interp are always installed with "
                      "the cpu component)"),
    ({"thread": 2}, "f.yaml: unknown key 'thread' @ $.components[0].thread "
                    "(hint: did you mean 'threads'?)"),
])
def test_bad_options_in_a_fabric_are_one_located_line(component, message):
    with pytest.raises(ConfigError) as info:
        parse_fabric({"name": "w", "components": [{"name": "alu", "kind": "cpu", **component}]},
                     PLUGINS, "f.yaml")
    assert str(info.value) == message


def test_zero_threads_means_every_core():
    comp = CpuComponent("alu", CpuOptions(), Context())
    try:
        assert comp.workers == (os.cpu_count() or 1)
        assert comp.kind == "cpu" and comp.name == "alu"
    finally:
        comp.close()


@pytest.mark.parametrize("backend", ["interp", "jit"])
@pytest.mark.parametrize("threads", [1, 4])
def test_threads_give_the_single_threaded_results(threads, backend):
    rng = np.random.default_rng(8)
    values = rng.normal(0.5, 0.25, 100_000).astype(np.float32)
    src = rng.random((70, 90), dtype=np.float32)
    results = {}
    for t in (1, threads):
        ctx = Context()
        comp = CpuComponent("alu", CpuOptions(threads=t, backend=backend), ctx)
        try:
            bins = np.zeros(32, np.int32)
            w1 = run_on(comp, histogram_kernel(), {"values": values, "bins": bins,
                                                   "lo": np.float32(0), "hi": np.float32(1)},
                        (-(-len(values) // 128),), (128,), tile_groups=37)
            dst = np.zeros_like(src)
            w2 = run_on(comp, gauss5_kernel(), {"src": src, "dst": dst}, (6, 5), (16, 16),
                        tile_groups=4)
        finally:
            comp.close()
        assert set(ctx.calls) == {backend}
        results[t] = (bins, dst, w1, w2)
    bins, dst, w1, w2 = results[threads]
    np.testing.assert_array_equal(bins, results[1][0])
    np.testing.assert_array_equal(dst, results[1][1])
    np.testing.assert_array_equal(dst, gauss5_reference(src))
    assert (w1, w2) == results[1][2:]
    assert bins.sum() == len(values)


@pytest.mark.parametrize("backend", ["interp", "jit"])
def test_many_threads_hitting_one_atomic_counter(backend):
    k = kernel("count", "buffer<i32> counter, buffer<i32> tickets", [
        assign("i", sp("global_id.x")),
        if_(var("i").ge(length("tickets")), [ret()]),
        atomic("add", "counter", c(0), c(1), result="t"),
        store("tickets", var("i"), var("t")),
    ], locals="i32 i, i32 t")
    comp = CpuComponent("alu", CpuOptions(threads=4, backend=backend), Context())
    try:
        counter = np.zeros(1, np.int32)
        tickets = np.full(64 * 500, -1, np.int32)
        run_on(comp, k, {"counter": counter, "tickets": tickets}, (500,), (64,), tile_groups=3)
    finally:
        comp.close()
    assert counter[0] == 64 * 500
    # Every item got a distinct ticket: no update was lost or duplicated between threads.
    np.testing.assert_array_equal(np.sort(tickets), np.arange(64 * 500))


@pytest.mark.parametrize("backend", ["interp", "jit"])
def test_errors_surface_through_the_future(backend):
    from xv_core.errors import KernelRuntimeError
    k = kernel("oob", "buffer<f32> x", [store("x", sp("global_id.x"), load("x", c(99)), line=2)])
    comp = CpuComponent("alu", CpuOptions(threads=2, backend=backend), Context())
    try:
        launch = Launch((1, 1, 1), (4, 1, 1))
        future = comp.submit(k, Tile(0, launch, 0, 1), {"x": np.zeros(4, np.float32)})
        with pytest.raises(KernelRuntimeError, match=r"kernel.xvk:2: out-of-bounds read x\[99\]"):
            future.result()
    finally:
        comp.close()
