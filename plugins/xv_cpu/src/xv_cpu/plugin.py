"""Entry point of xv_cpu: the ``interp`` backend and the ``cpu`` component kind."""

from __future__ import annotations

from xv_core import hookimpl
from xv_core.registry import BackendSpec, ComponentKind
from xv_cpu.component import CpuComponent, CpuOptions
from xv_cpu.interp import InterpBackend


@hookimpl
def xv_backends() -> list[BackendSpec]:
    return [BackendSpec("interp", InterpBackend,
                        "numpy SIMT interpreter, the reference semantics of the IR")]


@hookimpl
def xv_component_kinds() -> list[ComponentKind]:
    return [ComponentKind("cpu", CpuOptions, CpuComponent,
                          "worker threads of this machine's CPU running tiles")]
