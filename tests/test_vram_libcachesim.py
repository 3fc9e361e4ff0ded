"""Miss counts of every eviction policy against libCacheSim's, on the same traces.

libCacheSim (``pip install libcachesim``, a test-only dependency) reads the traces in its
``oracleGeneral`` binary format, which carries each request's next-access position: without it
libCacheSim's Belady would not know the future.  ``lru``, ``fifo`` and ``belady`` must miss
exactly as often; ``lfu``, ``clock``, ``arc`` and ``s3fifo`` within 0.5 percentage points.
Traces: synthetic Zipf, scan-heavy and loop-heavy ones, and one recorded from the
oversubscription example job.  S3-FIFO capacities are at least 20 pages (below that
libCacheSim's small queue admits nothing; see xv_buffer.policies).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from xv_buffer.policies import NEVER, POLICIES, next_uses
from xv_core.cli.main import app
from xv_core.cli.vram_cmd import read_page_trace, trace_keys

lcs = pytest.importorskip("libcachesim")

ROOT = Path(__file__).resolve().parents[1]
EXACT = {"lru", "fifo", "belady"}
REFERENCE = {"lru": "LRU", "fifo": "FIFO", "belady": "Belady", "lfu": "LFU", "clock": "Clock",
             "arc": "ARC", "s3fifo": "S3FIFO"}
ORACLE = np.dtype([("time", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])


def write_oracle_general(keys: np.ndarray, path: Path) -> None:
    """libCacheSim's oracleGeneral records: time, object id, size 1, next access (-1: none)."""
    assert ORACLE.itemsize == 24
    nxt = next_uses(keys)
    nxt[nxt == NEVER] = -1
    records = np.zeros(len(keys), dtype=ORACLE)
    records["time"] = np.arange(len(keys))
    records["id"] = keys.astype(np.uint64) + 1  # libCacheSim reserves nothing, but 0 is odd
    records["size"] = 1
    records["next"] = nxt
    records.tofile(path)


def reference_misses(name: str, path: Path, capacity: int, n: int) -> int:
    reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE)
    # A small hash table: the default (2**24 buckets) costs more to allocate than to run.
    ratio, _ = getattr(lcs, REFERENCE[name])(capacity, hashpower=18).process_trace(reader)
    return round(ratio * n)


def zipf_trace(rng: np.random.Generator) -> np.ndarray:
    weights = 1.0 / np.arange(1, 5001) ** 0.9
    return rng.choice(5000, 100_000, p=weights / weights.sum()).astype(np.int64)


def scan_trace(rng: np.random.Generator) -> np.ndarray:
    """A hot set of 150 keys, each burst of it followed by a scan of 400 keys never seen again."""
    parts, fresh = [], 10_000
    while sum(len(p) for p in parts) < 100_000:
        parts.append(rng.integers(0, 150, 100))
        parts.append(np.arange(fresh, fresh + 400))
        fresh += 400
    return np.concatenate(parts)[:100_000].astype(np.int64)


def loop_trace(rng: np.random.Generator) -> np.ndarray:
    """Loops over 800 keys, with one access in ten going to one of 2000 other keys."""
    keys = np.arange(100_000) % 800
    noise = rng.random(100_000) < 0.1
    keys[noise] = 800 + rng.integers(0, 2000, int(noise.sum()))
    return keys.astype(np.int64)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> np.ndarray:
    """Page keys recorded from the oversubscription example on the uvm fabric (4KiB pages)."""
    out = tmp_path_factory.mktemp("recorded")
    job = out / "job.yaml"
    text = (ROOT / "examples/jobs/oversubscribe.yaml").read_text()
    job.write_text(text.replace("../kernels/", f"{ROOT}/examples/kernels/")
                   .replace("oversubscribe_fill.xvk", f"{ROOT}/examples/jobs/oversubscribe_fill.xvk"))
    trace = out / "pages.trace"
    result = CliRunner().invoke(app, ["fabric", "run", str(ROOT / "examples/fabrics/uvm-vram.yaml"),
                                      str(job), "--record-pages", str(trace)])
    assert result.exit_code == 0, result.output
    return trace_keys(read_page_trace(trace)[1])


CASES = [
    ("zipf", zipf_trace, (100, 1000, 3000)),
    ("scan", scan_trace, (100, 400, 1000)),
    ("loop", loop_trace, (500, 900, 2000)),
]


def check(keys: np.ndarray, capacities: tuple[int, ...], tmp_path: Path) -> None:
    path = tmp_path / "trace.oracleGeneral"
    write_oracle_general(keys, path)
    n = len(keys)
    for capacity in capacities:
        ours = {name: cls(capacity).replay(keys) for name, cls in POLICIES.items()}
        for name, misses in ours.items():
            theirs = reference_misses(name, path, capacity, n)
            if name in EXACT:
                assert misses == theirs, (name, capacity, misses, theirs)
            else:
                assert abs(misses - theirs) / n <= 0.005, (name, capacity, misses, theirs)
            assert misses >= ours["belady"], (name, capacity)


@pytest.mark.parametrize("label,make,capacities", CASES, ids=[c[0] for c in CASES])
def test_synthetic_traces_match_libcachesim(label, make, capacities, tmp_path):
    keys = make(np.random.default_rng(sum(map(ord, label))))
    check(keys, capacities, tmp_path)


def test_recorded_trace_matches_libcachesim(recorded, tmp_path):
    assert len(recorded) > 2000
    check(recorded, (32, 128, 256, 512), tmp_path)
