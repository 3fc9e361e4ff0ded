"""The pager: RamVram's paging without the data, for the timing model.

The central test drives a RamVram and its pager with the same random calls and checks, call
by call, that what the pager says moved is what RamVram counted moving."""

from collections import Counter

import numpy as np
import pytest

from xv_buffer.pager import Pager
from xv_buffer.policies import POLICIES
from xv_buffer.vram import RamVram
from xv_core.errors import XvError
from xv_core.runtime.interfaces import PageMove

PAGE = 4096
KiB = 1024
ONLINE = [name for name, factory in POLICIES.items() if not getattr(factory, "offline", False)]
# Counters the two keep alike (the rest are wall time, prefetching and the host's reads).
SKIP = {"wall_s", "bandwidth_Bps", "host_bytes_read", "miss_ratio", "kind", "flushes",
        "flushed_bytes", "prefetch_limit", "prefetch_errors", "prefetch_in_flight"}


def move(kind, buffer, first, count, source, dest, nbytes=None, seconds=0.0, faults=0):
    if nbytes is None:
        nbytes = 0 if source == "zero" else count * PAGE
    return PageMove(kind, buffer, first, count, nbytes, source, dest, seconds, faults)


def counters(levels):
    """Level by level, the counters (exact) and modelled seconds (rounded to 1e-12 s)."""
    return {level: {k: round(v, 12) if isinstance(v, float) else v
                    for k, v in entry.items() if k not in SKIP}
            for level, entry in levels.items()}


def tally(moves):
    """What the moves add up to, in the units of RamVram's statistics."""
    t = Counter()
    for m in moves:
        if m.kind == "fault":
            assert (m.source, m.dest, m.count, m.nbytes) == ("", "vram", 0, 0)
            t["faults"] += m.faults
            t["fault_batches"] += 1
            continue
        assert m.count > 0
        if m.kind == "down" and not m.nbytes:  # a clean page dropped from VRAM
            assert m.source == "vram" and m.dest != "vram"
            t["dropped"] += m.count
            continue
        assert m.nbytes == (0 if m.source == "zero" else m.count * PAGE)
        if m.source == "host":
            t["host", m.kind, m.dest] += m.count
            continue
        if m.kind == "in":
            assert m.dest == "vram" and m.source != "vram"
            t["in_pages"] += m.count
            t["zero_fills"] += m.count if m.source == "zero" else 0
        else:
            assert m.source not in ("zero", "backing") and m.dest != "vram"
            t["down_from_vram"] += m.count if m.source == "vram" else 0
        if m.source != "zero":
            t[m.source, "reads"] += m.count
            t[m.source, "bytes_read"] += m.nbytes
        t[m.dest, "writes"] += m.count
        t[m.dest, "bytes_written"] += m.nbytes
    return t


class Twins:
    """A RamVram and its pager, driven alike; checks each call's moves against RamVram."""

    def __init__(self, vram, pager, profile):
        self.vram, self.pager, self.uvm = vram, pager, profile == "uvm"
        self.bufs = {}
        self.snap = vram.stats()["tiers"]
        self.tiers = [name for name in self.snap if name not in ("vram", "backing")]
        self.moves = []  # every move the pager returned

    def check_counters(self):
        real, twin = self.vram.stats()["tiers"], self.pager.stats()["tiers"]
        assert counters(twin) == counters(real)

    def check_moves(self, moves):
        """RamVram's statistics since the last call that returned moves."""
        self.moves += moves
        now, before = self.vram.stats()["tiers"], self.snap
        self.snap = now

        def delta(level, key):
            return now[level][key] - before[level][key]

        t = tally(moves)
        assert t["vram", "bytes_written"] == delta("vram", "bytes_written")
        assert t["zero_fills"] == delta("vram", "zero_fills")
        assert t["in_pages"] * PAGE == delta("vram", "bytes_written") + \
            delta("vram", "zero_fills") * PAGE
        if self.uvm:
            assert t["faults"] == delta("vram", "misses")
            assert t["fault_batches"] == delta("vram", "fault_batches")
        else:
            assert t["in_pages"] == delta("vram", "misses")
        for tier in self.tiers:
            for key in ("reads", "bytes_read", "writes", "bytes_written"):
                assert t[tier, key] == delta(tier, key), (tier, key)
        assert t["backing", "bytes_read"] == delta("backing", "bytes_read")
        assert t["backing", "writes"] == delta("backing", "writes")
        assert t["backing", "bytes_written"] == delta("backing", "bytes_written")
        # Out of VRAM: every dirty page written back, clean ones a tier keeps, and clean ones
        # dropped; a unit (a page, or a uvm block of up to 16) is evicted at once.
        assert t["down_from_vram"] * PAGE >= delta("vram", "bytes_read")
        out, evicted = t["down_from_vram"] + t["dropped"], delta("vram", "evictions")
        assert out == evicted if not self.uvm else evicted <= out <= 16 * evicted
        self.check_counters()

    def allocate(self, name, nbytes, rng):
        self.bufs[name] = self.vram.allocate(name, (nbytes,), np.uint8)
        self.pager.allocate(name, nbytes, filled=False)
        self.check_counters()

    def host_write(self, name, rng):
        buf = self.bufs[name]
        buf.write(rng.integers(0, 256, buf.nbytes, dtype=np.uint8))
        moves = self.pager.host_write(name)
        written = Counter()
        for m in moves:
            written[m.kind, m.source, m.dest] += m.count
        # Whole pages, each once, from the host: into VRAM frames or into the backing.
        assert written["in", "host", "vram"] + written["down", "host", "backing"] == buf.pages
        self.check_moves([m for m in moves if m.source != "host"])

    def tile(self, accesses):
        leases = []
        with self.pager.tile():
            for name, ranges, write in accesses:
                leases.append(self.vram.make_resident(self.bufs[name], ranges, write=write))
                self.check_moves(self.pager.access(name, ranges, write=write))
        for lease in leases:
            lease.release()
        self.check_counters()  # the moves of ending over capacity come with the next call

    def access(self, name, ranges, write):
        self.vram.make_resident(self.bufs[name], ranges, write=write).release()
        self.check_moves(self.pager.access(name, ranges, write=write))

    def free(self, name):
        self.vram.free(self.bufs.pop(name))
        self.pager.free(name)
        self.check_counters()


def random_work(twins, rng, steps, max_pages, max_range):
    """Allocations, host writes, tiles of one to three accesses, single accesses, frees."""
    made = 0
    for _ in range(steps):
        op = rng.choice(["alloc", "write", "tile", "tile", "tile", "access", "free"],
                        p=[0.1, 0.08, 0.3, 0.2, 0.15, 0.12, 0.05]) if twins.bufs else "alloc"
        names = sorted(twins.bufs)
        if op == "alloc" and len(names) < 6:
            name = f"b{made}"
            made += 1
            twins.allocate(name, int(rng.integers(1, max_pages * PAGE)), rng)
            if rng.random() < 0.5:
                twins.host_write(name, rng)
        elif op == "write":
            twins.host_write(str(rng.choice(names)), rng)
        elif op in ("tile", "access"):
            accesses = []
            for _ in range(int(rng.integers(1, 4)) if op == "tile" else 1):
                name = str(rng.choice(names))
                pages = twins.bufs[name].pages
                ranges = []
                for _ in range(int(rng.integers(1, 3))):
                    start = int(rng.integers(-2, pages))
                    ranges.append((start, start + int(rng.integers(1, max_range))))
                accesses.append((name, ranges, bool(rng.random() < 0.4)))
            if op == "tile":
                twins.tile(accesses)
            else:
                twins.access(*accesses[0])
        elif op == "free" and len(names) > 1:
            twins.free(str(rng.choice(names)))


def make_twins(tmp_path, mem_tier, eviction, profile, backing="file"):
    if profile == "uvm":  # 8 blocks of 64KiB; tiers of 48 and 96 pages
        vram = RamVram(512 * KiB, PAGE, paging=True, backing=backing, path=tmp_path,
                       eviction=eviction, profile="uvm", fault_batch_size=8,
                       persistent=["b3"])
        vram.attach_tiers([mem_tier("fast", 48, PAGE), mem_tier("slow", 96, PAGE)])
    else:  # 8 pages; tiers of 5 and 9 pages
        vram = RamVram(8 * PAGE, PAGE, paging=True, backing=backing, path=tmp_path,
                       eviction=eviction, persistent=["b3"])
        vram.attach_tiers([mem_tier("fast", 5, PAGE), mem_tier("slow", 9, PAGE)])
    return Twins(vram, vram.pager(), profile)


@pytest.mark.parametrize("profile", ["plain", "uvm"])
@pytest.mark.parametrize("eviction", ONLINE)
def test_the_pager_moves_what_ramvram_counts_call_by_call(tmp_path, mem_tier, eviction,
                                                           profile):
    twins = make_twins(tmp_path, mem_tier, eviction, profile)
    rng = np.random.default_rng(sum(map(ord, eviction + profile)))
    if profile == "uvm":
        random_work(twins, rng, 120, max_pages=1100, max_range=300)
    else:
        random_work(twins, rng, 250, max_pages=14, max_range=11)
    kinds = Counter((m.kind, m.source, m.dest) for m in twins.moves)
    # The work exercised every kind of move.
    assert kinds["in", "zero", "vram"] and kinds["in", "backing", "vram"]
    assert kinds["in", "fast", "vram"] and kinds["in", "slow", "vram"]
    assert kinds["down", "vram", "fast"] and kinds["down", "fast", "slow"]
    assert kinds["down", "slow", "backing"]
    drops = Counter(m.dest for m in twins.moves if m.kind == "down" and not m.nbytes)
    assert drops["fast"] and drops["slow"] and drops["zero"]
    assert (kinds["fault", "", "vram"] > 0) == (profile == "uvm")
    v = twins.vram.stats()["tiers"]["vram"]
    assert v["overcommit_peak"] > 0 and v["writebacks"] > 0
    if profile == "uvm":
        assert v["prefetches"] > 0 and v["fault_batches"] > v["misses"] / 8
    twins.vram.close()


def test_ram_backed_pages_bypass_the_tiers_in_the_pager_too(tmp_path, mem_tier):
    twins = make_twins(tmp_path, mem_tier, "lru", "plain", backing="ram")
    random_work(twins, np.random.default_rng(5), 200, max_pages=14, max_range=11)
    kinds = Counter((m.kind, m.source, m.dest) for m in twins.moves)
    assert kinds["down", "vram", "backing"] and kinds["down", "vram", "fast"]  # b3: a file
    twins.vram.close()


@pytest.mark.parametrize("profile", ["plain", "uvm"])
def test_the_same_calls_give_the_same_moves(tmp_path, mem_tier, profile):
    runs = []
    for attempt in range(2):
        twins = make_twins(tmp_path / str(attempt), mem_tier, "arc", profile)
        if profile == "uvm":
            random_work(twins, np.random.default_rng(3), 60, max_pages=1100, max_range=300)
        else:
            random_work(twins, np.random.default_rng(3), 60, max_pages=14, max_range=11)
        runs.append(twins.moves)
        twins.vram.close()
    assert runs[0] == runs[1] and len(runs[0]) > 20




def test_moves_of_a_small_chain(tmp_path, mem_tier):
    """Two frames, one tier of two slots: the moves of docs/vram.md's example."""
    vram = RamVram(2 * PAGE, PAGE, paging=True, backing="file", path=tmp_path)
    vram.attach_tiers([mem_tier("fast", 2, PAGE)])
    pager = vram.pager()
    pager.allocate("a", 4 * PAGE, filled=False)
    pager.allocate("b", 2 * PAGE, filled=True)
    assert pager.access("a", [(0, 2)], write=True) == [move("in", "a", 0, 2, "zero", "vram")]
    # b comes from its backing; a's dirty pages go down to the tier (runs merged).
    assert pager.access("b", [(0, 2)], write=False) == [
        move("in", "b", 0, 2, "backing", "vram"), move("down", "a", 0, 2, "vram", "fast")]
    # a0 comes back from the tier (which keeps its copy); b0, clean, is evicted into the tier
    # as a victim, and the tier makes room by writing a1 (newer there) to the backing.
    assert pager.access("a", [(0, 1)], write=False) == [
        move("in", "a", 0, 1, "fast", "vram"), move("down", "a", 1, 1, "fast", "backing"),
        move("down", "b", 0, 1, "vram", "fast")]
    assert pager.access("a", [(0, 1)], write=False) == []  # a hit
    vram.close()


def test_uvm_fault_batches_come_before_their_moves(tmp_path):
    vram = RamVram("1MiB", "4KiB", paging=True, profile="uvm", path=tmp_path,
                   fault_batch_size=2, fault_latency_us=40, fault_service_us=1)
    pager = vram.pager()
    pager.allocate("a", 3 << 20, filled=True)  # two regions and a half
    # Blocks 0, 2 and 40 (pages 0, 32, 640): three faults, two batches; no tree prefetch.
    moves = pager.access("a", [(0, 1), (32, 33), (640, 641)], write=False)
    fault = "fault", "a", 0, 0, "", "vram"
    latency, service = 40 * 1e-6, 1 * 1e-6  # as RamVram converts them
    assert moves == [move(*fault, nbytes=0, seconds=latency + 2 * service, faults=2),
                     move("in", "a", 0, 16, "backing", "vram"),
                     move("in", "a", 32, 16, "backing", "vram"),
                     move(*fault, nbytes=0, seconds=latency + service, faults=1),
                     move("in", "a", 640, 16, "backing", "vram")]
    # Block 1 completes the pair (0, 1) and three of the quad (0..3): the tree prefetcher
    # brings block 3 with it, in the same batch.
    assert pager.access("a", [(16, 17)], write=False) == [
        move(*fault, nbytes=0, seconds=latency + service, faults=1),
        move("in", "a", 16, 16, "backing", "vram"), move("in", "a", 48, 16, "backing", "vram")]
    assert pager.stats()["tiers"]["vram"]["prefetches"] == 1
    vram.close()


def test_clean_pages_leave_vram_without_bytes(tmp_path):
    """A clean page evicted moves nothing: a ``down`` move of no bytes says where its current
    copy is (``zero``: never written), so that the model frees the frame after its users."""
    vram = RamVram(PAGE, PAGE, paging=True, backing="file", path=tmp_path)
    pager = vram.pager()
    pager.allocate("a", 2 * PAGE, filled=True)
    pager.allocate("z", PAGE, filled=False)
    assert pager.access("a", [(0, 1)], write=False) == [move("in", "a", 0, 1, "backing", "vram")]
    assert pager.access("z", [(0, 1)], write=False) == [
        move("in", "z", 0, 1, "zero", "vram"), move("down", "a", 0, 1, "vram", "backing", 0)]
    assert pager.access("a", [(1, 2)], write=False) == [
        move("in", "a", 1, 1, "backing", "vram"), move("down", "z", 0, 1, "vram", "zero", 0)]
    assert pager.stats()["tiers"]["vram"]["evictions"] == 2
    vram.close()


def test_host_writes_fill_free_frames_then_the_backing(tmp_path):
    vram = RamVram(3 * PAGE, PAGE, paging=True, backing="file", path=tmp_path)
    pager = vram.pager()
    pager.allocate("a", 5 * PAGE - 10, filled=False)
    assert pager.host_write("a") == [move("in", "a", 0, 3, "host", "vram"),
                                     move("down", "a", 3, 2, "host", "backing")]
    # Pages 0-2 are resident and dirty, 3-4 are in the backing now.
    pager.allocate("b", PAGE, filled=False)
    assert pager.access("a", [(3, 4)], write=False) == [
        move("in", "a", 3, 1, "backing", "vram"), move("down", "a", 0, 1, "vram", "backing")]
    assert pager.access("b", [(0, 1)], write=False) == [
        move("in", "b", 0, 1, "zero", "vram"), move("down", "a", 1, 1, "vram", "backing")]
    vram.close()


def test_a_tile_pins_its_pages_until_it_ends(tmp_path):
    vram = RamVram(2 * PAGE, PAGE, paging=True, backing="file", path=tmp_path)
    pager = vram.pager()
    pager.allocate("a", 3 * PAGE, filled=True)
    pager.allocate("b", PAGE, filled=True)
    with pager.tile():
        assert pager.access("a", [(0, 3)], write=True) == [
            move("in", "a", 0, 3, "backing", "vram")]  # over capacity: all three are pinned
        assert pager.access("a", [(0, 1)], write=False) == []
    # The tile ended over capacity: a1 (least recently used) was written back then, and that
    # move comes with the next call's; b0 evicts a2, a run with a1.
    assert pager.access("b", [(0, 1)], write=False) == [
        move("down", "a", 1, 2, "vram", "backing"), move("in", "b", 0, 1, "backing", "vram")]
    assert pager.stats()["tiers"]["vram"]["overcommit_peak"] == PAGE
    vram.close()


@pytest.mark.parametrize("eviction", ["lru", "lfu", "arc"])
def test_a_tile_of_resident_pages_is_a_hit_tile_that_leaves_the_same_state(tmp_path, eviction):
    # Two twins, one driven through hit_tile, one through a tile block of access calls; then
    # the same faulting accesses: the same moves (the policies' orders agree) and counters.
    vram = RamVram(6 * PAGE, PAGE, paging=True, backing="file", path=tmp_path,
                   eviction=eviction)
    twins = [vram.pager(), vram.pager()]
    for pager in twins:
        pager.allocate("a", 4 * PAGE, filled=True)
        pager.allocate("b", 4 * PAGE, filled=True)
        pager.access("a", [(0, 4)], write=False)
        pager.access("b", [(0, 2)], write=False)
    tile = [("b", [(1, 2)], False), ("a", [(2, 4), (0, 1)], False), ("b", [(0, 1)], True)]
    fast, slow = twins
    assert fast.hit_tile(tile) is True
    with slow.tile():
        for name, ranges, write in tile:
            assert slow.access(name, ranges, write=write) == []
    assert fast.stats() == slow.stats()
    # Pages not all resident: nothing is done, and the access path says what moves.
    before = fast.stats()
    assert fast.hit_tile([("a", [(0, 1)], True), ("b", [(2, 3)], False)]) is False
    assert fast.stats() == before
    # b2 and b3 evict the least recently used pages, which must be the same in both.
    moves = [[pager.access("b", [(2, 4)], write=False), pager.access("a", [(1, 2)], write=True)]
             for pager in twins]
    assert moves[0] == moves[1] and any(m.kind == "down" for m in moves[0][0])
    assert fast.stats() == slow.stats()
    vram.close()


def test_without_paging_nothing_moves(tmp_path):
    vram = RamVram(4 * PAGE, PAGE, paging=False, path=tmp_path)
    pager = vram.pager()
    pager.allocate("a", 4 * PAGE, filled=False)
    assert pager.access("a", [(0, 4)], write=True) == []
    assert pager.host_write("a") == [move("in", "a", 0, 4, "host", "vram")]
    assert pager.stats()["tiers"]["vram"]["hits"] == 4


def test_pager_misuse_is_an_error(tmp_path):
    pager = RamVram(4 * PAGE, PAGE, paging=True, path=tmp_path).pager()
    pager.allocate("a", PAGE, filled=False)
    with pytest.raises(XvError, match="already allocated"):
        pager.allocate("a", PAGE, filled=False)
    with pytest.raises(XvError, match="not allocated in this pager"):
        pager.access("nope", [(0, 1)], write=False)
    with pytest.raises(XvError, match="invalid size"):
        pager.allocate("b", -1, filled=False)
    pager.free("a")
    with pytest.raises(XvError, match="not allocated in this pager"):
        pager.free("a")


def test_the_pager_is_a_fresh_twin_with_the_same_configuration(tmp_path, mem_tier):
    vram = RamVram("256KiB", "4KiB", paging=True, profile="uvm", eviction="s3fifo",
                   path=tmp_path, fault_batch_size=7, link="pcie3-x16")
    vram.attach_tiers([mem_tier("fast", 5, PAGE, "nvme-gen4")])
    vram.allocate("x", (PAGE,), np.uint8)
    pager = vram.pager()
    assert isinstance(pager, Pager) and pager.page_size == PAGE and pager.frames == 64
    assert type(pager.policy) is type(vram.policy) and pager.policy is not vram.policy
    assert pager.fault_batch_size == 7 and pager.link is vram.link
    assert list(pager.stats()["tiers"]) == ["vram", "fast", "backing"]
    assert pager.stats()["tiers"]["fast"]["slots"] == 5
    assert pager.stats()["buffers"] == {}  # no buffers: the model allocates its own
    vram.close()
