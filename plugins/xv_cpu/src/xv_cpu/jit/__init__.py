"""The ``jit`` backend: the IR compiled to native code through LLVM (llvmlite).

See docs/jit.md for the lowering (PoCL-style work-group functions), the cache and its
trust model, atomics, and how it is checked against the ``interp`` backend.
"""

from xv_cpu.jit.backend import BACKEND_VERSION, JitBackend, PreparedJitKernel, UncheckedJitBackend

__all__ = ["BACKEND_VERSION", "JitBackend", "PreparedJitKernel", "UncheckedJitBackend"]
