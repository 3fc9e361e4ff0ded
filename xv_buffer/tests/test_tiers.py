"""The chain of cache tiers: VRAM -> tier 1 -> tier 2 -> backing, with tiers in memory."""

import numpy as np
import pytest

from xv_buffer.vram import RamVram

PAGE = 4096


def counters(stats, tier, *keys):
    return tuple(stats["tiers"][tier][k] for k in keys)


def test_pages_go_down_the_chain_tier_by_tier(tmp_path, mem_tier):
    """One frame, two one-slot tiers, three pages: every page a tier evicts goes to the next
    tier, and only pages the last tier evicts reach the backing file (when newer there)."""
    vram = RamVram(PAGE, PAGE, paging=True, backing="file", path=tmp_path)
    fast, slow = mem_tier("fast", 1, PAGE), mem_tier("slow", 1, PAGE)
    vram.attach_tiers([fast, slow])
    buf = vram.allocate("a", (3 * PAGE,), np.uint8)

    def touch(page, value=None):
        lease = vram.make_resident(buf, [(page, page + 1)], write=value is not None)
        if value is not None:
            buf.array()[page * PAGE:(page + 1) * PAGE] = value
        lease.release()

    key = buf.key_base
    for page, value in enumerate((10, 11, 12)):  # zero-filled, written, evicted dirty
        touch(page, value)
    # p0 went VRAM -> fast -> slow; p1 VRAM -> fast.
    assert (set(fast.pages), set(slow.pages)) == ({key | 1}, {key | 0})
    assert list(buf.tier_of) == [2, 1, 0] and list(buf.tier_newer) == [1, 1, 0]
    touch(0)  # from slow; evicting p2 pushes p1 into slow, which pushes p0 to the file
    assert (set(fast.pages), set(slow.pages)) == ({key | 2}, {key | 1})
    assert list(buf.stored) == [1, 0, 0]
    for page in (1, 2, 0):  # each read from slow; clean victims are cached on the way down
        touch(page)
    stats = vram.stats()
    assert list(stats["tiers"]) == ["vram", "fast", "slow", "backing"]
    assert counters(stats, "vram", "accesses", "misses", "zero_fills", "evictions",
                    "writebacks") == (7, 7, 3, 6, 3)
    assert counters(stats, "fast", "level", "hits", "misses", "reads", "writes",
                    "evictions") == (1, 0, 7, 5, 6, 5)
    assert counters(stats, "slow", "level", "hits", "misses", "reads", "writes",
                    "evictions") == (2, 4, 3, 7, 5, 4)
    assert counters(stats, "backing", "reads", "writes") == (0, 3)
    assert list(buf.stored) == [1, 1, 1]
    expected = np.repeat(np.array([10, 11, 12], np.uint8), PAGE)
    np.testing.assert_array_equal(buf.read(), expected)
    lease = vram.make_resident(buf, [(0, 3)], write=False)  # all three, over capacity
    np.testing.assert_array_equal(buf.array(), expected)
    lease.release()


def test_a_dirty_page_replaces_its_stale_copy_further_down(tmp_path, mem_tier):
    vram = RamVram(PAGE, PAGE, paging=True, backing="file", path=tmp_path)
    fast, slow = mem_tier("fast", 1, PAGE), mem_tier("slow", 4, PAGE)
    vram.attach_tiers([fast, slow])
    buf = vram.allocate("a", (2 * PAGE,), np.uint8)
    for page in (0, 1, 0):  # p0 ends in slow, and comes back from it
        lease = vram.make_resident(buf, [(page, page + 1)], write=True)
        buf.array()[page * PAGE:(page + 1) * PAGE] += 1
        lease.release()
    assert buf.key_base | 0 in slow.pages and buf.dirty[0]
    lease = vram.make_resident(buf, [(1, 2)], write=False)  # evicts dirty p0
    lease.release()
    assert buf.key_base | 0 not in slow.pages  # the stale copy is gone...
    assert buf.tier_of[0] == 1 and buf.tier_newer[0] == 1  # ...the new one is in fast
    np.testing.assert_array_equal(buf.read()[:PAGE], 2)
    np.testing.assert_array_equal(buf.read()[PAGE:], 1)


@pytest.mark.parametrize("eviction", ["lru", "arc", "s3fifo"])
def test_random_work_through_two_tiers_against_a_shadow_copy(tmp_path, mem_tier, eviction):
    rng = np.random.default_rng(11)
    vram = RamVram(4 * PAGE, PAGE, paging=True, backing="file", path=tmp_path,
                   eviction=eviction)
    fast, slow = mem_tier("fast", 3, PAGE), mem_tier("slow", 5, PAGE)
    vram.attach_tiers([fast, slow])
    sizes = [7 * PAGE + 5, 11 * PAGE, 4 * PAGE]
    bufs = [vram.allocate(f"b{i}", (n,), np.uint8) for i, n in enumerate(sizes)]
    shadow = [np.zeros(n, np.uint8) for n in sizes]
    for step in range(300):
        i = int(rng.integers(3))
        buf, copy = bufs[i], shadow[i]
        if step % 23 == 7:
            data = rng.integers(0, 255, copy.size, dtype=np.uint8)
            buf.write(data)
            copy[:] = data
            continue
        start = int(rng.integers(buf.pages))
        stop = min(buf.pages, start + int(rng.integers(1, 4)))
        write = bool(rng.integers(2))
        lease = vram.make_resident(buf, [(start, stop)], write=write)
        lo, hi = start * PAGE, min(copy.size, stop * PAGE)
        np.testing.assert_array_equal(buf.array()[lo:hi], copy[lo:hi])
        if write:
            buf.array()[lo:hi] += np.uint8(step % 251 + 1)
            copy[lo:hi] += np.uint8(step % 251 + 1)
        lease.release()
        assert len(fast) <= fast.slots and len(slow) <= slow.slots
        for b in bufs:  # a page is in one tier at most, and the tiers agree with the flags
            for page in range(b.pages):
                level, key = b.tier_of[page], b.key_base | page
                assert (key in fast.pages, key in slow.pages) == (level == 1, level == 2)
    for buf, copy in zip(bufs, shadow):
        np.testing.assert_array_equal(buf.read(), copy)
    stats = vram.stats()["tiers"]
    assert stats["fast"]["evictions"] > 0 and stats["slow"]["hits"] > 0
    assert stats["slow"]["evictions"] > 0 and stats["backing"]["writes"] > 0


def test_tiers_are_checked(tmp_path, mem_tier):
    from xv_core.errors import XvError

    vram = RamVram(PAGE, PAGE, paging=True, path=tmp_path)
    with pytest.raises(XvError, match=r"^\$\.components: cache tiers need distinct names, "
                                      r"got t, t$"):
        vram.attach_tiers([mem_tier("t", 1, PAGE), mem_tier("t", 1, PAGE)])
    with pytest.raises(XvError, match=r"^component 'backing': a cache tier cannot be named "
                                      r"'backing'"):
        vram.attach_tiers([mem_tier("backing", 1, PAGE)])
