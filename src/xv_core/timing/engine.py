"""The discrete-event engine behind virtual time: transfers over links, tiles on components.

A :class:`Timeline` holds a fabric's links (each with a link profile and a bus model) and its
components (each with a device profile).  The runtime submits activities — :meth:`transfer`
(bytes over a route) and :meth:`compute` (a tile's counted work on a component) — each with a
start time, optional activities it must wait for, a tag and an optional callback, then calls
:meth:`run`.  Each activity's ``start`` and ``end`` are then known, and :meth:`report` gives the
numbers ``xv fabric run`` prints.

How time is computed (``docs/timing.md`` derives each case):

* A transfer's route is cut into *stages*: consecutive ``fluid`` links form one flow,
  each ``fifo`` link is a stage of its own, ``ideal`` links cost nothing.
* A fluid stage waits its latency without loading any link, then flows.  Flowing transfers get
  max-min fair rates over the resources of their routes (one per link direction; one per link
  if it is half duplex), found by progressive filling (water-filling) and found again whenever
  a flow starts or ends — but only for the flows and resources connected, through shared
  resources, to the one that changed (SimGrid's selective update).
* Transfers with the same stage signature (same resources, same bound and weight) always get
  the same rate, so the engine keeps one *class* per signature and solves classes, not flows.
  The classes one step of progressive filling fixes together form a *round* with one level and
  one level integral, from which each class derives the bytes its flows have received; the
  connected classes form a *group* with one pending event (its earliest completion).  A start
  or end that keeps the group's bottleneck structure only recomputes the rounds' levels (and
  checks that the result is still max-min fair); otherwise the connected classes are solved
  from scratch.
* A fifo stage waits for its link (arrival order, then tag), transmits for ``size / bandwidth``
  and arrives ``latency`` later.
* A compute activity waits in its component's queue (arrival order, then tag) until enough
  lanes are free, then runs for its roofline time (:mod:`xv_core.timing.devices`).

Determinism: events at the same virtual time are processed as one batch (every state change of
the batch is applied before rates are solved again); the event queue orders ties by tag, the
solver visits resources and classes in an order that depends only on the fabric and the
signatures, and the event log is sorted by (time, kind, tag).  The same activities give the
same timeline, event for event, in whatever order they were submitted — as long as tags are
unique (activities with equal tags fall back to submission order).
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from xv_core.errors import UnknownNameError, XvError, closest_name
from xv_core.timing.devices import DeviceProfile
from xv_core.timing.models import BUILTIN_MODELS, BusModel
from xv_core.timing.topology import Link, Route, explicit_route, shortest_route

_INF = math.inf


def _overflow(tag: str | None) -> XvError:
    """The error for virtual times past what a float holds."""
    what = f"activity {tag!r}" if tag else "an activity"
    return XvError(f"the modelled timeline overflows: {what} would end at an infinite virtual "
                   f"time", hint="a link's latency or a device's numbers are too large (or its "
                   "rates too small) for the time to stay a finite number of seconds")

# Event kinds in the queue.
_BEGIN = 0        # a transfer's first stage begins (its start time has come)
_ACTIVATE = 1     # a fluid stage has paid its latency: the flow joins its class
_FLOW_END = 2     # a class's earliest flow has received all its bytes
_STAGE_DONE = 3   # a stage's bytes have arrived: the next stage begins
_FIFO_DONE = 4    # a fifo link finished transmitting
_COMPUTE_READY = 5
_COMPUTE_END = 6

# Kinds of the event log, in the order they sort at equal times.
LOG_KINDS = ("transfer_end", "compute_end", "transfer_start", "compute_start")
_T_END, _C_END, _T_START, _C_START = range(4)

# A flow whose remaining bytes fall below this fraction of its target (or 1e-9 bytes) when its
# class's earliest flow completes completes with it: rounding, not bytes.
_SAME_FINISH = 1e-12
# A group keeps its rounds while each level is at least the previous one (to rounding) and no
# resource is loaded beyond its capacity (to rounding).
_STILL_ORDERED = 1.0 - 1e-12
_OVERLOAD = 1e-12
_LOADABLE = 1.0 + _OVERLOAD


class TimelineEvent(NamedTuple):
    """One line of the event log.  ``where`` is a transfer's links joined by ``+`` or a
    compute's component; ``nbytes`` a transfer's size or a tile's bytes read and written."""

    time: float
    kind: str
    tag: str
    where: str
    nbytes: int


class Activity:
    """A transfer or a compute submitted to a :class:`Timeline`.

    ``start`` is when it became ready (a transfer: its start time and dependencies met) or began
    running (a compute: lanes granted); ``end`` when it completed.  Both are None until the
    timeline has run that far.
    """

    __slots__ = ("kind", "tag", "where", "nbytes", "start_at", "start", "end", "duration",
                 "lanes", "ops", "on_done", "_seq", "_waiting", "_dependents", "_stages",
                 "_plan", "_component")

    def __init__(self, kind: str, tag: str, where: str, nbytes: int, start_at: float, seq: int):
        self.kind = kind
        self.tag = tag
        self.where = where
        self.nbytes = nbytes
        self.start_at = start_at
        self.start: float | None = None
        self.end: float | None = None
        self.duration = 0.0
        self.lanes = 0
        self.ops = 0
        self.on_done: Callable[[Activity], Any] | None = None
        self._seq = seq
        self._waiting = 0
        self._dependents: list[Activity] | None = None
        self._stages: tuple[Any, ...] = ()
        self._plan: _Plan | None = None
        self._component: _Component | None = None

    @property
    def done(self) -> bool:
        return self.end is not None

    def __repr__(self) -> str:
        return (f"Activity({self.kind} {self.tag!r} on {self.where!r}, start={self.start}, "
                f"end={self.end})")


class _FlowClass:
    """Every flowing transfer with one stage signature: same resources and coefficients, same
    rate bound, same sharing weight.  Max-min gives them all the same rate.

    The class's byte counter ``W`` (bytes each of its flows has received since the class last
    became active) is not stored but derived from its round's level integral ``V``:
    ``W = Wa + (V - Va) / penalty`` with anchors (Wa, Va) set whenever the class changes round.
    ``vt`` is the value of ``V`` at which its earliest flow completes.
    """

    __slots__ = ("order", "terms", "first", "links", "bound", "penalty", "n", "heap", "Wa",
                 "Va", "vt", "vtseq", "round", "mark")

    def __init__(self, signature: tuple[Any, ...], links: tuple[int, ...]):
        terms, bound, penalty = signature
        # Ordering by a hash of the signature (ints, floats: no per-process randomisation) makes
        # the solver's visiting order independent of which flow came first.
        self.order = (hash(signature), signature)
        self.terms: tuple[tuple[int, float], ...] = terms
        self.first = terms[0][0]
        self.links = links
        self.bound: float = bound
        self.penalty: float = penalty
        self.n = 0
        # (target W, tag, sequence, transfer, stage index) of each flowing transfer.
        self.heap: list[tuple[float, str, int, Activity, int]] = []
        self.Wa = 0.0
        self.Va = 0.0
        self.vt = 0.0
        self.vtseq = 0  # bumped whenever vt changes: older entries in the round's heap are stale
        self.round: _Round | None = None
        self.mark = 0


class _Round:
    """The classes one step of progressive filling fixed together: the resource that saturated
    (or -1 when a class's own bound stopped it), their common ``level`` (rate x penalty) and its
    integral ``V`` since ``last``; ``weights`` maps each resource they load to the sum of
    n x coefficient / penalty over the members (kept up to date as flows start and end)."""

    __slots__ = ("members", "resource", "bound_level", "level", "next_level", "V", "last",
                 "weights", "group", "heap", "single", "cap_level", "tight", "tight_ratio")

    def __init__(self, members: list[_FlowClass], resource: int, level: float, now: float,
                 group: _Group):
        self.members = members
        self.resource = resource
        self.bound_level = level
        self.level = level
        self.next_level = level
        self.V = 0.0
        self.last = now
        self.weights: dict[int, float] = {}
        # The resource other than its own that the round loads most for its capacity
        # (weight / capacity): the only one a lone round must check.  -2: not known; -1: none.
        self.tight = -2
        self.tight_ratio = 0.0
        self.group = group
        # (vt, tag, vtseq, class) of each member: the earliest completion is at the top.  A
        # round of one class needs no heap: ``single`` is that class.
        self.heap: list[tuple[float, str, int, _FlowClass]] = []
        self.single = members[0] if len(members) == 1 else None
        # The lowest bound x penalty among the members: a round of a shared resource must not
        # lift a bounded member past its bound.
        self.cap_level = min((c.bound * c.penalty for c in members), default=_INF)


class _Group:
    """One connected component of flowing classes: its rounds in filling order, the resources
    they load, and a version (unique across the timeline) that its pending event carries."""

    __slots__ = ("rounds", "resources", "key", "version", "dead", "mark")

    def __init__(self, resources: list[int]):
        self.rounds: list[_Round] = []
        self.resources = resources
        self.key = min(resources)
        self.version = 0
        self.dead = False
        self.mark = 0


class _Plan:
    """What the engine needs of a route, worked out once: its stages, the indices and label of
    its links, and the first stage's class and latency when a transfer can join it directly."""

    __slots__ = ("route", "stages", "links", "label", "first_cls", "first_latency", "bytes",
                 "count")

    def __init__(self, route: Route, stages: tuple[Any, ...]):
        self.route = route
        self.stages = stages
        # Bytes and transfers that completed over the route: the per-link totals of the report
        # are summed from these, so a transfer's end costs the same however many links it has.
        self.bytes = 0
        self.count = 0
        self.links = tuple(i for i, _ in route.hops)
        self.label = route.label
        first = stages[0] if stages else None
        if isinstance(first, _FluidStage) and first.cls is not None:
            self.first_cls: _FlowClass | None = first.cls
            self.first_latency = first.latency
        else:
            self.first_cls = None
            self.first_latency = 0.0


class _FluidStage:
    __slots__ = ("latency", "cls")

    def __init__(self, latency: float, cls: _FlowClass | None):
        self.latency = latency
        self.cls = cls  # None when the stage has no resource (only its latency)


class _FifoStage:
    __slots__ = ("latency", "server")

    def __init__(self, latency: float, server: _Server):
        self.latency = latency
        self.server = server


class _Server:
    """One direction of a fifo link (both directions when it is half duplex)."""

    __slots__ = ("index", "link", "capacity", "queue", "busy")

    def __init__(self, index: int, link: int, capacity: float):
        self.index = index
        self.link = link
        self.capacity = capacity
        self.queue: list[tuple[float, str, int, Activity, int]] = []
        self.busy = False


class _Component:
    __slots__ = ("index", "name", "profile", "free", "queue", "busy_since", "busy_s", "lane_s",
                 "tiles", "ops", "nbytes")

    def __init__(self, index: int, name: str, profile: DeviceProfile):
        self.index = index
        self.name = name
        self.profile = profile
        self.free = profile.lanes
        self.queue: list[tuple[float, str, int, Activity]] = []
        self.busy_since = 0.0
        self.busy_s = 0.0
        self.lane_s = 0.0
        self.tiles = 0
        self.ops = 0
        self.nbytes = 0


class Timeline:
    """Virtual time of one fabric: see the module docstring.

    ``links`` are the fabric's links; ``components`` maps component names to device profiles;
    ``bus`` is the model of links that name none (a :class:`BusModel` or the name of one in
    ``models``, which defaults to the core's built-ins: ideal, shared, fifo, tcp).
    """

    def __init__(self, links: Sequence[Link] = (),
                 components: Mapping[str, DeviceProfile] | None = None, *,
                 bus: str | BusModel = "shared", models: Mapping[str, BusModel] | None = None):
        self._models = dict(BUILTIN_MODELS if models is None else models)
        self.links: tuple[Link, ...] = tuple(links)
        names = [ln.name for ln in self.links]
        duplicate = sorted({n for n in names if names.count(n) > 1})
        if duplicate:
            raise XvError(f"link {duplicate[0]!r} is declared twice", where="timeline",
                          hint="give each link its own name")
        self.default_model = self._model(bus, "the timeline's bus")
        self.link_models: tuple[BusModel, ...] = tuple(
            self.default_model if ln.model is None else self._model(ln.model, f"link {ln.name!r}")
            for ln in self.links)

        # Resources of fluid links and servers of fifo links, per link and direction.
        self._cap: list[float] = []
        # The solver's scratch space, per resource: remaining capacity, weight of the classes
        # not fixed yet, how many of them.
        self._rem: list[float] = []
        self._wt: list[float] = []
        self._cnt: list[int] = []
        self._top: list[float] = []  # the highest level seen on each resource while re-levelling
        self._inv_cap: list[float] = []
        # The classes flowing over each resource, kept sorted by class order so that every
        # walk over them is in an order that depends on the fabric only.
        self._res_classes: list[list[_FlowClass]] = []
        self._fluid_res: list[tuple[int, int] | None] = []
        self._servers: list[tuple[_Server, _Server] | None] = []
        for i, (link, model) in enumerate(zip(self.links, self.link_models)):
            profile = link.profile
            if not (profile.bandwidth > 0 and profile.latency >= 0):
                raise XvError(f"link {link.name!r} needs a positive bandwidth and a latency of "
                              f"zero or more (got {profile.bandwidth}, {profile.latency})",
                              where="timeline")
            capacity = profile.bandwidth * model.bandwidth_factor
            full = profile.full_duplex
            self._fluid_res.append(None)
            self._servers.append(None)
            if model.discipline == "fluid":
                fwd = self._new_resource(capacity)
                self._fluid_res[i] = (fwd, self._new_resource(capacity) if full else fwd)
            elif model.discipline == "fifo":
                fwd_server = _Server(2 * i, i, capacity)
                back = _Server(2 * i + 1, i, capacity) if full else fwd_server
                self._servers[i] = (fwd_server, back)

        self.components: dict[str, _Component] = {}
        for name, profile in (components or {}).items():
            self.components[name] = _Component(len(self.components), name, profile)

        self.now = 0.0
        self.end = 0.0  # latest completion so far
        self._running = False
        self._seq = 0
        self._heap: list[tuple[float, str, int, int, Any, Any]] = []
        self._log: list[tuple[float, int, str, str, int]] = []
        self._classes: dict[tuple[Any, ...], _FlowClass] = {}
        self._plans: dict[tuple[str, str], _Plan] = {}  # by (src, dst)
        self._plans_by_id: dict[int, _Plan] = {}  # by id() of the routes route() returned
        self._plans_by_hops: dict[tuple[tuple[int, int], ...], _Plan] = {}
        self._all_plans: list[_Plan] = []
        self._mark = 0
        # Set while a batch of simultaneous events is being applied.
        self._touched: set[int] = set()  # resources whose classes must be solved anew
        self._dirty: set[_Group] = set()  # groups whose rounds may only need new levels
        self._versions = 0
        self._kick_servers: set[_Server] = set()
        self._kick_components: set[_Component] = set()
        self._link_active = [0] * len(self.links)
        self._link_since = [0.0] * len(self.links)
        self._link_busy = [0.0] * len(self.links)
        self.transfers = 0
        self.computes = 0
        #: How much re-solving the run took: batches that re-solved ("solves"), connected
        #: components filled from scratch ("components", "classes" in them) and components whose
        #: bottleneck structure held so that only their levels were recomputed ("relevels").
        self.solver_stats = {"solves": 0, "components": 0, "classes": 0, "relevels": 0}

    # ------------------------------------------------------------------
    # Building
    # ------------------------------------------------------------------

    def _model(self, model: str | BusModel, what: str) -> BusModel:
        if isinstance(model, BusModel):
            return model
        if model not in self._models:
            close = closest_name(model, self._models)
            raise UnknownNameError(
                f"unknown bus model {model!r} for {what} (installed: "
                f"{', '.join(sorted(self._models))})", where="timeline",
                hint=f"did you mean {close!r}?" if close else "install the plugin that "
                                                              "provides it")
        return self._models[model]

    def _new_resource(self, capacity: float) -> int:
        self._cap.append(capacity)
        self._res_classes.append([])
        self._inv_cap.append(1.0 / capacity)
        self._top.append(0.0)
        self._rem.append(0.0)
        self._wt.append(0.0)
        self._cnt.append(0)
        return len(self._cap) - 1

    def route(self, src: str, dst: str) -> Route:
        """The route with the fewest links from ``src`` to ``dst`` (ties: declaration order)."""
        return self._plan_between(src, dst).route

    def route_through(self, src: str, links: Sequence[str]) -> Route:
        """The route from ``src`` over the named ``links``, in that order."""
        return explicit_route(self.links, src, links)

    def _plan_between(self, src: str, dst: str) -> _Plan:
        plan = self._plans.get((src, dst))
        if plan is None:
            route = shortest_route(self.links, src, dst)
            plan = self._plans[src, dst] = self._plans_by_id[id(route)] = \
                _Plan(route, self._stages(route))
            self._all_plans.append(plan)
        return plan

    def _plan_of(self, route: Route | tuple[str, str]) -> _Plan:
        if type(route) is not Route:
            return self._plan_between(*route)
        # Routes from route() are found by identity (their plan keeps them alive, so the id is
        # never reused); any other Route by its hops, so that building a new Route object for
        # every transfer does not grow the cache.
        plan = self._plans_by_id.get(id(route))
        if plan is None or plan.route is not route:
            plan = self._plans_by_hops.get(route.hops)
            if plan is None:
                plan = self._plans_by_hops[route.hops] = _Plan(route, self._stages(route))
                self._all_plans.append(plan)
        return plan

    def _stages(self, route: Route) -> tuple[Any, ...]:
        """Cut a route into stages (module docstring)."""
        stages: list[Any] = []
        run: list[tuple[int, int]] = []

        def flush() -> None:
            if run:
                stages.append(self._fluid_stage(run))
                run.clear()

        for index, direction in route.hops:
            model = self.link_models[index]
            if model.discipline == "fluid":
                run.append((index, direction))
            elif model.discipline == "fifo":
                flush()
                servers = self._servers[index]
                assert servers is not None
                latency = self.links[index].profile.latency * model.latency_factor
                stages.append(_FifoStage(latency, servers[direction]))
        flush()
        return tuple(stages)

    def _fluid_stage(self, hops: list[tuple[int, int]]) -> _FluidStage:
        terms: dict[int, float] = {}
        latency = raw_latency = 0.0
        gammas: list[float] = []
        weighted = False
        weight = 0.0
        for index, direction in hops:
            model = self.link_models[index]
            profile = self.links[index].profile
            resources = self._fluid_res[index]
            assert resources is not None
            terms[resources[direction]] = terms.get(resources[direction], 0.0) + 1.0
            if model.cross_traffic:
                back = resources[1 - direction]
                terms[back] = terms.get(back, 0.0) + model.cross_traffic
            latency += profile.latency * model.latency_factor
            raw_latency += profile.latency
            if model.tcp_gamma is not None:
                gammas.append(model.tcp_gamma)
            if model.weight_s is not None:
                weighted = True
                weight += model.weight_s / profile.bandwidth
        bound = _INF
        if gammas and raw_latency > 0:
            bound = min(gammas) / (2.0 * raw_latency)
        # SimGrid's penalty: route latency plus weight-S terms; a route without latency keeps
        # the neutral weight, as SimGrid's variables do.
        penalty = raw_latency + weight if weighted and raw_latency > 0 else 1.0
        signature = (tuple(sorted(terms.items())), bound, penalty)
        cls = self._classes.get(signature)
        if cls is None:
            links = tuple(sorted({i for i, _ in hops}))
            cls = self._classes[signature] = _FlowClass(signature, links)
        return _FluidStage(latency, cls)

    # ------------------------------------------------------------------
    # Submitting
    # ------------------------------------------------------------------

    def _activity(self, kind: str, tag: str | None, where: str, nbytes: int,
                  start_at: float | None, after: Iterable[Activity],
                  on_done: Callable[[Activity], Any] | None) -> Activity:
        self._seq += 1
        now = self.now
        if start_at is None:
            when = now
        else:
            when = float(start_at)
            if when < now:
                raise ValueError(f"cannot start an activity at {when} s: virtual time is "
                                 f"already {now} s")
        activity = Activity(kind, f"{kind[0]}{self._seq}" if tag is None else
                            tag if type(tag) is str else str(tag), where, nbytes, when, self._seq)
        activity.on_done = on_done
        for dep in after:
            if dep.end is None:
                activity._waiting += 1
                if dep._dependents is None:
                    dep._dependents = []
                dep._dependents.append(activity)
            elif dep.end > when:
                when = activity.start_at = dep.end
        return activity

    def transfer(self, route: Route | tuple[str, str], nbytes: int, *,
                 start_at: float | None = None, tag: str | None = None,
                 after: Iterable[Activity] = (),
                 on_done: Callable[[Activity], Any] | None = None) -> Activity:
        """Move ``nbytes`` over ``route`` (a :class:`Route` or a ``(src, dst)`` pair), starting
        at ``start_at`` (default: now) or when every activity in ``after`` has ended, whichever
        is later.  ``on_done(activity)`` is called at its end, in virtual time order; it may
        submit further activities."""
        plan = self._plan_of(route)
        if nbytes < 0:
            raise ValueError(f"a transfer cannot move {nbytes} bytes")
        activity = self._activity("transfer", tag, plan.label, int(nbytes), start_at, after,
                                  on_done)
        activity._stages = plan.stages
        activity._plan = plan
        self.transfers += 1
        if activity._waiting == 0:
            self._ready_transfer(activity, activity.start_at)
        return activity

    def compute(self, component: str, work: Any = None, *, ops: int = 0, nbytes: int = 0,
                lanes: int | None = None, duration: float | None = None,
                start_at: float | None = None, tag: str | None = None,
                after: Iterable[Activity] = (),
                on_done: Callable[[Activity], Any] | None = None) -> Activity:
        """Run a tile on ``component``: its counted ``work`` (a ``TileWork``; or ``ops`` and
        ``nbytes``) on ``lanes`` lanes (default: all), timed by the component's roofline — or
        for ``duration`` seconds when given (a fabric that asks for measured wall time).
        It waits for its dependencies and then for free lanes (arrival order, then tag)."""
        comp = self.components.get(component)
        if comp is None:
            raise UnknownNameError(f"unknown component {component!r} in the timeline",
                                   where="timeline",
                                   hint=f"components: {', '.join(self.components) or 'none'}")
        if work is not None:
            ops, nbytes = work.ops, work.bytes_read + work.bytes_written
        used = comp.profile.lanes if lanes is None else int(lanes)
        activity = self._activity("compute", tag, component, int(nbytes), start_at, after,
                                  on_done)
        activity.lanes = used
        activity.ops = int(ops)
        activity.duration = (comp.profile.compute_time(ops, nbytes, used) if duration is None
                             else float(duration))
        if activity.duration < 0:
            raise ValueError(f"a compute cannot last {activity.duration} s")
        activity._component = comp
        self.computes += 1
        if activity._waiting == 0:
            self._push(activity.start_at, activity.tag, _COMPUTE_READY, activity, None)
        return activity

    # ------------------------------------------------------------------
    # Estimates (for placement): what an activity would take alone
    # ------------------------------------------------------------------

    def transfer_estimate(self, route: Route | tuple[str, str], nbytes: int) -> float:
        """Seconds ``nbytes`` would take over ``route`` on an otherwise idle fabric."""
        total = 0.0
        for stage in self._plan_of(route).stages:
            total += stage.latency
            if nbytes <= 0:
                continue
            if isinstance(stage, _FifoStage):
                total += nbytes / stage.server.capacity
            elif stage.cls is not None:
                cls = stage.cls
                rate = min(self._cap[r] / coef for r, coef in cls.terms)
                total += nbytes / min(rate, cls.bound)
        return total

    def compute_estimate(self, component: str, work: Any, lanes: int | None = None) -> float:
        """Seconds ``work`` would take on an idle ``component`` (its roofline time)."""
        return self.components[component].profile.tile_time(work, lanes)

    # ------------------------------------------------------------------
    # Running
    # ------------------------------------------------------------------

    def _push(self, time: float, tag: str, kind: int, obj: Any, arg: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (time, tag, self._seq, kind, obj, arg))

    def run(self, until: float | None = None) -> float:
        """Process events in virtual time order until none is left (or the next one is after
        ``until``); return the virtual time reached."""
        if self._running:
            raise RuntimeError("Timeline.run() called from a callback of the same timeline")
        self._running = True
        try:
            return self._run(until)
        finally:
            self._running = False

    def _run(self, until: float | None) -> float:
        heap = self._heap
        heappop = heapq.heappop
        touched = self._touched
        dirty = self._dirty
        while heap:
            now = heap[0][0]
            if until is not None and now > until:
                break
            if not now < _INF:  # infinite, or NaN: numbers no virtual time can reach
                raise _overflow(heap[0][1])
            self.now = now
            # One batch: every event at this instant, then the new rates and queue starts.
            while heap and heap[0][0] == now:
                _, _, _, kind, obj, arg = heappop(heap)
                if kind == _FLOW_END:
                    rnd = obj.round
                    if rnd is not None and rnd.group.version == arg:
                        self._flow_end(obj, now)
                elif kind == _ACTIVATE:
                    self._join(obj, arg, now)
                elif kind == _STAGE_DONE:
                    self._next_stage(obj, arg + 1, now)
                elif kind == _FIFO_DONE:
                    self._fifo_done(obj, arg, now)
                elif kind == _BEGIN:
                    self._next_stage(obj, 0, now)
                elif kind == _COMPUTE_READY:
                    self._compute_ready(obj, now)
                else:
                    self._compute_end(obj, now)
            if self._kick_servers:
                self._start_fifo(now)
            if self._kick_components:
                self._start_computes(now)
            if touched:
                self._solve(now)
            elif dirty:
                if len(dirty) == 1:
                    # One group whose structure probably holds: the usual case, kept short.
                    group = dirty.pop()
                    if self._relevel(group, now):
                        stats = self.solver_stats
                        stats["solves"] += 1
                        stats["relevels"] += 1
                    else:
                        group.dead = True
                        touched.update(group.resources)
                        self._solve(now)
                else:
                    self._solve(now)
        if until is not None and until > self.now:
            self.now = until
        return self.now

    # -- transfers -------------------------------------------------------

    def _ready_transfer(self, activity: Activity, when: float) -> None:
        """``activity`` may go at ``when``: log its start and queue its first stage."""
        plan = activity._plan
        activity.start = when
        self._log.append((when, _T_START, activity.tag, activity.where, activity.nbytes))
        self._seq += 1
        if plan.first_cls is not None and activity.nbytes:
            # The common case saves an event: the flow joins once its latency is paid.
            heapq.heappush(self._heap, (when + plan.first_latency, activity.tag, self._seq,
                                        _ACTIVATE, activity, 0))
        else:
            heapq.heappush(self._heap, (when, activity.tag, self._seq, _BEGIN, activity, None))

    def _next_stage(self, activity: Activity, index: int, now: float) -> None:
        stages = activity._stages
        if index == len(stages):
            self._transfer_end(activity, now)
            return
        stage = stages[index]
        if isinstance(stage, _FluidStage):
            if stage.cls is None or not activity.nbytes:
                if stage.latency > 0:
                    self._push(now + stage.latency, activity.tag, _STAGE_DONE, activity, index)
                else:
                    self._next_stage(activity, index + 1, now)
            elif stage.latency > 0:
                self._push(now + stage.latency, activity.tag, _ACTIVATE, activity, index)
            else:
                self._join(activity, index, now)
        else:
            server = stage.server
            self._seq += 1
            heapq.heappush(server.queue, (now, activity.tag, self._seq, activity, index))
            self._kick_servers.add(server)

    def _join(self, activity: Activity, index: int, now: float) -> None:
        cls = activity._stages[index].cls
        self._seq += 1
        rnd = cls.round
        if cls.n and rnd is None:
            # Became active earlier in this batch, not solved yet: no byte has flowed.
            heapq.heappush(cls.heap, (cls.Wa + activity.nbytes, activity.tag, self._seq,
                                      activity, index))
            cls.n += 1
        elif cls.n:
            W = cls.Wa + (rnd.V + rnd.level * (now - rnd.last) - cls.Va) / cls.penalty
            entry = (W + activity.nbytes, activity.tag, self._seq, activity, index)
            heapq.heappush(cls.heap, entry)
            cls.n += 1
            weights = rnd.weights
            w = 1.0 / cls.penalty
            if rnd.tight == -2:
                for r, coef in cls.terms:
                    weights[r] += w * coef
            else:  # more load can only make one of the class's own resources the tightest
                inv_cap = self._inv_cap
                own = rnd.resource
                for r, coef in cls.terms:
                    weight = weights[r] = weights[r] + w * coef
                    if r != own and weight * inv_cap[r] > rnd.tight_ratio:
                        rnd.tight = r
                        rnd.tight_ratio = weight * inv_cap[r]
            if cls.heap[0] is entry:
                vt = cls.vt = cls.Va + (entry[0] - cls.Wa) * cls.penalty
                if rnd.single is None:
                    cls.vtseq += 1
                    heapq.heappush(rnd.heap, (vt, activity.tag, cls.vtseq, cls))
            self._dirty.add(rnd.group)
        else:
            cls.Wa = cls.Va = 0.0
            cls.round = None
            heapq.heappush(cls.heap, (float(activity.nbytes), activity.tag, self._seq, activity,
                                      index))
            cls.n = 1
            for r, _ in cls.terms:
                bisect.insort(self._res_classes[r], cls, key=_by_order)
            for link in cls.links:
                self._link_up(link, now)
            self._activate(cls, now)

    def _activate(self, cls: _FlowClass, now: float) -> None:
        """A class starts flowing.  If its resources carry classes of a single group and one of
        them saturates one of its resources, it joins the earliest such round, and the group
        only needs new levels (checked like any other); otherwise its component is solved from
        scratch."""
        group = None
        for r, _ in cls.terms:
            for other in self._res_classes[r]:
                if other is not cls:
                    rnd = other.round
                    if rnd is None or (group is not None and rnd.group is not group):
                        self._touched.add(cls.first)
                        return
                    group = rnd.group
        if group is None or group.dead:
            self._touched.add(cls.first)
            return
        mine = {r for r, _ in cls.terms}
        for rnd in group.rounds:
            if rnd.resource in mine:
                break
        else:
            self._new_round(cls, group, now)
            return
        if rnd.single is not None:  # the round now needs its heap
            only = rnd.single
            rnd.single = None
            only.vtseq += 1
            rnd.heap = [(only.vt, only.heap[0][1], only.vtseq, only)]
        rnd.members.append(cls)
        cls.round = rnd
        cls.Va = rnd.V + rnd.level * (now - rnd.last)
        head = cls.heap[0]
        vt = cls.vt = cls.Va + head[0] * cls.penalty
        cls.vtseq += 1
        heapq.heappush(rnd.heap, (vt, head[1], cls.vtseq, cls))
        weights = rnd.weights
        w = 1.0 / cls.penalty
        for r, coef in cls.terms:
            weights[r] = weights.get(r, 0.0) + w * coef
            if r not in group.resources:
                group.resources.append(r)
        rnd.tight = -2
        if cls.bound * cls.penalty < rnd.cap_level:
            rnd.cap_level = cls.bound * cls.penalty
        self._dirty.add(group)

    def _new_round(self, cls: _FlowClass, group: _Group, now: float) -> None:
        """A class whose resources none of ``group``'s rounds saturates gets a round of its own,
        at the level the capacity the others leave on its route allows (or its bound)."""
        left = {r: self._cap[r] for r, _ in cls.terms}
        for rnd in group.rounds:
            weights = rnd.weights
            for r in left:
                w = weights.get(r)
                if w is not None:
                    left[r] -= rnd.level * w
        level = _INF
        best = -1
        for r, coef in cls.terms:
            lvl = left[r] * cls.penalty / coef
            if lvl < level:
                level = lvl
                best = r
        if cls.bound * cls.penalty < level:
            level = cls.bound * cls.penalty
            best = -1
        if not level > 0.0:
            self._touched.add(cls.first)
            return
        rnd = _Round([cls], best, level, now, group)
        w = 1.0 / cls.penalty
        for r, coef in cls.terms:
            rnd.weights[r] = w * coef
            if r not in group.resources:
                group.resources.append(r)
        group.rounds.append(rnd)
        cls.round = rnd
        cls.Va = 0.0
        cls.vt = cls.heap[0][0] * cls.penalty
        self._dirty.add(group)

    def _flow_end(self, cls: _FlowClass, now: float) -> None:
        heap = cls.heap
        target = heap[0][0]
        rnd = cls.round
        # The class's earliest flow is done by construction: re-anchor the counter at its
        # target so rounding never leaves a sliver of bytes (and an extra event) behind.
        cls.Wa = target
        cls.Va = rnd.V + rnd.level * (now - rnd.last)
        limit = target + _SAME_FINISH * abs(target) + 1e-9
        finished = []
        while heap and heap[0][0] <= limit:
            finished.append(heapq.heappop(heap))
        m = len(finished)
        cls.n -= m
        if cls.n:
            weights = rnd.weights
            w = m / cls.penalty
            tight = rnd.tight
            for r, coef in cls.terms:
                weights[r] -= w * coef
                if r == tight:  # the tightest may now be another
                    rnd.tight = -2
            head = heap[0]
            vt = cls.vt = cls.Va + (head[0] - target) * cls.penalty
            if rnd.single is None:
                cls.vtseq += 1
                heapq.heappush(rnd.heap, (vt, head[1], cls.vtseq, cls))
            self._dirty.add(rnd.group)
        else:
            # The class leaves its round; the rest of the group keeps its structure if the
            # new levels pass the usual check.
            cls.round = None
            for r, _ in cls.terms:
                self._res_classes[r].remove(cls)
            for link in cls.links:
                self._link_down(link, now)
            group = rnd.group
            members = rnd.members
            members.remove(cls)
            if members:
                weights: dict[int, float] = {}  # afresh: no residue of the class that left
                for other in members:
                    w = other.n / other.penalty
                    for r, coef in other.terms:
                        weights[r] = weights.get(r, 0.0) + w * coef
                rnd.weights = weights
                rnd.tight = -2
                rnd.cap_level = min(c.bound * c.penalty for c in members)
                if len(members) == 1:
                    rnd.single = members[0]
                self._dirty.add(group)
            else:
                group.rounds.remove(rnd)
                if group.rounds:
                    self._dirty.add(group)
                else:
                    group.dead = True
        for entry in finished:
            activity = entry[3]
            index = entry[4] + 1
            if index == len(activity._stages):
                self._transfer_end(activity, now)
            else:
                self._next_stage(activity, index, now)

    def _start_fifo(self, now: float) -> None:
        servers = sorted(self._kick_servers, key=lambda s: s.index)
        self._kick_servers.clear()
        for server in servers:
            if server.busy or not server.queue:
                continue
            _, tag, _, activity, index = heapq.heappop(server.queue)
            server.busy = True
            self._link_up(server.link, now)
            self._push(now + activity.nbytes / server.capacity, tag, _FIFO_DONE, activity, index)

    def _fifo_done(self, activity: Activity, index: int, now: float) -> None:
        stage = activity._stages[index]
        server = stage.server
        server.busy = False
        self._link_down(server.link, now)
        self._kick_servers.add(server)
        if stage.latency > 0:
            self._push(now + stage.latency, activity.tag, _STAGE_DONE, activity, index)
        else:
            self._next_stage(activity, index + 1, now)

    def _transfer_end(self, activity: Activity, now: float) -> None:
        activity.end = now
        if now > self.end:
            self.end = now
        plan = activity._plan
        plan.bytes += activity.nbytes
        plan.count += 1
        self._log.append((now, _T_END, activity.tag, activity.where, activity.nbytes))
        if activity._dependents:
            self._release(activity, now)
        if activity.on_done is not None:
            activity.on_done(activity)

    def _finished(self, activity: Activity, now: float) -> None:
        if activity._dependents:
            self._release(activity, now)
        if activity.on_done is not None:
            activity.on_done(activity)

    def _release(self, activity: Activity, now: float) -> None:
        """Start what waited for ``activity`` and nothing else."""
        dependents = activity._dependents
        if dependents:
            activity._dependents = None
            for dep in dependents:
                dep._waiting -= 1
                if dep._waiting == 0:
                    when = dep.start_at if dep.start_at > now else now
                    dep.start_at = when
                    if dep.kind == "transfer":
                        self._ready_transfer(dep, when)
                    else:
                        self._push(when, dep.tag, _COMPUTE_READY, dep, None)

    def _link_up(self, link: int, now: float) -> None:
        if self._link_active[link] == 0:
            self._link_since[link] = now
        self._link_active[link] += 1

    def _link_down(self, link: int, now: float) -> None:
        self._link_active[link] -= 1
        if self._link_active[link] == 0:
            self._link_busy[link] += now - self._link_since[link]

    # -- the max-min solver ----------------------------------------------

    def _solve(self, now: float) -> None:
        """After a batch of events: new levels for groups whose structure may hold, and a
        solve from scratch for every component connected to a touched resource or whose
        structure broke; then one pending event per group (its earliest completion)."""
        stats = self.solver_stats
        stats["solves"] += 1
        touched = self._touched
        res_classes = self._res_classes
        # Groups reached from a touched resource are solved from scratch anyway.
        for r in touched:
            for cls in res_classes[r]:
                if cls.round is not None:
                    cls.round.group.dead = True
        if self._dirty:
            dirty = sorted(self._dirty, key=_by_key) if len(self._dirty) > 1 else self._dirty
            for group in dirty:
                if not group.dead:
                    if self._relevel(group, now):
                        stats["relevels"] += 1
                    else:
                        group.dead = True
                        touched.update(group.resources)
            self._dirty.clear()
        if not touched:
            return
        starts = sorted(touched)
        touched.clear()
        self._mark += 1
        mark = self._mark
        seen: set[int] = set()
        for start in starts:
            if start in seen:
                continue
            seen.add(start)
            component: list[_FlowClass] = []
            resources = [start]
            stack = [start]
            while stack:
                for cls in res_classes[stack.pop()]:
                    if cls.mark != mark:
                        cls.mark = mark
                        component.append(cls)
                        for r, _ in cls.terms:
                            if r not in seen:
                                seen.add(r)
                                stack.append(r)
                                resources.append(r)
                        # A group may hold parts that are no longer connected (a class that
                        # joined them left): solving any of it solves all of it, so that no
                        # class is left in a group that is gone.
                        rnd = cls.round
                        if rnd is not None and rnd.group.mark != mark:
                            rnd.group.mark = mark
                            for r in rnd.group.resources:
                                if r not in seen:
                                    seen.add(r)
                                    stack.append(r)
                                    resources.append(r)
            if component:
                stats["components"] += 1
                stats["classes"] += len(component)
                self._fill(component, resources, now)

    def _relevel(self, group: _Group, now: float) -> bool:
        """New levels for ``group``'s rounds, keeping which classes each round holds and the
        order of the rounds; False (and no change) when that structure no longer holds.

        The structure holds when the levels still rise round after round and no resource is
        loaded beyond its capacity: then every class still has a bottleneck (its round's
        resource, saturated, where no class has a higher level; or its bound), which is what
        makes an allocation max-min fair.
        """
        cap = self._cap
        rounds = group.rounds
        if len(rounds) == 1:
            # One round (a lone class, or classes held by one shared bottleneck): it only has
            # to stay within every capacity.
            rnd = rounds[0]
            r = rnd.resource
            weights = rnd.weights
            level = cap[r] / weights[r] if r >= 0 else rnd.bound_level
            if level > rnd.cap_level * _LOADABLE:
                return False
            tight = rnd.tight
            if tight == -2:
                inv_cap = self._inv_cap
                tight, ratio = -1, 0.0
                for r2, w in weights.items():
                    if r2 != r and w * inv_cap[r2] > ratio:
                        tight, ratio = r2, w * inv_cap[r2]
                rnd.tight, rnd.tight_ratio = tight, ratio
            if tight >= 0 and level * weights[tight] > cap[tight] * _LOADABLE:
                return False
            V = rnd.V = rnd.V + rnd.level * (now - rnd.last)
            rnd.last = now
            rnd.level = level
            head = rnd.single
            if head is None:
                head = self._round_head(rnd)
            self._versions += 1
            group.version = self._versions
            self._seq += 1
            t = now + (head.vt - V) / level
            heapq.heappush(self._heap, (t if t > now else now, head.heap[0][1], self._seq,
                                        _FLOW_END, head, group.version))
            return True
        elif not self._levels(group):
            # The rounds may only have changed places: try once more in the order of the levels
            # just found before solving from scratch.
            rounds.sort(key=_by_next_level)
            if not self._levels(group):
                return False
        first_time = _INF
        first: _FlowClass | None = None
        for rnd in rounds:
            V = rnd.V + rnd.level * (now - rnd.last)
            rnd.V = V
            rnd.last = now
            level = rnd.level = rnd.next_level
            head = rnd.single
            if head is None:
                head = self._round_head(rnd)
            t = now + (head.vt - V) / level
            if t < first_time or (t == first_time and first is not None
                                  and head.heap[0][1] < first.heap[0][1]):
                first_time = t
                first = head
        if first is None:  # every completion at an infinite (or NaN) time
            raise _overflow(None)
        self._versions += 1
        group.version = self._versions
        self._seq += 1
        heapq.heappush(self._heap, (first_time if first_time > now else now, first.heap[0][1],
                                    self._seq, _FLOW_END, first, group.version))
        return True

    def _levels(self, group: _Group) -> bool:
        """Each round's ``next_level`` in list order, each saturating its resource with what
        the rounds before it left; True when that is a max-min fair allocation.

        It is when no resource is loaded beyond its capacity (so no later round crosses an
        earlier round's saturated resource), no round's level is below that of an earlier
        round sharing its resource (so every class's round resource is a bottleneck where no
        class has a higher level), and no bounded class is lifted past its bound.
        """
        cap, rem, top = self._cap, self._rem, self._top
        resources = group.resources
        for r in resources:
            rem[r] = cap[r]
            top[r] = 0.0
        good = True
        for rnd in group.rounds:
            r = rnd.resource
            if r >= 0:
                level = rem[r] / rnd.weights[r]
                if level < top[r] * _STILL_ORDERED:
                    good = False
            else:
                level = rnd.bound_level
            if level <= 0.0 or level > rnd.cap_level * _LOADABLE:
                good = False
            for r, w in rnd.weights.items():
                rem[r] -= level * w
                if level > top[r]:
                    top[r] = level
            rnd.next_level = level
        if good:
            for r in resources:
                if rem[r] < -_OVERLOAD * cap[r]:
                    return False
        return good

    @staticmethod
    def _round_head(rnd: _Round) -> _FlowClass:
        """The member of ``rnd`` whose earliest flow completes first (ties: tag)."""
        heap = rnd.heap
        while True:  # drop entries a later vt replaced, or of classes that left
            _, _, seq, head = heap[0]
            if head.vtseq == seq and head.round is rnd:
                return head
            heapq.heappop(heap)

    def _fill(self, component: list[_FlowClass], resources: list[int], now: float) -> None:
        """Progressive filling (water-filling) over one connected component of classes, from
        scratch; the rounds it goes through become the component's new group.

        Each resource's level is its remaining capacity over the weighted count of flows not yet
        fixed on it; the lowest level (or a class's own bound, if lower) fixes the rates of the
        classes it limits, whose use is taken off every other resource they cross; repeat.
        The walks follow the component's order, which depends on the fabric only, so rounding
        is the same whatever order the flows came in.
        """
        cap, rem, wt, cnt = self._cap, self._rem, self._wt, self._cnt
        for r in resources:
            rem[r] = cap[r]
            wt[r] = 0.0
            cnt[r] = 0
        bounded = None
        group = _Group(resources)
        for cls in component:
            old = cls.round
            if old is not None:  # carry the byte counter over to the new round
                cls.Wa += (old.V + old.level * (now - old.last) - cls.Va) / cls.penalty
                old.group.dead = True
            cls.Va = 0.0
            cls.round = None  # not fixed yet
            w = cls.n / cls.penalty
            for r, coef in cls.terms:
                wt[r] += w * coef
                cnt[r] += 1
            if cls.bound < _INF:
                if bounded is None:
                    bounded = []
                bounded.append(cls)
        res_classes = self._res_classes
        rounds = group.rounds
        left = len(component)
        while left:
            level = _INF
            best = -1
            for r in resources:
                if cnt[r]:
                    lvl = rem[r] / wt[r]
                    if lvl < level:
                        level = lvl
                        best = r
            fix = None
            if bounded is not None:
                for cls in bounded:
                    if cls.round is None and cls.bound * cls.penalty < level:
                        level = cls.bound * cls.penalty
                        fix = [cls]
                if fix is not None:
                    best = -1
            if fix is None:
                fix = [cls for cls in res_classes[best] if cls.round is None]
            rnd = _Round(fix, best, level, now, group)
            rounds.append(rnd)
            weights = rnd.weights
            for cls in fix:
                cls.round = rnd
                left -= 1
                w = cls.n / cls.penalty
                for r, coef in cls.terms:
                    rem[r] -= w * coef * level
                    wt[r] -= w * coef
                    cnt[r] -= 1
                    weights[r] = weights.get(r, 0.0) + w * coef
                head = cls.heap[0]
                vt = cls.vt = (head[0] - cls.Wa) * cls.penalty
                if rnd.single is None:
                    cls.vtseq += 1
                    rnd.heap.append((vt, head[1], cls.vtseq, cls))
            heapq.heapify(rnd.heap)
        # One pending event per group: its earliest completion.
        first_time = _INF
        first: _FlowClass | None = None
        for rnd in rounds:
            head = rnd.single or rnd.heap[0][3]
            t = now + head.vt / rnd.level
            if t < first_time or (t == first_time and first is not None
                                  and head.heap[0][1] < first.heap[0][1]):
                first_time = t
                first = head
        if first is None:  # every completion at an infinite (or NaN) time
            raise _overflow(None)
        self._versions += 1
        group.version = self._versions
        self._seq += 1
        heapq.heappush(self._heap, (first_time if first_time > now else now, first.heap[0][1],
                                    self._seq, _FLOW_END, first, group.version))

    # -- computes --------------------------------------------------------

    def _compute_ready(self, activity: Activity, now: float) -> None:
        comp = activity._component
        assert comp is not None
        self._seq += 1
        heapq.heappush(comp.queue, (now, activity.tag, self._seq, activity))
        self._kick_components.add(comp)

    def _start_computes(self, now: float) -> None:
        comps = sorted(self._kick_components, key=lambda c: c.index)
        self._kick_components.clear()
        for comp in comps:
            queue = comp.queue
            # Strict arrival order: the head waits for its lanes even if a later tile would fit.
            while queue and queue[0][3].lanes <= comp.free:
                activity = heapq.heappop(queue)[3]
                if comp.free == comp.profile.lanes:
                    comp.busy_since = now
                comp.free -= activity.lanes
                activity.start = now
                self._log.append((now, _C_START, activity.tag, comp.name, activity.nbytes))
                self._push(now + activity.duration, activity.tag, _COMPUTE_END, activity, None)

    def _compute_end(self, activity: Activity, now: float) -> None:
        comp = activity._component
        assert comp is not None
        comp.free += activity.lanes
        if comp.free == comp.profile.lanes:
            comp.busy_s += now - comp.busy_since
        comp.lane_s += activity.lanes * activity.duration
        comp.tiles += 1
        comp.ops += activity.ops
        comp.nbytes += activity.nbytes
        activity.end = now
        if now > self.end:
            self.end = now
        self._log.append((now, _C_END, activity.tag, comp.name, activity.nbytes))
        self._kick_components.add(comp)
        self._finished(activity, now)

    # ------------------------------------------------------------------
    # Results
    # ------------------------------------------------------------------

    def events(self) -> list[TimelineEvent]:
        """The event log, sorted by (time, kind, tag): transfer starts and ends, compute starts
        and ends."""
        return [TimelineEvent(t, LOG_KINDS[k], tag, where, nbytes)
                for t, k, tag, where, nbytes in sorted(self._log)]

    @property
    def event_count(self) -> int:
        """How many events the log holds (without building it)."""
        return len(self._log)

    def report(self) -> dict[str, Any]:
        """The modelled numbers of the run so far.

        ``virtual_s`` is the latest completion.  Per link: ``bytes`` moved, ``transfers``,
        ``busy_s`` (time with at least one transfer transmitting on it: latency does not count),
        ``bandwidth`` (achieved: bytes / busy_s, bytes/s) and ``utilisation`` (bytes over what
        the nominal bandwidth could have moved in ``virtual_s``).  Per component: ``tiles``,
        ``ops``, ``bytes``, ``busy_s`` (time with at least one lane busy), ``utilisation``
        (busy_s / virtual_s) and ``lane_utilisation`` (lane-seconds used over lanes x
        virtual_s).
        """
        span = self.end
        link_bytes = [0] * len(self.links)
        link_transfers = [0] * len(self.links)
        for plan in self._all_plans:
            for i in plan.links:
                link_bytes[i] += plan.bytes
                link_transfers[i] += plan.count
        links: dict[str, dict[str, Any]] = {}
        for i, link in enumerate(self.links):
            busy = self._link_busy[i]
            if self._link_active[i]:
                busy += self.now - self._link_since[i]
            nbytes = link_bytes[i]
            links[link.name] = {
                "between": [link.a, link.b],
                "profile": link.profile.name,
                "model": self.link_models[i].name,
                "bytes": nbytes,
                "transfers": link_transfers[i],
                "busy_s": busy,
                "bandwidth": nbytes / busy if busy > 0 else 0.0,
                "utilisation": nbytes / (link.profile.bandwidth * span) if span > 0 else 0.0,
            }
        components: dict[str, dict[str, Any]] = {}
        for name, comp in self.components.items():
            busy = comp.busy_s
            if comp.free < comp.profile.lanes:
                busy += self.now - comp.busy_since
            components[name] = {
                "profile": comp.profile.name,
                "lanes": comp.profile.lanes,
                "tiles": comp.tiles,
                "ops": comp.ops,
                "bytes": comp.nbytes,
                "busy_s": busy,
                "utilisation": busy / span if span > 0 else 0.0,
                "lane_utilisation": (comp.lane_s / (comp.profile.lanes * span)
                                     if span > 0 else 0.0),
            }
        return {"virtual_s": span, "events": len(self._log), "links": links,
                "components": components}


def _by_order(cls: _FlowClass) -> tuple[int, Any]:
    return cls.order


def _by_key(group: _Group) -> int:
    return group.key


def _by_next_level(rnd: _Round) -> float:
    return rnd.next_level
