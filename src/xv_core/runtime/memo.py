"""A small cache of values worked out from an object (a kernel, a footprint) and a key.

Kernels and footprints are compared by identity -- hashing them by value would walk whole
IR trees -- so an entry keeps its object alive and a hit checks it is the very same one (an
``id`` is only unique among live objects).  Least recently used entries go first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class IdentityLRU(Generic[V]):
    """Values by (object identity, key), at most ``size`` of them."""

    def __init__(self, size: int):
        self._size = size
        self._items: OrderedDict[tuple[Any, ...], tuple[object, V]] = OrderedDict()

    def get(self, owner: object, key: Hashable, make: Callable[[], V]) -> V:
        """The value for ``owner`` and ``key``, made by ``make()`` on a miss."""
        full = (id(owner), key)
        hit = self._items.get(full)
        if hit is not None and hit[0] is owner:
            self._items.move_to_end(full)
            return hit[1]
        value = make()
        self._items[full] = (owner, value)
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return value

    def find(self, owner: object, key: Hashable) -> V | None:
        """The value for ``owner`` and ``key``, or None on a miss (nothing is made)."""
        hit = self._items.get((id(owner), key))
        if hit is not None and hit[0] is owner:
            self._items.move_to_end((id(owner), key))
            return hit[1]
        return None

    def put(self, owner: object, key: Hashable, value: V) -> None:
        self._items[(id(owner), key)] = (owner, value)
        self._items.move_to_end((id(owner), key))
        if len(self._items) > self._size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


__all__ = ["IdentityLRU"]
