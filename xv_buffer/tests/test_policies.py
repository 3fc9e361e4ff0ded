"""The eviction policies: lru and fifo against a tiny reference simulation, their O(1)
behaviour, and every online policy's hit_many against one hit per key."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xv_core.errors import XvError
from xv_buffer.policies import FIFO, LFU, LRU, POLICIES


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


# -- hit_many is hit on each key in order ---------------------------------------------------

ONLINE = sorted(name for name, cls in POLICIES.items() if not cls.offline)
_KEYS = st.integers(0, 9)
_STEP = st.one_of(
    st.tuples(st.just("admit"), st.lists(_KEYS, min_size=1, max_size=6)),
    st.tuples(st.just("run"), _KEYS, st.integers(1, 10)),  # a range of resident keys
    st.tuples(st.just("some"), st.lists(_KEYS, max_size=8, unique=True)),  # any order
    st.tuples(st.just("again"), st.lists(_KEYS, min_size=2, max_size=6)),  # repeats likely
    st.tuples(st.just("missing"), st.lists(_KEYS, min_size=1, max_size=8, unique=True)),
    st.tuples(st.just("evict"), st.frozensets(_KEYS, max_size=4)),  # with pins
    st.tuples(st.just("remove"), _KEYS),
)


def _drive(policy, steps, batched: bool) -> list:
    """What ``policy`` shows of ``steps``: every victim and error, then its eviction order at
    the end.  Hits go to ``hit_many`` (``batched``) or to ``hit`` one key at a time."""
    seen: list = []
    for step in steps:
        kind = step[0]
        if kind == "admit":
            for key in step[1]:
                if key not in policy:
                    policy.miss(key)
                    if len(policy) >= policy.capacity:
                        seen.append(("victim", policy.evict()))
                    policy.insert(key)
        elif kind in ("run", "some", "again", "missing"):
            if kind == "run":
                start = step[1]
                keys = range(start, next((k for k in range(start, start + step[2])
                                          if k not in policy), start + step[2]))
            elif kind == "missing":  # resident keys but one, which is not: an error midway
                absent = [k for k in range(10, 20) if k not in policy][0]
                keys = [k for k in step[1] if k in policy]
                keys.insert(len(keys) // 2, absent)
            else:
                keys = [k for k in step[1] if k in policy]
            try:
                if batched:
                    policy.hit_many(keys)
                else:
                    for key in keys:
                        policy.hit(key)
            except XvError as exc:  # the hits before it done, then hit()'s error
                seen.append(("error", str(exc)))
        elif kind == "evict":
            seen.append(("evict", policy.evict(step[1])))
        elif step[1] in policy:
            policy.remove(step[1])
        seen.append(len(policy))
    while len(policy):
        seen.append(("drain", policy.evict()))
    return seen


@pytest.mark.parametrize("name", ONLINE)
@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(1, 12), steps=st.lists(_STEP, max_size=60))
def test_hit_many_is_hit_on_each_key_in_order(name, capacity, steps):
    """Every online policy's hit_many leaves it choosing the same victims as one hit per key,
    for runs of keys (the pager's call) and for any keys in any order, repeats included."""
    cls = POLICIES[name]
    assert _drive(cls(capacity), steps, True) == _drive(cls(capacity), steps, False)


def test_lfu_hit_many_moves_a_run_of_equal_counts_at_once():
    """The batched path (not the per-key fallback) keeps the order of equal counts: a run hit
    once leaves in the order it was hit, after the keys hit less, before those hit more; keys
    of mixed counts go count by count, each key's order kept."""
    policy = LFU(8)
    for key in range(6):
        policy.insert(key)
    policy.hit = lambda key: pytest.fail("hit_many went one key at a time")
    policy.hit_many([4, 0, 2])  # counts: 0, 2, 4 -> 2; 1, 3, 5 stay at 1
    policy.hit_many(range(4, 6))  # 4 -> 3 and 5 -> 2: two stretches of different counts
    policy.hit_many([3, 0, 1, 2])  # 3 and 1 -> 2 after 5; 0 and 2 -> 3 after 4
    assert [policy.evict() for _ in range(6)] == [5, 3, 1, 4, 0, 2]


def test_lfu_hit_many_hits_the_keys_before_a_missing_one_then_raises():
    batched, one_by_one = LFU(8), LFU(8)
    for policy in (batched, one_by_one):
        for key in range(4):
            policy.insert(key)
    with pytest.raises(XvError, match=r"^eviction policy 'lfu': page 99 is not resident"):
        batched.hit_many([2, 0, 99, 1])
    one_by_one.hit(2)
    one_by_one.hit(0)
    assert [batched.evict() for _ in range(4)] == [one_by_one.evict() for _ in range(4)] \
        == [1, 3, 2, 0]


def test_lfu_hit_many_calls_a_subclass_s_own_hit():
    class Counting(LFU):
        def __init__(self, capacity):
            super().__init__(capacity)
            self.seen = []

        def hit(self, key):
            self.seen.append(key)
            super().hit(key)

    policy = Counting(4)
    for key in range(3):
        policy.insert(key)
    policy.hit_many(range(3))
    assert policy.seen == [0, 1, 2]


@pytest.mark.parametrize("cls", [LRU, FIFO])
@settings(max_examples=300, deadline=None)
@given(steps=st.lists(st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 9)),
    st.tuples(st.just("hit"), st.integers(0, 9)),
    st.tuples(st.just("evict"), st.frozensets(st.integers(0, 9), max_size=10))), max_size=50))
def test_a_pinned_key_passed_over_goes_to_the_end(cls, steps):
    """evict(pinned) against a plain list: the pinned keys before the victim go to the end in
    order (as if just accessed); when every key is pinned, nothing is evicted or moved."""
    policy, order = cls(100), []
    for kind, arg in steps:
        if kind == "insert" and arg not in order:
            policy.insert(arg)
            order.append(arg)
        elif kind == "hit" and arg in order:
            policy.hit(arg)
            if cls is LRU:
                order.remove(arg)
                order.append(arg)
        elif kind == "evict":
            victim = None
            for _ in range(len(order)):
                key = order.pop(0)
                if key in arg:
                    order.append(key)
                else:
                    victim = key
                    break
            assert policy.evict(arg) == victim
    assert [policy.evict() for _ in range(len(order))] == order
