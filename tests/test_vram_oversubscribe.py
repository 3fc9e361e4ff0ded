"""Oversubscription end to end: examples/jobs/oversubscribe.yaml has 4MiB of buffers; on fabrics
with 1MiB of VRAM (plain paging through an nvme tier to files, through two nvme tiers, and the
uvm profile) it gives exactly the outputs it gives on the default fabric, where everything
fits, and its statistics show the paging.  The outputs are also checked against numpy."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from xv_core.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
KiB, MiB = 1 << 10, 1 << 20
OUTPUTS = ("img1", "img2", "blur4", "e")
#: small-vram with a chain of two cache tiers: a small fast one, then a larger slower one.
TWO_TIERS = """\
name: two-tiers
vram: {capacity: 1MiB, page_size: 64KiB, paging: true, backing: file, path: .xv/vram}
components:
  - {name: alu, kind: cpu, threads: 2}
  - {name: nvme0, kind: nvme, path: .xv/nvme0.pages, capacity: 512KiB, page_size: 64KiB}
  - {name: nvme1, kind: nvme, path: .xv/nvme1.pages, capacity: 1MiB, page_size: 64KiB,
     profile: nvme-gen3}
"""


def run(fabric: str, job: Path, *extra: str) -> dict:
    result = CliRunner().invoke(app, ["fabric", "run", fabric, str(job), "--json", *extra])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    summary["arrays"] = {name: np.load(job.parent / path)
                         for name, path in (("img1", "out/oversubscribe_img1.npy"),
                                            ("img2", "out/oversubscribe_img2.npy"),
                                            ("blur4", "out/oversubscribe_blur4.npy"),
                                            ("e", "out/oversubscribe_e.npy"))}
    return summary


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict]:
    """The example job on three fabrics, each in a folder of its own (the fabrics' relative
    paths, .xv/..., then stay out of the repository)."""
    out: dict[str, dict] = {}
    for fabric in ("default", "small-vram", "uvm-vram", "two-tiers"):
        work = tmp_path_factory.mktemp(fabric)
        jobs = work / "jobs"
        shutil.copytree(ROOT / "examples/jobs", jobs, ignore=shutil.ignore_patterns("out", "data"))
        shutil.copytree(ROOT / "examples/kernels", work / "kernels")
        spec = fabric
        if fabric == "two-tiers":
            spec = str(work / f"{fabric}.yaml")
            Path(spec).write_text(TWO_TIERS)
        elif fabric != "default":
            spec = str(work / f"{fabric}.yaml")
            shutil.copy(ROOT / f"examples/fabrics/{fabric}.yaml", spec)
        out[fabric] = run(spec, jobs / "oversubscribe.yaml")
    return out


def hash01(i: np.ndarray, seed: int) -> np.ndarray:
    """oversubscribe_fill.xvk's hash, in numpy."""
    seeds = np.full(i.shape, seed, np.uint32)  # arrays wrap around silently, scalars warn
    h = i.astype(np.uint32) * np.uint32(747796405) + seeds * np.uint32(2891336453)
    h = ((h >> ((h >> np.uint32(28)) + np.uint32(4))) ^ h) * np.uint32(277803737)
    h = (h >> np.uint32(22)) ^ h
    return (h >> np.uint32(8)).astype(np.float32) / np.float32(16777216.0)


def gauss5(src: np.ndarray) -> np.ndarray:
    w = np.array([1, 4, 6, 4, 1], np.float64)
    padded = np.pad(src.astype(np.float64), 2, mode="edge")
    h, wd = src.shape
    acc = sum(w[dy] * w[dx] * padded[dy:dy + h, dx:dx + wd] for dy in range(5) for dx in range(5))
    return acc / 256.0


def test_outputs_are_exactly_those_of_ample_vram(runs):
    ample = runs["default"]["arrays"]
    for fabric in ("small-vram", "uvm-vram", "two-tiers"):
        for name in OUTPUTS:
            assert np.array_equal(runs[fabric]["arrays"][name], ample[name]), (fabric, name)


def test_outputs_match_numpy(runs):
    got = runs["default"]["arrays"]
    image = [hash01(np.arange(256 * 256), seed).reshape(256, 256) for seed in (1, 2, 3, 4)]
    np.testing.assert_allclose(got["img1"], gauss5(gauss5(image[0])), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["blur4"], gauss5(image[3]), rtol=1e-5, atol=1e-6)
    a, b, a2, b2 = (hash01(np.arange(65536), s).reshape(256, 256).astype(np.float64)
                    for s in (5, 6, 7, 8))
    expected = (a @ b @ b) @ (a2 @ b2)
    np.testing.assert_allclose(got["e"].reshape(256, 256), expected, rtol=1e-4)


def test_statistics_show_the_paging(runs):
    ample = runs["default"]["vram"]
    assert ample["tiers"]["vram"]["evictions"] == 0
    # With room for everything each of the 64 pages comes in once, zero-filled: faulted on
    # first touch, or prefetched while earlier tiles ran (the split depends on timing).
    v = ample["tiers"]["vram"]
    assert v["misses"] + v["prefetched"] == v["zero_fills"] == 64
    small = runs["small-vram"]["vram"]
    assert small["capacity"] == MiB and small["peak"] == 4 * MiB  # 4x oversubscribed
    assert len(small["buffers"]) == 16
    vram, nvme, backing = (small["tiers"][k] for k in ("vram", "nvme0", "backing"))
    assert vram["resident_peak"] == MiB and vram["overcommit_peak"] == 0
    assert vram["evictions"] >= 48 and vram["writebacks"] >= 32
    assert vram["misses"] > 64  # the 64 pages each fault in at least once, some again
    assert vram["hits"] + vram["misses"] == vram["accesses"]
    assert nvme["writes"] > 0 and nvme["hits"] > 0 and nvme["evictions"] > 0
    assert backing["kind"] == "file" and backing["reads"] > 0 and backing["writes"] > 0
    assert vram["modelled_s"] > 0 and nvme["modelled_s"] > 0
    for name, stats in small["buffers"].items():
        assert stats["accesses"] > 0 and stats["evictions"] > 0, name
    uvm = runs["uvm-vram"]["vram"]
    assert uvm["profile"] == "uvm" and uvm["page_size"] == 4 * KiB
    v = uvm["tiers"]["vram"]
    assert v["prefetches"] > 0 and v["evictions"] > 0 and v["overcommit_peak"] == 0
    # Far faults are serviced in batches (those of one make_resident call, 256 at most): each
    # batch costs 40us, each fault 0.8us, plus the transfers.
    assert 0 < v["fault_batches"] <= v["misses"]
    assert v["modelled_s"] >= v["fault_batches"] * 40e-6 + v["misses"] * 0.8e-6


def test_two_cache_tiers_make_a_chain(runs):
    """Pages nvme0 evicts go down to nvme1, and only from there to the files."""
    stats = runs["two-tiers"]["vram"]
    assert list(stats["tiers"]) == ["vram", "nvme0", "nvme1", "backing"]
    vram, fast, slow, backing = stats["tiers"].values()
    assert (fast["level"], fast["slots"], slow["level"], slow["slots"]) == (1, 8, 2, 16)
    assert vram["evictions"] >= 48 and vram["overcommit_peak"] == 0
    assert fast["evictions"] > 0 and slow["writes"] >= fast["evictions"]
    assert slow["hits"] > 0 and slow["evictions"] > 0 and backing["writes"] > 0
    assert slow["modelled_s"] > 0 and fast["modelled_s"] > 0


def test_summary_prints_the_statistics(tmp_path):
    shutil.copytree(ROOT / "examples/kernels", tmp_path / "kernels")
    (tmp_path / "jobs").mkdir()
    for name in ("oversubscribe.yaml", "oversubscribe_fill.xvk"):
        shutil.copy(ROOT / "examples/jobs" / name, tmp_path / "jobs" / name)
    # The same job with only its first step and a 512KiB fabric: quick, and the text is stable.
    job = tmp_path / "jobs/oversubscribe.yaml"
    text = job.read_text()
    head, steps = text.split("steps:\n")
    job.write_text(head + "steps:\n" + steps.splitlines()[0] + "\noutputs: {}\n")
    fabric = tmp_path / "f.yaml"
    fabric.write_text("vram: {capacity: 512KiB, page_size: 64KiB}\n"
                      "components: [{name: alu, kind: cpu, threads: 1}]\n")
    result = CliRunner().invoke(app, ["fabric", "run", str(fabric), str(job),
                                      "--record-pages", str(tmp_path / "t.pages")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = lines.index("  vram: 512KiB in 64KiB pages, lru, paging plain; peak resident 256.0KiB")
    # Tiles after the first may find their pages prefetched while earlier ones ran: how many
    # depends on timing, so the line is checked by its parts.
    line = re.fullmatch(r"    vram      4 page accesses, (\d) hits, (\d) faults \((\S+)%\), "
                        r"(\d) prefetched ahead \((\d) used\), 0 by the uvm tree, 0 evictions, "
                        r"0 written back; 0B in, 0B out; modelled \S+ ms", lines[at + 1])
    assert line, lines[at + 1]
    hits, faults, ratio, ahead, used = line.groups()
    assert int(hits) + int(faults) == 4 and int(used) == int(hits) <= int(ahead)
    assert float(ratio) == int(faults) * 25.0
    assert lines[at + 2] == "    backing   ram: 0 reads, 0 writes; 0B read, 0B written"
    assert lines[at + 3].split() == ["buffer", "accesses", "faults", "evicted", "in", "out"]
    assert lines[at + 4].split() == ["img1", "4", faults, "0", "0B", "0B"]
    assert lines[at + 5].split() == ["img2", "0", "0", "0", "0B", "0B"]
    assert f"page trace: {tmp_path / 't.pages'}" in lines


def test_a_buffer_larger_than_vram_works_in_a_dispatch():
    """With paging a buffer may be larger than all of VRAM: each tile pins only its footprint
    (its part of each buffer), and VRAM is over capacity only while the footprints of the
    tiles running at once do not fit together (reported)."""
    from xv_core.config.fabric import parse_fabric
    from xv_core.plugins import load_plugins
    from xv_core.runtime.api import open_fabric

    plugins = load_plugins()
    config = parse_fabric({"vram": {"capacity": "64KiB", "page_size": "4KiB"},
                           "components": [{"name": "alu", "kind": "cpu", "threads": 2}]},
                          plugins, "tiny.yaml")
    n = 100_000  # 400,000 bytes (98 pages) a buffer, six times the VRAM
    with open_fabric(config, plugins=plugins) as fabric:
        saxpy = fabric.kernel(ROOT / "examples/kernels/saxpy.xvk")
        x = fabric.buffer(np.arange(n, dtype=np.float32), name="x")
        y = fabric.buffer(np.full(n, 3, np.float32), name="y")
        fabric.dispatch(saxpy, global_size=n, block=256, args={"a": 0.5, "x": x, "y": y})
        np.testing.assert_array_equal(y.read(), 3 + 0.5 * np.arange(n, dtype=np.float32))
        vram = fabric.vram.stats()["tiers"]["vram"]
        assert vram["accesses"] >= 2 * 98 and vram["evictions"] > 0
        assert vram["overcommit_peak"] < 2 * 98 * 4 * KiB - 64 * KiB  # less than whole buffers
        assert vram["resident"] <= 64 * KiB  # within capacity once the tiles ended
