"""The timing keys of a fabric: bus, clock, scheduler, link models and custom links, component
timing overrides -- read as documented, refused with located errors."""

from __future__ import annotations

import textwrap

import pytest

from xv_core.config import load_fabric
from xv_core.config.timing import DeviceTiming, parse_duration, parse_rate
from xv_core.errors import ConfigError
from xv_core.plugins import load_plugins
from xv_core.runtime.model import device_profiles, model_links


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


@pytest.fixture
def write(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def write(text: str) -> str:
        (tmp_path / "fabric.yaml").write_text(textwrap.dedent(text))
        return "fabric.yaml"

    return write


def errors(spec, plugins) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_fabric(spec, plugins)
    return str(info.value).splitlines()


def test_defaults_are_shared_modelled_eft(plugins):
    fabric = load_fabric("default", plugins)
    assert (fabric.bus, fabric.clock, fabric.scheduler) == ("shared", "modelled", "eft")
    assert fabric.components[0].timing is None


def test_timing_keys_are_read(write, plugins):
    fabric = load_fabric(write("""\
        bus: fifo
        clock: measured
        scheduler: locality
        components:
          - name: alu
            kind: cpu
            threads: 2
            timing: {lanes: 4, ops_per_lane_per_s: 1e9, mem_bandwidth: 10GB/s,
                     launch_latency: 20us}
          - {name: disk, kind: hdd, path: d, timing: {profile: net}}
        links:
          - {name: pcie0, between: [host, alu], profile: pcie4-x16, model: tcp}
          - {name: cxl0, between: [alu, disk], bandwidth: 64GB, latency: 300ns, duplex: half}
        """), plugins)
    assert (fabric.bus, fabric.clock, fabric.scheduler) == ("fifo", "measured", "locality")
    assert fabric.component("alu").timing == DeviceTiming(None, 4, 1e9, 10e9, 2e-5)
    pcie, cxl = fabric.links
    assert (pcie.model, pcie.link_profile().name) == ("tcp", "pcie4-x16")
    custom = cxl.link_profile()
    assert (custom.bandwidth, custom.latency, custom.full_duplex) == (64e9, 3e-7, False)
    profiles = device_profiles(fabric, plugins)
    assert profiles["alu"].lanes == 4 and profiles["alu"].ops_per_lane_per_s == 1e9
    assert profiles["alu"].mem_bandwidth == 10e9 and profiles["alu"].launch_latency == 2e-5
    # hdd timed as a net node, with the hdd's one worker as its lane
    assert profiles["disk"].launch_latency == 1e-3 and profiles["disk"].lanes == 1


def test_components_without_a_link_get_the_documented_defaults(write, plugins):
    fabric = load_fabric(write("""\
        components:
          - {name: alu, kind: cpu, threads: 2}
          - {name: disk, kind: hdd, path: d}
          - {name: remote, kind: net}
        """), plugins)
    links, nodes = model_links(fabric, plugins)
    assert nodes == {"alu": "host", "disk": "disk", "remote": "remote"}
    assert [(ln.name, ln.a, ln.b, ln.profile.name, ln.model) for ln in links] == [
        ("disk-link", "host", "disk", "sata3", None),
        ("remote-link", "host", "remote", "1gbe", "tcp"),
    ]
    profiles = device_profiles(fabric, plugins)
    # threads and workers given in the fabric are the lanes; a net node keeps its profile's 4
    assert (profiles["alu"].lanes, profiles["disk"].lanes, profiles["remote"].lanes) == (2, 1, 4)


def test_default_fabric_lanes_do_not_depend_on_the_machine(plugins):
    # threads: 0 (one worker per core) models the cpu profile's lanes, not os.cpu_count()
    assert device_profiles(load_fabric("default", plugins), plugins)["cpu"].lanes == 4


def test_bad_timing_keys_are_located(write, plugins):
    assert errors(write("""\
        bus: sharde
        clock: modeled
        scheduler: eftt
        components:
          - {name: alu, kind: cpu, timing: {lanes: 0, profile: gpu}}
          - {name: d, kind: hdd, path: d, timing: {mem_bandwidth: 40Gb, speed: 2}}
        links:
          - {name: l0, between: [host, alu], profile: pcie4-x16, latency: 1us}
          - {name: l1, between: [host, d], model: tpc}
          - {name: l2, between: [alu, d], bandwidth: fast, latency: -1}
        """), plugins) == [
        "fabric.yaml:1:6: unknown bus model 'sharde' (installed: fifo, ideal, shared, tcp) @ "
        "$.bus (hint: did you mean 'shared'?)",
        "fabric.yaml:2:8: expected one of modelled, measured, got 'modeled' (a string) @ $.clock "
        "(hint: did you mean 'modelled'?)",
        "fabric.yaml:3:12: unknown scheduling policy 'eftt' (installed: eft, locality, "
        "round-robin) @ $.scheduler (hint: did you mean 'eft'?)",
        "fabric.yaml:5:44: lanes must be at least 1, got 0 @ $.components[0].timing.lanes",
        "fabric.yaml:5:56: unknown device profile 'gpu' (known: cpu, hdd, net) @ "
        "$.components[0].timing.profile (hint: did you mean 'cpu'?)",
        "fabric.yaml:6:59: unknown unit 'Gb' in rate '40Gb' @ "
        "$.components[1].timing.mem_bandwidth (hint: use bytes per second: B, KiB, MiB, GiB, "
        "TiB, KB, MB, GB, TB (then optionally /s))",
        "fabric.yaml:6:65: unknown key 'speed' @ $.components[1].timing.speed (hint: known keys: "
        "profile, lanes, ops_per_lane_per_s, mem_bandwidth, launch_latency)",
        "fabric.yaml:8:58: a link with a profile takes its latency from the profile @ "
        "$.links[0].latency (hint: remove latency, or profile to define the link yourself)",
        "fabric.yaml:9:5: a link needs a profile, or a bandwidth (and latency) of its own @ "
        "$.links[1] (hint: for example profile: pcie4-x16 or bandwidth: 64GB/s, latency: 300ns "
        "(profiles: pcie3-x16, pcie3-x4, pcie4-x16, pcie4-x4, pcie5-x16, pcie5-x4, nvlink, "
        "sata3, nvme-gen3, nvme-gen4, hdd-7200, usb2, usb3, usb3.2, 1gbe, 10gbe, 100gbe))",
        "fabric.yaml:9:43: unknown bus model 'tpc' (installed: fifo, ideal, shared, tcp) @ "
        "$.links[1].model (hint: did you mean 'tcp'?)",
        "fabric.yaml:10:46: 'fast' is not a rate @ $.links[2].bandwidth (hint: write a number "
        "and a unit, like 40GB/s)",
        "fabric.yaml:10:61: a duration must be 0 or more, got -1 @ $.links[2].latency",
    ]


@pytest.mark.parametrize("text, seconds", [
    (0, 0.0), (2, 2.0), (0.5, 0.5), ("20us", 2e-5), ("20 us", 2e-5), ("1.5ms", 1.5e-3),
    ("300ns", 3e-7), ("2s", 2.0), ("1e-3", 1e-3), ("12.7ms", 12.7e-3),
])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text, rate", [
    (125000000, 125e6), ("40GB", 40e9), ("40GB/s", 40e9), ("1.5GiB/s", 1.5 * 2**30),
    ("200MB / s", 200e6), (2.5e9, 2.5e9),
])
def test_rates(text, rate):
    assert parse_rate(text) == rate
