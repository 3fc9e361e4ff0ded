"""Splitting a dispatch into tiles, and running tiles on components with work stealing.

Tiles are contiguous runs of whole workgroups (linear ids, x fastest), as many as the fabric's
modelled lanes times :data:`TILES_PER_WORKER` (for balance), but no more than one per whole
:data:`MIN_TILE_ITEMS` work items (so a batching backend amortises its overhead; whole groups or
rows may leave some tiles with fewer).  On a 2-D or
3-D grid a tile of at least a row of groups takes whole rows, so its footprint is a band of the
image rather than a ragged run.  The count depends on the fabric only -- never on the machine's
threads -- so the tiles, and so the modelled timeline, are the same everywhere.

Where each tile runs is the scheduling policy's choice (:mod:`xv_core.runtime.placement`), made
on the modelled fabric before anything runs.  :func:`execute` then runs the tiles for real:
each component takes tiles from its own queue as its workers free up; a component that may
steal (the ``cpu`` components: idle CPU workers) and has nothing left in its queue takes the
last tile of the longest other queue.  Stealing changes where tiles really run on this machine,
never the modelled timeline, which follows the policy's placement.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as futures_wait

import attrs

from xv_core.runtime.interfaces import Launch, Tile, TileWork

#: Work items a tile aims for at least, so batching backends amortise their overhead.
MIN_TILE_ITEMS = 1 << 14
#: Tiles per modelled lane a dispatch aims for at least, so uneven tiles even out.
TILES_PER_WORKER = 4


def make_tiles(launch: Launch, lanes: int) -> list[Tile]:
    """Deterministic tiles covering every workgroup of ``launch`` once, in order, for a fabric
    of ``lanes`` modelled lanes in all."""
    groups = launch.groups
    by_balance = max(1, lanes) * TILES_PER_WORKER
    by_size = max(1, (groups * launch.group_items) // MIN_TILE_ITEMS)
    count = max(1, min(groups, by_balance, by_size))
    row = launch.grid[0]
    rows = groups // row
    if row > 1 and rows > 1 and groups // count >= row:
        # Whole rows of groups: a band of the grid per tile.
        count = min(count, rows)
        base, extra = divmod(rows, count)
        sizes = [(base + (1 if i < extra else 0)) * row for i in range(count)]
    else:
        base, extra = divmod(groups, count)
        sizes = [base + (1 if i < extra else 0) for i in range(count)]
    tiles, first = [], 0
    for i, n in enumerate(sizes):
        tiles.append(Tile(i, launch, first, n))
        first += n
    return tiles


def place_round_robin(tiles: Sequence[Tile], components: Sequence[str]) -> list[str]:
    """The component each tile runs on: in turn, in fabric order."""
    return [components[t.index % len(components)] for t in tiles]


@attrs.frozen
class TileRun:
    """How a tile really ran: ``component`` ran it (``planned`` is where the policy put it;
    they differ when it was stolen), for ``wall_s`` seconds from hand-off to completion."""

    tile: Tile
    planned: str
    component: str
    work: TileWork
    wall_s: float

    @property
    def stolen(self) -> bool:
        return self.component != self.planned


#: Tiles handed to a component beyond one per worker, per worker (by default): a worker that
#: ends a tile starts the next without waiting for the dispatching thread to hand it over.
QUEUED_PER_WORKER = 1


def execute(plan: Iterable[tuple[Tile, str]], slots: Mapping[str, int],
            thieves: Collection[str],
            submit: Callable[[Tile, str], Future[TileWork]],
            idle: Callable[[], bool] | None = None,
            queued: int = QUEUED_PER_WORKER,
            cancel: Callable[[], None] | None = None) -> list[TileRun]:
    """:func:`run_tiles`, and when it is interrupted (Ctrl-C while it waits, or an error of
    its own) with tiles still in flight: ``cancel()`` (the runtime's asks the kernel's
    preparations to stop their running tiles), the tiles not begun cancelled, and the others waited for before
    the exception goes on -- so that no tile still runs, or holds its pages, after a
    dispatch has failed."""
    handed: list[Future[TileWork]] = []

    def tracked(tile: Tile, comp: str) -> Future[TileWork]:
        fut = submit(tile, comp)
        handed.append(fut)
        return fut

    try:
        return run_tiles(plan, slots, thieves, tracked, idle, queued)
    except BaseException:
        unfinished = [f for f in handed if not f.done()]
        if unfinished:
            if cancel is not None:
                cancel()
            for fut in unfinished:
                fut.cancel()  # (only a tile no worker has begun)
            futures_wait(unfinished)
        raise


def run_tiles(plan: Iterable[tuple[Tile, str]], slots: Mapping[str, int],
              thieves: Collection[str],
              submit: Callable[[Tile, str], Future[TileWork]],
              idle: Callable[[], bool] | None = None,
              queued: int = QUEUED_PER_WORKER) -> list[TileRun]:
    """Run every tile of ``plan`` (tile, planned component) and return how each ran, in tile
    order.

    ``plan`` is read lazily, a tile at a time, as components need tiles and while tiles run
    (a generator may place each tile as it is asked for: the first tiles then start before
    the last are placed).  ``slots`` gives each component's workers (tiles it runs at once),
    in fabric order; ``thieves`` the components that steal when their queue is empty (and
    the plan has no more for them); ``submit(tile, component)`` hands a tile to a component.
    A component that steals holds up to ``slots`` times ``1 + queued`` tiles at once: those
    beyond its workers wait in its own queue (first in, first out, as a thread pool takes
    them), so a worker goes from one tile to the next at once; those are handed over once
    the workers given the first tiles have begun them.  Others hold one per worker:
    the tiles they have not begun stay where an idle thief can take them.  (A tile the
    component ran in ``submit()``, returned done, took no worker.)  A tile's ``wall_s`` runs
    from when a worker took it -- its hand-over, or the end of the tile whose worker took it
    next -- to its end, so that a measured clock does not count the wait in the queue.
    Everything is decided on the calling thread, as completions arrive.  If tiles fail, no
    further tile is started, those in flight are waited for, and the error of the first
    failed tile (in tile order) is raised.

    ``idle()``, when given, is called while tiles run, no completion is waiting and the plan
    has been read to its end: it does a little of the caller's own work (the model's, which
    needs no tile to have finished) and returns False when there is none left (it is not
    called again).  The calling thread is otherwise idle then: the tiles run without the GIL.
    It is called only once every worker given a tile has begun it (a worker needs the GIL to
    begin, and would otherwise wait for this thread's switch interval).  If it raises, or
    reading the plan does, neither is called again, the tiles in flight are waited for, and
    the error is raised after them (a tile's error first).
    """
    idle_error: list[BaseException] = []
    idle_over = [idle is None]
    source = iter(plan)
    read_all = [False]

    def pull() -> tuple[Tile, str] | None:
        """The plan's next tile, or None at its end (or once reading it failed)."""
        if read_all[0]:
            return None
        try:
            item = next(source, None)
        except BaseException as exc:  # raised once the tiles in flight are done
            idle_error.append(exc)
            idle_over[0] = True
            item = None
        if item is None:
            read_all[0] = True
        return item

    def idle_step() -> bool:
        if idle_over[0]:
            return False
        try:
            more = idle()
        except BaseException as exc:  # raised once the tiles in flight are done
            idle_error.append(exc)
            more = False
        idle_over[0] = not more
        return more

    if isinstance(plan, Sequence) and len(plan) == 1:
        # One tile: nothing to balance or steal; skip the queues (a tiny dispatch's cost).
        tile, comp = plan[0]
        started = time.perf_counter()
        fut = submit(tile, comp)
        while not fut.done() and (not fut.running() or idle_step()):
            if not fut.running():
                _wait(fut)
        work = fut.result()
        if idle_error:
            raise idle_error[0]
        return [TileRun(tile, comp, comp, work, time.perf_counter() - started)]
    order = {name: i for i, name in enumerate(slots)}
    queues: dict[str, deque[Tile]] = {name: deque() for name in slots}
    planned: dict[int, str] = {}
    capacity = {name: n * (1 + queued) if name in thieves else n for name, n in slots.items()}

    def read_one() -> str | None:
        """Queue the plan's next tile for its component (returned); None at the plan's end."""
        item = pull()
        if item is None:
            return None
        tile, comp = item
        queues[comp].append(tile)
        planned[tile.index] = comp
        return comp
    done: queue.SimpleQueue[tuple[Tile, str, float, Future[TileWork]]] = queue.SimpleQueue()
    # Per component: its tiles in flight (tile index: future), and those handed over while
    # every worker was busy, oldest first, with their hand-over time (not begun yet).
    inflight: dict[str, dict[int, Future[TileWork]]] = {name: {} for name in slots}
    waiting: dict[str, deque[tuple[int, float]]] = {name: deque() for name in slots}
    began: dict[int, float] = {}
    # Tiles handed to a free worker, in flight, that have not been seen to begin yet (a tile
    # seen running stays begun: each is looked at until it is).
    unseen: dict[int, Future[TileWork]] = {}
    ran_here: set[int] = set()  # tiles a component ran in submit() (done when handed back)
    here = {name: 0 for name in slots}  # of those, how many each component still holds
    runs: dict[int, TileRun] = {}
    errors: dict[int, BaseException] = {}

    def take(comp: str) -> Tile | None:
        own = queues[comp]
        while not own and read_one() is not None:
            pass
        if own:
            return own.popleft()
        if comp not in thieves:
            return None
        victims = [c for c in queues if c != comp and queues[c]]
        if not victims:
            return None
        victim = max(victims, key=lambda c: (len(queues[c]), -order[c]))
        return queues[victim].pop()

    def launch(comp: str, limit: int | None = None) -> None:
        held = inflight[comp]
        cap = capacity[comp] if limit is None else min(limit, capacity[comp])
        while not errors and len(held) < cap:
            tile = take(comp)
            if tile is None:
                return
            # Every worker busy: a tile of those held that is neither done in submit() nor
            # waiting has one.
            busy = len(held) - here[comp] >= slots[comp]
            handed = time.perf_counter()
            try:
                fut = submit(tile, comp)
            except BaseException as exc:  # the component refused it: a failed tile
                errors[tile.index] = exc
                return
            held[tile.index] = fut
            if fut.done():  # run on this thread (a tiny tile): no worker took it
                began[tile.index] = handed
                ran_here.add(tile.index)
                here[comp] += 1
            elif busy:
                waiting[comp].append((tile.index, handed))
            else:
                began[tile.index] = handed
                unseen[tile.index] = fut
            fut.add_done_callback(lambda f, tile=tile, comp=comp: done.put(
                (tile, comp, time.perf_counter(), f)))

    def all_begun() -> bool:
        # Every worker given a tile has taken one (a tile past the workers waits its turn).
        for index, fut in list(unseen.items()):
            if not (fut.running() or fut.done()):
                return False
            del unseen[index]
        return True

    # First a tile per worker: the tiles beyond them (placed lazily, on this thread) are handed
    # over once the workers have begun, so that placing them does not hold the workers back
    # (a worker needs the GIL to begin).
    for comp in slots:
        launch(comp, slots[comp])
    topped_up = False
    while any(inflight.values()):
        if not (topped_up and idle_over[0] and read_all[0]):
            try:
                item = done.get_nowait()
            except queue.Empty:
                if not all_begun():
                    try:  # let the workers have the GIL to begin their tiles
                        item = done.get(timeout=_BEGIN_WAIT)
                    except queue.Empty:
                        continue
                elif not topped_up:  # the rest of what each component may hold
                    topped_up = True
                    for comp in slots:
                        launch(comp)
                    continue
                elif not read_all[0]:  # the plan's next tile, while these run
                    comp = read_one()
                    if comp is not None:
                        launch(comp)
                    continue
                elif idle_step():
                    continue
                else:
                    item = done.get()
        else:
            item = done.get()
        tile, comp, ended, fut = item
        del inflight[comp][tile.index]
        unseen.pop(tile.index, None)
        if tile.index in ran_here:
            here[comp] -= 1
        else:
            if tile.index not in began:
                # Ended before any completion freed a worker for it (a component whose
                # workers do not take tiles in order): timed from its hand-over.
                entry = next(e for e in waiting[comp] if e[0] == tile.index)
                waiting[comp].remove(entry)
                began[tile.index] = entry[1]
            elif waiting[comp]:
                # The worker that ran this tile took the oldest waiting one.
                index, handed = waiting[comp].popleft()
                began[index] = max(handed, ended)
                unseen[index] = inflight[comp][index]
        try:
            work = fut.result()
        except BaseException as exc:  # kept; the first in tile order is raised
            errors[tile.index] = exc
        else:
            runs[tile.index] = TileRun(tile, planned[tile.index], comp, work,
                                       ended - began[tile.index])
        launch(comp)
    if errors:
        raise errors[min(errors)]
    if idle_error:
        raise idle_error[0]
    return [runs[index] for index in sorted(runs)]


#: How long the dispatching thread blocks (releasing the GIL) while a worker has yet to begin
#: its tile, before it looks again.
_BEGIN_WAIT = 0.0002


def _wait(fut: Future[TileWork]) -> None:
    """Block briefly (without the GIL) so that a worker can begin ``fut``."""
    try:
        fut.exception(timeout=_BEGIN_WAIT)
    except TimeoutError:
        pass


__all__ = ["MIN_TILE_ITEMS", "QUEUED_PER_WORKER", "TILES_PER_WORKER", "TileRun", "execute",
           "make_tiles", "place_round_robin", "run_tiles"]
