"""Fabric files: the declared machine a job runs on.

A fabric names its VRAM, its components (each of a kind some plugin provides, with that kind's
options) and the links between them and the host.  :func:`load_fabric` reads a YAML file or a
built-in fabric, checks everything a file can get wrong on its own or against the installed
plugins, and returns frozen attrs objects; every problem found is reported at once, one line
each (the format is in :mod:`xv_core.config.problems` and ``docs/fabric.md``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from xv_core.config.convert import Invalid, make_converter, structure, structure_fields
from xv_core.config.problems import (
    ROOT, Locator, PathPart, Problems, describe, did_you_mean, located_error, read_yaml,
)
from xv_core.config.timing import (
    CLOCKS, DEFAULT_BUS, DeviceTiming, Duration, Rate, add_timing_hooks,
)
from xv_core.config.units import GiB, KiB, Size, format_size, parse_size
from xv_core.errors import ConfigError
from xv_core.profiles import PROFILES, LinkProfile, unknown_profile

if TYPE_CHECKING:
    from xv_core.plugins import Plugins

#: The host end of a link; no component may take this name.
HOST = "host"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_TOP_KEYS = ("name", "vram", "components", "links", "bus", "clock", "scheduler")
#: Keys of a component the fabric reads itself; the others are its kind's options.
_COMPONENT_KEYS = ("name", "kind", "timing")


def _positive_size(_inst: object, attribute: attrs.Attribute, value: int) -> None:
    if value <= 0:
        raise Invalid(f"{attribute.name} must be more than 0 bytes, got {value}")


def _page_size(inst: Any, _attribute: attrs.Attribute, value: int) -> None:
    if value <= 0 or value & (value - 1):
        below = 1 << max(value.bit_length() - 1, 0)
        raise Invalid(f"page_size must be a power of two, got {value}",
                      f"try {format_size(below)} or {format_size(below * 2)}")
    if value > MAX_PAGE:
        raise Invalid(f"page_size ({format_size(value)}) is larger than {format_size(MAX_PAGE)}",
                      "pages of a few KiB to a few MiB are what devices use")
    if value > inst.capacity:
        raise Invalid(f"page_size ({format_size(value)}) is larger than the capacity "
                      f"({format_size(inst.capacity)})", "lower page_size or raise capacity")


#: The largest page size (a page moves through a buffer of its size).
MAX_PAGE = GiB
#: The page size the ``uvm`` paging profile faults at, and the block it migrates.
UVM_PAGE = 4 * KiB
UVM_BLOCK = 64 * KiB
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _profile(inst: Any, _attribute: attrs.Attribute, value: str) -> None:
    if value == "uvm" and inst.page_size != UVM_PAGE:
        raise Invalid(f"the uvm profile faults at 4KiB pages, but page_size is "
                      f"{format_size(inst.page_size)}", "set page_size: 4KiB")
    if value == "uvm" and inst.paging and inst.capacity < UVM_BLOCK:
        raise Invalid(f"the uvm profile migrates 64KiB blocks, but vram.capacity "
                      f"({format_size(inst.capacity)}) holds none",
                      "raise vram.capacity to at least 64KiB")


def _link(_inst: object, _attribute: attrs.Attribute, value: str) -> None:
    if value not in PROFILES:
        unknown = unknown_profile(value)
        raise Invalid(unknown.message, unknown.hint)


def _persistent(_inst: object, _attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    seen: set[str] = set()
    for name in value:
        if not _FILE_NAME.fullmatch(name):
            raise Invalid(f"persistent buffer name {name!r} must start with a letter, digit or _ "
                          "and hold only letters, digits, _, . and -",
                          "it names a file under vram.path")
        if name in seen:
            raise Invalid(f"persistent buffer {name!r} is listed twice")
        seen.add(name)


def _not_negative(_inst: object, attribute: attrs.Attribute, value: float) -> None:
    if value < 0:
        raise Invalid(f"{attribute.name} must be 0 or more, got {value:g}")


def _batch_size(_inst: object, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Invalid(f"{attribute.name} must be an integer of at least 1, got {value!r}",
                      hint="the NVIDIA driver's default is 256")


@attrs.frozen
class VramConfig:
    """The fabric's device memory.

    ``capacity`` and ``page_size`` are bytes (sizes such as ``"256MiB"`` are accepted);
    ``page_size`` is a power of two no larger than ``capacity``.  ``eviction`` and ``manager``
    name an installed eviction policy and VRAM manager.  ``paging`` lets the manager move pages
    out of VRAM to make room; without it buffers stay resident and must fit.

    ``backing`` says where a buffer's pages live when they are not in VRAM: host ``ram`` or a
    ``file`` under ``path`` (relative to the fabric file's folder).  Buffers named in
    ``persistent`` always live in a file under ``path`` and keep their contents from one run to
    the next.  ``profile`` is the paging behaviour: ``plain`` moves single pages; ``uvm`` behaves
    like GPU unified memory (4KiB faults, 64KiB migrations, neighbourhood prefetch in 2MiB
    regions, far faults serviced in batches of up to ``fault_batch_size``, each batch costing
    ``fault_latency_us`` and each fault in it ``fault_service_us``).  ``link`` names the link
    profile that times page transfers between VRAM and the host.
    """

    capacity: Size = attrs.field(default=GiB, converter=parse_size, validator=_positive_size)
    page_size: Size = attrs.field(default=64 * KiB, converter=parse_size, validator=_page_size)
    eviction: str = "lru"
    paging: bool = True
    manager: str = "ram"
    backing: Literal["ram", "file"] = "ram"
    path: str = attrs.field(default=".xv/vram", validator=attrs.validators.min_len(1))
    persistent: tuple[str, ...] = attrs.field(default=(), converter=tuple,
                                              validator=_persistent)
    profile: Literal["plain", "uvm"] = attrs.field(default="plain", validator=_profile)
    link: str = attrs.field(default="pcie4-x16", validator=_link)
    fault_latency_us: float = attrs.field(default=40.0, validator=_not_negative)
    fault_service_us: float = attrs.field(default=0.8, validator=_not_negative)
    fault_batch_size: int = attrs.field(default=256, validator=_batch_size)


@attrs.frozen
class ComponentConfig:
    """One component: its unique ``name``, its ``kind`` and the kind's ``options`` (an instance of
    the kind's :attr:`~xv_core.registry.ComponentKind.options` class).  ``timing`` overrides the
    device profile the modelled fabric times its tiles with (None: the kind's)."""

    name: str
    kind: str
    options: object
    timing: DeviceTiming | None = None


@attrs.frozen
class LinkConfig:
    """A link between two endpoints (``host`` or component names): a built-in ``profile``
    (:data:`xv_core.profiles.PROFILES`), or a link of its own given by ``bandwidth`` (bytes/s),
    ``latency`` (seconds) and ``duplex``.  ``model`` names the bus model that times it (None:
    the fabric's ``bus``)."""

    name: str
    between: tuple[str, str]
    profile: str | None = None
    model: str | None = None
    bandwidth: Rate | None = None
    latency: Duration | None = None
    duplex: Literal["full", "half"] | None = None

    def link_profile(self) -> LinkProfile:
        """The :class:`~xv_core.profiles.LinkProfile` that times this link."""
        if self.profile is not None:
            return PROFILES[self.profile]
        assert self.bandwidth is not None  # the loader accepts no link without either
        return LinkProfile(self.name, self.bandwidth, self.latency or 0.0,
                           f"link {self.name!r} of the fabric", "the fabric file",
                           full_duplex=self.duplex != "half")


@attrs.frozen
class FabricConfig:
    """A checked fabric.  ``source`` is the file it came from (None for built-in fabrics and
    documents that came from no file); relative paths in component options are the runtime's to
    resolve against it.

    ``locator`` maps ``$.path`` strings to positions in the file, so that problems found later
    (by the runtime) can be reported like the loader's own: see :meth:`error`.
    """

    name: str
    vram: VramConfig
    components: tuple[ComponentConfig, ...]
    links: tuple[LinkConfig, ...]
    source: str | None
    locator: Locator | None = attrs.field(default=None, eq=False, repr=False)
    label: str | None = attrs.field(default=None, eq=False, repr=False)
    #: The bus model of links that name none; the clock tiles are timed by (``modelled``: the
    #: roofline of their counted work, ``measured``: their wall time); the scheduling policy.
    bus: str = DEFAULT_BUS
    clock: Literal["modelled", "measured"] = "modelled"
    scheduler: str = "eft"

    def component(self, name: str) -> ComponentConfig:
        """The component called ``name`` (KeyError if there is none)."""
        for component in self.components:
            if component.name == name:
                return component
        raise KeyError(name)

    def error(self, problems: Iterable[tuple[str, str] | tuple[str, str, str | None]]
              ) -> ConfigError:
        """A ConfigError in the loader's format for ``(path, message[, hint])`` problems found
        after loading, with line and column when the fabric came from a file."""
        return located_error(problems, self.label or self.source or self.name, self.locator)


def builtin_fabrics() -> list[str]:
    """Names of the fabrics shipped with the core (``default``, ...)."""
    folder = resources.files("xv_core") / "fabrics"
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir()
                  if entry.name.endswith(".yaml"))


def _looks_like_a_name(spec: str) -> bool:
    return not any(sep in spec for sep in ("/", os.sep)) and Path(spec).suffix not in (".yaml",
                                                                                       ".yml")


def load_fabric(spec: str | os.PathLike[str], plugins: Plugins) -> FabricConfig:
    """Load the fabric ``spec``: a YAML file path, or the name of a built-in fabric.

    A spec without a folder and without a ``.yaml``/``.yml`` suffix is a built-in name first
    and a file in the current folder second.  Raises ConfigError listing every problem.
    """
    text_spec = os.fspath(spec)
    if _looks_like_a_name(text_spec):
        if text_spec in builtin_fabrics():
            text = (resources.files("xv_core") / "fabrics" / f"{text_spec}.yaml").read_text("utf-8")
            return _parse_text(text, plugins, label=f"built-in fabric {text_spec!r}", source=None,
                               default_name=text_spec)
        if not Path(text_spec).is_file():
            builtins = ", ".join(builtin_fabrics())
            raise ConfigError([f"unknown fabric {text_spec!r}: no such file and no built-in "
                               f"fabric of that name (built-in: {builtins})"
                               + _hint(did_you_mean(text_spec, builtin_fabrics()))])
    path = Path(text_spec)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(["no such fabric file" + _hint(
            f"built-in fabrics: {', '.join(builtin_fabrics())}")], source=text_spec) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read the fabric file: {exc}"], source=text_spec) from None
    return _parse_text(text, plugins, label=text_spec, source=text_spec, default_name=path.stem)


def _hint(hint: str | None) -> str:
    return f" (hint: {hint})" if hint else ""


def _parse_text(text: str, plugins: Plugins, *, label: str, source: str | None,
                default_name: str) -> FabricConfig:
    data, locator, duplicates = read_yaml(text, label)
    return _parse(data, plugins, label=label, source=source, locator=locator,
                  default_name=default_name, early=duplicates)


def parse_fabric(data: object, plugins: Plugins, source: str) -> FabricConfig:
    """Check and structure a fabric document that is already plain data (from YAML, JSON or
    code).  Problems are reported without line numbers; ``source`` names the document."""
    return _parse(data, plugins, label=source, source=source, locator=None,
                  default_name=Path(source).stem or "fabric")


def _parse(data: object, plugins: Plugins, *, label: str, source: str | None,
           locator: Locator | None, default_name: str, early: Iterable[Any] = ()
           ) -> FabricConfig:
    problems = Problems(label, locator)
    problems.extend(early)
    if not isinstance(data, dict):
        what = "the fabric is empty" if data is None else f"got {describe(data)}"
        problems.add(ROOT, f"expected a mapping with keys {', '.join(_TOP_KEYS)}; {what}")
        raise problems.error()
    _check_keys(data, ROOT, _TOP_KEYS, problems)

    name = default_name
    if "name" in data:
        if isinstance(data["name"], str) and data["name"].strip():
            name = data["name"]
        else:
            problems.add(("name",), f"expected a non-empty string, got {describe(data['name'])}")

    conv = add_timing_hooks(make_converter())
    vram = _parse_vram(data, plugins, conv, problems)
    components, names = _parse_components(data, plugins, conv, problems)
    links = _parse_links(data, names, conv, problems, plugins)
    timing = _parse_timing(data, plugins, problems)
    if problems or vram is None:
        raise problems.error()
    config = FabricConfig(name=name, vram=vram, components=tuple(components),
                          links=tuple(links), source=source, locator=locator, label=label,
                          **timing)
    # What a kind checks of its options against the whole fabric (a cache tier's pages
    # against the VRAM's, say), now that every part is well formed.
    for i, c in enumerate(config.components):
        check = plugins.components.get(c.kind).check
        if check is None:
            continue
        for key, message, hint in check(c.options, config):
            problems.add(("components", i) + ((key,) if key else ()), message, hint)
    problems.raise_if_any()
    return config


def _parse_timing(data: dict[Any, Any], plugins: Plugins, problems: Problems) -> dict[str, str]:
    """``bus``, ``clock`` and ``scheduler``: names checked against what is installed."""
    out: dict[str, str] = {}
    for key, registry in (("bus", plugins.bus_models), ("scheduler", plugins.schedulers)):
        if key not in data:
            continue
        value = data[key]
        if not isinstance(value, str):
            problems.add((key,), f"expected a {registry.what} name, got {describe(value)}")
        elif value not in registry:
            unknown = registry.unknown(value)
            problems.add((key,), unknown.message, unknown.hint)
        else:
            out[key] = value
    if "clock" in data:
        value = data["clock"]
        if value in CLOCKS:
            out["clock"] = value
        else:
            problems.add(("clock",), f"expected one of {', '.join(CLOCKS)}, got "
                         f"{describe(value)}", did_you_mean(value, CLOCKS)
                         if isinstance(value, str) else None)
    return out


def _check_keys(data: Mapping[Any, Any], path: tuple[PathPart, ...], known: Iterable[str],
                problems: Problems) -> None:
    known = list(known)
    for key in data:
        if key not in known:
            hint = did_you_mean(key, known) or f"known keys: {', '.join(known)}"
            problems.add(path + (str(key),), f"unknown key {str(key)!r}", hint, at_key=True)


def _parse_vram(data: dict[Any, Any], plugins: Plugins, conv: Any,
                problems: Problems) -> VramConfig | None:
    raw = data.get("vram", {})
    if raw is None:
        raw = {}
    found: list[Any] = []
    vram = structure(conv, raw, VramConfig, ("vram",), found)
    problems.extend(found)
    # The registries are checked on the raw values so that a bad capacity does not hide an
    # unknown policy.
    defaults = VramConfig()
    checks = (("eviction", plugins.eviction_policies), ("manager", plugins.vram_managers))
    for key, registry in checks:
        value = raw.get(key, getattr(defaults, key)) if isinstance(raw, dict) else None
        if isinstance(value, str) and value not in registry:
            unknown = registry.unknown(value)
            where = ("vram", key) if isinstance(raw, dict) and key in raw else \
                (("vram",) if "vram" in data else ROOT)
            problems.add(where, unknown.message, unknown.hint)
    # An offline policy (belady) needs the future accesses: it replays traces, it cannot page.
    if vram is not None and vram.paging and vram.eviction in plugins.eviction_policies and \
            getattr(plugins.eviction_policies.get(vram.eviction).factory, "offline", False):
        problems.add(("vram", "eviction"), f"eviction policy {vram.eviction!r} needs the future "
                     f"accesses, so it only replays recorded traces",
                     "choose an online policy such as lru or arc, and compare against it with "
                     "`xv vram replay`")
    return vram


def _parse_components(data: dict[Any, Any], plugins: Plugins, conv: Any, problems: Problems
                      ) -> tuple[list[ComponentConfig], set[str] | None]:
    """The components, and every name they claim (also of components with other problems, so
    that a link to them is not reported as well); None for the names when there is no list of
    components to check links against."""
    if "components" not in data:
        problems.add(ROOT, "missing required key 'components'",
                     "list at least one component, like {name: alu, kind: cpu}")
        return [], None
    raw = data["components"]
    if not isinstance(raw, list) or not raw:
        got = "an empty list" if raw == [] else describe(raw)
        problems.add(("components",), f"expected a list of components, got {got}",
                     "list at least one component, like {name: alu, kind: cpu}")
        return [], None

    components: list[ComponentConfig] = []
    first_index: dict[str, int] = {}
    kinds_known = True
    any_compute = False
    for i, item in enumerate(raw):
        path: tuple[PathPart, ...] = ("components", i)
        if not isinstance(item, dict):
            problems.add(path, f"expected a mapping with name and kind, got {describe(item)}")
            kinds_known = False
            continue
        name = _check_name(item, path, "component", problems)
        if name is not None:
            if name in first_index:
                problems.add(path + ("name",), f"component name {name!r} is already used by "
                             f"$.components[{first_index[name]}]",
                             "give each component its own name")
            else:
                first_index[name] = i
        kind_name = item.get("kind")
        if "kind" not in item:
            problems.add(path, "missing required key 'kind'",
                         f"installed kinds: {', '.join(plugins.components) or 'none'}")
        elif not isinstance(kind_name, str):
            problems.add(path + ("kind",), f"expected a kind name, got {describe(kind_name)}")
        elif kind_name not in plugins.components:
            unknown = plugins.components.unknown(kind_name)
            problems.add(path + ("kind",), unknown.message, unknown.hint)
        if not isinstance(kind_name, str) or kind_name not in plugins.components:
            kinds_known = False
            continue
        kind = plugins.components.get(kind_name)
        any_compute = any_compute or kind.compute
        options_data = {k: v for k, v in item.items() if k not in _COMPONENT_KEYS}
        timing = None
        if "timing" in item:
            found_timing: list[Any] = []
            timing = structure(conv, item["timing"], DeviceTiming, path + ("timing",),
                               found_timing)
            problems.extend(found_timing)
        if not attrs.has(kind.options):
            plugin = plugins.components.plugin_of(kind_name)
            problems.add(path + ("kind",), f"the plugin {plugin!r} gives kind {kind_name!r} an "
                         "options class that is not an attrs class",
                         "report this to the plugin's authors")
            continue
        found: list[Any] = []
        # The hint lists the keys every component has, then the kind's own.
        options = structure(conv, options_data, kind.options, path, found,
                            other_keys=_COMPONENT_KEYS)
        problems.extend(found)
        backend = getattr(options, "backend", None)
        if isinstance(backend, str) and backend and backend not in plugins.backends:
            # A kind's ``backend`` option names an IR backend (docs/plugins.md).
            unknown = plugins.backends.unknown(backend)
            problems.add(path + ("backend",), unknown.message, unknown.hint)
        if options is not None and name is not None:
            components.append(ComponentConfig(name=name, kind=kind_name, options=options,
                                              timing=timing))
    if kinds_known and not any_compute:
        compute = [k for k in plugins.components if plugins.components.get(k).compute]
        installed = ", ".join(compute) or "none installed"
        problems.add(("components",), "no component can run kernels",
                     f"add a component of a compute kind ({installed})")
    return components, set(first_index)


def _check_name(item: dict[Any, Any], path: tuple[PathPart, ...], what: str,
                problems: Problems) -> str | None:
    if "name" not in item:
        problems.add(path, "missing required key 'name'", f"every {what} needs a name")
        return None
    name = item["name"]
    if not isinstance(name, str):
        problems.add(path + ("name",), f"expected a {what} name, got {describe(name)}")
        return None
    if not _NAME.fullmatch(name):
        problems.add(path + ("name",), f"{what} name {name!r} must start with a letter or _ and "
                     "hold only letters, digits, _ and -")
        return None
    if what == "component" and name == HOST:
        problems.add(path + ("name",), f"{HOST!r} is reserved for the host end of links",
                     "rename the component")
        return None
    return name


def _parse_links(data: dict[Any, Any], names: set[str] | None, conv: Any,
                 problems: Problems, plugins: Plugins) -> list[LinkConfig]:
    """The links; endpoints are checked against ``names`` unless it is None."""
    raw = data.get("links")
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.add(("links",), f"expected a list of links, got {describe(raw)}")
        return []
    links: list[LinkConfig] = []
    first_index: dict[str, int] = {}
    endpoints = sorted({HOST, *(names or ())})
    for i, item in enumerate(raw):
        path: tuple[PathPart, ...] = ("links", i)
        found: list[Any] = []
        fields = structure_fields(conv, item, LinkConfig, path, found)
        problems.extend(found)
        if fields is None:
            continue
        ok = not found
        name = fields.get("name")
        if name is None:
            pass
        elif not _NAME.fullmatch(name):
            problems.add(path + ("name",), f"link name {name!r} must start with a letter or "
                         "_ and hold only letters, digits, _ and -")
            ok = False
        elif name in first_index:
            problems.add(path + ("name",), f"link name {name!r} is already used by "
                         f"$.links[{first_index[name]}]", "give each link its own name")
            ok = False
        else:
            first_index[name] = i
        between = fields.get("between")
        if between is not None:
            for j, end in enumerate(between):
                if names is not None and end != HOST and end not in names:
                    hint = did_you_mean(end, endpoints) or f"endpoints: {', '.join(endpoints)}"
                    problems.add(path + ("between", j), f"unknown endpoint {end!r}: neither "
                                 f"{HOST!r} nor a component", hint)
                    ok = False
            if between[0] == between[1]:
                problems.add(path + ("between",), "a link joins two different endpoints, got "
                             f"{between[0]!r} twice")
                ok = False
        profile_name = fields.get("profile")
        if profile_name is not None and profile_name not in PROFILES:
            unknown = unknown_profile(profile_name)
            problems.add(path + ("profile",), unknown.message, unknown.hint)
            ok = False
        ok = _check_link_timing(item, fields, path, problems, plugins) and ok
        if ok:
            links.append(LinkConfig(**fields))
    return links


def _check_link_timing(item: Any, fields: dict[str, Any], path: tuple[PathPart, ...],
                       problems: Problems, plugins: Plugins) -> bool:
    """A link has a profile or a bandwidth (not both), and its model is installed."""
    if not isinstance(item, dict):
        return False
    ok = True
    custom = [k for k in ("bandwidth", "latency", "duplex") if k in item]
    if item.get("profile") is not None and custom:
        problems.add(path + (custom[0],), f"a link with a profile takes its {custom[0]} from "
                     "the profile", f"remove {custom[0]}, or profile to define the link yourself",
                     at_key=True)
        ok = False
    elif item.get("profile") is None and item.get("bandwidth") is None:
        problems.add(path, "a link needs a profile, or a bandwidth (and latency) of its own",
                     f"for example profile: pcie4-x16 or bandwidth: 64GB/s, latency: 300ns "
                     f"(profiles: {', '.join(PROFILES)})")
        ok = False
    model = fields.get("model")
    if model is not None and model not in plugins.bus_models:
        unknown = plugins.bus_models.unknown(model)
        problems.add(path + ("model",), unknown.message, unknown.hint)
        ok = False
    return ok


__all__ = [
    "HOST", "UVM_PAGE", "ComponentConfig", "FabricConfig", "LinkConfig", "VramConfig",
    "builtin_fabrics",
    "load_fabric", "parse_fabric",
]
