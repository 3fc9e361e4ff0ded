"""xv_cpu: the ``cpu`` component kind and the ``interp`` and ``jit`` IR backends of Xenovectra."""

from xv_cpu.component import CpuComponent, CpuOptions
from xv_cpu.interp import InterpBackend
from xv_cpu.jit import JitBackend

__all__ = ["CpuComponent", "CpuOptions", "InterpBackend", "JitBackend"]
