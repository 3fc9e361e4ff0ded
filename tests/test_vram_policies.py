"""The eviction policies: the three ways to run each agree, pins are respected, Belady is optimal.

Each policy of xenovectra-buffer runs a trace three ways: one access at a time through the
pager methods (``access``), the Python replay loop and the compiled replay loop.  They must
give the same misses on every trace.  The reference for the algorithms themselves is
libCacheSim (tests/test_vram_libcachesim.py).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xv_buffer import native
from xv_buffer.policies import NEVER, POLICIES, Belady, next_uses

ONLINE = [name for name, cls in POLICIES.items() if not cls.offline]


def by_access(name: str, capacity: int, trace: list[int]) -> int:
    policy = POLICIES[name](capacity)
    return sum(not policy.access(key) for key in trace)


def by_python_loop(name: str, capacity: int, trace: list[int]) -> int:
    return POLICIES[name](capacity)._replay(list(trace))[0]


def by_compiled_loop(name: str, capacity: int, trace: list[int]) -> int:
    policy = POLICIES[name](capacity)
    done = native.replay(name, np.array(trace, dtype=np.int64), capacity,
                         **policy._compiled_params())
    assert done is not None, native.unavailable
    return done[0]


def optimal_misses(capacity: int, trace: list[int]) -> int:
    """Belady by its definition, with a plain set: evict the key used again furthest ahead."""
    cache: set[int] = set()
    misses = 0
    for i, key in enumerate(trace):
        if key in cache:
            continue
        misses += 1
        if len(cache) >= capacity:
            def next_use(k: int) -> int:
                return next((j for j in range(i + 1, len(trace)) if trace[j] == k), NEVER)
            cache.remove(max(sorted(cache), key=next_use))
        cache.add(key)
    return misses


traces = st.lists(st.integers(0, 14), max_size=300)


@settings(max_examples=150, deadline=None)
@given(trace=traces, capacity=st.integers(1, 12), name=st.sampled_from(ONLINE))
def test_access_python_and_compiled_loops_agree(trace, capacity, name):
    expected = by_access(name, capacity, trace)
    assert by_python_loop(name, capacity, trace) == expected
    assert by_compiled_loop(name, capacity, trace) == expected


@settings(max_examples=150, deadline=None)
@given(trace=traces, capacity=st.integers(1, 12))
def test_belady_is_the_optimum_and_no_policy_beats_it(trace, capacity):
    best = optimal_misses(capacity, trace)
    assert by_python_loop("belady", capacity, trace) == best
    assert by_compiled_loop("belady", capacity, trace) == best
    for name in ONLINE:
        assert by_access(name, capacity, trace) >= best, name


def test_large_traces_agree_between_python_and_compiled_loops():
    rng = np.random.default_rng(11)
    zipf = rng.zipf(1.3, 30_000) % 3_000
    loop = np.arange(30_000) % 700
    for trace, capacity, name in itertools.product((zipf, loop), (50, 500), POLICIES):
        keys = (trace.astype(np.int64) + (7 << 32)).tolist()
        assert by_python_loop(name, capacity, keys) == by_compiled_loop(name, capacity, keys), \
            (name, capacity)


def test_replay_counts_and_accepts_other_keys():
    policy = POLICIES["lru"](2)
    assert policy.replay(np.array([1, 2, 1, 3, 2], dtype=np.int64)) == 4
    assert (policy.hits, policy.misses, policy.evictions) == (1, 4, 2)
    assert POLICIES["arc"](2).replay([("x", 0), ("x", 1), ("x", 0)]) == 2  # Python loop
    assert Belady(1).replay([("a", 1), ("b", 2), ("a", 1)]) == 3


def test_next_uses():
    assert next_uses(np.array([5, 6, 5, 5, 7])).tolist() == [2, NEVER, 3, NEVER, NEVER]


@pytest.mark.parametrize("name", ONLINE)
def test_evict_never_returns_a_pinned_key(name):
    policy = POLICIES[name](6)
    for key in range(6):
        policy.miss(key)
        policy.insert(key)
    for key in (0, 1, 0, 2, 0):
        policy.hit(key)
    pinned = {0, 1, 2, 3, 4}
    assert policy.evict(pinned) == 5
    assert len(policy) == 5
    assert policy.evict(pinned) is None  # everything left is pinned
    assert all(key in policy for key in pinned)
    victim = policy.evict({0, 1})
    assert victim in (2, 3, 4)
    policy.remove(0)
    assert 0 not in policy and len(policy) == 3


def test_belady_refuses_to_run_online():
    with pytest.raises(Exception, match="belady needs the future accesses"):
        Belady(4).access(1)
