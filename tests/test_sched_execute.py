"""scheduler.execute on its own: tiles handed to components through their slots, and the
caller's own work done while they run."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from xv_core.runtime.interfaces import Launch, Tile, TileWork
from xv_core.runtime.scheduler import execute

LAUNCH = Launch((8, 1, 1), (1, 1, 1))


@pytest.mark.parametrize("count", [1, 6])
def test_idle_work_runs_while_tiles_run_and_only_then(count):
    tiles = [Tile(i, LAUNCH, i, 1) for i in range(count)]
    release = threading.Event()
    running = threading.Event()
    pool = ThreadPoolExecutor(2)

    def work(tile: Tile) -> TileWork:
        running.set()
        assert release.wait(5)
        return TileWork(ops=tile.index + 1)

    def submit(tile: Tile, comp: str) -> Future[TileWork]:
        return pool.submit(work, tile)

    done_idle: list[int] = []
    todo = list(range(5))

    def idle() -> bool:
        if not todo:
            release.set()  # the caller's work is done: let the tiles end
            return False
        assert running.wait(5)  # called while a tile runs
        done_idle.append(todo.pop(0))
        time.sleep(0.001)
        return True

    runs = execute([(t, "cpu") for t in tiles], {"cpu": 2}, set(), submit, idle)
    pool.shutdown()
    assert done_idle == [0, 1, 2, 3, 4]
    assert [r.tile.index for r in runs] == list(range(count))
    assert [r.work.ops for r in runs] == [i + 1 for i in range(count)]


def test_without_idle_work_execute_waits_as_before():
    tiles = [Tile(i, LAUNCH, i, 1) for i in range(4)]
    with ThreadPoolExecutor(2) as pool:
        runs = execute([(t, "cpu") for t in tiles], {"cpu": 2}, set(),
                       lambda t, c: pool.submit(lambda: TileWork(ops=t.index)))
    assert [r.work.ops for r in runs] == [0, 1, 2, 3]


@pytest.mark.parametrize("count", [1, 4])
def test_an_error_in_idle_work_waits_for_the_tiles_in_flight(count):
    tiles = [Tile(i, LAUNCH, i, 1) for i in range(count)]
    finished: list[int] = []
    release = threading.Event()
    pool = ThreadPoolExecutor(2)

    def work(tile: Tile) -> TileWork:
        assert release.wait(5)
        finished.append(tile.index)
        return TileWork()

    calls = []

    def idle() -> bool:
        calls.append(1)
        release.set()
        raise RuntimeError("the model failed")

    with pytest.raises(RuntimeError, match="the model failed"):
        execute([(t, "cpu") for t in tiles], {"cpu": 2}, set(),
                lambda t, c: pool.submit(work, t), idle)
    pool.shutdown()
    assert sorted(finished) == list(range(count))  # every tile ran to its end first
    assert len(calls) == 1  # not called again after it raised
