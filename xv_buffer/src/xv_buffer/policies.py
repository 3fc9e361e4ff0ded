"""Page eviction policies.

A policy tracks which keys (pages) are resident in a cache of ``capacity``
slots and chooses the victim when a slot is needed.  Two ways to drive one:

* the pager (issue 5) makes the moves itself: ``key in policy`` to test
  residency, :meth:`EvictionPolicy.touch` on a hit, :meth:`~EvictionPolicy.victim`
  to choose and remove the page to evict (it then writes that page back),
  :meth:`~EvictionPolicy.insert` to admit the new page and
  :meth:`~EvictionPolicy.remove` when a buffer is freed;
* trace replay calls :meth:`EvictionPolicy.access` once per access, which
  does the above and counts hits, misses and evictions (the evicted key is
  left in ``last_victim``).

Every operation of ``lru`` and ``fifo`` is O(1).  Keys are any hashable
value, e.g. ``(buffer, page)``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from xv_core.errors import XvError


class EvictionPolicy:
    """Common interface and bookkeeping of every policy.

    Subclasses implement :meth:`touch`, :meth:`insert`, :meth:`victim`,
    :meth:`remove`, ``__contains__`` and ``__len__``.
    """

    name = "?"

    def __init__(self, capacity: int):
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise XvError(f"an eviction policy needs a capacity of at least 1 page, "
                          f"got {capacity!r}", where=f"eviction policy {self.name!r}")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.last_victim: Hashable | None = None

    # -- what a policy decides ---------------------------------------------------------
    def touch(self, key: Hashable) -> None:
        """Record a hit on resident ``key``."""
        raise NotImplementedError

    def insert(self, key: Hashable) -> None:
        """Admit ``key``, which is not resident; the caller has made room."""
        raise NotImplementedError

    def victim(self) -> Hashable:
        """Choose a resident key to evict, remove it and return it."""
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
            self.touch(key)
            self.last_victim = None
            return True
        self.misses += 1
        if len(self) >= self.capacity:
            self.last_victim = self.victim()
            self.evictions += 1
        else:
            self.last_victim = None
        self.insert(key)
        return False

    def stats(self) -> dict[str, int | float]:
        accesses = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses, "evictions": self.evictions,
                "miss_ratio": self.misses / accesses if accesses else 0.0}

    def _missing(self, key: Hashable) -> XvError:
        return XvError(f"page {key!r} is not resident", where=f"eviction policy {self.name!r}")


class LRU(EvictionPolicy):
    """Least recently used: the victim is the key whose last access is oldest."""

    name = "lru"

    def __init__(self, capacity: int):
        super().__init__(capacity)
        # Oldest access first; a hit moves the key to the end.
        self._order: OrderedDict[Hashable, None] = OrderedDict()

    def touch(self, key: Hashable) -> None:
        try:
            self._order.move_to_end(key)
        except KeyError:
            raise self._missing(key) from None

    def insert(self, key: Hashable) -> None:
        self._order[key] = None

    def victim(self) -> Hashable:
        if not self._order:
            raise XvError("no resident page to evict", where=f"eviction policy {self.name!r}")
        return self._order.popitem(last=False)[0]

    def remove(self, key: Hashable) -> None:
        try:
            del self._order[key]
        except KeyError:
            raise self._missing(key) from None

    def __contains__(self, key: object) -> bool:
        return key in self._order

    def __len__(self) -> int:
        return len(self._order)


class FIFO(LRU):
    """First in, first out: the victim is the key admitted longest ago; hits change nothing."""

    name = "fifo"

    def touch(self, key: Hashable) -> None:
        if key not in self._order:
            raise self._missing(key)


#: The policies this distribution ships, by the name a fabric's ``vram.eviction`` uses.
POLICIES: dict[str, type[EvictionPolicy]] = {"lru": LRU, "fifo": FIFO}
