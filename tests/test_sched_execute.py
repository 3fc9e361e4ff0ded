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


@pytest.mark.parametrize("queued", [0, 1, 2])
def test_a_component_holds_tiles_beyond_its_workers_in_its_own_queue(queued):
    tiles = [Tile(i, LAUNCH, i, 1) for i in range(8)]
    lock = threading.Lock()
    held = [0]
    most = [0]
    release = threading.Event()
    pool = ThreadPoolExecutor(2)

    def work(tile: Tile) -> TileWork:
        assert release.wait(5)
        with lock:
            held[0] -= 1
        return TileWork(ops=tile.index)

    def submit(tile: Tile, comp: str) -> Future[TileWork]:
        with lock:
            held[0] += 1
            most[0] = max(most[0], held[0])
        if tile.index == 2 * (1 + queued) - 1:
            release.set()  # every tile the component may hold is handed over
        return pool.submit(work, tile)

    runs = execute([(t, "cpu") for t in tiles], {"cpu": 2}, {"cpu"}, submit, queued=queued)
    pool.shutdown()
    assert [r.work.ops for r in runs] == list(range(8))
    assert most[0] == 2 * (1 + queued)


def test_tiles_beyond_the_workers_are_handed_over_once_the_workers_have_begun():
    """The first tile per worker goes at once; placing and handing over the queued ones
    waits until those have begun, so a worker never waits for the GIL while this thread
    places tiles it cannot run yet."""
    tiles = [Tile(i, LAUNCH, i, 1) for i in range(6)]
    handed: list[Future[TileWork]] = []
    begun_at_hand_over: list[list[bool]] = []

    def placements():
        for t in tiles:
            # What has begun when the plan is read for this tile.
            begun_at_hand_over.append([f.running() or f.done() for f in handed[:2]])
            yield t, "cpu"

    def run(fut: Future[TileWork], ops: int) -> None:
        time.sleep(0.05)  # a worker slow to begin
        fut.set_running_or_notify_cancel()
        time.sleep(0.01)
        fut.set_result(TileWork(ops=ops))

    def submit(tile: Tile, comp: str) -> Future[TileWork]:
        fut: Future[TileWork] = Future()
        threading.Thread(target=run, args=(fut, tile.index)).start()
        handed.append(fut)
        return fut

    runs = execute(placements(), {"cpu": 2}, {"cpu"}, submit, queued=1)
    assert [r.work.ops for r in runs] == list(range(6))
    assert begun_at_hand_over[:2] == [[], [False]]  # the first two, at once
    assert begun_at_hand_over[2] == [True, True]  # the third once both workers began


def test_queued_tiles_are_handed_over_once_begun_also_when_the_plan_was_read_at_the_first():
    # Reading the plan for the cpu's first tile reads it to its end (seven disk tiles come
    # first): once the cpu's worker has begun, the cpu (a thief) is handed the tile it may
    # hold beyond its worker at once -- stolen from the disk's queue -- not at its first
    # completion.
    tiles = [Tile(i, LAUNCH, i, 1) for i in range(8)]
    plan = [(t, "disk") for t in tiles[:7]] + [(tiles[7], "cpu")]
    pools = {"cpu": ThreadPoolExecutor(1), "disk": ThreadPoolExecutor(1)}
    release = threading.Event()
    handed: list[tuple[str, int, bool]] = []

    def submit(tile: Tile, comp: str) -> Future[TileWork]:
        handed.append((comp, tile.index, release.is_set()))
        return pools[comp].submit(lambda: release.wait(5) and TileWork(ops=tile.index))

    def idle() -> bool:
        # Every worker has begun and nothing ended yet: what was handed over by now?
        seen.extend(handed)
        release.set()
        return False

    seen: list[tuple[str, int, bool]] = []
    runs = execute(iter(plan), {"cpu": 1, "disk": 1}, {"cpu"}, submit, idle, queued=1)
    for pool in pools.values():
        pool.shutdown()
    assert [r.work.ops for r in runs] == list(range(8))
    assert ("cpu", 6, False) in seen  # the stolen tile, before any tile ended


def test_a_component_that_does_not_steal_holds_a_tile_per_worker_so_thieves_can_take_the_rest():
    # A slow disk (one worker) and an idle CPU: the disk's second tile is not handed to it
    # while its first runs, and the CPU steals it.
    tiles = [Tile(i, LAUNCH, i, 1) for i in range(2)]
    release = threading.Event()
    held: dict[str, int] = {"disk": 0, "cpu": 0}
    pools = {"disk": ThreadPoolExecutor(1), "cpu": ThreadPoolExecutor(1)}

    def work(tile: Tile, comp: str) -> TileWork:
        if comp == "disk":
            assert release.wait(5)  # ends once the CPU has run the other tile
        else:
            release.set()
        return TileWork()

    def submit(tile: Tile, comp: str) -> Future[TileWork]:
        held[comp] += 1
        return pools[comp].submit(work, tile, comp)

    runs = execute([(t, "disk") for t in tiles], {"disk": 1, "cpu": 1}, {"cpu"}, submit,
                   queued=1)
    for pool in pools.values():
        pool.shutdown()
    assert [(r.planned, r.component) for r in runs] == [("disk", "disk"), ("disk", "cpu")]
    assert held == {"disk": 1, "cpu": 1}


def test_a_tile_waiting_in_the_queue_is_timed_from_when_a_worker_takes_it():
    # One worker, two tiles of 0.1 s handed over at once: the second waits 0.1 s for the
    # worker, which its wall time (a measured clock's compute time) leaves out.
    tiles = [Tile(i, LAUNCH, i, 1) for i in range(2)]
    with ThreadPoolExecutor(1) as pool:
        runs = execute([(t, "cpu") for t in tiles], {"cpu": 1}, {"cpu"},
                       lambda t, c: pool.submit(lambda: time.sleep(0.1) or TileWork()),
                       queued=1)
    assert [0.09 <= r.wall_s < 0.18 for r in runs] == [True, True], [r.wall_s for r in runs]


def test_the_plan_is_read_lazily_so_the_first_tiles_run_before_the_last_are_placed():
    tiles = [Tile(i, LAUNCH, i, 1) for i in range(8)]
    log: list[str] = []

    def placements():
        for t in tiles:
            log.append(f"place {t.index}")
            yield t, "cpu"

    def submit(tile: Tile, comp: str) -> Future[TileWork]:
        log.append(f"submit {tile.index}")
        return pool.submit(lambda: time.sleep(0.01) or TileWork(ops=tile.index))

    with ThreadPoolExecutor(2) as pool:
        runs = execute(placements(), {"cpu": 2}, set(), submit, queued=0)
    assert [r.work.ops for r in runs] == list(range(8))
    assert log.index("submit 0") < log.index("place 7")
    # Each tile is placed before it is handed over, in order.
    assert [e for e in log if e.startswith("place")] == [f"place {i}" for i in range(8)]
    assert all(log.index(f"place {i}") < log.index(f"submit {i}") for i in range(8))


def test_a_plan_that_fails_stops_new_tiles_and_waits_for_those_in_flight():
    tiles = [Tile(i, LAUNCH, i, 1) for i in range(8)]
    finished: list[int] = []

    def placements():
        for t in tiles[:3]:
            yield t, "cpu"
        raise RuntimeError("no candidate for tile 3")

    def work(tile: Tile) -> TileWork:
        time.sleep(0.01)
        finished.append(tile.index)
        return TileWork()

    with ThreadPoolExecutor(2) as pool:
        with pytest.raises(RuntimeError, match="no candidate for tile 3"):
            execute(placements(), {"cpu": 2}, set(), lambda t, c: pool.submit(work, t),
                    queued=0)
        assert sorted(finished) == [0, 1, 2]  # the tiles placed ran to their end first


def test_idle_work_waits_until_every_worker_has_begun_its_tile():
    tiles = [Tile(i, LAUNCH, i, 1) for i in range(6)]
    handed: list[Future[TileWork]] = []
    release = threading.Event()
    pool = ThreadPoolExecutor(2)

    def submit(tile: Tile, comp: str) -> Future[TileWork]:
        fut = pool.submit(lambda: release.wait(5) and TileWork())
        handed.append(fut)
        return fut

    seen: list[list[bool]] = []

    def idle() -> bool:
        # The first two tiles have a worker each; the next two wait in the pool's queue.
        seen.append([f.running() or f.done() for f in handed[:2]])
        release.set()
        return False

    execute([(t, "cpu") for t in tiles], {"cpu": 2}, {"cpu"}, submit, idle, queued=1)
    pool.shutdown()
    assert seen == [[True, True]]


def test_tiles_a_component_runs_as_it_is_handed_them_mix_with_those_its_workers_run():
    # A cpu component runs tiny tiles in submit() and returns them done; the others go to its
    # workers.  Tiny tiles handed over while every worker is busy neither wait for a worker
    # in the bookkeeping nor stand in for one.
    tiles = [Tile(i, LAUNCH, i, 1) for i in range(8)]
    pool = ThreadPoolExecutor(2)

    def work(tile: Tile) -> TileWork:
        time.sleep(0.02)
        return TileWork(ops=tile.index)

    def submit(tile: Tile, comp: str) -> Future[TileWork]:
        if tile.index % 3 == 2:  # tiles 2 and 5: run here
            return _ran_here(TileWork(ops=tile.index))
        return pool.submit(work, tile)

    runs = execute([(t, "cpu") for t in tiles], {"cpu": 2}, {"cpu"}, submit, queued=1)
    pool.shutdown()
    assert [r.work.ops for r in runs] == list(range(8))
    assert all(r.wall_s >= 0 for r in runs)
    assert [r.wall_s < 0.015 for r in runs] == [i % 3 == 2 for i in range(8)]


def test_tiles_run_in_submit_do_not_count_as_busy_workers():
    # Tiles 0 and 1 run in submit(); tiles 2 and 3 each find a free worker, whatever order
    # they end in, and are timed from their own hand-over.
    tiles = [Tile(i, LAUNCH, i, 1) for i in range(4)]
    pool = ThreadPoolExecutor(2)

    def work(tile: Tile) -> TileWork:
        time.sleep(0.2 if tile.index == 2 else 0.05)
        return TileWork(ops=tile.index)

    def submit(tile: Tile, comp: str) -> Future[TileWork]:
        if tile.index < 2:
            return _ran_here(TileWork(ops=tile.index))
        return pool.submit(work, tile)

    runs = execute([(t, "cpu") for t in tiles], {"cpu": 2}, {"cpu"}, submit, queued=1)
    pool.shutdown()
    assert [r.work.ops for r in runs] == [0, 1, 2, 3]
    assert 0.18 <= runs[2].wall_s < 0.35 and 0.04 <= runs[3].wall_s < 0.15


def _ran_here(work: TileWork) -> Future[TileWork]:
    """What a component that runs a tiny tile in submit() returns: a future already done."""
    fut: Future[TileWork] = Future()
    fut.set_running_or_notify_cancel()
    fut.set_result(work)
    return fut
