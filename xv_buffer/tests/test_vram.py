"""The RAM VRAM allocator: alignment, accounting, fragmentation and out-of-memory errors."""

import threading

import attrs
import numpy as np
import pytest

from xv_core.errors import XvError
from xv_buffer.vram import HISTORY_LIMIT, RamVram, RunAllocator, ram_vram_factory

KiB = 1 << 10
MiB = 1 << 20


@attrs.frozen
class VramConfig:  # the shape of the core's structured ``vram`` section
    capacity: int = 4 * MiB
    page_size: int = 64 * KiB
    eviction: str = "lru"
    paging: bool = False
    manager: str = "ram"


def test_factory_reads_the_config():
    vram = ram_vram_factory(VramConfig(capacity=2 * MiB, page_size=4 * KiB, eviction="fifo"), None)
    assert (vram.capacity, vram.page_size, vram.eviction, vram.paging) == (2 * MiB, 4 * KiB,
                                                                          "fifo", False)


def test_size_strings_are_accepted():
    vram = RamVram("1MiB", "4KiB")
    assert (vram.capacity, vram.page_size) == (MiB, 4 * KiB)


def test_allocate_zero_filled_with_shape_and_dtype():
    vram = RamVram(MiB, 4 * KiB)
    buf = vram.allocate("img", (3, 5, 4), np.float32)
    assert buf.array().shape == (3, 5, 4)
    assert buf.array().dtype == np.float32
    assert buf.nbytes == 240 and buf.shape == (3, 5, 4) and buf.dtype == np.float32
    assert not buf.array().any()


def test_offsets_are_page_aligned_and_sizes_round_up():
    vram = RamVram(MiB, 4 * KiB)
    a = vram.allocate("a", (1,), np.float32)  # 4 bytes -> one page
    b = vram.allocate("b", (1025,), np.float32)  # 4100 bytes -> two pages
    c = vram.allocate("c", (0,), np.float32)  # empty buffers still get a page of their own
    assert (a.offset, b.offset, c.offset) == (0, 4 * KiB, 12 * KiB)
    assert (a.reserved, b.reserved, c.reserved) == (4 * KiB, 8 * KiB, 4 * KiB)
    s = vram.stats()
    assert s["used"] == 16 * KiB
    assert s["requested"] == 4 + 4100 + 0
    assert s["internal_fragmentation"] == 16 * KiB - 4104
    assert s["count"] == 3


def test_stats_peak_and_live_largest_first():
    vram = RamVram(MiB, 64 * KiB)
    a = vram.allocate("a", (16 * KiB,), np.float32)  # 64KiB
    vram.allocate("b", (64 * KiB,), np.float32)  # 256KiB
    vram.free(a)
    s = vram.stats()
    assert s["capacity"] == MiB and s["page_size"] == 64 * KiB and s["pages"] == 16
    assert s["used"] == 256 * KiB and s["peak"] == 320 * KiB
    assert s["free"] == MiB - 256 * KiB
    assert s["count"] == 1 and s["allocations_total"] == 2
    assert s["live"] == [{"name": "b", "nbytes": 256 * KiB, "reserved": 256 * KiB,
                          "offset": 64 * KiB}]


def test_the_stats_of_freed_buffers_are_kept_for_the_last_ones_freed():
    # A long-lived fabric allocates and frees buffers of new names: the statistics keep the
    # most recently freed (a job reads its buffers' after freeing them) and count the rest.
    vram = RamVram(MiB, 64 * KiB)
    keep = vram.allocate("keep", (16,), np.float32)
    extra = 76
    for i in range(HISTORY_LIMIT + extra):
        buf = vram.allocate(f"t{i}", (16,), np.float32)
        buf.array()[:] = 1
        vram.free(buf)
    again = vram.allocate("t0", (16,), np.float32)  # an old name freed again moves up
    vram.free(again)
    s = vram.stats()
    freed = [n for n in s["buffers"] if n != "keep"]
    assert len(freed) == HISTORY_LIMIT and s["buffers"]["keep"]["pages"] == 1
    assert s["buffers_forgotten"] == extra + 1
    assert "t0" in s["buffers"] and f"t{extra}" not in s["buffers"]
    assert f"t{extra + 1}" in s["buffers"] and f"t{HISTORY_LIMIT + extra - 1}" in s["buffers"]
    vram.free(keep)


def test_free_reuses_space_and_coalesces():
    vram = RamVram(64 * KiB, 16 * KiB)  # 4 pages
    bufs = [vram.allocate(n, (4 * KiB,), np.float32) for n in "abcd"]
    vram.free(bufs[1])
    vram.free(bufs[2])
    # pages 1 and 2 merged into one run: a two-page buffer fits there
    big = vram.allocate("big", (8 * KiB,), np.float32)
    assert big.offset == 16 * KiB
    assert vram.stats()["external_fragmentation"] == 0.0


def test_external_fragmentation_is_measured_and_explained():
    vram = RamVram(64 * KiB, 16 * KiB)
    bufs = [vram.allocate(n, (4 * KiB,), np.float32) for n in "abcd"]
    vram.free(bufs[0])
    vram.free(bufs[2])
    s = vram.stats()
    assert s["free"] == 32 * KiB and s["largest_free"] == 16 * KiB
    assert s["external_fragmentation"] == 0.5
    with pytest.raises(XvError) as err:
        vram.allocate("e", (8 * KiB,), np.float32)
    assert str(err.value) == (
        "buffer 'e': cannot allocate 32KiB: 32KiB of the 64KiB VRAM is free, but the largest "
        "free run is 16KiB (fragmented); live allocations, largest first: 'b' 16KiB, "
        "'d' 16KiB (hint: free buffers you no longer need, allocate the largest buffers "
        "first, or raise vram.capacity to 96KiB, or turn vram.paging on)"
    )


def test_out_of_memory_lists_live_allocations_largest_first():
    vram = RamVram(MiB, 64 * KiB)
    vram.allocate("small", (64 * KiB,), np.uint8)
    vram.allocate("large", (512 * KiB,), np.uint8)
    vram.allocate("medium", (128 * KiB,), np.uint8)
    with pytest.raises(XvError) as err:
        vram.allocate("x", (512 * KiB,), np.uint8)
    assert str(err.value) == (
        "buffer 'x': cannot allocate 512KiB: only 320KiB of the 1MiB VRAM is free; "
        "live allocations, largest first: 'large' 512KiB, 'medium' 128KiB, 'small' 64KiB "
        "(hint: raise vram.capacity to at least 1216KiB, or free buffers you no longer need, or "
        "turn vram.paging on)"
    )
    # a failed allocation changes nothing
    assert vram.stats()["used"] == 704 * KiB and vram.stats()["count"] == 3


def test_with_paging_buffers_larger_than_vram_are_allocated():
    vram = RamVram(MiB, 64 * KiB, paging=True)
    a = vram.allocate("a", (768 * KiB,), np.uint8)
    b = vram.allocate("b", (2 * MiB,), np.float32)  # 8MiB: eight times the capacity
    assert (a.offset, b.offset) == (0, 768 * KiB)
    s = vram.stats()
    assert s["used"] == 768 * KiB + 8 * MiB and s["count"] == 2
    assert s["free"] == MiB and s["tiers"]["vram"]["resident"] == 0  # nothing resident yet
    data = np.arange(2 * MiB, dtype=np.float32)
    b.write(data)
    np.testing.assert_array_equal(b.read(), data)
    assert vram.stats()["tiers"]["vram"]["resident"] <= MiB


def test_buffer_larger_than_vram_without_paging():
    vram = RamVram(MiB, 64 * KiB, paging=False)
    with pytest.raises(XvError) as err:
        vram.allocate("huge", (2 * MiB,), np.float32)
    assert str(err.value) == (
        "buffer 'huge': cannot allocate 8MiB: more than the whole VRAM (1MiB) "
        "(hint: raise vram.capacity to at least 8MiB, or turn vram.paging on)"
    )


def test_many_live_allocations_are_summarised():
    vram = RamVram(10 * KiB, KiB)
    for i in range(10):
        vram.allocate(f"b{i}", (KiB,), np.uint8)
    with pytest.raises(XvError) as err:
        vram.allocate("more", (KiB,), np.uint8)
    assert "'b7' 1KiB and 2 more;" not in str(err.value)  # names sort b0..b9 at equal size
    assert "'b0' 1KiB, 'b1' 1KiB" in str(err.value)
    assert "'b7' 1KiB and 2 more (hint:" in str(err.value)


def test_misuse_is_reported():
    vram = RamVram(MiB, 64 * KiB)
    a = vram.allocate("a", (4,), np.float32)
    with pytest.raises(XvError, match=r"^buffer 'a': a buffer of this name is already "
                                      r"allocated \(hint: free it first"):
        vram.allocate("a", (4,), np.float32)
    with pytest.raises(XvError, match=r"^buffer 'b': invalid shape \[-1\]"):
        vram.allocate("b", (-1,), np.float32)
    with pytest.raises(XvError, match=r"^buffer 'b': invalid dtype 'nonsense'"):
        vram.allocate("b", (1,), "nonsense")
    vram.free(a)
    with pytest.raises(XvError, match=r"^buffer 'a': buffer has been freed"):
        a.array()
    with pytest.raises(XvError, match=r"^buffer 'a': buffer is not allocated in this VRAM"):
        vram.free(a)


def test_bad_geometry_is_reported():
    with pytest.raises(XvError, match=r"^\$.vram.capacity: vram.capacity \(1KiB\) is smaller "
                                      r"than one page \(64KiB\)"):
        RamVram(KiB, 64 * KiB)
    with pytest.raises(XvError, match=r"^\$.vram: vram.page_size: 'lots' is not a size"):
        RamVram(MiB, "lots")


def test_close_frees_everything():
    vram = RamVram(MiB, 64 * KiB)
    a = vram.allocate("a", (4,), np.float32)
    vram.close()
    vram.close()
    assert vram.stats()["count"] == 0 and vram.stats()["used"] == 0
    with pytest.raises(XvError, match="freed"):
        a.array()
    with pytest.raises(XvError, match="VRAM is closed"):
        vram.allocate("b", (4,), np.float32)


def test_concurrent_allocations_never_overlap():
    vram = RamVram(4 * MiB, 4 * KiB)
    made = []

    def work(t):
        for i in range(50):
            made.append(vram.allocate(f"t{t}-{i}", (1000 + 37 * i,), np.uint8))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    spans = sorted((b.offset, b.offset + b.reserved) for b in made)
    assert all(end <= nxt for (_, end), (nxt, _) in zip(spans, spans[1:]))
    assert vram.stats()["used"] == sum(b.reserved for b in made)


def test_run_allocator_against_a_page_map():
    """Random allocate/free sequences agree with a plain page-occupancy list."""
    rng = np.random.default_rng(7)
    runs = RunAllocator(64)
    taken = [False] * 64
    live = []
    for _ in range(2000):
        if live and rng.random() < 0.45:
            start, count = live.pop(int(rng.integers(len(live))))
            runs.release(start, count)
            taken[start:start + count] = [False] * count
        else:
            count = int(rng.integers(1, 9))
            start = runs.allocate(count)
            first_fit = next((s for s in range(64 - count + 1)
                              if not any(taken[s:s + count])), None)
            assert start == first_fit
            if start is not None:
                taken[start:start + count] = [True] * count
                live.append((start, count))
        assert runs.free_pages == taken.count(False)
        # free runs are maximal: never two adjacent
        rs = runs.runs()
        assert all(a + n < b for (a, n), (b, _) in zip(rs, rs[1:]))
