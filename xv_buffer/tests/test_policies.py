"""lru and fifo against a tiny reference simulation, and their O(1) behaviour."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xv_core.errors import XvError
from xv_buffer.policies import FIFO, LRU


def reference(policy: str, capacity: int, trace: list) -> tuple[list[bool], list]:
    """Hits and victims by the textbook definition, with a plain list (slow, obvious)."""
    cache: list = []  # lru: least recent first; fifo: oldest admission first
    hits, victims = [], []
    for key in trace:
        if key in cache:
            hits.append(True)
            if policy == "lru":
                cache.remove(key)
                cache.append(key)
            victims.append(None)
            continue
        hits.append(False)
        if len(cache) == capacity:
            victims.append(cache.pop(0))
        else:
            victims.append(None)
        cache.append(key)
    return hits, victims


def run(policy, trace):
    hits, victims = [], []
    for key in trace:
        hits.append(policy.access(key))
        victims.append(policy.last_victim)
    return hits, victims


@pytest.mark.parametrize("cls,name", [(LRU, "lru"), (FIFO, "fifo")])
def test_known_trace(cls, name):
    trace = list("abcabdaeab")
    policy = cls(3)
    hits, victims = run(policy, trace)
    assert (hits, victims) == reference(name, 3, trace)
    if name == "lru":
        assert hits == [False, False, False, True, True, False, True, False, True, False]
        assert [v for v in victims if v] == ["c", "b", "d"]
    else:
        assert hits == [False, False, False, True, True, False, False, False, True, False]
        assert [v for v in victims if v] == ["a", "b", "c", "d"]
    assert policy.hits + policy.misses == len(trace)
    assert policy.evictions == sum(v is not None for v in victims)


@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(1, 6), trace=st.lists(st.integers(0, 9), max_size=200),
       which=st.sampled_from(["lru", "fifo"]))
def test_matches_reference(capacity, trace, which):
    policy = {"lru": LRU, "fifo": FIFO}[which](capacity)
    assert run(policy, trace) == reference(which, capacity, trace)
    assert len(policy) == min(capacity, len(set(trace)))


@pytest.mark.parametrize("cls", [LRU, FIFO])
def test_pager_operations(cls):
    policy = cls(2)
    policy.insert(("x", 0))
    policy.insert(("x", 1))
    policy.hit(("x", 0))
    victim = policy.evict()
    assert victim == (("x", 1) if cls is LRU else ("x", 0))
    assert victim not in policy and len(policy) == 1
    survivor = ("x", 0) if cls is LRU else ("x", 1)
    assert survivor in policy
    policy.remove(survivor)
    assert len(policy) == 0
    assert policy.evict() is None
    with pytest.raises(XvError, match=r"^eviction policy '\w+': page \('x', 5\) is not resident"):
        policy.hit(("x", 5))
    with pytest.raises(XvError, match=r"is not resident"):
        policy.remove(("x", 5))


def test_capacity_must_be_positive():
    with pytest.raises(XvError, match=r"^eviction policy 'lru': an eviction policy needs a "
                                      r"capacity of at least 1 page, got 0"):
        LRU(0)


@pytest.mark.parametrize("cls", [LRU, FIFO])
def test_constant_time_per_access(cls):
    """Time per access does not grow with the number of resident pages."""
    def per_access(capacity):
        best = float("inf")
        for _ in range(3):  # the best of three keeps a busy machine from failing the test
            policy = cls(capacity)
            trace = [i % (2 * capacity) for i in range(100_000)]  # all misses, all evicting
            start = time.perf_counter()
            for key in trace:
                policy.access(key)
            best = min(best, (time.perf_counter() - start) / len(trace))
        return best

    small, large = per_access(16), per_access(65_536)
    assert large < 4 * small, (small, large)  # measured here: at most 1.8x (cache effects)
