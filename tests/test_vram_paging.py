"""Paging in xenovectra-buffer's VRAM: residency, eviction, write-back, tiers, pins, uvm, traces.

Pages that are not resident read as zeros in a buffer's array, so every test that checks
contents after paging also checks that the pager moved the bytes for real.
"""

from __future__ import annotations

import numpy as np
import pytest

from xv_buffer.vram import RamVram
from xv_core.cli.vram_cmd import read_page_trace
from xv_core.errors import XvError
from xv_core.profiles import get_profile
from xv_nvme import PageFile

KiB = 1 << 10
MiB = 1 << 20
PAGE = 4 * KiB


def make(tmp_path, capacity=4 * PAGE, **kw):
    kw.setdefault("paging", True)
    kw.setdefault("path", tmp_path / "vram")
    return RamVram(capacity, kw.pop("page_size", PAGE), **kw)


def tier(tmp_path, pages, page_size=PAGE):
    return PageFile(tmp_path / "nvme.pages", pages * page_size, page_size, name="nvme0",
                    profile="nvme-gen4")


def pages_of(array, page_size=PAGE):
    raw = array.reshape(-1).view(np.uint8)
    return [raw[i:i + page_size] for i in range(0, raw.size, page_size)]


def vstat(vram, key):
    return vram.stats()["tiers"]["vram"][key]


@pytest.mark.parametrize("backing,with_tier", [("ram", False), ("file", False), ("file", True)])
def test_pages_move_out_and_back_intact(tmp_path, backing, with_tier):
    vram = make(tmp_path, backing=backing)
    if with_tier:
        vram.attach_tiers([tier(tmp_path, 2)])
    data = np.arange(8 * PAGE // 4, dtype=np.int32)  # eight pages, VRAM holds four
    buf = vram.allocate("a", data.shape, np.int32)
    buf.write(data)
    # The host write filled the free frames and sent the rest to the backing.
    assert list(buf.resident) == [1, 1, 1, 1, 0, 0, 0, 0]
    assert not any(p.any() for p in pages_of(buf.array())[4:])  # not resident: zeros
    np.testing.assert_array_equal(buf.read(), data)

    lease = vram.make_resident(buf, [(4, 8)], write=False)
    np.testing.assert_array_equal(buf.array()[4 * 1024:], data[4 * 1024:])
    assert list(buf.resident) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert not buf.array()[:4 * 1024].any()  # evicted: their RAM was given back
    lease.release()
    stats = vram.stats()
    v = stats["tiers"]["vram"]
    assert (v["accesses"], v["hits"], v["misses"], v["evictions"]) == (4, 0, 4, 4)
    assert v["writebacks"] == 4  # written by the host: dirty
    assert v["bytes_written"] == 4 * PAGE and v["bytes_read"] == 4 * PAGE
    if with_tier:
        t = stats["tiers"]["nvme0"]
        assert t["writes"] >= 4 and t["evictions"] >= 2  # two slots for four pages
    np.testing.assert_array_equal(buf.read(), data)
    lease = vram.make_resident(buf, [(0, 8)], write=False)  # over capacity while pinned
    np.testing.assert_array_equal(buf.array(), data)
    lease.release()
    np.testing.assert_array_equal(buf.read(), data)


def test_clean_pages_are_dropped_dirty_pages_written_back(tmp_path):
    vram = make(tmp_path)
    a = vram.allocate("a", (4 * PAGE,), np.uint8)
    b = vram.allocate("b", (4 * PAGE,), np.uint8)
    vram.make_resident(a, [(0, 4)], write=True).release()  # zero-filled, then written
    a.array()[:] = 7
    vram.make_resident(b, [(0, 4)], write=False).release()  # evicts a: dirty, written back
    assert vstat(vram, "writebacks") == 4 and vstat(vram, "zero_fills") == 8
    vram.make_resident(a, [(0, 4)], write=False).release()  # evicts b: clean zeros: dropped
    assert vstat(vram, "writebacks") == 4
    assert (a.array() == 7).all()
    vram.make_resident(b, [(0, 4)], write=False).release()  # evicts a, read only since: dropped
    assert vstat(vram, "writebacks") == 4
    assert (a.read() == 7).all() and not b.read().any()


def test_pinned_pages_are_never_evicted_and_over_capacity_is_reported(tmp_path):
    vram = make(tmp_path)
    a = vram.allocate("a", (3 * PAGE,), np.uint8)
    b = vram.allocate("b", (3 * PAGE,), np.uint8)
    first = vram.make_resident(a, [(0, 3)], write=True)
    a.array()[:] = 1
    second = vram.make_resident(b, [(0, 3)], write=True)  # a's pages are pinned
    b.array()[:] = 2
    assert sum(a.resident) == 3 and sum(b.resident) == 3
    assert vstat(vram, "resident") == 6 * PAGE and vstat(vram, "overcommit_peak") == 2 * PAGE
    first.release()
    assert vstat(vram, "resident") == 4 * PAGE  # back within capacity once a is released
    second.release()
    assert (a.read() == 1).all() and (b.read() == 2).all()


@pytest.mark.parametrize("eviction", ["lru", "lfu", "fifo", "clock", "arc", "s3fifo"])
@pytest.mark.parametrize("backing,tier_pages,profile", [
    ("ram", 0, "plain"), ("file", 0, "plain"), ("file", 3, "plain"), ("ram", 0, "uvm"),
    ("file", 20, "uvm"),
])
def test_random_work_against_a_shadow_copy(tmp_path, eviction, backing, tier_pages, profile):
    """Random tiles writing random pages of three buffers, checked against plain numpy."""
    rng = np.random.default_rng(len(eviction) * 7 + tier_pages)
    uvm = profile == "uvm"
    capacity = 8 * 64 * KiB if uvm else 6 * PAGE
    vram = make(tmp_path, capacity=capacity, eviction=eviction, backing=backing, profile=profile)
    if tier_pages:
        vram.attach_tiers([tier(tmp_path, tier_pages)])
    sizes = [(40 if uvm else 5) * PAGE + 100, (300 if uvm else 9) * PAGE, (70 if uvm else 3) * PAGE]
    bufs = [vram.allocate(f"b{i}", (n,), np.uint8) for i, n in enumerate(sizes)]
    shadow = [np.zeros(n, np.uint8) for n in sizes]
    for step in range(120):
        i = int(rng.integers(3))
        buf, copy = bufs[i], shadow[i]
        if step % 17 == 5:
            data = rng.integers(0, 255, copy.size, dtype=np.uint8)
            buf.write(data)
            copy[:] = data
            continue
        start = int(rng.integers(buf.pages))
        stop = min(buf.pages, start + int(rng.integers(1, 6 if not uvm else 40)))
        write = bool(rng.integers(2))
        lease = vram.make_resident(buf, [(start, stop)], write=write)
        lo, hi = start * PAGE, min(copy.size, stop * PAGE)
        np.testing.assert_array_equal(buf.array()[lo:hi], copy[lo:hi])
        if write:
            value = np.uint8(step)
            buf.array()[lo:hi] += value
            copy[lo:hi] += value
        lease.release()
        assert vstat(vram, "resident") <= capacity
    for buf, copy in zip(bufs, shadow):
        np.testing.assert_array_equal(buf.read(), copy)
    stats = vram.stats()
    v = stats["tiers"]["vram"]
    assert v["evictions"] > 0 and v["misses"] > 0 and v["overcommit_peak"] == 0
    assert v["hits"] + v["misses"] == v["accesses"]
    per_buffer = stats["buffers"].values()
    for key in ("accesses", "misses", "evictions", "writebacks", "bytes_written"):
        assert sum(b[key] for b in per_buffer) == v[key], key


def test_uvm_tree_prefetch_and_modelled_cost(tmp_path):
    """A sequential walk over one 2MiB region faults on blocks 0, 1, 2, 4, 8 and 16: the
    tree prefetcher brings the other 26 of its 32 64KiB blocks."""
    vram = make(tmp_path, capacity=2 * MiB, profile="uvm", fault_latency_us=40.0)
    filler = vram.allocate("filler", (2 * MiB,), np.uint8)
    filler.write(np.ones(2 * MiB, np.uint8))  # takes every frame
    data = np.arange(2 * MiB // 4, dtype=np.int32)
    buf = vram.allocate("walk", data.shape, np.int32)
    buf.write(data)  # no free frame: it goes to host RAM
    vram.free(filler)
    for page in range(buf.pages):
        vram.make_resident(buf, [(page, page + 1)], write=False).release()
    s = vram.stats()["buffers"]["walk"]
    assert (s["accesses"], s["misses"], s["prefetches"], s["hits"]) == (512, 6, 26, 506)
    assert s["fault_batches"] == 6  # one make_resident call per page: each fault alone
    np.testing.assert_array_equal(buf.array(), data)
    link = get_profile("pcie4-x16")
    blocks = [1, 1, 2, 4, 8, 16]  # blocks moved by each of the six faults
    # A batch costs 40us, each fault in it 0.8us, plus the transfer of what it migrated.
    expected = sum(40e-6 + 0.8e-6 + link.transfer_time(n * 64 * KiB) for n in blocks)
    assert s["modelled_s"] == pytest.approx(expected)
    assert vstat(vram, "bytes_written") == 2 * MiB


def test_uvm_far_faults_are_serviced_in_batches_of_256(tmp_path):
    """300 far faults in one make_resident call (every other 64KiB block: the tree
    prefetcher never sees a level more than half resident) are two batches, 256 and 44:
    the fault latency twice, the per-fault service time 300 times.  The pages were never
    written: zero-filled, nothing moves over the link."""
    vram = make(tmp_path, capacity=300 * 64 * KiB, profile="uvm")
    buf = vram.allocate("sparse", (600 * 64 * KiB,), np.uint8)
    lease = vram.make_resident(buf, [(b * 16 + 5, b * 16 + 6) for b in range(0, 600, 2)],
                               write=False)
    lease.release()
    s = vram.stats()["buffers"]["sparse"]
    assert (s["accesses"], s["misses"], s["prefetches"], s["fault_batches"]) == (300, 300, 0, 2)
    assert s["modelled_s"] == pytest.approx(2 * 40e-6 + 300 * 0.8e-6)
    vram.make_resident(buf, [(16, 17)], write=False).release()  # one more call, one more batch
    s = vram.stats()["buffers"]["sparse"]
    assert (s["misses"], s["fault_batches"]) == (301, 3)
    assert s["modelled_s"] == pytest.approx(3 * 40e-6 + 301 * 0.8e-6)


def test_uvm_batches_charge_one_transfer_each(tmp_path):
    """Eight far faults in one call with batches of four: two batches, each migrating four
    64KiB blocks in one transfer over the link."""
    vram = make(tmp_path, capacity=2 * MiB, profile="uvm", fault_batch_size=4,
                fault_latency_us=30.0, fault_service_us=2.0)
    filler = vram.allocate("filler", (2 * MiB,), np.uint8)
    filler.write(np.ones(2 * MiB, np.uint8))  # takes every frame
    data = np.arange(16 * 64 * KiB // 4, dtype=np.int32)
    buf = vram.allocate("a", data.shape, np.int32)
    buf.write(data)  # to host RAM: the faults below move bytes
    vram.free(filler)
    lease = vram.make_resident(buf, [(b * 16, b * 16 + 1) for b in range(0, 16, 2)],
                               write=False)
    per_block = 64 * KiB // 4
    for b in range(0, 16, 2):  # each fault brought its whole block
        np.testing.assert_array_equal(buf.array()[b * per_block:(b + 1) * per_block],
                                      data[b * per_block:(b + 1) * per_block])
    lease.release()
    s = vram.stats()["buffers"]["a"]
    assert (s["misses"], s["prefetches"], s["fault_batches"]) == (8, 0, 2)
    link = get_profile("pcie4-x16")
    batch = 30e-6 + 4 * 2e-6 + link.transfer_time(4 * 64 * KiB)
    assert s["modelled_s"] == pytest.approx(2 * batch)
    with pytest.raises(XvError, match=r"fault_batch_size must be an integer of at least 1"):
        make(tmp_path, profile="uvm", capacity=MiB, fault_batch_size=0)


def test_two_nvme_page_files_make_a_chain(tmp_path):
    """VRAM -> nvme0 -> nvme1 -> file: random tiles against a shadow copy."""
    rng = np.random.default_rng(3)
    vram = make(tmp_path, capacity=3 * PAGE, backing="file")
    fast = PageFile(tmp_path / "fast.pages", 2 * PAGE, PAGE, name="nvme0", profile="nvme-gen4")
    slow = PageFile(tmp_path / "slow.pages", 4 * PAGE, PAGE, name="nvme1", profile="nvme-gen3")
    vram.attach_tiers([fast, slow])
    a = vram.allocate("a", (12 * PAGE,), np.uint8)
    copy = np.zeros(12 * PAGE, np.uint8)
    for step in range(200):
        start = int(rng.integers(12))
        stop = min(12, start + int(rng.integers(1, 3)))
        write = bool(rng.integers(2))
        lease = vram.make_resident(a, [(start, stop)], write=write)
        np.testing.assert_array_equal(a.array()[start * PAGE:stop * PAGE],
                                      copy[start * PAGE:stop * PAGE])
        if write:
            a.array()[start * PAGE:stop * PAGE] += np.uint8(step % 251 + 1)
            copy[start * PAGE:stop * PAGE] += np.uint8(step % 251 + 1)
        lease.release()
    np.testing.assert_array_equal(a.read(), copy)
    tiers = vram.stats()["tiers"]
    assert list(tiers) == ["vram", "nvme0", "nvme1", "backing"]
    assert tiers["nvme0"]["evictions"] > 0 and tiers["nvme1"]["writes"] > 0
    assert tiers["nvme1"]["hits"] > 0 and tiers["nvme1"]["modelled_s"] > 0
    assert tiers["backing"]["writes"] > 0 and tiers["backing"]["reads"] > 0
    # The page files hold what the flags say, one tier per page at most.
    for page in range(12):
        key = a.key_base | page
        assert (key in fast, key in slow) == (a.tier_of[page] == 1, a.tier_of[page] == 2)
    vram.close()
    fast.close()
    slow.close()


def test_uvm_evicts_whole_migration_blocks(tmp_path):
    vram = make(tmp_path, capacity=2 * 64 * KiB, profile="uvm")
    buf = vram.allocate("a", (4 * 64 * KiB,), np.uint8)
    for block in (0, 2, 3):  # far apart: no prefetch; the third evicts block 0
        vram.make_resident(buf, [(block * 16 + 3, block * 16 + 4)], write=True).release()
    assert [sum(buf.resident[b * 16:(b + 1) * 16]) for b in range(4)] == [0, 0, 16, 16]
    assert vstat(vram, "evictions") == 1 and vstat(vram, "writebacks") == 1  # the touched page


def test_page_trace_records_every_access(tmp_path):
    vram = make(tmp_path)
    vram.record_pages(tmp_path / "t.pages")
    a = vram.allocate("a", (3 * PAGE,), np.uint8)
    b = vram.allocate("b", (5 * PAGE,), np.uint8)
    vram.make_resident(a, [(0, 3)], write=True).release()
    vram.make_resident(b, [(1, 4), (4, 9)], write=False).release()  # clipped to 5 pages
    vram.close()
    header, records = read_page_trace(tmp_path / "t.pages")
    assert header == {"page_size": PAGE, "profile": "plain",
                      "buffers": {"0": {"name": "a", "pages": 3}, "1": {"name": "b", "pages": 5}}}
    assert [tuple(int(x) for x in r) for r in records] == [(0, 0, 3, 1), (1, 1, 3, 0),
                                                           (1, 4, 1, 0)]


def test_misconfiguration_is_reported(tmp_path):
    with pytest.raises(XvError, match=r"^\$\.vram\.eviction: eviction policy 'belady' needs the "
                                      r"future accesses, so it only replays recorded traces"):
        make(tmp_path, eviction="belady")
    make(tmp_path, eviction="belady", paging=False)  # no paging: never evicts, so it is fine
    vram = make(tmp_path, page_size=64 * KiB, capacity=MiB)
    with pytest.raises(XvError) as err:
        vram.attach_tiers([tier(tmp_path, 4, page_size=PAGE)])
    assert str(err.value) == ("component 'nvme0': its page size (4KiB) is smaller than "
                              "vram.page_size (64KiB) (hint: set its page_size to 64KiB)")
    with pytest.raises(XvError, match=r"uvm profile faults at 4KiB pages, but page_size is 64KiB"):
        make(tmp_path, page_size=64 * KiB, capacity=MiB, profile="uvm")
    with pytest.raises(XvError, match=r"holds no 64KiB migration block"):
        make(tmp_path, capacity=32 * KiB, profile="uvm")
    vram = make(tmp_path)
    a = vram.allocate("a", (4,), np.float32)
    with pytest.raises(XvError, match=r"^buffer 'a': the buffer is not persistent"):
        vram.flush(a)
    with pytest.raises(XvError, match="cannot write a float64 array of shape \\[4\\]"):
        a.write(np.zeros(4))


def test_page_events_reach_the_xv_on_page_hook(tmp_path):
    from xv_core import hookimpl
    from xv_core.config.fabric import parse_fabric
    from xv_core.plugins import load_plugins
    from xv_core.runtime.api import open_fabric

    events = []

    class Watcher:
        @hookimpl
        def xv_on_page(self, event):
            events.append((event.kind, event.buffer, event.page, event.tier))

    plugins = load_plugins(extra=[("watcher", Watcher())])
    config = parse_fabric({"vram": {"capacity": "8KiB", "page_size": "4KiB"},
                           "components": [{"name": "alu", "kind": "cpu", "threads": 1}]},
                          plugins, "f.yaml")
    with open_fabric(config, plugins=plugins, workdir=tmp_path) as fabric:
        a = fabric.zeros(1024, name="a")  # one page each
        b = fabric.zeros(1024, name="b")
        c = fabric.buffer(np.ones(1024, np.float32), name="c")  # the host fills a free frame
        vram = fabric.vram
        vram.make_resident(a.device, [(0, 1)], write=True).release()  # zero-filled
        vram.make_resident(b.device, [(0, 1)], write=False).release()  # evicts c: dirty
        vram.make_resident(c.device, [(0, 1)], write=False).release()  # evicts a: dirty
        stats = vram.stats()["tiers"]["vram"]
    assert events == [("fault", "a", 0, "zero"),
                      ("writeback", "c", 0, "backing"), ("evict", "c", 0, "vram"),
                      ("fault", "b", 0, "zero"),
                      ("writeback", "a", 0, "backing"), ("evict", "a", 0, "vram"),
                      ("fault", "c", 0, "backing")]
    assert (stats["misses"], stats["evictions"], stats["writebacks"]) == (3, 2, 2)
