"""Building the plugin manager and the registries from installed plugins.

Call :func:`load_plugins` (never at import time).  It registers the core's
own built-in plugin, then every entry point of the ``xenovectra`` group.  A
plugin that fails to import, implements a hook that does not exist, or
raises while registering is recorded in ``Plugins.failures`` with its name
and the reason, logged, and left out; the others still load.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pluggy
import structlog

from xv_core import hookspecs
from xv_core.errors import PluginError, UnknownNameError
from xv_core.registry import (
    BackendSpec, BusModelSpec, ComponentKind, EvictionPolicySpec, FrontendSpec, Registry,
    SchedulerSpec, VramSpec,
)

log = structlog.get_logger("xv.plugins")
ENTRY_POINT_GROUP = hookspecs.PROJECT


@attrs.frozen
class PluginFailure:
    """A plugin that could not be loaded, and why."""

    name: str
    reason: str
    distribution: str | None = None


@attrs.frozen
class PluginInfo:
    """A loaded plugin and the distribution it came from."""

    name: str
    distribution: str
    version: str


# The registration hooks, what each provides, and the spec class it returns.
_REGISTRATIONS: tuple[tuple[str, str, str, type], ...] = (
    ("components", "xv_component_kinds", "component kind", ComponentKind),
    ("backends", "xv_backends", "backend", BackendSpec),
    ("eviction_policies", "xv_eviction_policies", "eviction policy", EvictionPolicySpec),
    ("bus_models", "xv_bus_models", "bus model", BusModelSpec),
    ("frontends", "xv_frontends", "front end", FrontendSpec),
    ("vram_managers", "xv_vram_managers", "VRAM manager", VramSpec),
    ("schedulers", "xv_schedulers", "scheduling policy", SchedulerSpec),
)


@attrs.define
class Plugins:
    """The plugin manager and the registries its plugins filled."""

    pm: pluggy.PluginManager
    components: Registry[ComponentKind]
    backends: Registry[BackendSpec]
    eviction_policies: Registry[EvictionPolicySpec]
    bus_models: Registry[BusModelSpec]
    frontends: Registry[FrontendSpec]
    vram_managers: Registry[VramSpec]
    schedulers: Registry[SchedulerSpec]
    loaded: list[PluginInfo] = attrs.Factory(list)
    failures: list[PluginFailure] = attrs.Factory(list)

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def frontend_for(self, path: str | Path) -> FrontendSpec:
        suffix = Path(path).suffix
        for name in self.frontends:
            spec = self.frontends.get(name)
            if suffix in spec.suffixes:
                return spec
        known = sorted(s for n in self.frontends for s in self.frontends.get(n).suffixes)
        raise UnknownNameError(
            f"no installed front end compiles {suffix or 'files without a suffix'} "
            f"(known: {', '.join(known + ['.xvir']) })",
            where=str(path),
            hint="install xenovectra-dsl for .xvk kernels",
        )

    def provided_by(self, plugin: str) -> dict[str, list[str]]:
        """What one plugin registered: {'component kind': ['cpu'], ...}."""
        out: dict[str, list[str]] = {}
        for attr, _hook, what, _cls in _REGISTRATIONS:
            registry: Registry[Any] = getattr(self, attr)
            names = [n for n in registry if registry.plugin_of(n) == plugin]
            if names:
                out[what] = names
        return out


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    # Sorted so that registration, and so every registry, is deterministic.
    return sorted(eps, key=lambda ep: ep.name)


def _register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Register and reject hooks that do not exist, leaving pm unchanged on failure."""
    pm.register(plugin, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        pm.unregister(plugin, name=name)
        raise PluginError(f"{exc}", hint="hook names are listed in docs/hooks.md") from None


def load_plugins(
    *, entry_points: bool = True, extra: Iterable[tuple[str, object]] = ()
) -> Plugins:
    """Build the plugin manager and fill the registries.

    ``extra`` adds (name, plugin object) pairs after the entry points; tests
    use it to register plugins that are not installed.
    """
    from xv_core import builtins

    pm = make_plugin_manager()
    failures: list[PluginFailure] = []
    loaded: list[PluginInfo] = []
    _register(pm, builtins, "xenovectra")
    loaded.append(PluginInfo("xenovectra", "xenovectra", _version("xenovectra")))

    candidates: list[tuple[str, object | None, PluginInfo | None]] = []
    if entry_points:
        for ep in _entry_points():
            dist = ep.dist.name if ep.dist is not None else "?"
            version = ep.dist.version if ep.dist is not None else "?"
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                failures.append(PluginFailure(ep.name, f"{type(exc).__name__}: {exc}", dist))
                continue
            candidates.append((ep.name, module, PluginInfo(ep.name, dist, version)))
    for name, plugin in extra:
        info = PluginInfo(name, getattr(plugin, "__name__", name), "local")
        candidates.append((name, plugin, info))

    for name, plugin, info in candidates:
        try:
            if pm.has_plugin(name):
                raise PluginError(f"a plugin named {name!r} is already registered")
            _register(pm, plugin, name)
        except PluginError as exc:
            failures.append(PluginFailure(name, str(exc), info.distribution if info else None))
            continue
        if info is not None:
            loaded.append(info)

    # What each plugin registers, checked first: a plugin one of whose hooks raises or returns
    # something else than its spec class is left out whole (its other hooks' results, and its
    # event hooks, too), so that nothing half-loaded runs.
    provided: list[tuple[str, Any, str]] = []  # (registry, spec, plugin), in order
    failed: set[str] = set()
    for attr, hook_name, what, cls in _REGISTRATIONS:
        hook = getattr(pm.hook, hook_name)
        # The names each plugin returned so far: a plugin may implement a hook more than once
        # (pluggy's ``specname``), and a name it returns twice is its own mistake.
        names_of: dict[str, set[str]] = {}
        for impl in hook.get_hookimpls():  # registration order
            name = impl.plugin_name
            try:
                specs = list(impl.function() or [])
                seen = names_of.setdefault(name, set())
                for spec in specs:
                    if not isinstance(spec, cls):
                        raise PluginError(f"{hook_name} returned {type(spec).__name__}, "
                                          f"expected {cls.__name__}")
                    if not isinstance(spec.name, str) or not spec.name:
                        raise PluginError(f"{hook_name} returned a {what} without a name")
                    if spec.name in seen:
                        raise PluginError(f"{hook_name} returned the {what} {spec.name!r} "
                                          f"twice")
                    seen.add(spec.name)
            except PluginError as exc:
                failures.append(PluginFailure(name, str(exc), _distribution(loaded, name)))
                failed.add(name)
                continue
            except Exception as exc:
                failures.append(PluginFailure(name, f"{hook_name} raised "
                                              f"{type(exc).__name__}: {exc}",
                                              _distribution(loaded, name)))
                failed.add(name)
                continue
            provided.extend((attr, spec, name) for spec in specs)
    for name in failed:
        pm.unregister(name=name)
    loaded = [info for info in loaded if info.name not in failed]
    registries = {attr: Registry[Any](what) for attr, _hook, what, _cls in _REGISTRATIONS}
    for attr, spec, name in provided:
        if name not in failed:  # a genuine conflict between two plugins stops everything
            registries[attr].add(spec.name, spec, name)

    for failure in failures:
        log.warning("plugin failed to load", plugin=failure.name, reason=failure.reason,
                    distribution=failure.distribution)
    return Plugins(pm=pm, loaded=loaded, failures=failures, **registries)


def _distribution(loaded: Sequence[PluginInfo], name: str) -> str | None:
    """The distribution of loaded plugin ``name``, if known."""
    return next((info.distribution for info in loaded if info.name == name), None)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def plugin_packages() -> dict[str, PluginInfo]:
    """The installed plugins by the top-level package of their entry point (``xv_cpu`` for
    ``xv_cpu.plugin``), the core's own package left out: for telling whose code raised.
    Never raises (broken metadata gives fewer entries)."""
    out: dict[str, PluginInfo] = {}
    try:
        eps = _entry_points()
    except Exception:  # noqa: BLE001 - diagnostics must not fail in turn
        return out
    for ep in eps:
        try:
            top = ep.module.partition(".")[0]
            dist = ep.dist.name if ep.dist is not None else "?"
            version = ep.dist.version if ep.dist is not None else "?"
        except Exception:  # noqa: BLE001
            continue
        if top and top != "xv_core":
            out.setdefault(top, PluginInfo(ep.name, dist, version))
    return out


def plugin_module(name: str) -> ModuleType | None:
    """The module of an installed plugin by entry-point name (for diagnostics)."""
    for ep in _entry_points():
        if ep.name == name:
            return ep.load()
    return None
