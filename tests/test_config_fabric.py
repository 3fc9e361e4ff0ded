"""Fabric files: what is accepted, and the exact one-line message for each mistake.

The plugins are small fakes defined here, so these tests pin the core's config behaviour and not
the options of the real cpu or hdd plugins.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import attrs
import pytest

import xv_core as xv

from xv_core import hookimpl
from xv_core.config import (
    ComponentConfig, FabricConfig, LinkConfig, VramConfig, builtin_fabrics, format_size,
    load_fabric, parse_fabric, parse_size,
)
from xv_core.config.convert import Invalid
from xv_core.errors import ConfigError
from xv_core.plugins import load_plugins
from xv_core.profiles import PROFILES, LinkProfile, get_profile
from xv_core.registry import ComponentKind, EvictionPolicySpec, VramSpec


def _threads_not_absurd(_inst: object, _attribute: attrs.Attribute, value: int) -> None:
    if value > 1024:
        raise Invalid(f"{value} threads is more than this machine could use",
                      "0 means one thread per core")


@attrs.frozen
class CpuOptions:
    threads: int = attrs.field(default=0, validator=[attrs.validators.ge(0), _threads_not_absurd])
    pin: bool = False


@attrs.frozen
class HddOptions:
    path: str
    block_size: int = attrs.field(default=4096, validator=attrs.validators.gt(0))


@attrs.frozen
class CacheOptions:
    size: int = 0


def _cache_fits(options: CacheOptions, fabric: object):
    """A kind's check against the rest of the fabric (ComponentKind.check)."""
    if options.size > fabric.vram.capacity:
        yield "size", f"size {options.size} is more than vram.capacity", "lower it"
    if options.size == 7:
        yield None, "7 is unlucky", None


class _Offline:
    """An eviction policy that needs the future (like belady)."""

    offline = True


class FakePlugins:
    @hookimpl
    def xv_component_kinds(self) -> list[ComponentKind]:
        return [ComponentKind("cpu", CpuOptions, factory=object),
                ComponentKind("hdd", HddOptions, factory=object),
                ComponentKind("cache", CacheOptions, factory=object, compute=False,
                              check=_cache_fits)]

    @hookimpl
    def xv_eviction_policies(self) -> list[EvictionPolicySpec]:
        return [EvictionPolicySpec("lru", object), EvictionPolicySpec("fifo", object),
                EvictionPolicySpec("oracle", _Offline)]

    @hookimpl
    def xv_vram_managers(self) -> list[VramSpec]:
        return [VramSpec("ram", object)]


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(entry_points=False, extra=[("fakes", FakePlugins())])


@pytest.fixture
def write(tmp_path, monkeypatch):
    """Write fabric.yaml in a temporary current folder; errors then name 'fabric.yaml'."""
    monkeypatch.chdir(tmp_path)

    def write(text: str, name: str = "fabric.yaml") -> str:
        (tmp_path / name).write_text(textwrap.dedent(text))
        return name

    return write


ISSUE_FABRIC = """\
name: workstation
vram: {capacity: 256MiB, page_size: 64KiB, eviction: lru}
components:
  - {name: alu, kind: cpu, threads: 2}
  - {name: disk0, kind: hdd, path: .xv/hdd0}
links:
  - {name: pcie0, between: [host, alu], profile: pcie4-x16}
  - {name: sata0, between: [host, disk0], profile: sata3}
"""


def error_of(spec: str, plugins) -> str:
    with pytest.raises(ConfigError) as info:
        load_fabric(spec, plugins)
    return str(info.value)


# --------------------------------------------------------------------------
# Accepted
# --------------------------------------------------------------------------


def test_the_fabric_of_the_issue_is_accepted_exactly(write, plugins):
    fabric = load_fabric(write(ISSUE_FABRIC), plugins)
    assert fabric == FabricConfig(
        name="workstation",
        vram=VramConfig(capacity=256 << 20, page_size=64 << 10, eviction="lru", paging=True,
                        manager="ram"),
        components=(ComponentConfig("alu", "cpu", CpuOptions(threads=2)),
                    ComponentConfig("disk0", "hdd", HddOptions(path=".xv/hdd0"))),
        links=(LinkConfig("pcie0", ("host", "alu"), "pcie4-x16"),
               LinkConfig("sata0", ("host", "disk0"), "sata3")),
        source="fabric.yaml",
    )
    assert fabric.component("disk0").options.block_size == 4096


def test_every_optional_key_and_plain_integer_sizes(write, plugins):
    fabric = load_fabric(write("""\
        vram:
          capacity: 1073741824
          page_size: 4096
          eviction: fifo
          paging: false
          manager: ram
        components:
          - name: alu
            kind: cpu
            threads: 4
            pin: true
          - {name: c, kind: cache, size: 10}
        """, "box.yaml"), plugins)
    assert fabric.name == "box"  # no name: the file's stem
    assert fabric.vram == VramConfig(1 << 30, 4096, "fifo", False, "ram")
    assert fabric.components[0].options == CpuOptions(threads=4, pin=True)
    assert fabric.links == ()


def test_vram_defaults_when_left_out(write, plugins):
    fabric = load_fabric(write("components: [{name: alu, kind: cpu}]\n"), plugins)
    assert fabric.vram == VramConfig()
    assert (fabric.vram.capacity, fabric.vram.page_size) == (1 << 30, 64 << 10)
    assert fabric.vram.eviction == "lru" and fabric.vram.paging and fabric.vram.manager == "ram"


def test_the_builtin_default_fabric(plugins):
    assert "default" in builtin_fabrics()
    fabric = load_fabric("default", plugins)
    assert fabric.name == "default" and fabric.source is None
    assert fabric.components == (ComponentConfig("cpu", "cpu", CpuOptions(threads=0)),)
    assert fabric.vram.manager == "ram"


def test_the_example_fabric_is_the_issue_fabric(plugins):
    example = Path(__file__).resolve().parents[1] / "examples" / "fabrics" / "workstation.yaml"
    fabric = load_fabric(example, plugins)
    assert [c.name for c in fabric.components] == ["alu", "disk0"]


def test_parse_fabric_takes_plain_data_and_reports_without_positions(plugins):
    fabric = parse_fabric({"name": "n", "components": [{"name": "a", "kind": "cpu"}]},
                          plugins, "inline")
    assert fabric.source == "inline" and fabric.components[0].name == "a"
    with pytest.raises(ConfigError) as info:
        parse_fabric({"components": [{"name": "a", "kind": "cpu", "threads": -1}]}, plugins,
                     "inline")
    assert str(info.value) == "inline: 'threads' must be >= 0: -1 @ $.components[0].threads"


def test_later_problems_are_reported_in_the_same_located_format(write, plugins):
    fabric = load_fabric(write(ISSUE_FABRIC), plugins)
    error = fabric.error([("$.links[1].profile", "the hdd kind cannot use sata3", "use usb3"),
                          ("$.components[0]", "no backend")])
    assert str(error).splitlines() == [
        "fabric.yaml:4:5: no backend @ $.components[0]",
        "fabric.yaml:8:52: the hdd kind cannot use sata3 @ $.links[1].profile (hint: use usb3)",
    ]


# --------------------------------------------------------------------------
# Refused, one exact line each
# --------------------------------------------------------------------------

BAD_FABRICS = [
    pytest.param(
        ("eviction: lru}", "eviction: mru}"),
        "fabric.yaml:2:54: unknown eviction policy 'mru' (installed: fifo, lru, oracle) @ "
        "$.vram.eviction (hint: did you mean 'lru'?)",
        id="unknown-eviction"),
    pytest.param(
        ("{name: alu, kind: cpu, threads: 2}", "{name: alu, kind: gpu, threads: 2}"),
        "fabric.yaml:4:23: unknown component kind 'gpu' (installed: cache, cpu, hdd) @ "
        "$.components[0].kind (hint: did you mean 'cpu'?)",
        id="unknown-kind"),
    pytest.param(
        ("threads: 2", "threads: -2"),
        "fabric.yaml:4:37: 'threads' must be >= 0: -2 @ $.components[0].threads",
        id="options-validator"),
    pytest.param(
        ("threads: 2", "threads: 5000"),
        "fabric.yaml:4:37: 5000 threads is more than this machine could use @ "
        "$.components[0].threads (hint: 0 means one thread per core)",
        id="options-validator-with-hint"),
    pytest.param(
        ("threads: 2", "thread: 2"),
        "fabric.yaml:4:28: unknown key 'thread' @ $.components[0].thread (hint: did you mean "
        "'threads'?)",
        id="unknown-option"),
    pytest.param(
        ("threads: 2", "threads: '2'"),
        "fabric.yaml:4:37: expected an integer, got '2' (a string) @ $.components[0].threads "
        "(hint: remove the quotes)",
        id="option-type"),
    pytest.param(
        ("{name: disk0, kind: hdd, path: .xv/hdd0}", "{name: disk0, kind: hdd}"),
        "fabric.yaml:5:5: missing required key 'path' @ $.components[1]",
        id="missing-option"),
    pytest.param(
        ("  - {name: disk0", "  - {name: alu, kind: cpu}\n  - {name: disk0"),
        "fabric.yaml:5:12: component name 'alu' is already used by $.components[0] @ "
        "$.components[1].name (hint: give each component its own name)",
        id="duplicate-component"),
    pytest.param(
        ("  - {name: disk0", "  - {name: host, kind: cpu}\n  - {name: disk0"),
        "fabric.yaml:5:12: 'host' is reserved for the host end of links @ "
        "$.components[1].name (hint: rename the component)",
        id="component-named-host"),
    pytest.param(
        ("between: [host, alu]", "between: [host, alu0]"),
        "fabric.yaml:7:35: unknown endpoint 'alu0': neither 'host' nor a component @ "
        "$.links[0].between[1] (hint: did you mean 'alu'?)",
        id="unknown-endpoint"),
    pytest.param(
        ("between: [host, alu]", "between: [alu, alu]"),
        "fabric.yaml:7:28: a link joins two different endpoints, got 'alu' twice @ "
        "$.links[0].between",
        id="link-to-itself"),
    pytest.param(
        ("profile: sata3", "profile: sata-3"),
        "fabric.yaml:8:52: unknown link profile 'sata-3' (known: pcie3-x16, pcie3-x4, "
        "pcie4-x16, pcie4-x4, pcie5-x16, pcie5-x4, nvlink, sata3, nvme-gen3, nvme-gen4, "
        "hdd-7200, usb2, usb3, usb3.2, 1gbe, 10gbe, 100gbe) @ $.links[1].profile (hint: did "
        "you mean 'sata3'?)",
        id="unknown-profile"),
    pytest.param(
        ("name: sata0", "name: pcie0"),
        "fabric.yaml:8:12: link name 'pcie0' is already used by $.links[0] @ $.links[1].name "
        "(hint: give each link its own name)",
        id="duplicate-link"),
    pytest.param(
        ("page_size: 64KiB", "page_size: 65000"),
        "fabric.yaml:2:37: page_size must be a power of two, got 65000 @ $.vram.page_size "
        "(hint: try 32KiB or 64KiB)",
        id="page-not-power-of-two"),
    pytest.param(
        ("capacity: 256MiB", "capacity: 32KiB"),
        "fabric.yaml:2:36: page_size (64KiB) is larger than the capacity (32KiB) @ "
        "$.vram.page_size (hint: lower page_size or raise capacity)",
        id="page-larger-than-capacity"),
    pytest.param(
        ("capacity: 256MiB", "capacity: 256mb"),
        "fabric.yaml:2:18: unknown size unit 'mb' in '256mb' @ $.vram.capacity (hint: did "
        "you mean 256MiB (binary) or 256MB (decimal)?)",
        id="size-unit"),
    pytest.param(
        ("eviction: lru}", "eviction: lru, manager: disk}"),
        "fabric.yaml:2:68: unknown VRAM manager 'disk' (installed: ram) @ $.vram.manager "
        "(hint: install the plugin that provides it)",
        id="unknown-manager"),
    pytest.param(
        ("eviction: lru}", "eviction: lru, paging: yes please}"),
        "fabric.yaml:2:67: expected true or false, got 'yes please' (a string) @ "
        "$.vram.paging",
        id="paging-not-bool"),
    pytest.param(
        ("components:", "component:"),
        "fabric.yaml:1:1: missing required key 'components' @ $ (hint: list at least one "
        "component, like {name: alu, kind: cpu})\n"
        "fabric.yaml:3:1: unknown key 'component' @ $.component (hint: did you mean "
        "'components'?)",
        id="misspelt-top-level-key"),
    pytest.param(
        ("page_size: 64KiB", "page_size: 2GiB"),
        "fabric.yaml:2:37: page_size (2GiB) is larger than 1GiB @ $.vram.page_size (hint: "
        "pages of a few KiB to a few MiB are what devices use)",
        id="page-of-gigabytes"),
    pytest.param(
        ("capacity: 256MiB", "capacity: 2048PiB"),
        "fabric.yaml:2:18: unknown size unit 'PiB' in '2048PiB' @ $.vram.capacity (hint: "
        "units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)",
        id="size-unit-beyond-tib"),
    pytest.param(
        ("capacity: 256MiB", "capacity: 2097152TiB"),
        "fabric.yaml:2:18: '2097152TiB' is more than any memory or file holds (at most "
        "1048576TiB, 2^60 bytes) @ $.vram.capacity",
        id="size-beyond-any-memory"),
    pytest.param(
        ("threads: 2", "threads: 1180591620717411303424"),
        "fabric.yaml:4:37: expected an integer that fits 64 bits, got one of 22 digits @ "
        "$.components[0].threads",
        id="integer-beyond-64-bits"),
    pytest.param(
        ("threads: 2", "threads: 2, timing: {lanes: 100000}"),
        "fabric.yaml:4:56: lanes must be at most 65536, got 100000 @ "
        "$.components[0].timing.lanes",
        id="too-many-lanes"),
    pytest.param(
        ("profile: sata3", "profile: null"),
        "fabric.yaml:8:5: a link needs a profile, or a bandwidth (and latency) of its own @ "
        "$.links[1] (hint: for example profile: pcie4-x16 or bandwidth: 64GB/s, latency: "
        "300ns (profiles: pcie3-x16, pcie3-x4, pcie4-x16, pcie4-x4, pcie5-x16, pcie5-x4, "
        "nvlink, sata3, nvme-gen3, nvme-gen4, hdd-7200, usb2, usb3, usb3.2, 1gbe, 10gbe, "
        "100gbe))",
        id="link-profile-null"),
    pytest.param(
        ("profile: sata3", "bandwidth: null"),
        "fabric.yaml:8:5: a link needs a profile, or a bandwidth (and latency) of its own @ "
        "$.links[1] (hint: for example profile: pcie4-x16 or bandwidth: 64GB/s, latency: "
        "300ns (profiles: pcie3-x16, pcie3-x4, pcie4-x16, pcie4-x4, pcie5-x16, pcie5-x4, "
        "nvlink, sata3, nvme-gen3, nvme-gen4, hdd-7200, usb2, usb3, usb3.2, 1gbe, 10gbe, "
        "100gbe))",
        id="link-bandwidth-null"),
    pytest.param(
        ("name: workstation", "name: workstation\nname: again"),
        "fabric.yaml:2:1: duplicate key 'name' @ $.name (hint: it is also at line 1; YAML "
        "keeps only the last)",
        id="duplicate-yaml-key"),
]


@pytest.mark.parametrize("edit, message", BAD_FABRICS)
def test_bad_fabrics_give_one_exact_line_per_problem(write, plugins, edit, message):
    text = ISSUE_FABRIC.replace(*edit)
    assert text != ISSUE_FABRIC
    assert error_of(write(text), plugins) == message


def test_every_problem_is_reported_at_once_in_file_order(write, plugins):
    message = error_of(write("""\
        name: w
        vram: {capacity: 256MiB, page_size: 3KiB, eviction: mru, pagin: true}
        components:
          - {name: alu, kind: cpu, threads: -2, thread: 3}
          - {name: alu, kind: hdd}
        links:
          - {name: l0, between: [host, nope], profile: usb9}
        """), plugins)
    assert message.splitlines() == [
        "fabric.yaml:2:37: page_size must be a power of two, got 3072 @ $.vram.page_size "
        "(hint: try 2KiB or 4KiB)",
        "fabric.yaml:2:53: unknown eviction policy 'mru' (installed: fifo, lru, oracle) @ "
        "$.vram.eviction (hint: did you mean 'lru'?)",
        "fabric.yaml:2:58: unknown key 'pagin' @ $.vram.pagin (hint: did you mean 'paging'?)",
        "fabric.yaml:4:37: 'threads' must be >= 0: -2 @ $.components[0].threads",
        "fabric.yaml:4:41: unknown key 'thread' @ $.components[0].thread "
        "(hint: did you mean 'threads'?)",
        "fabric.yaml:5:5: missing required key 'path' @ $.components[1]",
        "fabric.yaml:5:12: component name 'alu' is already used by $.components[0] @ "
        "$.components[1].name (hint: give each component its own name)",
        "fabric.yaml:7:32: unknown endpoint 'nope': neither 'host' nor a component @ "
        "$.links[0].between[1] (hint: endpoints: alu, host)",
        "fabric.yaml:7:48: unknown link profile 'usb9' (known: pcie3-x16, pcie3-x4, pcie4-x16, "
        "pcie4-x4, pcie5-x16, pcie5-x4, nvlink, sata3, nvme-gen3, nvme-gen4, hdd-7200, usb2, "
        "usb3, usb3.2, 1gbe, 10gbe, 100gbe) @ $.links[0].profile (hint: did you mean 'usb3'?)",
    ]


@pytest.mark.parametrize("text, message", [
    pytest.param("components:\n  - {name: a, kind: cpu\n",
                 "fabric.yaml:3:1: invalid YAML: expected ',' or '}', but got '<stream end>' "
                 "(hint: while parsing a flow mapping at line 2)", id="yaml-syntax"),
    pytest.param("", "fabric.yaml: expected a mapping with keys name, vram, components, links, "
                 "bus, clock, scheduler; the fabric is empty @ $", id="empty"),
    pytest.param("- cpu\n", "fabric.yaml:1:1: expected a mapping with keys name, vram, "
                 "components, links, bus, clock, scheduler; got a list @ $",
                 id="not-a-mapping"),
    pytest.param("components: []\n", "fabric.yaml:1:13: expected a list of components, got an "
                 "empty list @ $.components (hint: list at least one component, like "
                 "{name: alu, kind: cpu})", id="no-components"),
    pytest.param("components: [{name: c, kind: cache}]\n",
                 "fabric.yaml:1:13: no component can run kernels @ $.components "
                 "(hint: add a component of a compute kind (cpu, hdd))", id="no-compute"),
    pytest.param("components: [{kind: cpu}, cpu]\n",
                 "fabric.yaml:1:14: missing required key 'name' @ $.components[0] "
                 "(hint: every component needs a name)\n"
                 "fabric.yaml:1:27: expected a mapping with name and kind, got 'cpu' (a string) "
                 "@ $.components[1]", id="component-shape"),
    pytest.param("components: [{name: 2nd, kind: cpu}]\n",
                 "fabric.yaml:1:21: component name '2nd' must start with a letter or _ and hold "
                 "only letters, digits, _ and - @ $.components[0].name", id="component-name"),
    pytest.param("components: [{name: a, kind: cpu}]\nlinks: {name: l}\n",
                 "fabric.yaml:2:8: expected a list of links, got a mapping @ $.links",
                 id="links-not-a-list"),
    pytest.param("name: ''\ncomponents: [{name: a, kind: cpu}]\n",
                 "fabric.yaml:1:7: expected a non-empty string, got '' (a string) @ $.name",
                 id="empty-name"),
    pytest.param("components: [{name: a, kind: cpu}]\nnull: 1\n~: 2\ntrue: 3\n7: 4\n",
                 "fabric.yaml:2:1: unknown key 'null' @ $.null (hint: known keys: name, vram, "
                 "components, links, bus, clock, scheduler)\n"
                 "fabric.yaml:3:1: unknown key '~' @ $['~'] (hint: known keys: name, vram, "
                 "components, links, bus, clock, scheduler)\n"
                 "fabric.yaml:4:1: unknown key 'true' @ $.true (hint: known keys: name, vram, "
                 "components, links, bus, clock, scheduler)\n"
                 "fabric.yaml:5:1: unknown key '7' @ $['7'] (hint: known keys: name, vram, "
                 "components, links, bus, clock, scheduler)", id="keys-yaml-reads-as-not-text"),
    pytest.param("components: [{name: a, kind: cpu, timming: {lanes: 2}}]\n",
                 "fabric.yaml:1:35: unknown key 'timming' @ $.components[0].timming (hint: did "
                 "you mean 'timing'?)", id="component-timing-misspelt"),
])
def test_badly_shaped_fabrics(write, plugins, text, message):
    assert error_of(write(text), plugins) == message


def test_a_missing_file_and_an_unknown_builtin(write, plugins):
    assert error_of("nope.yaml", plugins) == \
        "nope.yaml: no such fabric file (hint: built-in fabrics: default)"
    assert error_of("defualt", plugins) == (
        "unknown fabric 'defualt': no such file and no built-in fabric of that name "
        "(built-in: default) (hint: did you mean 'default'?)")


def test_merge_keys_give_defaults_that_keys_beside_them_override(write, plugins):
    fabric = load_fabric(write("""\
        components:
          - &cpu {name: alu0, kind: cpu, threads: 1}
          - <<: *cpu
            name: alu1
            threads: 2
        """), plugins)
    assert [(c.name, c.kind, c.options.threads) for c in fabric.components] == [
        ("alu0", "cpu", 1), ("alu1", "cpu", 2)]
    # A key given twice beside the merge is still a duplicate, where it is written.
    assert error_of(write("""\
        components:
          - &cpu {name: alu0, kind: cpu, threads: 1}
          - <<: *cpu
            name: alu1
            threads: 2
            threads: 3
        """), plugins) == ("fabric.yaml:6:5: duplicate key 'threads' @ $.components[1].threads "
                           "(hint: it is also at line 5; YAML keeps only the last)")


def test_a_name_is_a_file_when_no_builtin_has_it(write, plugins):
    write("components: [{name: a, kind: cpu}]\n", "myfabric")
    assert load_fabric("myfabric", plugins).name == "myfabric"


def test_the_default_fabric_needs_its_plugins():
    bare = load_plugins(entry_points=False)
    lines = error_of("default", bare).splitlines()
    assert lines[0].startswith("built-in fabric 'default':3:")
    assert "unknown eviction policy 'lru' (installed: none)" in lines[0]
    assert any("unknown component kind 'cpu' (installed: none)" in ln for ln in lines)


def test_yaml_never_builds_python_objects(write, plugins):
    text = "components: !!python/object/apply:os.system [echo hacked]\n"
    message = error_of(write(text), plugins)
    assert message.startswith("fabric.yaml:1:13: invalid YAML: could not determine a "
                              "constructor for the tag")


def test_a_self_referencing_yaml_alias_is_refused_not_followed(write, plugins):
    message = error_of(write("components: &c [*c]\n"), plugins)
    assert message == ("fabric.yaml:1:13: expected a mapping with name and kind, got a list @ "
                       "$.components[0]")


@pytest.mark.parametrize("text, message", [
    ("name: a\x00b\ncomponents: []\n",
     "fabric.yaml:1:8: invalid YAML: the control character 0x00 (hint: YAML text holds no "
     "control characters but tab and line ends; write it as an escape in a double-quoted "
     "string, like \"\\x00\", if you mean it)"),
    ("name: a\n# a bell \x07\ncomponents: []\n",
     "fabric.yaml:2:10: invalid YAML: the control character 0x07 (hint: YAML text holds no "
     "control characters but tab and line ends; write it as an escape in a double-quoted "
     "string, like \"\\x07\", if you mean it)"),
    ('name: "a\\0b"\n',
     "fabric.yaml:1:7: a string holds a NUL character (hint: no file name or name here can "
     "hold one)"),
    ('components:\n  - {name: h, kind: hdd, path: "d\\ud800"}\n',
     "fabric.yaml:2:32: a string holds the lone surrogate '\\ud800', which UTF-8 cannot "
     "encode (hint: write the character itself, or a pair of surrogates)"),
    ("vram: {capacity: " + "9" * 5000 + "}\n",
     "fabric.yaml:1:18: invalid YAML: an integer of 5000 characters is too long to read"),
    ("x: " + "[" * 100 + "]" * 100 + "\n",
     "fabric.yaml:1:67: mappings or lists nest more than 64 deep here"),
    ("x: " + "[" * 5000 + "]" * 5000 + "\n",
     "fabric.yaml: the document nests mappings or lists more than 64 deep"),
])
def test_text_yaml_or_our_formats_cannot_take_is_one_located_line(write, plugins, text, message):
    assert error_of(write(text), plugins) == message


def test_many_unknown_keys_are_located_in_linear_time(write, plugins):
    from xv_core.config.problems import Locator, read_yaml

    keys = 2000
    text = "components: [{name: a, kind: cpu}]\n" + "".join(f"k{i}: 1\n" for i in range(keys))
    lines = error_of(write(text), plugins).splitlines()
    assert len(lines) == keys
    assert lines[-1].startswith(f"fabric.yaml:{keys + 1}:1: unknown key 'k{keys - 1}'")

    # Each lookup used to scan the mapping's keys (20,000 unknown keys took ~40 s): now the
    # mapping is read once, whatever the number of lookups.
    class Counted(list):
        reads = 0

        def __iter__(self):
            Counted.reads += 1
            return super().__iter__()

        def __reversed__(self):
            Counted.reads += 1
            return super().__reversed__()

    _data, locator, _dups = read_yaml(text, "f.yaml")
    root = locator.root
    root.value = Counted(root.value)
    for i in range(keys):
        assert Locator.position(locator, (f"k{i}",), at_key=True) == (i + 2, 1)
    assert Counted.reads == 1


# --------------------------------------------------------------------------
# Sizes and link profiles
# --------------------------------------------------------------------------


@pytest.mark.parametrize("text, nbytes", [
    ("256MiB", 256 << 20), ("64KiB", 65536), ("1GiB", 1 << 30), ("2TiB", 2 << 40),
    ("1KB", 1000), ("1MB", 10**6), ("3GB", 3 * 10**9), ("512B", 512), ("4096", 4096),
    (4096, 4096), (0, 0), ("1.5GiB", 3 << 29), (" 8 KiB ", 8192),
])
def test_parse_size_reads_binary_and_decimal_units(text, nbytes):
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("value, message", [
    ("256mib", "unknown size unit 'mib' in '256mib' "
               "(hint: did you mean 256MiB (binary) or 256MB (decimal)?)"),
    ("12 parsecs", "unknown size unit 'parsecs' in '12 parsecs' "
                   "(hint: units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"),
    ("-1MiB", "a size cannot be negative, got '-1MiB'"),
    (-5, "a size cannot be negative, got -5"),
    ("0.5B", "'0.5B' is not a whole number of bytes"),
    ("lots", "'lots' is not a size (hint: write a number and a unit (B, KiB, MiB, GiB, TiB, "
             "KB, MB, GB, TB), like 256MiB)"),
    (1.5, "expected a whole number of bytes or a size with a unit, got 1.5 "
          "(hint: write the unit, like 1.5GiB, or an integer)"),
    (True, "expected a size, got true (hint: write a number of bytes or a size like 256MiB)"),
    (1e30, "expected a whole number of bytes or a size with a unit, got 1e+30 "
           "(hint: write a number and a unit, like 1.5GiB)"),
    (1 << 61, "2305843009213693952 is more than any memory or file holds (at most "
              "1048576TiB, 2^60 bytes)"),
    ("1048577TiB", "'1048577TiB' is more than any memory or file holds (at most "
                   "1048576TiB, 2^60 bytes)"),
])
def test_parse_size_errors_say_what_to_write(value, message):
    with pytest.raises(ValueError) as info:
        parse_size(value)
    assert str(info.value) == message


def test_format_size_is_the_short_inverse():
    assert [format_size(n) for n in (256 << 20, 65536, 1000, 0, 3 << 29)] == \
        ["256MiB", "64KiB", "1000B", "0B", "1536MiB"]
    assert parse_size(format_size(12345678)) == 12345678


REQUIRED_PROFILES = ["pcie3-x16", "pcie3-x4", "pcie4-x16", "pcie4-x4", "pcie5-x16", "pcie5-x4",
                     "nvlink", "sata3", "nvme-gen3", "nvme-gen4", "hdd-7200", "usb2", "usb3",
                     "usb3.2", "1gbe", "10gbe", "100gbe"]


def test_every_required_link_profile_exists_with_a_source():
    assert set(REQUIRED_PROFILES) <= set(PROFILES)
    for name, prof in PROFILES.items():
        assert isinstance(prof, LinkProfile) and prof.name == name
        assert prof.bandwidth > 0 and 0 < prof.latency < 1
        assert prof.description and len(prof.source) > 20


def test_link_profiles_have_the_standards_numbers():
    assert get_profile("pcie3-x16").bandwidth == pytest.approx(15.75e9, rel=1e-3)
    assert get_profile("pcie4-x16").bandwidth == pytest.approx(31.5e9, rel=1e-3)
    assert get_profile("pcie5-x4").bandwidth == get_profile("pcie4-x16").bandwidth / 2
    assert get_profile("sata3").bandwidth == 600e6
    assert get_profile("1gbe").bandwidth == 125e6
    assert get_profile("hdd-7200").latency == pytest.approx(12.7e-3)
    # Faster standards are faster; storage is slower to answer than any bus.
    bandwidth = {name: p.bandwidth for name, p in PROFILES.items()}
    latency = {name: p.latency for name, p in PROFILES.items()}
    assert bandwidth["usb2"] < bandwidth["usb3"] < bandwidth["usb3.2"]
    assert bandwidth["1gbe"] < bandwidth["10gbe"] < bandwidth["100gbe"]
    assert latency["hdd-7200"] > latency["nvme-gen3"] > latency["pcie3-x4"]
    assert get_profile("pcie4-x16").transfer_time(31_507_692_307) == pytest.approx(1.0 + 1e-6,
                                                                               rel=1e-6)


def test_an_unknown_profile_lists_the_known_ones():
    from xv_core.errors import UnknownNameError

    with pytest.raises(UnknownNameError) as info:
        get_profile("pcie6-x16")
    assert "pcie5-x16" in info.value.message and info.value.hint == "did you mean 'pcie5-x16'?"


# --------------------------------------------------------------------------
# docs/fabric.md says what the code does
# --------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs" / "fabric.md"


def _doc_row(p: LinkProfile) -> str:
    bandwidth = f"{p.bandwidth / 1e9:.4g} GB/s" if p.bandwidth >= 1e9 else \
        f"{p.bandwidth / 1e6:.4g} MB/s"
    latency = f"{p.latency * 1e3:.3g} ms" if p.latency >= 1e-3 else f"{p.latency * 1e6:.3g} us"
    return f"| `{p.name}` | {bandwidth} | {latency} | {p.description} |"


def test_the_docs_list_every_link_profile_with_its_numbers():
    rows = [ln for ln in DOCS.read_text().splitlines() if ln.startswith("| `")]
    documented = [ln for ln in rows if any(ln.startswith(f"| `{n}` |") for n in PROFILES)]
    assert documented == [_doc_row(p) for p in PROFILES.values()]


def test_the_docs_show_the_default_fabric_as_shipped():
    from importlib import resources

    shipped = (resources.files("xv_core") / "fabrics" / "default.yaml").read_text()
    assert f"```yaml\n{shipped}```" in DOCS.read_text()


# --------------------------------------------------------------------------
# The paging keys of vram (issue 5)
# --------------------------------------------------------------------------


def test_every_paging_key_of_vram(write, plugins):
    fabric = load_fabric(write("""\
        vram:
          capacity: 16MiB
          page_size: 4KiB
          backing: file
          path: /var/tmp/xv
          persistent: [weights, state.v2]
          profile: uvm
          link: pcie3-x16
          fault_latency_us: 25
          fault_service_us: 1.5
          fault_batch_size: 64
        components: [{name: alu, kind: cpu}]
        """), plugins)
    assert fabric.vram == VramConfig(16 << 20, 4096, "lru", True, "ram", "file", "/var/tmp/xv",
                                     ("weights", "state.v2"), "uvm", "pcie3-x16", 25.0, 1.5, 64)
    path = write("""\
        vram: {capacity: 1MiB, page_size: 4KiB, profile: uvm, fault_latency_us: 25,
               fault_service_us: 1.5, fault_batch_size: 64}
        components: [{name: alu, kind: cpu}]
        """)
    with xv.open_fabric(path) as opened:  # the VRAM manager is built with them
        assert (opened.vram.fault_latency, opened.vram.fault_service,
                opened.vram.fault_batch_size) == pytest.approx((25e-6, 1.5e-6, 64))
    defaults = VramConfig()
    assert (defaults.backing, defaults.path, defaults.persistent, defaults.profile,
            defaults.link, defaults.fault_latency_us) == ("ram", ".xv/vram", (), "plain",
                                                          "pcie4-x16", 40.0)


BAD_VRAM = [
    pytest.param(
        "backing: disk",
        "fabric.yaml:2:68: expected one of 'ram', 'file', got 'disk' (a string) @ "
        "$.vram.backing",
        id="unknown-backing"),
    pytest.param(
        "profile: uvm",
        "fabric.yaml:2:68: the uvm profile faults at 4KiB pages, but page_size is 64KiB @ "
        "$.vram.profile (hint: set page_size: 4KiB)",
        id="uvm-needs-4KiB-pages"),
    pytest.param(
        "profile: cuda",
        "fabric.yaml:2:68: expected one of 'plain', 'uvm', got 'cuda' (a string) @ "
        "$.vram.profile",
        id="unknown-profile"),
    pytest.param(
        "link: pcie4",
        "fabric.yaml:2:65: unknown link profile 'pcie4' (known: pcie3-x16, pcie3-x4, "
        "pcie4-x16, pcie4-x4, pcie5-x16, pcie5-x4, nvlink, sata3, nvme-gen3, nvme-gen4, "
        "hdd-7200, usb2, usb3, usb3.2, 1gbe, 10gbe, 100gbe) @ $.vram.link (hint: did you "
        "mean 'pcie5-x4'?)",
        id="unknown-link"),
    pytest.param(
        "persistent: [w, ../w]",
        "fabric.yaml:2:71: persistent buffer name '../w' must start with a letter, digit or _ "
        "and hold only letters, digits, _, . and - @ $.vram.persistent (hint: it names a file "
        "under vram.path)",
        id="persistent-name-is-a-path"),
    pytest.param(
        "persistent: [w, w]",
        "fabric.yaml:2:71: persistent buffer 'w' is listed twice @ $.vram.persistent",
        id="persistent-twice"),
    pytest.param(
        "fault_latency_us: -5",
        "fabric.yaml:2:77: fault_latency_us must be 0 or more, got -5 @ "
        "$.vram.fault_latency_us",
        id="negative-fault-latency"),
    pytest.param(
        "fault_latency_us: .nan",
        "fabric.yaml:2:77: expected a finite number, got .nan @ $.vram.fault_latency_us",
        id="nan-fault-latency"),
    pytest.param(
        "fault_service_us: .inf",
        "fabric.yaml:2:77: expected a finite number, got .inf @ $.vram.fault_service_us",
        id="infinite-fault-service"),
    pytest.param(
        "fault_latency_us: 1" + "0" * 400,
        "fabric.yaml:2:77: expected a finite number, got an integer too large for one @ "
        "$.vram.fault_latency_us",
        id="fault-latency-past-floats"),
    pytest.param(
        "fault_batch_size: 0",
        "fabric.yaml:2:77: fault_batch_size must be an integer of at least 1, got 0 @ "
        "$.vram.fault_batch_size (hint: the NVIDIA driver's default is 256)",
        id="empty-fault-batch"),
]


@pytest.mark.parametrize("key, message", BAD_VRAM)
def test_bad_paging_keys_give_one_exact_line(write, plugins, key, message):
    text = ISSUE_FABRIC.replace("eviction: lru}", f"eviction: lru, {key}}}")
    assert error_of(write(text), plugins) == message


def test_what_opening_would_refuse_of_the_vram_is_found_when_loading(write, plugins):
    """Found by `xv fabric validate`, not first by `xv fabric run`: the uvm profile with less
    than one migration block, and an offline policy (belady) where pages move."""
    uvm = ("vram: {capacity: 32KiB, page_size: 4KiB, profile: uvm}\n"
           "components: [{name: a, kind: cpu}]\n")
    assert error_of(write(uvm), plugins) == (
        "fabric.yaml:1:51: the uvm profile migrates 64KiB blocks, but vram.capacity (32KiB) "
        "holds none @ $.vram.profile (hint: raise vram.capacity to at least 64KiB)")
    assert load_fabric(write(uvm.replace("32KiB", "64KiB")), plugins).vram.profile == "uvm"
    assert load_fabric(write(uvm.replace("uvm}", "uvm, paging: false}")),
                       plugins).vram.capacity == 32 << 10
    offline = "vram: {eviction: oracle}\ncomponents: [{name: a, kind: cpu}]\n"
    assert error_of(write(offline), plugins) == (
        "fabric.yaml:1:18: eviction policy 'oracle' needs the future accesses, so it only "
        "replays recorded traces @ $.vram.eviction (hint: choose an online policy such as lru "
        "or arc, and compare against it with `xv vram replay`)")
    # Without paging no page is evicted: the policy is never asked.
    assert load_fabric(write(offline.replace("oracle}", "oracle, paging: false}")),
                       plugins).vram.eviction == "oracle"


def test_a_kinds_check_sees_the_whole_fabric_and_its_problems_are_located(write, plugins):
    text = """\
        vram: {capacity: 1KiB, page_size: 1KiB}
        components:
          - {name: a, kind: cpu}
          - {name: c, kind: cache, size: 4096}
          - {name: d, kind: cache, size: 7}
        """
    assert error_of(write(text), plugins).splitlines() == [
        "fabric.yaml:4:34: size 4096 is more than vram.capacity @ $.components[1].size "
        "(hint: lower it)",
        "fabric.yaml:5:5: 7 is unlucky @ $.components[2]"]
    # The kind's checks run only on an otherwise well-formed fabric.
    assert error_of(write(text.replace("{name: a, kind: cpu}", "{name: a, kind: cpu, x: 1}")),
                    plugins) == ("fabric.yaml:3:26: unknown key 'x' @ $.components[0].x "
                                 "(hint: known keys: name, kind, timing, threads, pin)")
