"""Prefetching ahead of use: RamVram.prefetch and its background worker."""

import threading
import time

import numpy as np
import pytest

from xv_core.errors import XvError
from xv_buffer.vram import RamVram

PAGE = 4096


def make(tmp_path, frames=4, **kw):
    kw.setdefault("backing", "file")
    return RamVram(frames * PAGE, PAGE, paging=True, path=tmp_path, **kw)


def vstats(vram):
    return vram.stats()["tiers"]["vram"]


def filled(vram, name, pages, seed=0):
    """A buffer of ``pages`` pages of known bytes, none of them resident."""
    data = np.random.default_rng(seed).integers(0, 255, pages * PAGE, dtype=np.uint8)
    buf = vram.allocate(name, data.shape, np.uint8)
    buf.write(data)
    other = vram.allocate("other", (vram.frames * PAGE,), np.uint8)
    vram.make_resident(other, [(0, vram.frames)], write=False).release()  # takes every frame
    vram.free(other)
    assert not any(buf.resident)
    return buf, data


def test_prefetched_pages_are_hits_later(tmp_path):
    vram = make(tmp_path)
    buf, data = filled(vram, "a", 8)
    before = vram.stats()
    vram.prefetch(buf, [(4, 6)])
    assert vram.wait_prefetches(10)
    assert list(buf.resident) == [0, 0, 0, 0, 1, 1, 0, 0] and not any(buf.dirty)
    lease = vram.make_resident(buf, [(4, 6)], write=False)
    np.testing.assert_array_equal(buf.array()[4 * PAGE:6 * PAGE], data[4 * PAGE:6 * PAGE])
    lease.release()
    after = vram.stats()
    v, b = after["tiers"]["vram"], after["buffers"]["a"]
    assert v["misses"] == before["tiers"]["vram"]["misses"]  # no fault
    assert (v["prefetched"], v["prefetch_hits"], v["prefetch_in_flight"]) == (2, 2, 0)
    assert (b["prefetched"], b["prefetch_hits"], b["prefetch_unused"]) == (2, 2, 0)
    assert after["tiers"]["backing"]["prefetch_reads"] == 2
    assert v["prefetch_limit"] == 2  # half of VRAM's four pages
    vram.close()


def test_prefetch_never_evicts_pinned_pages(tmp_path):
    vram = make(tmp_path)
    a = vram.allocate("a", (4 * PAGE,), np.uint8)
    b = vram.allocate("b", (4 * PAGE,), np.uint8)
    lease = vram.make_resident(a, [(0, 4)], write=True)  # every frame pinned
    vram.prefetch(b, [(0, 2)])
    assert vram.wait_prefetches(10)
    assert not any(b.resident) and sum(a.resident) == 4
    v = vstats(vram)
    assert (v["prefetched"], v["prefetch_dropped"], v["evictions"]) == (0, 2, 0)
    lease.release()
    vram.prefetch(b, [(0, 2)])  # now a's pages may go
    assert vram.wait_prefetches(10)
    assert list(b.resident) == [1, 1, 0, 0] and vstats(vram)["evictions"] == 2
    vram.close()


def test_at_most_half_of_vram_is_prefetched_and_unused(tmp_path):
    vram = make(tmp_path, frames=8)
    a = vram.allocate("a", (8 * PAGE,), np.uint8)
    b = vram.allocate("b", (8 * PAGE,), np.uint8)
    vram.prefetch(a, [(0, 6)])  # six asked, four (half of eight frames) brought
    assert vram.wait_prefetches(10)
    assert list(a.resident) == [1, 1, 1, 1, 0, 0, 0, 0]
    v = vstats(vram)
    assert (v["prefetched"], v["prefetch_dropped"], v["prefetch_in_flight"]) == (4, 2, 4)
    vram.prefetch(b, [(0, 2)])  # the bound is reached: nothing, and a's pages stay
    assert vram.wait_prefetches(10)
    assert not any(b.resident) and sum(a.resident) == 4
    vram.make_resident(a, [(0, 2)], write=False).release()  # two of them used
    assert vstats(vram)["prefetch_in_flight"] == 2
    vram.prefetch(b, [(0, 2)])
    assert vram.wait_prefetches(10)
    assert list(b.resident[:2]) == [1, 1]
    v = vstats(vram)
    assert (v["prefetched"], v["prefetch_hits"], v["prefetch_in_flight"]) == (6, 2, 4)
    vram.close()


def test_prefetch_does_not_evict_what_earlier_prefetches_brought(tmp_path):
    """A full VRAM of unused prefetched pages and pages of the same request: nothing to
    evict, so the rest of the request is dropped rather than thrashing."""
    vram = make(tmp_path, frames=4)
    a = vram.allocate("a", (2 * PAGE,), np.uint8)
    b = vram.allocate("b", (4 * PAGE,), np.uint8)
    vram.make_resident(b, [(0, 2)], write=False).release()  # two old pages: evictable
    vram.prefetch(a, [(0, 2)])
    assert vram.wait_prefetches(10)
    vram.make_resident(a, [(0, 2)], write=False).release()  # used: no longer protected
    vram.prefetch(b, [(2, 4), (0, 2)])  # b's old pages are part of the request: kept
    assert vram.wait_prefetches(10)
    assert list(b.resident) == [1, 1, 1, 1] and not any(a.resident)  # a's pages went
    v = vstats(vram)
    assert (v["prefetched"], v["prefetch_hits"], v["prefetch_unused"]) == (4, 2, 0)
    vram.close()


def test_prefetch_reads_from_the_cache_tier(tmp_path, mem_tier):
    vram = make(tmp_path, frames=2)
    tier = mem_tier("fast", 4, PAGE)
    vram.attach_tiers([tier])
    buf, data = filled(vram, "a", 4)
    assert sum(buf.tier_of) > 0
    cached = [p for p in range(4) if buf.tier_of[p]]
    vram.prefetch(buf, [(cached[0], cached[0] + 1)])
    assert vram.wait_prefetches(10)
    stats = vram.stats()["tiers"]
    assert (stats["fast"]["prefetch_hits"], stats["backing"]["prefetch_reads"]) == (1, 0)
    page = cached[0]
    np.testing.assert_array_equal(buf.array()[page * PAGE:(page + 1) * PAGE],
                                  data[page * PAGE:(page + 1) * PAGE])
    vram.close()


def test_a_buffer_freed_while_its_prefetch_waits(tmp_path):
    vram = make(tmp_path)
    buf = vram.allocate("a", (4 * PAGE,), np.uint8)
    with vram._lock:  # the worker waits for the lock: the request stays queued
        vram.prefetch(buf, [(0, 4)])
        vram.free(buf)
    assert vram.wait_prefetches(10)
    vram.prefetch(buf, [(0, 4)])  # freed: nothing to do
    assert vram.wait_prefetches(10)
    v = vstats(vram)
    assert (v["prefetched"], v["resident"]) == (0, 0)
    again = vram.allocate("a", (4 * PAGE,), np.uint8)  # same name, another buffer
    assert not any(again.resident)
    other = RamVram(4 * PAGE, PAGE, paging=True, path=tmp_path / "other")
    with pytest.raises(XvError, match=r"^buffer 'a': buffer is not allocated in this VRAM$"):
        other.prefetch(again, [(0, 1)])
    vram.close()


def test_close_with_prefetches_queued(tmp_path):
    vram = make(tmp_path, frames=8)
    bufs = [vram.allocate(f"b{i}", (8 * PAGE,), np.uint8) for i in range(6)]
    with vram._lock:
        for buf in bufs:
            vram.prefetch(buf, [(0, 8)])
    vram.close()  # at most the unit in progress is loaded; then the worker stops
    assert vram._pf_thread is not None and not vram._pf_thread.is_alive()
    s = vram.stats()
    assert s["count"] == 0 and s["tiers"]["vram"]["resident"] == 0
    vram.prefetch(bufs[0], [(0, 8)])  # closed: nothing happens
    assert vram.wait_prefetches(1)


def test_make_resident_waits_for_one_prefetch_load_at_most(tmp_path):
    vram = make(tmp_path, frames=32)
    buf, _ = filled(vram, "slow", 16)
    fast = vram.allocate("fast", (PAGE,), np.uint8)
    read_into = buf.backing.read_into

    def slow_read(page, out):
        time.sleep(0.1)
        return read_into(page, out)

    buf.backing.read_into = slow_read
    vram.prefetch(buf, [(0, 16)])  # 1.6 seconds of loads, one page at a time
    time.sleep(0.15)
    began = time.perf_counter()
    vram.make_resident(fast, [(0, 1)], write=True).release()
    waited = time.perf_counter() - began
    assert waited < 0.8, waited  # one load in progress (0.1s), not the whole prefetch
    assert vstats(vram)["prefetched"] < 16
    assert vram.wait_prefetches(30)
    assert vstats(vram)["prefetched"] == 16
    vram.close()


def test_a_failing_prefetch_is_counted_and_the_worker_goes_on(tmp_path):
    vram = make(tmp_path, frames=4)
    bad, _ = filled(vram, "bad", 2)
    good, data = filled(vram, "good", 2, seed=1)

    def broken(page, out):
        raise XvError("cannot read: Input/output error", where="buffer 'bad'")

    bad.backing.read_into = broken
    vram.prefetch(bad, [(0, 1)])
    vram.prefetch(good, [(0, 2)])
    assert vram.wait_prefetches(10)
    v = vstats(vram)
    assert (v["prefetch_errors"], v["prefetched"]) == (1, 2)
    assert not any(bad.resident) and all(good.resident)
    np.testing.assert_array_equal(good.array(), data)
    with pytest.raises(XvError, match="Input/output error"):  # the tile meets it
        vram.make_resident(bad, [(0, 1)], write=False)
    assert not vram._pins  # the failed call pinned nothing that stays
    vram.close()


def test_read_only_access_never_marks_pages_dirty(tmp_path):
    vram = make(tmp_path, frames=2)
    a = vram.allocate("a", (2 * PAGE,), np.uint8)
    b = vram.allocate("b", (2 * PAGE,), np.uint8)
    vram.make_resident(a, [(0, 2)], write=False).release()
    assert not any(a.dirty)
    vram.make_resident(a, [(0, 1)], write=True).release()
    vram.make_resident(a, [(0, 2)], write=False).release()  # keeps page 0 dirty
    assert list(a.dirty) == [1, 0]
    vram.prefetch(b, [(0, 1)])
    assert vram.wait_prefetches(10)
    assert not any(b.dirty)
    vram.make_resident(b, [(0, 2)], write=False).release()  # evicts both of a's pages
    assert vstats(vram)["writebacks"] == 1  # the written one only
    vram.close()


@pytest.mark.parametrize("profile", ["plain", "uvm"])
def test_concurrent_tiles_and_prefetches_against_shadow_copies(tmp_path, mem_tier, profile):
    """Threads run 'tiles' on their own buffers while another keeps prefetching pages of
    all of them: contents stay right and the accounting adds up."""
    uvm = profile == "uvm"
    unit = 16 if uvm else 1
    vram = RamVram(12 * unit * PAGE, PAGE, paging=True, backing="file", path=tmp_path,
                   profile=profile)
    vram.attach_tiers([mem_tier("fast", 6 * unit, PAGE), mem_tier("slow", 10 * unit, PAGE)])
    sizes = [30 * unit * PAGE + 100, 20 * unit * PAGE, 25 * unit * PAGE]
    bufs = [vram.allocate(f"b{i}", (n,), np.uint8) for i, n in enumerate(sizes)]
    shadows = [np.zeros(n, np.uint8) for n in sizes]
    errors = []
    stop = threading.Event()

    def tiles(i):
        rng = np.random.default_rng(i)
        buf, copy = bufs[i], shadows[i]
        try:
            for step in range(150):
                start = int(rng.integers(buf.pages))
                stop_ = min(buf.pages, start + int(rng.integers(1, 3 * unit)))
                write = bool(rng.integers(2))
                lease = vram.make_resident(buf, [(start, stop_)], write=write)
                lo, hi = start * PAGE, min(copy.size, stop_ * PAGE)
                np.testing.assert_array_equal(buf.array()[lo:hi], copy[lo:hi])
                if write:
                    buf.array()[lo:hi] += np.uint8(step % 251 + 1)
                    copy[lo:hi] += np.uint8(step % 251 + 1)
                lease.release()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def prefetcher():
        rng = np.random.default_rng(99)
        while not stop.is_set():
            buf = bufs[int(rng.integers(3))]
            start = int(rng.integers(buf.pages))
            vram.prefetch(buf, [(start, start + int(rng.integers(1, 4 * unit)))])
            time.sleep(0.001)

    workers = [threading.Thread(target=tiles, args=(i,)) for i in range(3)]
    feeder = threading.Thread(target=prefetcher)
    feeder.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    feeder.join()
    assert vram.wait_prefetches(30)
    assert not errors, errors[0]
    for buf, copy in zip(bufs, shadows):
        np.testing.assert_array_equal(buf.read(), copy)
    stats = vram.stats()
    v = stats["tiers"]["vram"]
    assert v["prefetched"] > 0 and v["resident"] <= vram.capacity
    assert v["resident"] == sum(sum(b.resident) for b in bufs) * PAGE
    assert v["prefetch_in_flight"] == sum(vram._prefetched.values()) <= vram.prefetch_limit
    if uvm:  # a first use may touch only some pages of a prefetched 64KiB block
        assert v["prefetch_hits"] <= v["prefetched"]
    else:  # every prefetched page is used, unused (evicted or freed) or still waiting
        assert v["prefetched"] == (v["prefetch_hits"] + v["prefetch_unused"]
                                   + v["prefetch_in_flight"])
    for key in ("prefetched", "prefetch_hits", "prefetch_unused"):
        assert sum(b[key] for b in stats["buffers"].values()) == v[key], key
    vram.close()
