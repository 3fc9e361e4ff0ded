"""Native atomics and software read-modify-writes on the same device memory: the jit's
tiles hold ``ATOMICS_LOCK`` shared while their CPU atomic instructions run, so a software
update holding it exclusively (the interpreter's atomics, a remote tile's merge) never
interleaves with them and no update is lost."""

from __future__ import annotations

import threading
import time

import numpy as np
from xv_dsl import compile_source

from xv_core.runtime.atomics import ATOMICS_LOCK
from xv_core.runtime.interfaces import Launch, Tile
from xv_cpu.jit.backend import JitBackend

BUMP = """
kernel bump(buffer<i32> c, buffer<i32> old) {
    i32 i = global_id.x;
    old[i] = atomic_add(c[i % 8], 1);
}
"""


def test_native_atomics_and_a_slow_software_merge_lose_no_update():
    kernel = compile_source(BUMP, "bump.xvk").kernels[0]
    prepared = JitBackend().prepare(kernel)
    n = 1 << 16
    c = np.zeros(8, np.int32)
    old = np.zeros(n, np.int32)
    launch = Launch((n // 256, 1, 1), (256, 1, 1))
    prepared.run_tile(Tile(0, launch, 0, n // 256), {"c": c, "old": old})  # compiled now
    merges = 40
    tiles = [1]
    errors: list[BaseException] = []
    merging = threading.Event()

    def native() -> None:
        try:
            merging.wait()
            while merging.is_set():  # native tiles all the time the merges go on
                prepared.run_tile(Tile(0, launch, 0, n // 256), {"c": c, "old": old})
                tiles[0] += 1
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    def software() -> None:
        merging.set()
        for _ in range(merges):
            with ATOMICS_LOCK:  # read, take a while, write back: a merge of remote results
                seen = c.copy()
                time.sleep(0.0005)
                c[:] = seen + 1
            time.sleep(0.0002)
        merging.clear()

    threads = [threading.Thread(target=native), threading.Thread(target=software)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and tiles[0] > 1
    assert c.tolist() == [tiles[0] * n // 8 + merges] * 8


def test_native_tiles_share_the_lock_and_wait_for_an_exclusive_holder():
    inside = threading.Barrier(2, timeout=5)
    with ATOMICS_LOCK.shared():
        done = []

        def other() -> None:
            with ATOMICS_LOCK.shared():
                inside.wait()  # both shared holders inside at once
                done.append(True)

        t = threading.Thread(target=other)
        t.start()
        inside.wait()
        t.join()
    assert done == [True]
    order: list[str] = []
    ATOMICS_LOCK.acquire()

    def reader() -> None:
        with ATOMICS_LOCK.shared():
            order.append("s")

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.05)
    order.append("x")
    ATOMICS_LOCK.release()
    t.join()
    assert order == ["x", "s"]
