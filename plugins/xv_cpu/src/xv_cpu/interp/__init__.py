"""The ``interp`` backend: a numpy SIMT interpreter, the living definition of the IR.

Work items run in lockstep as numpy arrays.  See :mod:`.frame` for how
divergence is handled, :mod:`.alu` for the arithmetic semantics,
:mod:`.atomics` for atomics and their lock, :mod:`.compiler` for runtime
errors, work counting and what is reused within a batch.
"""

from xv_cpu.interp.backend import BATCH_ITEMS, InterpBackend, PreparedInterpKernel

__all__ = ["BATCH_ITEMS", "InterpBackend", "PreparedInterpKernel"]
