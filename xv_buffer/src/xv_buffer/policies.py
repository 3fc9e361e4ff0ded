"""Page eviction policies: lru, lfu, fifo, clock, arc, s3fifo and belady.

A policy tracks which keys (pages, or UVM migration blocks) are resident in a
cache of ``capacity`` slots and chooses the victim when a slot is needed.  The
contract is :class:`xv_core.runtime.interfaces.EvictionPolicy`; two ways to
drive one:

* the pager makes the moves itself: ``key in policy`` to test residency,
  :meth:`~EvictionPolicy.hit` on a hit (:meth:`~EvictionPolicy.hit_many` for a run of
  them), :meth:`~EvictionPolicy.miss` when a key
  is about to be admitted (ghost lists learn from it),
  :meth:`~EvictionPolicy.evict` to choose and forget a victim that is not
  pinned, :meth:`~EvictionPolicy.insert` to admit the key and
  :meth:`~EvictionPolicy.remove` when a buffer is freed;
* trace replay calls :meth:`~EvictionPolicy.replay` with the whole sequence
  of keys.  Every policy here has a dedicated loop for it, in C
  (``_replay.c``, compiled on first use: tens of millions of accesses per
  second) and in Python (one function, its state in local variables: the
  fallback without a C compiler); :meth:`~EvictionPolicy.access` runs the
  pager methods one access at a time.  All three must agree, and the tests
  check that they do.

The algorithms follow libCacheSim's implementations (``1a1a11a/libCacheSim``,
``libCacheSim/cache/eviction/*.c``), against which the tests compare miss
counts:

* ``lfu`` evicts the least frequently used key, the oldest to reach that
  frequency first; a key's count is forgotten when it is evicted;
* ``clock`` is second chance with one reference bit, clear on admission;
* ``arc`` is Megiddo and Modha's ARC; its target size ``p`` of T1 is a real
  number adapted by ``max(|B2| / |B1|, 1)`` (and the mirror), as in the paper
  and libCacheSim;
* ``s3fifo`` is Yang et al.'s S3-FIFO as libCacheSim's ``S3FIFO.c`` has it: a
  small FIFO of 10 % of the capacity, a main FIFO with a two-bit clock, a ghost
  FIFO of 90 % of the capacity; keys reaching two hits in the small queue move
  to main; until the first eviction, keys go straight to main once the small
  queue is full.  libCacheSim admits nothing into a small queue of one slot or
  less (capacities under 20); here the small queue has at least one slot, so
  every policy admits every missing key;
* ``belady`` is the offline optimum (evict the key whose next use is furthest
  away).  It needs the future, so it only replays recorded traces.

A pinned key (a page a running tile uses) is never evicted: ``evict`` passes
over it as if it had just been used, and returns None when every resident key
is pinned.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from collections.abc import Container, Hashable, Iterable, Sequence
from functools import partial
from itertools import filterfalse, groupby, islice, repeat, takewhile
from operator import contains, itemgetter
from typing import Any

import numpy as np

from xv_core.errors import XvError

#: The pinned set of a policy driven by replay: nothing is pinned.
NOTHING: frozenset[Hashable] = frozenset()

#: Next use of a key that is never used again (later than any position in a trace).
NEVER = 1 << 62


class EvictionPolicy:
    """Common interface and bookkeeping of every policy.

    Subclasses implement :meth:`hit`, :meth:`insert`, :meth:`evict`,
    :meth:`remove`, ``__contains__`` and ``__len__`` (and :meth:`miss` when
    they learn from misses), and may override :meth:`replay` with a fast loop.
    """

    name = "?"
    #: True for a policy that needs the future (it can only replay whole traces).
    offline = False

    def __init__(self, capacity: int):
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) \
                or capacity < 1:
            raise XvError(f"an eviction policy needs a capacity of at least 1 page, "
                          f"got {capacity!r}", where=f"eviction policy {self.name!r}")
        self.capacity = int(capacity)
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.last_victim: Hashable | None = None

    # -- what a policy decides ---------------------------------------------------------
    def hit(self, key: Hashable) -> None:
        """Record an access to resident ``key``."""
        raise NotImplementedError

    def hit_many(self, keys: Iterable[Hashable]) -> None:
        """:meth:`hit` each of ``keys`` in order (all resident): one call for a run of hits,
        which a policy may do faster than one call each (optional for third parties)."""
        hit = self.hit
        for key in keys:
            hit(key)

    def miss(self, key: Hashable) -> None:
        """``key`` is not resident and is about to be admitted (after any eviction)."""

    def evict(self, pinned: Container[Hashable] = NOTHING) -> Hashable | None:
        """Choose a resident key not in ``pinned``, forget it and return it; None when
        every resident key is pinned (or none is resident)."""
        raise NotImplementedError

    def insert(self, key: Hashable) -> None:
        """Admit ``key``, which is not resident; the caller has made room."""
        raise NotImplementedError

    def remove(self, key: Hashable) -> None:
        """Forget resident ``key`` without counting an eviction (its buffer was freed)."""
        raise NotImplementedError

    def __contains__(self, key: object) -> bool:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    # -- driving it from a trace -------------------------------------------------------
    def access(self, key: Hashable) -> bool:
        """One access: True on a hit.  On a miss the key is admitted, evicting
        the policy's victim first when the cache is full (kept in ``last_victim``)."""
        if key in self:
            self.hits += 1
            self.hit(key)
            self.last_victim = None
            return True
        self.misses += 1
        self.miss(key)
        victim = None
        if len(self) >= self.capacity:
            victim = self.evict()
            if victim is not None:
                self.evictions += 1
        self.last_victim = victim
        self.insert(key)
        return False

    def replay(self, keys: Sequence[Hashable] | np.ndarray) -> int:
        """Run a whole trace through this (fresh) policy; return the number of misses.

        Counts hits, misses and evictions.  The policy's resident set afterwards
        is unspecified: use a fresh policy for each replay.
        """
        done = None
        if isinstance(keys, np.ndarray) and keys.ndim == 1 and keys.dtype.kind in "iu" \
                and type(self) in _COMPILED:
            from xv_buffer import native

            done = native.replay(self.name, keys, self.capacity, **self._compiled_params())
        if done is None:
            keys = keys.tolist() if isinstance(keys, np.ndarray) else keys
            done = self._replay(keys)
        misses, resident = done
        self.hits += len(keys) - misses
        self.misses += misses
        self.evictions += max(0, misses - resident)
        return misses

    def _compiled_params(self) -> dict[str, int]:
        """Extra parameters of the policy's compiled loop (see :mod:`xv_buffer.native`)."""
        return {}

    def _replay(self, keys: Sequence[Hashable]) -> tuple[int, int]:
        """(misses, resident keys at the end): the generic loop, one access at a time."""
        access = self.access
        misses = 0
        for key in keys:
            if not access(key):
                misses += 1
        self.hits -= len(keys) - misses  # replay() counts them once more
        self.misses -= misses
        self.evictions = 0
        return misses, len(self)

    def stats(self) -> dict[str, int | float]:
        accesses = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses, "evictions": self.evictions,
                "miss_ratio": self.misses / accesses if accesses else 0.0}

    def _missing(self, key: Hashable) -> XvError:
        return XvError(f"page {key!r} is not resident", where=f"eviction policy {self.name!r}")


# ----------------------------------------------------------------------------------------
# lru and fifo
# ----------------------------------------------------------------------------------------


class LRU(EvictionPolicy):
    """Least recently used: the victim is the key whose last access is oldest."""

    name = "lru"

    def __init__(self, capacity: int):
        super().__init__(capacity)
        # Oldest access first; a hit moves the key to the end.
        self._order: OrderedDict[Hashable, None] = OrderedDict()

    def hit(self, key: Hashable) -> None:
        try:
            self._order.move_to_end(key)
        except KeyError:
            raise self._missing(key) from None

    def hit_many(self, keys: Iterable[Hashable]) -> None:
        try:
            deque(map(self._order.move_to_end, keys), maxlen=0)  # the loop runs in C
        except KeyError as exc:  # the hits before it are done, as hit() one by one
            raise self._missing(exc.args[0]) from None

    def insert(self, key: Hashable) -> None:
        self._order[key] = None

    def evict(self, pinned: Container[Hashable] = NOTHING) -> Hashable | None:
        order = self._order
        if not order:
            return None
        # The pinned keys before the victim go to the end, in order: in use now, as if just
        # accessed.  (Every key pinned: a whole turn, which leaves the order as it was.)
        try:
            pinned_has = pinned.__contains__
        except AttributeError:  # `in` by iteration (or the error `in` gives)
            pinned_has = partial(contains, pinned)
        passed = list(takewhile(pinned_has, order))  # the scan runs in C
        if len(passed) == len(order):
            return None
        victim = next(islice(order, len(passed), None))
        deque(map(order.move_to_end, passed), maxlen=0)
        del order[victim]
        return victim

    def remove(self, key: Hashable) -> None:
        try:
            del self._order[key]
        except KeyError:
            raise self._missing(key) from None

    def __contains__(self, key: object) -> bool:
        return key in self._order

    def __len__(self) -> int:
        return len(self._order)

    def _replay(self, keys: Sequence[Hashable]) -> tuple[int, int]:
        order: OrderedDict[Hashable, None] = OrderedDict()
        to_end, pop = order.move_to_end, order.popitem
        cap, size, misses = self.capacity, 0, 0
        for key in keys:
            if key in order:
                to_end(key)
            else:
                misses += 1
                if size >= cap:
                    pop(False)
                else:
                    size += 1
                order[key] = None
        return misses, size


class FIFO(LRU):
    """First in, first out: the victim is the key admitted longest ago; hits change nothing.

    A pinned key is passed over and goes to the back of the queue."""

    name = "fifo"

    def hit(self, key: Hashable) -> None:
        if key not in self._order:
            raise self._missing(key)

    def hit_many(self, keys: Iterable[Hashable]) -> None:
        # Hits change nothing; a key that is not resident is refused, as by hit().
        for key in filterfalse(self._order.__contains__, keys):
            raise self._missing(key)

    def _replay(self, keys: Sequence[Hashable]) -> tuple[int, int]:
        order: dict[Hashable, None] = {}
        queue: list[Hashable] = []  # admission order; queue[head] is the oldest
        cap, head, misses = self.capacity, 0, 0
        for key in keys:
            if key not in order:
                misses += 1
                if len(order) >= cap:
                    del order[queue[head]]
                    head += 1
                order[key] = None
                queue.append(key)
        return misses, len(order)


# ----------------------------------------------------------------------------------------
# clock
# ----------------------------------------------------------------------------------------


class Clock(EvictionPolicy):
    """Second chance: a hit sets a key's reference bit; the hand clears set bits and
    evicts the first key whose bit is clear.  New keys start with the bit clear."""

    name = "clock"

    def __init__(self, capacity: int):
        super().__init__(capacity)
        # Oldest first (the hand's position); value: the reference bit.
        self._ring: OrderedDict[Hashable, int] = OrderedDict()

    def hit(self, key: Hashable) -> None:
        if key not in self._ring:
            raise self._missing(key)
        self._ring[key] = 1  # assigning an existing key keeps its place

    def hit_many(self, keys: Iterable[Hashable]) -> None:
        ring = self._ring
        for key in keys:  # (faster than ring.update: OrderedDict's goes key by key too)
            if key not in ring:  # (assigning would admit it)
                raise self._missing(key)
            ring[key] = 1

    def insert(self, key: Hashable) -> None:
        self._ring[key] = 0

    def evict(self, pinned: Container[Hashable] = NOTHING) -> Hashable | None:
        ring = self._ring
        # Every key is looked at most twice: once to clear its bit, once more to take it.
        for _ in range(2 * len(ring)):
            key, bit = ring.popitem(last=False)
            if bit or key in pinned:
                ring[key] = 0
                continue
            return key
        return None

    def remove(self, key: Hashable) -> None:
        try:
            del self._ring[key]
        except KeyError:
            raise self._missing(key) from None

    def __contains__(self, key: object) -> bool:
        return key in self._ring

    def __len__(self) -> int:
        return len(self._ring)

    def _replay(self, keys: Sequence[Hashable]) -> tuple[int, int]:
        ring: OrderedDict[Hashable, int] = OrderedDict()
        get, pop = ring.get, ring.popitem
        cap, misses = self.capacity, 0
        for key in keys:
            bit = get(key)
            if bit is not None:
                if not bit:
                    ring[key] = 1
                continue
            misses += 1
            if len(ring) >= cap:
                while True:
                    victim, vbit = pop(False)
                    if not vbit:
                        break
                    ring[victim] = 0
            ring[key] = 0
        return misses, len(ring)


# ----------------------------------------------------------------------------------------
# lfu
# ----------------------------------------------------------------------------------------


class LFU(EvictionPolicy):
    """Least frequently used; among keys of equal count, the one that reached it first.

    Counts start at 1 on admission and are forgotten on eviction.  O(1) per
    access: one FIFO bucket per count, and the lowest non-empty count is tracked.
    """

    name = "lfu"

    def __init__(self, capacity: int):
        super().__init__(capacity)
        self._freq: dict[Hashable, int] = {}
        self._buckets: dict[int, OrderedDict[Hashable, None]] = {1: OrderedDict()}
        self._min = 1

    def _bucket(self, count: int) -> OrderedDict[Hashable, None]:
        bucket = self._buckets.get(count)
        if bucket is None:
            bucket = self._buckets[count] = OrderedDict()
        return bucket

    def _unlink(self, key: Hashable) -> int:
        count = self._freq.pop(key)
        bucket = self._buckets[count]
        del bucket[key]
        if not bucket and count != 1:
            del self._buckets[count]
        return count

    def hit(self, key: Hashable) -> None:
        if key not in self._freq:
            raise self._missing(key)
        count = self._unlink(key)
        self._bucket(count + 1)[key] = None
        self._freq[key] = count + 1
        if count == self._min and not self._buckets.get(count):
            self._min = count + 1

    def hit_many(self, keys: Iterable[Hashable]) -> None:
        """:meth:`hit` on each key in order, a stretch of keys of one count at a time: each
        stretch leaves its bucket and joins the next count's at its end, in order, as one hit
        each would (the bucket and count updates run in C).  Only the order of the keys that
        join the same bucket matters, and those come from the same count: the stretches go
        in ascending count, each key's order kept.  The counts' own dict, which only answers
        lookups, keeps the key objects and the order it had."""
        if type(self).hit is not LFU.hit:  # a subclass's own hit() sees every key
            return super().hit_many(keys)
        if not isinstance(keys, range):
            keys = list(keys)
            try:
                repeated = len(set(keys)) != len(keys)  # a second hit sees the first
            except TypeError:  # an unhashable key: the hits before it, then the error
                repeated = True
            if repeated:
                return super().hit_many(keys)
        try:
            counts = list(map(self._freq.__getitem__, keys))
        except KeyError:  # not resident: the hits before it, then the error
            return super().hit_many(keys)
        if counts and counts.count(counts[0]) == len(counts):
            self._hit_stretch(keys, counts[0])
        else:
            pairs = sorted(zip(keys, counts), key=itemgetter(1))  # stable: keys keep order
            for count, stretch in groupby(pairs, key=itemgetter(1)):
                self._hit_stretch(list(map(itemgetter(0), stretch)), count)

    def _hit_stretch(self, keys: Sequence[Hashable], count: int) -> None:
        """Hits on distinct resident ``keys``, each of ``count`` (:meth:`hit_many`)."""
        buckets = self._buckets
        bucket = buckets[count]
        deque(map(bucket.__delitem__, keys), maxlen=0)
        if not bucket and count != 1:
            del buckets[count]
        up = buckets.get(count + 1)
        if up is None:
            buckets[count + 1] = OrderedDict.fromkeys(keys)
        else:
            deque(map(up.setdefault, keys), maxlen=0)  # appended in order
        self._freq.update(zip(keys, repeat(count + 1)))
        if count == self._min and not buckets.get(count):
            self._min = count + 1

    def insert(self, key: Hashable) -> None:
        self._buckets[1][key] = None
        self._freq[key] = 1
        self._min = 1

    def evict(self, pinned: Container[Hashable] = NOTHING) -> Hashable | None:
        if not self._freq:
            return None
        for count in sorted(c for c, b in self._buckets.items() if b and c >= self._min):
            for key in self._buckets[count]:
                if key not in pinned:
                    self._unlink(key)
                    self._reset_min()
                    return key
        return None

    def _reset_min(self) -> None:
        self._min = min((c for c, b in self._buckets.items() if b), default=1)

    def remove(self, key: Hashable) -> None:
        if key not in self._freq:
            raise self._missing(key)
        self._unlink(key)
        self._reset_min()

    def __contains__(self, key: object) -> bool:
        return key in self._freq

    def __len__(self) -> int:
        return len(self._freq)

    def _replay(self, keys: Sequence[Hashable]) -> tuple[int, int]:
        freq: dict[Hashable, int] = {}
        one: OrderedDict[Hashable, None] = OrderedDict()
        buckets: dict[int, OrderedDict[Hashable, None]] = {1: one}
        get = freq.get
        cap, low, misses = self.capacity, 1, 0
        for key in keys:
            count = get(key)
            if count is not None:
                bucket = buckets[count]
                del bucket[key]
                up = count + 1
                nxt = buckets.get(up)
                if nxt is None:
                    nxt = buckets[up] = OrderedDict()
                nxt[key] = None
                freq[key] = up
                if count == low and not bucket:
                    low = up
                continue
            misses += 1
            if len(freq) >= cap:
                victim, _ = buckets[low].popitem(False)
                del freq[victim]
            one[key] = None
            freq[key] = 1
            low = 1
        return misses, len(freq)


# ----------------------------------------------------------------------------------------
# arc
# ----------------------------------------------------------------------------------------


class ARC(EvictionPolicy):
    """Adaptive replacement cache (Megiddo and Modha, FAST 2003).

    T1 holds keys seen once recently, T2 keys seen at least twice; B1 and B2
    remember keys recently evicted from each (ghosts, at most ``capacity``
    more keys).  A miss that finds its key in B1 grows the target size ``p``
    of T1, one found in B2 shrinks it.
    """

    name = "arc"

    def __init__(self, capacity: int):
        super().__init__(capacity)
        # Each list: least recent first.
        self._t1: OrderedDict[Hashable, None] = OrderedDict()
        self._t2: OrderedDict[Hashable, None] = OrderedDict()
        self._b1: OrderedDict[Hashable, None] = OrderedDict()
        self._b2: OrderedDict[Hashable, None] = OrderedDict()
        self.p = 0.0
        self._ghost = 0  # the admitted key's ghost list: 0 none, 1 B1, 2 B2
        self._pending_replace = False

    def hit(self, key: Hashable) -> None:
        if key in self._t1:
            del self._t1[key]
            self._t2[key] = None
        elif key in self._t2:
            self._t2.move_to_end(key)
        else:
            raise self._missing(key)

    def hit_many(self, keys: Iterable[Hashable]) -> None:
        t1, t2 = self._t1, self._t2
        to_end = t2.move_to_end
        try:
            for key in keys:  # resident: in T1, else in T2
                if key in t1:
                    del t1[key]
                    t2[key] = None
                else:
                    to_end(key)
        except KeyError as exc:
            raise self._missing(exc.args[0]) from None

    def miss(self, key: Hashable) -> None:
        cap = self.capacity
        self._ghost = 0
        if key in self._b1:
            self.p = min(self.p + max(len(self._b2) / len(self._b1), 1.0), cap)
            del self._b1[key]
            self._ghost = 1
        elif key in self._b2:
            self.p = max(self.p - max(len(self._b1) / len(self._b2), 1.0), 0.0)
            del self._b2[key]
            self._ghost = 2
        # A ghost hit replaces at once (as REPLACE in the paper); deferred to evict() so
        # that a cache with room (a freed buffer) evicts nothing.
        self._pending_replace = self._ghost != 0

    def _replace(self, pinned: Container[Hashable]) -> Hashable | None:
        t1, t2 = self._t1, self._t2
        from_t1 = bool(t1) and (len(t1) > self.p or (len(t1) == self.p and self._ghost == 2))
        first, second = ((t1, self._b1), (t2, self._b2)) if from_t1 or not t2 else \
            ((t2, self._b2), (t1, self._b1))
        for data, ghost in (first, second):
            key = _oldest_unpinned(data, pinned)
            if key is not None:
                ghost[key] = None
                return key
        return None

    def evict(self, pinned: Container[Hashable] = NOTHING) -> Hashable | None:
        cap = self.capacity
        t1, b1, t2, b2 = self._t1, self._b1, self._t2, self._b2
        if not t1 and not t2:
            return None
        if self._pending_replace:
            self._pending_replace = False
            return self._replace(pinned)
        if len(t1) + len(b1) >= cap:
            if len(t1) < cap:
                if b1:
                    b1.popitem(last=False)
                return self._replace(pinned)
            key = _oldest_unpinned(t1, pinned)  # T1 is the whole cache: no ghost kept
            return key if key is not None else _oldest_unpinned(t2, pinned)
        if len(t1) + len(b1) + len(t2) + len(b2) >= 2 * cap and b2:
            b2.popitem(last=False)
        return self._replace(pinned)

    def insert(self, key: Hashable) -> None:
        (self._t2 if self._ghost else self._t1)[key] = None
        self._ghost = 0
        self._pending_replace = False

    def remove(self, key: Hashable) -> None:
        for data in (self._t1, self._t2):
            if key in data:
                del data[key]
                return
        raise self._missing(key)

    def __contains__(self, key: object) -> bool:
        return key in self._t1 or key in self._t2

    def __len__(self) -> int:
        return len(self._t1) + len(self._t2)

    def _replay(self, keys: Sequence[Hashable]) -> tuple[int, int]:
        t1: OrderedDict[Hashable, None] = OrderedDict()
        t2: OrderedDict[Hashable, None] = OrderedDict()
        b1: OrderedDict[Hashable, None] = OrderedDict()
        b2: OrderedDict[Hashable, None] = OrderedDict()
        cap, p, misses = self.capacity, 0.0, 0

        def replace(p: float, in_b2: bool) -> None:
            if t1 and (len(t1) > p or (len(t1) == p and in_b2)) or not t2:
                b1[t1.popitem(False)[0]] = None
            else:
                b2[t2.popitem(False)[0]] = None

        for key in keys:
            if key in t1:
                del t1[key]
                t2[key] = None
                continue
            if key in t2:
                t2.move_to_end(key)
                continue
            misses += 1
            ghost = 0
            if key in b1:
                d = len(b2) / len(b1)
                p = min(p + (d if d > 1.0 else 1.0), cap)
                replace(p, False)
                del b1[key]
                ghost = 1
            elif key in b2:
                d = len(b1) / len(b2)
                p = max(p - (d if d > 1.0 else 1.0), 0.0)
                replace(p, True)
                del b2[key]
                ghost = 2
            elif len(t1) + len(t2) >= cap:
                if len(t1) + len(b1) >= cap:
                    if len(t1) < cap:
                        b1.popitem(False)
                        replace(p, False)
                    else:
                        t1.popitem(False)
                else:
                    if len(t1) + len(b1) + len(t2) + len(b2) >= 2 * cap:
                        b2.popitem(False)
                    replace(p, False)
            if ghost:
                t2[key] = None
            else:
                t1[key] = None
        return misses, len(t1) + len(t2)


def _oldest_unpinned(data: OrderedDict[Hashable, None],
                     pinned: Container[Hashable]) -> Hashable | None:
    """Remove and return the oldest key of ``data`` not in ``pinned``; pinned keys passed
    over become the most recent (they are in use)."""
    for _ in range(len(data)):
        key = next(iter(data))
        if key in pinned:
            data.move_to_end(key)
            continue
        del data[key]
        return key
    return None


# ----------------------------------------------------------------------------------------
# s3fifo
# ----------------------------------------------------------------------------------------


class S3FIFO(EvictionPolicy):
    """S3-FIFO (Yang et al., SOSP 2023): small, main and ghost FIFO queues.

    See the module docstring for the exact variant.  Frequencies count hits: a
    key evicted from the small queue with two or more hits moves to main (with
    its count reset), one evicted from main with at least one hit is reinserted
    with its count lowered (two-bit clock).
    """

    name = "s3fifo"
    SMALL = 0.10
    GHOST = 0.90
    PROMOTE = 2

    def __init__(self, capacity: int):
        super().__init__(capacity)
        self.small_capacity = max(1, int(self.capacity * self.SMALL))
        self.main_capacity = self.capacity - self.small_capacity
        self.ghost_capacity = int(self.capacity * self.GHOST)
        self._small: OrderedDict[Hashable, int] = OrderedDict()
        self._main: OrderedDict[Hashable, int] = OrderedDict()
        self._ghosts: OrderedDict[Hashable, None] = OrderedDict()
        self._has_evicted = False
        self._from_ghost = False

    def hit(self, key: Hashable) -> None:
        if key in self._small:
            self._small[key] += 1
        elif key in self._main:
            self._main[key] += 1
        else:
            raise self._missing(key)

    def hit_many(self, keys: Iterable[Hashable]) -> None:
        small, main = self._small, self._main
        try:
            for key in keys:  # resident: in the small queue, else in main
                if key in small:
                    small[key] += 1
                else:
                    main[key] += 1
        except KeyError as exc:
            raise self._missing(exc.args[0]) from None

    def miss(self, key: Hashable) -> None:
        self._from_ghost = key in self._ghosts
        if self._from_ghost:
            del self._ghosts[key]

    def insert(self, key: Hashable) -> None:
        if self._from_ghost or (not self._has_evicted
                                and len(self._small) >= self.small_capacity):
            self._main[key] = 0
        else:
            self._small[key] = 0
        self._from_ghost = False

    def evict(self, pinned: Container[Hashable] = NOTHING) -> Hashable | None:
        self._has_evicted = True
        # As libCacheSim: one pass evicts from main when it is over its share (or the small
        # queue is empty), else from small; a small pass that only promotes keys empties
        # the small queue, and the next pass then evicts from main.
        for _ in range(2):
            if not self._small and not self._main:
                return None
            if len(self._main) > self.main_capacity or not self._small:
                return self._evict_main(pinned)
            key = self._evict_small(pinned)
            if key is not None:
                return key
        return None

    def _evict_small(self, pinned: Container[Hashable]) -> Hashable | None:
        small, main = self._small, self._main
        while small:
            key, count = small.popitem(last=False)
            if count >= self.PROMOTE or key in pinned:
                main[key] = 0
                continue
            self._ghost(key)
            return key
        return None

    def _evict_main(self, pinned: Container[Hashable]) -> Hashable | None:
        main = self._main
        # A reinserted key's count drops to at most 2, so four rounds clear every count.
        for _ in range(4 * len(main) + 1):
            if not main:
                break
            key, count = main.popitem(last=False)
            if key in pinned:
                main[key] = count
            elif count >= 1:
                main[key] = min(count, 3) - 1
            else:
                return key
        return None

    def _compiled_params(self) -> dict[str, int]:
        return {"small": self.small_capacity, "ghost": self.ghost_capacity}

    def _ghost(self, key: Hashable) -> None:
        if self.ghost_capacity <= 0 or key in self._ghosts:
            return
        if len(self._ghosts) >= self.ghost_capacity:
            self._ghosts.popitem(last=False)
        self._ghosts[key] = None

    def remove(self, key: Hashable) -> None:
        for queue in (self._small, self._main):
            if key in queue:
                del queue[key]
                return
        raise self._missing(key)

    def __contains__(self, key: object) -> bool:
        return key in self._small or key in self._main

    def __len__(self) -> int:
        return len(self._small) + len(self._main)

    def _replay(self, keys: Sequence[Hashable]) -> tuple[int, int]:
        small: OrderedDict[Hashable, int] = OrderedDict()
        main: OrderedDict[Hashable, int] = OrderedDict()
        ghosts: OrderedDict[Hashable, None] = OrderedDict()
        cap, scap, mcap, gcap = (self.capacity, self.small_capacity, self.main_capacity,
                                 self.ghost_capacity)
        promote = self.PROMOTE
        sget, mget = small.get, main.get
        has_evicted, misses = False, 0
        for key in keys:
            count = sget(key)
            if count is not None:
                small[key] = count + 1
                continue
            from_ghost = key in ghosts
            if from_ghost:
                del ghosts[key]
            count = mget(key)
            if count is not None:
                main[key] = count + 1
                continue
            misses += 1
            while len(small) + len(main) >= cap:
                has_evicted = True
                if len(main) > mcap or not small:
                    while main:
                        victim, vcount = main.popitem(False)
                        if vcount < 1:
                            break
                        main[victim] = (vcount if vcount < 3 else 3) - 1
                else:
                    while small:
                        victim, vcount = small.popitem(False)
                        if vcount >= promote:
                            main[victim] = 0
                            continue
                        if gcap > 0 and victim not in ghosts:
                            if len(ghosts) >= gcap:
                                ghosts.popitem(False)
                            ghosts[victim] = None
                        break
            if from_ghost or (not has_evicted and len(small) >= scap):
                main[key] = 0
            else:
                small[key] = 0
        return misses, len(small) + len(main)


# ----------------------------------------------------------------------------------------
# belady
# ----------------------------------------------------------------------------------------


def next_uses(keys: np.ndarray) -> np.ndarray:
    """For each position of ``keys``, the position of the key's next access (NEVER if none)."""
    keys = np.asarray(keys)
    n = len(keys)
    nxt = np.full(n, NEVER, dtype=np.int64)
    if n < 2:
        return nxt
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    same = ordered[1:] == ordered[:-1]
    nxt[order[:-1][same]] = order[1:][same]
    return nxt


class Belady(EvictionPolicy):
    """The offline optimum (Belady's MIN): evict the key used again furthest in the future.

    It needs the whole trace, so it only replays: the pager methods raise
    :class:`~xv_core.errors.XvError`.  No policy has fewer misses on any trace.
    """

    name = "belady"
    offline = True

    def _offline(self) -> XvError:
        return XvError("belady needs the future accesses, so it only replays recorded traces",
                       where="eviction policy 'belady'",
                       hint="choose an online policy for vram.eviction (lru, arc, ...) and "
                            "compare against belady with `xv vram replay`")

    def hit(self, key: Hashable) -> None:
        raise self._offline()

    def evict(self, pinned: Container[Hashable] = NOTHING) -> Hashable | None:
        raise self._offline()

    def insert(self, key: Hashable) -> None:
        raise self._offline()

    def remove(self, key: Hashable) -> None:
        raise self._offline()

    def __contains__(self, key: object) -> bool:
        return False

    def __len__(self) -> int:
        return 0

    def access(self, key: Hashable) -> bool:
        raise self._offline()

    def replay(self, keys: Sequence[Hashable] | np.ndarray) -> int:
        array = keys if isinstance(keys, np.ndarray) else None
        if array is None or array.ndim != 1 or array.dtype.kind not in "iu":
            # Other hashable keys: number them first (the next-use pass sorts integers).
            ids: dict[Any, int] = {}
            array = np.array([ids.setdefault(k, len(ids)) for k in list(keys)], dtype=np.int64)
        return super().replay(array)

    def _replay(self, keys: Sequence[Hashable]) -> tuple[int, int]:
        n = len(keys)
        if n == 0:
            return 0, 0
        _, dense = np.unique(np.asarray(keys), return_inverse=True)
        nxt = next_uses(dense)
        # A key never used again gets next use n + i: unique, later than any real next use,
        # and ext[n + i] is still its key, so a heap entry is one plain int.
        never = nxt == NEVER
        nxt[never] = n + np.flatnonzero(never)
        ids = dense.tolist()
        ext = ids + ids
        current = [-1] * (int(dense.max()) + 1)  # each cached key's next use; -1: not cached
        heap: list[int] = []  # -next use; stale entries are skipped
        push, pop = heapq.heappush, heapq.heappop
        cap, size, misses = self.capacity, 0, 0
        for key, upcoming in zip(ids, nxt.tolist()):
            if current[key] < 0:
                misses += 1
                if size >= cap:
                    while True:
                        at = -pop(heap)
                        victim = ext[at]
                        if current[victim] == at:
                            current[victim] = -1
                            break
                else:
                    size += 1
            current[key] = upcoming
            push(heap, -upcoming)
        return misses, size


#: Policies whose replay loop also exists compiled (``_replay.c``); subclasses are not in it.
_COMPILED: frozenset[type[EvictionPolicy]] = frozenset({LRU, FIFO, Clock, LFU, ARC, S3FIFO,
                                                        Belady})

#: The policies this distribution ships, by the name a fabric's ``vram.eviction`` uses.
POLICIES: dict[str, type[EvictionPolicy]] = {
    cls.name: cls for cls in (LRU, LFU, FIFO, Clock, ARC, S3FIFO, Belady)
}
