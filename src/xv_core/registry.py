"""What plugins register, and the registries that hold it.

A registry maps names to providers.  It refuses a name claimed twice (naming
both plugins) and answers an unknown name with the names that are installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

import attrs

from xv_core.errors import PluginError, UnknownNameError, closest_name


@attrs.frozen
class ComponentKind:
    """A kind of fabric component.

    ``options`` is an attrs class: the component's keys in the fabric YAML
    (besides ``name`` and ``kind``) are structured into it, so unknown keys
    and bad values are reported with their ``$.path``.  ``factory(name,
    options, context)`` builds the running component (see
    :mod:`xv_core.runtime.interfaces`).  ``compute`` is False for kinds that
    run no tiles (cache tiers, kernel caches).  ``check(options, fabric)``, when given,
    checks a component's options against the rest of the fabric (its
    :class:`~xv_core.config.FabricConfig`) when the fabric is loaded, touching nothing outside
    it: it yields ``(key, message, hint)`` problems, ``key`` naming the option (None: the
    component) and ``hint`` None or a string.
    """

    name: str
    options: type
    factory: Callable[..., Any]
    description: str = ""
    compute: bool = True
    check: Callable[[Any, Any], Iterable[tuple[str | None, str, str | None]]] | None = None


@attrs.frozen
class BackendSpec:
    """An IR backend: ``factory()`` returns an object with ``prepare(kernel)``.

    ``checks_bounds`` is what the backend promises about buffer, image and array accesses
    out of bounds: True, that they fail with the interp's error (the source line, the memory,
    the index, the work item); False, that they are undefined (as on a GPU), so conformance
    suites skip those tests for it.
    """

    name: str
    factory: Callable[[], Any]
    description: str = ""
    checks_bounds: bool = attrs.field(default=True, kw_only=True,
                                      validator=attrs.validators.instance_of(bool))


@attrs.frozen
class EvictionPolicySpec:
    """A page eviction policy: ``factory(capacity_pages)`` returns a policy object."""

    name: str
    factory: Callable[..., Any]
    description: str = ""


@attrs.frozen
class BusModelSpec:
    """A bus model: ``factory()`` returns an object that times transfers on links."""

    name: str
    factory: Callable[..., Any]
    description: str = ""


@attrs.frozen
class FrontendSpec:
    """A kernel language: ``compile(text, path)`` returns an IR module or raises
    :class:`~xv_core.errors.SourceError`."""

    name: str
    suffixes: tuple[str, ...]
    compile: Callable[[str, str], Any]
    description: str = ""


@attrs.frozen
class VramSpec:
    """A VRAM manager: ``factory(vram_config, context)`` returns the device memory."""

    name: str
    factory: Callable[..., Any]
    description: str = ""


@attrs.frozen
class SchedulerSpec:
    """A scheduling policy: ``factory()`` returns an object with ``choose(tile, candidates)``
    (see :mod:`xv_core.runtime.placement`), built once per fabric."""

    name: str
    factory: Callable[[], Any]
    description: str = ""


T = TypeVar("T")


@attrs.frozen
class Entry(Generic[T]):
    value: T
    plugin: str


class Registry(Generic[T]):
    """Named providers of one sort (components, backends, ...)."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, value: T, plugin: str) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {self.what} without a name")
        if name in self._entries:
            other = self._entries[name].plugin
            raise PluginError(
                f"{self.what} {name!r} is provided by both {other!r} and {plugin!r}",
                hint="uninstall one of the two distributions",
            )
        self._entries[name] = Entry(value, plugin)

    def get(self, name: str, where: object | None = None) -> T:
        try:
            return self._entries[name].value
        except KeyError:
            raise self.unknown(name, where) from None

    def unknown(self, name: object, where: object | None = None) -> UnknownNameError:
        installed = ", ".join(sorted(self._entries)) or "none"
        close = closest_name(name, self._entries)
        hint = f"did you mean {close!r}?" if close else "install the plugin that provides it"
        return UnknownNameError(
            f"unknown {self.what} {name!r} (installed: {installed})", where=where, hint=hint
        )

    def plugin_of(self, name: str) -> str:
        return self._entries[name].plugin

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
