"""Every hook Xenovectra calls, in one place.

Plugins implement these with ``@xv_core.hookimpl`` and are found through
the ``xenovectra`` entry-point group.  Registration hooks are called once,
when the plugin manager is built; every result of every plugin is collected
(none wins over another) and a name claimed twice is an error naming both
plugins.  Event hooks are called as things happen; their return values are
ignored and an exception in one propagates to the caller.

``docs/hooks.md`` documents each hook; ``tests/test_docs.py`` fails when the
two drift apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from xv_core.events import DispatchEvent, PageEvent, TileEvent, TransferEvent
    from xv_core.registry import (
        BackendSpec, BusModelSpec, ComponentKind, EvictionPolicySpec, FrontendSpec, SchedulerSpec,
        VramSpec,
    )

PROJECT = "xenovectra"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --------------------------------------------------------------------------
# Registration: what a plugin provides
# --------------------------------------------------------------------------


@hookspec
def xv_component_kinds() -> list[ComponentKind]:
    """Return the component kinds this plugin provides (``kind:`` in a fabric).

    Called once when the plugin manager is built.  Each
    :class:`~xv_core.registry.ComponentKind` names the kind, the attrs class
    its fabric options are structured into, and the factory that builds a
    running component.
    """


@hookspec
def xv_backends() -> list[BackendSpec]:
    """Return the IR backends this plugin provides (``interp``, ``jit``, ...).

    Called once when the plugin manager is built.  A backend turns a verified
    IR kernel into something that runs tiles of workgroups.
    """


@hookspec
def xv_eviction_policies() -> list[EvictionPolicySpec]:
    """Return the VRAM page eviction policies this plugin provides.

    Called once when the plugin manager is built; ``vram.eviction`` in a
    fabric names one of them.
    """


@hookspec
def xv_bus_models() -> list[BusModelSpec]:
    """Return the bus models this plugin provides (how transfers take time).

    Called once when the plugin manager is built; a fabric's ``bus`` (or a
    link's ``model``) names one of them.
    """


@hookspec
def xv_frontends() -> list[FrontendSpec]:
    """Return the kernel front ends this plugin provides.

    Called once when the plugin manager is built.  A front end compiles
    source files with the suffixes it claims (``.xvk``) into an IR module.
    """


@hookspec
def xv_vram_managers() -> list[VramSpec]:
    """Return the VRAM managers this plugin provides (``vram.manager``).

    Called once when the plugin manager is built.  A VRAM manager allocates
    device buffers within the fabric's declared capacity.
    """


@hookspec
def xv_schedulers() -> list[SchedulerSpec]:
    """Return the scheduling policies this plugin provides (``scheduler:`` in a fabric).

    Called once when the plugin manager is built.  A policy chooses the component each tile
    of a dispatch runs on, from the modelled costs the runtime offers it.
    """


# --------------------------------------------------------------------------
# Events: what happens while a fabric runs (tracing, metrics)
# --------------------------------------------------------------------------


@hookspec
def xv_on_dispatch(event: DispatchEvent) -> None:
    """Called when a dispatch starts (``phase="start"``) and when it has finished
    (``phase="end"``), on the thread that dispatched it."""


@hookspec
def xv_on_tile(event: TileEvent) -> None:
    """Called after a tile of workgroups has run on a component, on the thread
    that collects results (never concurrently with another event hook)."""


@hookspec
def xv_on_transfer(event: TransferEvent) -> None:
    """Called when bytes move over a modelled link (buffer uploads and
    read-backs, page movements)."""


@hookspec
def xv_on_page(event: PageEvent) -> None:
    """Called when a VRAM page is faulted in, written back or evicted."""
