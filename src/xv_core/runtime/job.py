"""Running a job file on a fabric (``xv fabric run FABRIC JOB``).

Everything that can be checked is checked before anything runs: the job
document, the kernels (compiled or loaded and verified), the input files,
every step's kernel, geometry and arguments.  All problems are reported at
once, each with its ``$.path``.  Outputs are written only after every step
has succeeded, each atomically, so a failed job leaves no half-written file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from xv_core.arrays import check_output_path, encode_check, read_array, write_arrays
from xv_core.errors import XvError, closest_name
from xv_core.ir import Kernel
from xv_core.runtime.api import Buffer, DispatchResult, Fabric, launch_geometry
from xv_core.runtime.args import BufferShape, check_args, dtype_name, rank_problem
from xv_core.runtime.interfaces import DTYPES, Launch


@attrs.frozen
class StepResult:
    index: int
    kernel: str
    launch: Launch
    dispatch: DispatchResult


@attrs.frozen
class JobResult:
    job: str
    fabric: str
    steps: tuple[StepResult, ...]
    outputs: dict[str, str]
    compile_s: float
    wall_s: float
    #: The VRAM manager's statistics at the end of the job (``Vram.stats()``).
    vram: dict[str, Any] = attrs.field(factory=dict)
    #: The modelled timeline of the job (``Fabric.timing_report()``): virtual time, links,
    #: components, the lower bound, and each dispatch's span under ``steps``.
    timing: dict[str, Any] = attrs.field(factory=dict)
    #: Native compilation during the job (``Fabric.native_compile()``): ``compile_s``,
    #: ``compiles``, ``cache_hits``.
    native: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class _Plan:
    kernels: dict[str, Kernel]
    inputs: dict[str, np.ndarray]
    shapes: dict[str, BufferShape]
    launches: tuple[Launch, ...]


def plan_job(job: Any, fabric: Fabric) -> tuple[_Plan, float]:
    """Load and check everything a job needs; raise one ConfigError listing every problem."""
    problems: list[tuple[str, str, str | None]] = []
    kernels: dict[str, Kernel] = {}
    t0 = time.perf_counter()
    for i, rel in enumerate(job.kernels):
        path = job.base_dir / rel
        where = f"$.kernels[{i}]" if len(job.kernels) > 1 else "$.kernels"
        if not path.is_file():
            what = ("does not exist" if not path.exists() else "is a folder" if path.is_dir()
                    else "is not a regular file (a device or a pipe)")
            problems.append((where, f"kernel file {str(rel)!r} {what}", None))
            continue
        if path.suffix != ".xvir":
            try:
                fabric.plugins.frontend_for(path)
            except XvError as exc:  # no front end for the suffix: said where the job names it
                problems.append((where, exc.message, exc.hint))
                continue
        module = fabric.load_module(path)  # a source error is reported as it is: file:line:col
        for k in module.kernels:
            if k.name in kernels:
                problems.append((where, f"kernel {k.name!r} is defined in two kernel files", None))
            kernels[k.name] = k
    compile_s = time.perf_counter() - t0

    inputs: dict[str, np.ndarray] = {}
    shapes: dict[str, BufferShape] = {}
    unloaded: set[str] = set()  # buffers whose file failed to load (reported once, there)
    for name, spec in job.buffers.items():
        where = f"$.buffers.{name}"
        if spec.load is not None:
            try:
                array = read_array(job.base_dir / spec.load)
            except XvError as exc:
                problems.append((where + ".load", exc.message, exc.hint))
                unloaded.add(name)
                continue
            if array.dtype not in set(DTYPES.values()):
                problems.append((where + ".load",
                                 f"{spec.load} holds {array.dtype}, which kernels cannot use",
                                 "save it as bool, int32, uint32, float32 or float64"))
                unloaded.add(name)
                continue
            rank = rank_problem(tuple(array.shape))
            if rank is not None:
                problems.append((where + ".load", f"{spec.load}: {rank[0]}", rank[1]))
                unloaded.add(name)
                continue
            inputs[name] = array
            shapes[name] = BufferShape(name, array.dtype, tuple(array.shape))
        else:
            shape = tuple(spec.zeros) + ((4,) if spec.dtype == "vec4" else ())
            shapes[name] = BufferShape(name, DTYPES[spec.dtype], shape)

    launches: list[Launch] = []
    for i, step in enumerate(job.steps):
        where = f"$.steps[{i}]"
        kernel = kernels.get(step.kernel)
        if kernel is None:
            if kernels or not problems:
                close = closest_name(step.kernel, kernels)
                problems.append((
                    where + ".kernel",
                    f"unknown kernel {step.kernel!r} (defined: {', '.join(sorted(kernels)) or 'none'})",
                    f"did you mean {close!r}?" if close else None))
            continue
        try:
            launches.append(launch_geometry(kernel, global_size=step.global_size, grid=step.grid,
                                            block=step.block))
        except XvError as exc:
            problems.append((where, exc.message, exc.hint))
        args = {k: shapes.get(v, v) if isinstance(v, str) else v for k, v in step.args.items()}
        for p in check_args(kernel, args):
            value = step.args.get(p.param) if p.param is not None else None
            if isinstance(value, str) and value in unloaded:
                continue  # its buffer's own error says what is wrong
            path = f"{where}.args.{p.param}" if p.param else f"{where}.args"
            problems.append((path, p.message, p.hint))
    for name, rel in job.outputs.items():
        where = f"$.outputs.{name}"
        path = job.base_dir / rel
        try:  # before anything runs: a job must not fail at its end on a path
            check_output_path(path, where)
            shape = shapes.get(name)
            if shape is not None:
                encode_check(path, shape.shape, where)
        except XvError as exc:
            problems.append((where, exc.message, exc.hint))
    if problems:
        raise job.error(problems)
    return _Plan(kernels, inputs, shapes, tuple(launches)), compile_s


def run_job(job: Any, fabric: Fabric) -> JobResult:
    """Run a loaded JobConfig on an open fabric; write its outputs."""
    plan, compile_s = plan_job(job, fabric)
    start = time.perf_counter()
    buffers: dict[str, Buffer] = {}
    try:
        for name, shape in plan.shapes.items():
            try:
                if name in plan.inputs:
                    buffers[name] = fabric.buffer(plan.inputs[name], name=name)
                else:
                    buffers[name] = fabric.buffer(shape=shape.shape, dtype=shape.dtype,
                                                  name=name)
            except XvError as exc:  # no room for it: said where the job declares it
                raise job.error([(f"$.buffers.{name}", exc.message, exc.hint)]) from None
        steps = []
        for i, (step, launch) in enumerate(zip(job.steps, plan.launches)):
            kernel = plan.kernels[step.kernel]
            args = {k: buffers[v] if isinstance(v, str) else v for k, v in step.args.items()}
            result = fabric.dispatch(kernel, args=args, grid=launch.grid, block=launch.block)
            steps.append(StepResult(i, kernel.name, launch, result))
        results = {name: buffers[name].read() for name in job.outputs}
        fabric.vram.flush()  # persistent buffers keep what the job computed
        settle = getattr(fabric.vram, "wait_prefetches", None)
        if settle is not None:  # statistics after every prefetch asked for is done
            settle()
        timing = fabric.timing_report()
    finally:
        for buf in buffers.values():
            buf.free()
    paths = {name: job.base_dir / rel for name, rel in job.outputs.items()}
    write_arrays([(paths[name], results[name]) for name in job.outputs])
    outputs = {name: _display(path) for name, path in paths.items()}
    wall = time.perf_counter() - start
    return JobResult(job.source, fabric.config.name, tuple(steps), outputs, compile_s, wall,
                     fabric.vram.stats(), timing, fabric.native_compile())


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


__all__ = ["JobResult", "StepResult", "plan_job", "run_job", "dtype_name"]
