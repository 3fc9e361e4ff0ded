"""What runs on a Dask worker: one tile of an IR kernel, and the writes it made.

The work travels as data only.  The kernel is ``.xvir`` JSON text
(:func:`xv_core.ir.dumps`), parsed and verified on the worker by
:func:`xv_core.ir.loads`; the tile is a tuple of integers; the arguments are
numpy arrays and scalars.  Dask refers to :func:`run_tile` by module and name,
so the worker imports it from its own installed ``xv_net`` -- no code is
shipped.  The backend is found on the worker through
:func:`xv_core.plugins.load_plugins`, so the worker needs the core, ``xv_net``
and the plugin of that backend installed.

The tile runs on private copies of the buffers it may write, and sends back
only the elements whose bits changed (:func:`diff`); the caller merges them
into its own arrays (:func:`merge`).  Buffers the kernel writes only with
atomic add/sub (or only with atomic min, or only max) send the change in a
form that merges with other tiles' atomics (a delta, or a bound) instead of
the final value.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from xv_core import ir
from xv_core.ir import Kernel, Node, Op
from xv_core.runtime.interfaces import Launch, PreparedKernel, Tile

#: Prepared kernels a worker keeps, most recently used last.
MAX_PREPARED = 32

_lock = threading.Lock()
_plugins: Any = None
_prepared: OrderedDict[tuple[str, str, str], PreparedKernel] = OrderedDict()

# Merge modes of a written buffer.
SET, ADD, MIN, MAX = "set", "add", "min", "max"


def written_buffers(kernel: Kernel) -> dict[str, str]:
    """Every buffer or image ``kernel`` may write, with how its writes merge.

    ``add`` when all its writes are atomic add/sub, ``min`` or ``max`` when
    all are that atomic, ``set`` otherwise (plain stores, exchange,
    compare-exchange, or a mix).
    """
    kinds: dict[str, set[str]] = {}
    stack: list[Node] = [kernel.body]
    while stack:
        node = stack.pop()
        stack.extend(node.args)
        if node.op in (Op.STORE, Op.ISTORE):
            kinds.setdefault(node.arg[0], set()).add(SET)
        elif node.op is Op.ATOMIC:
            kind, name = node.arg[0], node.arg[1]
            kinds.setdefault(name, set()).add(ADD if kind in ("add", "sub") else
                                              kind if kind in (MIN, MAX) else SET)
    return {name: (next(iter(k)) if len(k) == 1 else SET) for name, k in sorted(kinds.items())}


def _bits(a: np.ndarray) -> np.ndarray:
    """The elements as unsigned integers of the same size, so -0.0 and NaNs compare exactly."""
    flat = np.ascontiguousarray(a).reshape(-1)
    return flat.view(f"u{flat.dtype.itemsize}")


def diff(before: np.ndarray, after: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the elements that changed, and what to merge there.

    ``set`` and ``min``/``max``: the new values.  ``add``: ``after - before``
    in the array's own arithmetic (wrapping for integers).
    """
    index = np.flatnonzero(_bits(before) != _bits(after))
    new = after.reshape(-1)[index]
    if mode == ADD:
        with np.errstate(over="ignore"):
            return index, new - before.reshape(-1)[index]
    return index, new


def merge(target: np.ndarray, index: np.ndarray, values: np.ndarray, mode: str) -> None:
    """Apply a :func:`diff` to ``target`` (the caller's array, in place)."""
    if index.size == 0:
        return
    flat = target.reshape(-1)  # a view: device arrays are contiguous
    if not np.shares_memory(flat, target):  # pragma: no cover - defensive
        raise ValueError("cannot merge into a non-contiguous array")
    if mode == SET:
        flat[index] = values
    elif mode == ADD:
        with np.errstate(over="ignore"):
            flat[index] += values
    elif mode == MIN:
        flat[index] = np.minimum(flat[index], values)
    elif mode == MAX:
        flat[index] = np.maximum(flat[index], values)
    else:  # pragma: no cover - modes come from written_buffers
        raise ValueError(f"unknown merge mode {mode!r}")


def _prepare(ir_json: str, kernel_name: str, backend: str) -> PreparedKernel:
    global _plugins
    key = (hashlib.sha256(ir_json.encode()).hexdigest(), kernel_name, backend)
    with _lock:
        prepared = _prepared.get(key)
        if prepared is not None:
            _prepared.move_to_end(key)
            return prepared
        if _plugins is None:
            from xv_core.plugins import load_plugins

            _plugins = load_plugins()
        spec = _plugins.backends.get(backend, where="remote node")
    module = ir.loads(ir_json, where=f"<kernel {kernel_name} from the caller>")
    kernel = module.kernel(kernel_name)
    if kernel is None:
        raise ValueError(f"the module sent has no kernel {kernel_name!r}")
    prepared = spec.factory().prepare(kernel)
    with _lock:
        _prepared[key] = prepared
        while len(_prepared) > MAX_PREPARED:
            _prepared.popitem(last=False)
    return prepared


def run_tile(ir_json: str, kernel_name: str, backend: str,
             tile: tuple[int, tuple[int, int, int], tuple[int, int, int], int, int],
             args: Mapping[str, Any], written: Mapping[str, str]) -> dict[str, Any]:
    """Run one tile on this worker.

    ``tile`` is ``(index, grid, block, first_group, group_count)``;
    ``written`` maps each buffer the kernel may write to its merge mode.
    Returns the work counts and, per written buffer, ``(mode, indices, values)``.
    """
    prepared = _prepare(ir_json, kernel_name, backend)
    index, grid, block, first, count = tile
    run_args = dict(args)
    before = {}
    for name in written:
        value = run_args.get(name)
        if isinstance(value, np.ndarray):
            before[name] = value
            run_args[name] = value.copy()  # never write into what the transport handed us
    work = prepared.run_tile(Tile(index, Launch(tuple(grid), tuple(block)), first, count),
                             run_args)
    writes = {}
    for name, old in before.items():
        idx, values = diff(old, run_args[name], written[name])
        writes[name] = (written[name], idx, values)
    return {"ops": work.ops, "bytes_read": work.bytes_read, "bytes_written": work.bytes_written,
            "writes": writes}
