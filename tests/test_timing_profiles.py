"""Link and device profiles: their numbers, their sources, and the roofline."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from xv_core.profiles import PROFILES, LinkProfile, disk_profile, get_profile
from xv_core.runtime.interfaces import TileWork
from xv_core.timing import DEFAULT_DEVICE_PROFILES, DeviceProfile, Link, Timeline, device_profile

DOCS = Path(__file__).resolve().parents[1] / "docs" / "timing.md"


def test_every_link_profile_has_its_source_in_the_timing_docs():
    text = DOCS.read_text()
    for p in PROFILES.values():
        duplex = "full" if p.full_duplex else "half"
        assert f"| `{p.name}` | {duplex} | {p.source} |" in text, p.name


def test_every_device_profile_has_its_numbers_and_source_in_the_timing_docs():
    text = DOCS.read_text()
    for p in DEFAULT_DEVICE_PROFILES.values():
        row = (f"| `{p.name}` | {p.ops_per_lane_per_s:.3g} | {p.lanes} | "
               f"{p.mem_bandwidth / 1e9:.3g} GB/s | {p.launch_latency * 1e6:.3g} us | {p.source} |")
        assert row in text, p.name


def test_half_duplex_profiles_are_the_ones_one_medium_serves_both_ways():
    half = {name for name, p in PROFILES.items() if not p.full_duplex}
    assert half == {"sata3", "nvme-gen3", "nvme-gen4", "hdd-7200", "usb2"}


def test_a_disk_profile_is_seek_plus_half_a_turn_then_the_sequential_rate():
    disk = disk_profile("my-disk", rpm=7200, seek=8.5e-3, rate=200e6)
    assert math.isclose(disk.latency, 8.5e-3 + 60 / 7200 / 2)
    assert disk.bandwidth == 200e6 and not disk.full_duplex
    # The built-in hdd-7200 rounds the same numbers to 12.7 ms.
    assert math.isclose(disk.latency, get_profile("hdd-7200").latency, rel_tol=3e-3)
    # One 1 MiB random read: a seek, half a turn, then 1 MiB at 200 MB/s.
    tl = Timeline([Link("sata", "host", "disk", disk)])
    read = tl.transfer(("disk", "host"), 1 << 20)
    tl.run()
    assert math.isclose(read.end, 8.5e-3 + 30 / 7200 + (1 << 20) / 200e6, rel_tol=1e-12)


def test_a_fabric_defines_its_own_link_by_constructing_a_profile():
    mine = LinkProfile("cxl", 64e9, 300e-9, "a CXL 2.0 x16 link", "our lab's measurement")
    tl = Timeline([Link("c0", "host", "mem", mine)])
    done = tl.transfer(("host", "mem"), 64_000_000)
    tl.run()
    assert math.isclose(done.end, 300e-9 + 1e-3, rel_tol=1e-12)


def test_default_device_profiles_exist_for_the_compute_kinds():
    assert set(DEFAULT_DEVICE_PROFILES) == {"cpu", "hdd", "net"}
    cpu = device_profile("cpu", lanes=2)
    assert cpu.lanes == 2
    assert cpu.ops_per_lane_per_s == DEFAULT_DEVICE_PROFILES["cpu"].ops_per_lane_per_s
    # The hdd kind reads its data from the platter: memory-bound at the disk's rate.
    hdd = device_profile("hdd")
    work = TileWork(ops=1_000_000, bytes_read=100_000_000)
    assert math.isclose(hdd.tile_time(work), 12.7e-3 + 0.5)


@pytest.mark.parametrize("field, value", [("ops_per_lane_per_s", 0), ("lanes", 0),
                                          ("lanes", 1.5), ("mem_bandwidth", -1),
                                          ("launch_latency", -1e-6)])
def test_device_profiles_refuse_impossible_numbers(field, value):
    numbers = {"ops_per_lane_per_s": 1e9, "lanes": 1, "mem_bandwidth": 1e9, "launch_latency": 0}
    numbers[field] = value
    with pytest.raises(ValueError) as info:
        DeviceProfile("x", **numbers)
    assert field in str(info.value)


def test_the_roofline_ridge_point_separates_compute_from_memory_bound():
    cpu = DeviceProfile("c", ops_per_lane_per_s=2e9, lanes=4, mem_bandwidth=16e9,
                        launch_latency=0.0)
    assert cpu.ridge_point() == 0.5  # 8e9 ops/s over 16e9 B/s
    at_ridge = TileWork(ops=8_000_000, bytes_read=16_000_000)
    assert math.isclose(cpu.tile_time(at_ridge), 1e-3)
    assert math.isclose(cpu.tile_time(TileWork(ops=16_000_000, bytes_read=16_000_000)), 2e-3)
    assert math.isclose(cpu.tile_time(TileWork(ops=8_000_000, bytes_read=32_000_000)), 2e-3)


def test_the_fabric_in_the_timing_docs_is_whole_and_valid(tmp_path):
    from typer.testing import CliRunner

    from xv_core.cli.main import app

    text = DOCS.read_text()
    section = text[text.index("## In a fabric file"):]
    block = section[section.index("```yaml\n") + 8:section.index("```\n", 8)]
    (tmp_path / "fabric.yaml").write_text(block)
    result = CliRunner().invoke(app, ["fabric", "validate", str(tmp_path / "fabric.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output == "fabric 'two-hosts' is valid: 3 components, 3 links\n"
