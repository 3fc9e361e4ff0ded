"""Entry point of xv_cpu: the ``interp`` and ``jit`` backends and the ``cpu`` component kind."""

from __future__ import annotations

from xv_core import hookimpl
from xv_core.registry import BackendSpec, ComponentKind
from xv_cpu.component import CpuComponent, CpuOptions
from xv_cpu.interp import InterpBackend
from xv_cpu.jit import JitBackend, UncheckedJitBackend


@hookimpl
def xv_backends() -> list[BackendSpec]:
    return [
        BackendSpec("interp", InterpBackend,
                    "numpy SIMT interpreter, the reference semantics of the IR"),
        BackendSpec("jit", JitBackend,
                    "native code through LLVM, bounds-checked; kernels cached on disk"),
        BackendSpec("jit-unchecked", UncheckedJitBackend,
                    "the jit without bounds checks (out-of-bounds accesses are undefined)",
                    checks_bounds=False),
    ]


@hookimpl
def xv_component_kinds() -> list[ComponentKind]:
    return [ComponentKind("cpu", CpuOptions, CpuComponent,
                          "worker threads of this machine's CPU running tiles")]
