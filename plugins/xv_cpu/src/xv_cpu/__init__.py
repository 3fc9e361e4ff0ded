"""xv_cpu: the ``cpu`` component kind and the ``interp`` IR backend of Xenovectra."""

from xv_cpu.component import CpuComponent, CpuOptions
from xv_cpu.interp import InterpBackend

__all__ = ["CpuComponent", "CpuOptions", "InterpBackend"]
