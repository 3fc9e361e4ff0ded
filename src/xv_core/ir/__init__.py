"""The Xenovectra IR: definition, verifier, serialisation and text form."""

from xv_core.ir.nodes import *  # noqa: F403 - the IR's vocabulary is its public API
from xv_core.ir.nodes import __all__ as _nodes_all  # type: ignore[attr-defined]
from xv_core.ir.serial import dumps, load, loads, save
from xv_core.ir.text import module_text
from xv_core.ir.verify import verify_kernel, verify_module

__all__ = [*_nodes_all, "dumps", "load", "loads", "save", "module_text", "verify_kernel", "verify_module"]
