"""Job files: which kernels to run on which buffers, in which order, and what to write out.

:func:`load_job` checks everything a job file can get wrong on its own (keys, types, buffers
declared once and used by name, shapes, file suffixes) and returns a frozen :class:`JobConfig`
with every path resolved against the job file's folder.  Whether the arguments fit the kernels'
parameters is checked later, when the kernels are compiled; :meth:`JobConfig.error` reports those
problems in the same located format.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NewType, Optional

import attrs
import yaml

from xv_core.config.convert import Invalid, make_converter, structure_fields
from xv_core.config.problems import (
    ROOT, Locator, PathPart, Problems, describe, did_you_mean, located_error, read_yaml,
)
from xv_core.errors import ConfigError
from xv_core.runtime.interfaces import DTYPES

#: Element types a ``zeros`` buffer may have.
DTYPE_NAMES: tuple[str, ...] = tuple(DTYPES)
#: Files a buffer can be loaded from and an output written to.
ARRAY_SUFFIXES = (".npy", ".png")
#: Most dimensions of a grid, a workgroup or a ``zeros`` shape.
MAX_DIMS = 3

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOP_KEYS = ("kernels", "buffers", "steps", "outputs")
_NUMPY_NAMES = {"float32": "f32", "float": "f32", "float64": "f64", "double": "f64",
                "int32": "i32", "int": "i32", "uint32": "u32", "uint": "u32", "bool_": "bool",
                "boolean": "bool"}

#: 1 to 3 positive ints; YAML may give one int for one dimension.
Dims = NewType("Dims", tuple)


@attrs.frozen
class BufferSpec:
    """A buffer of a job: loaded from a ``.npy``/``.png`` file (``load``, relative to the job
    file; its dtype and shape come from the file) or zero-filled (``zeros`` shape and
    ``dtype``)."""

    load: str | None = None
    zeros: tuple[int, ...] | None = None
    dtype: str | None = None


@attrs.frozen
class StepSpec:
    """One dispatch.  ``global_size`` counts work items (YAML key ``global``), ``grid``
    workgroups; exactly one is set.  ``block`` may be None when the kernel declares
    ``@workgroup``.  ``args`` maps parameter names to scalars or buffer names.  ``path`` is the
    step's ``$.steps[i]``."""

    kernel: str
    global_size: tuple[int, ...] | None
    grid: tuple[int, ...] | None
    block: tuple[int, ...] | None
    args: dict[str, bool | int | float | str]
    path: str


@attrs.frozen
class JobConfig:
    """A checked job.  ``kernels`` and the files of ``buffers`` and ``outputs`` are kept as the
    file writes them (so messages can quote them); they are relative to ``base_dir``, the job
    file's folder as an absolute path: :meth:`resolve` gives the file to open.  ``source`` is the
    job file as it was named.

    ``buffers`` and ``outputs`` keep the file's order.  ``locator`` maps ``$.path`` strings to
    positions in the file for :meth:`error`.
    """

    kernels: tuple[str, ...]
    buffers: dict[str, BufferSpec]
    steps: tuple[StepSpec, ...]
    outputs: dict[str, str]
    base_dir: Path
    source: str
    locator: Locator | None = attrs.field(default=None, eq=False, repr=False)

    def resolve(self, path: str) -> Path:
        """A path of the job file (a kernel, a ``load`` or an output) as an absolute path."""
        return Path(_resolve(self.base_dir, path))

    def error(self, problems: Iterable[tuple[str, str] | tuple[str, str, str | None]]
              ) -> ConfigError:
        """A ConfigError in the loader's format for ``(path, message[, hint])`` problems found
        after loading (arguments that do not fit a kernel), located in the job file."""
        return located_error(problems, self.source, self.locator)


@attrs.frozen
class _StepDoc:
    """The keys of a step (a schema for :func:`structure_fields`)."""

    kernel: str
    global_size: Optional[Dims] = None  # noqa: UP007 - cattrs needs the typing form here
    grid: Optional[Dims] = None  # noqa: UP007
    block: Optional[Dims] = None  # noqa: UP007
    args: dict[str, Any] = attrs.Factory(dict)


@attrs.frozen
class _BufferDoc:
    """The keys of a buffer (a schema for :func:`structure_fields`)."""

    load: Optional[str] = None  # noqa: UP007
    zeros: Optional[Dims] = None  # noqa: UP007
    dtype: Optional[str] = None  # noqa: UP007


_RENAMES = {_StepDoc: {"global_size": "global"}}


def _structure_dims(value: object, _type: object) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise Invalid(f"expected a list of 1 to {MAX_DIMS} positive integers, "
                      f"got {describe(value)}")
    if not 1 <= len(value) <= MAX_DIMS:
        raise Invalid(f"expected 1 to {MAX_DIMS} dimensions, got {len(value)}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or item < 1:
            raise Invalid(f"every dimension must be a positive integer, got {describe(item)}")
    return tuple(value)


def _converter() -> Any:
    conv = make_converter(_RENAMES)
    conv.register_structure_hook(Dims, _structure_dims)
    return conv


def load_job(path: str | os.PathLike[str]) -> JobConfig:
    """Read and check the job file at ``path``; raises ConfigError listing every problem."""
    source = os.fspath(path)
    try:
        text = Path(source).read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(["no such job file"], source=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read the job file: {exc}"], source=source) from None
    data, locator, duplicates = read_yaml(text, source)
    return _parse(data, source, Path(os.path.abspath(source)).parent, locator, duplicates)


def parse_job(data: object, source: str, base_dir: str | os.PathLike[str] | None = None
              ) -> JobConfig:
    """Check a job document that is already plain data; relative paths are resolved against
    ``base_dir`` (default: the current folder).  Problems have no line numbers."""
    base = Path(os.path.abspath(base_dir if base_dir is not None else os.curdir))
    return _parse(data, source, base, None, ())


def _resolve(base_dir: Path, relative: str) -> str:
    return os.path.normpath(base_dir / relative)


def _parse(data: object, source: str, base_dir: Path, locator: Locator | None,
           early: Iterable[Any]) -> JobConfig:
    problems = Problems(source, locator)
    problems.extend(early)
    if not isinstance(data, dict):
        what = "the job is empty" if data is None else f"got {describe(data)}"
        problems.add(ROOT, f"expected a mapping with keys {', '.join(_TOP_KEYS)}; {what}")
        raise problems.error()
    for key in data:
        if key not in _TOP_KEYS:
            hint = did_you_mean(key, _TOP_KEYS) or f"known keys: {', '.join(_TOP_KEYS)}"
            problems.add((str(key),), f"unknown key {str(key)!r}", hint, at_key=True)

    conv = _converter()
    kernels = _parse_kernels(data, problems)
    buffers = _parse_buffers(data, conv, problems)
    steps = _parse_steps(data, conv, set(buffers) | _raw_buffer_names(data), problems)
    outputs = _parse_outputs(data, buffers, base_dir, problems)
    if problems:
        raise problems.error()
    return JobConfig(kernels=tuple(kernels), buffers=buffers, steps=tuple(steps),
                     outputs=outputs, base_dir=base_dir, source=source, locator=locator)


def _raw_buffer_names(data: dict[Any, Any]) -> set[str]:
    """Buffer names declared even if their spec is wrong (so their uses are not errors too)."""
    raw = data.get("buffers")
    if not isinstance(raw, dict):
        return set()
    return {k for k in raw if isinstance(k, str) and _NAME.fullmatch(k)}


def _parse_kernels(data: dict[Any, Any], problems: Problems) -> list[str]:
    if "kernels" not in data:
        problems.add(ROOT, "missing required key 'kernels'",
                     "name the kernel file, like kernels: saxpy.xvk")
        return []
    raw = data["kernels"]
    items: list[tuple[tuple[PathPart, ...], object]]
    if isinstance(raw, str):
        items = [(("kernels",), raw)]
    elif isinstance(raw, list) and raw:
        items = [(("kernels", i), item) for i, item in enumerate(raw)]
    else:
        got = "an empty list" if raw == [] else describe(raw)
        problems.add(("kernels",), f"expected a kernel file or a list of them, got {got}")
        return []
    kernels: list[str] = []
    for path, item in items:
        if not isinstance(item, str) or not item.strip():
            problems.add(path, f"expected a kernel file, got {describe(item)}")
        elif item in kernels:
            problems.add(path, f"kernel file {item!r} is listed twice")
        else:
            kernels.append(item)
    return kernels


def _parse_buffers(data: dict[Any, Any], conv: Any, problems: Problems
                   ) -> dict[str, BufferSpec]:
    raw = data.get("buffers")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(("buffers",), f"expected a mapping of buffer names to buffers, "
                     f"got {describe(raw)}")
        return {}
    buffers: dict[str, BufferSpec] = {}
    for name, spec_data in raw.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            problems.add(("buffers", str(name)), f"buffer name {str(name)!r} must start with a "
                         "letter or _ and hold only letters, digits and _", at_key=True)
            continue
        path: tuple[PathPart, ...] = ("buffers", name)
        found: list[Any] = []
        fields = structure_fields(conv, spec_data, _BufferDoc, path, found)
        problems.extend(found)
        if fields is None:
            continue
        spec = _check_buffer(fields, spec_data, path, problems)
        if spec is not None and not found:
            buffers[name] = spec
    return buffers


def _check_buffer(fields: dict[str, Any], raw: dict[Any, Any], path: tuple[PathPart, ...],
                  problems: Problems) -> BufferSpec | None:
    """The buffer if its readable ``fields`` fit together; ``raw`` says which keys were given
    (a key with an unreadable value still counts as given)."""
    before = len(problems.items)
    has_load = raw.get("load") is not None
    has_zeros = raw.get("zeros") is not None
    load, dtype = fields.get("load"), fields.get("dtype")
    if has_load and has_zeros:
        problems.add(path, "a buffer is either loaded or zero-filled, not both",
                     "keep load: or zeros:")
    elif not has_load and not has_zeros:
        problems.add(path, "a buffer needs load: FILE or zeros: SHAPE",
                     "like {load: x.npy} or {zeros: [1024], dtype: f32}")
    if load is not None:
        if not load.strip():
            problems.add(path + ("load",), "expected a file name, got ''")
        elif Path(load).suffix not in ARRAY_SUFFIXES:
            problems.add(path + ("load",), f"cannot load {load!r}: expected a .npy or .png "
                         "file", "save arrays with numpy.save")
    if has_load and raw.get("dtype") is not None:
        problems.add(path + ("dtype",), "a loaded buffer takes its dtype from the file",
                     "remove dtype, or convert the file")
    elif dtype is not None and dtype not in DTYPE_NAMES:
        ours = _NUMPY_NAMES.get(dtype.lower())
        hint = f"write {ours}" if ours else did_you_mean(dtype, DTYPE_NAMES)
        problems.add(path + ("dtype",), f"unknown dtype {dtype!r} (known: "
                     f"{', '.join(DTYPE_NAMES)})", hint)
    if has_zeros and not has_load and raw.get("dtype") is None:
        problems.add(path, "missing required key 'dtype' for a zero-filled buffer",
                     f"one of {', '.join(DTYPE_NAMES)}")
    if len(problems.items) > before:
        return None
    return BufferSpec(load=load, zeros=fields.get("zeros"), dtype=dtype)


def _parse_steps(data: dict[Any, Any], conv: Any, buffer_names: set[str],
                 problems: Problems) -> list[StepSpec]:
    if "steps" not in data:
        problems.add(ROOT, "missing required key 'steps'",
                     "add steps: [{kernel: NAME, global: [N], args: {...}}]")
        return []
    raw = data["steps"]
    if not isinstance(raw, list) or not raw:
        got = "an empty list" if raw == [] else describe(raw)
        problems.add(("steps",), f"expected a list of steps, got {got}",
                     "a step is {kernel: NAME, global: [N], args: {...}}")
        return []
    steps: list[StepSpec] = []
    for i, item in enumerate(raw):
        path: tuple[PathPart, ...] = ("steps", i)
        found: list[Any] = []
        fields = structure_fields(conv, item, _StepDoc, path, found, renames=_RENAMES)
        problems.extend(found)
        if fields is None:
            continue
        before = len(problems.items)
        kernel = fields.get("kernel")
        if kernel is not None and not kernel.strip():
            problems.add(path + ("kernel",), "expected a kernel name, got ''")
        if item.get("global") is not None and item.get("grid") is not None:
            problems.add(path, "give either global (work items) or grid (workgroups), not both")
        elif item.get("global") is None and item.get("grid") is None:
            problems.add(path, "missing global or grid",
                         "global: [N] counts work items, grid: [N] counts workgroups")
        args = fields.get("args", {})
        for arg, value in args.items():
            _check_arg(arg, value, path + ("args", arg), buffer_names, problems)
        if not found and len(problems.items) == before and kernel is not None:
            steps.append(StepSpec(kernel=kernel, global_size=fields.get("global_size"),
                                  grid=fields.get("grid"), block=fields.get("block"),
                                  args=dict(args), path=f"$.steps[{i}]"))
    return steps


def _check_arg(name: str, value: object, path: tuple[PathPart, ...], buffer_names: set[str],
               problems: Problems) -> None:
    if not _NAME.fullmatch(name):
        problems.add(path, f"argument name {name!r} is not a parameter name", at_key=True)
    if isinstance(value, (bool, int, float)):
        return
    if not isinstance(value, str):
        problems.add(path, f"expected a number, true/false or a buffer name, "
                     f"got {describe(value)}")
        return
    if value in buffer_names:
        return
    names = ", ".join(sorted(buffer_names))
    hint = did_you_mean(value, buffer_names)
    try:
        float(value)
        spelled = _yaml_float(value)
        if spelled == value.strip():  # YAML reads it as a number unless it was quoted
            hint = f"YAML reads {value!r} as text; write the number without quotes"
        elif spelled is not None:
            hint = f"YAML reads {value} as text; write {spelled}"
    except ValueError:
        if buffer_names:
            hint = f"{hint} buffers: {names}" if hint else f"buffers: {names}"
        else:
            hint = "no buffers are declared; declare them under buffers:"
    problems.add(path, f"unknown buffer {value!r}", hint)


_NUMBER = re.compile(r"([+-]?)([0-9][0-9_]*)?(?:\.([0-9_]*))?(?:([eE])([+-]?)([0-9_]+))?")


def _yaml_float(text: str) -> str | None:
    """``text``, a number Python reads, spelled so that YAML 1.1 (PyYAML) reads the same float:
    a digit before the dot, a dot, a signed exponent (``1e-3``, ``1.5e3`` and ``-.5`` are text
    to it), ``.inf`` and ``.nan``; None when there is no such spelling."""
    t = text.strip()
    word = t.lower().lstrip("+-")
    if word in ("inf", "infinity", "nan"):
        spelled = ".nan" if word == "nan" else ("-" if t.startswith("-") else "") + ".inf"
    else:
        m = _NUMBER.fullmatch(t)
        if m is None or not (m.group(2) or m.group(3)):
            return None
        sign, whole, frac, e, esign, exp = m.groups()
        spelled = f"{sign}{whole or '0'}.{frac or '0'}"
        if exp is not None:
            spelled += f"{e}{esign or '+'}{exp.replace('_', '')}"
    read = yaml.safe_load(f"v: {spelled}")["v"]
    if not isinstance(read, float):
        return None
    return spelled if read == float(t) or (read != read and word == "nan") else None


def _parse_outputs(data: dict[Any, Any], buffers: dict[str, BufferSpec], base_dir: Path,
                   problems: Problems) -> dict[str, str]:
    raw = data.get("outputs")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(("outputs",), f"expected a mapping of buffer names to files, "
                     f"got {describe(raw)}")
        return {}
    declared = set(buffers) | _raw_buffer_names(data)
    outputs: dict[str, str] = {}
    written: dict[str, str] = {}
    for name, target in raw.items():
        path: tuple[PathPart, ...] = ("outputs", str(name))
        if not isinstance(name, str) or name not in declared:
            names = ", ".join(sorted(declared))
            hint = did_you_mean(name, declared) or (f"buffers: {names}" if declared
                                                    else "no buffers are declared")
            problems.add(path, f"unknown buffer {str(name)!r}", hint, at_key=True)
            continue
        if not isinstance(target, str) or not target.strip():
            problems.add(path, f"expected a file name, got {describe(target)}")
            continue
        if Path(target).suffix not in ARRAY_SUFFIXES:
            problems.add(path, f"cannot write {target!r}: expected a .npy or .png file")
            continue
        # Two spellings of one file (through a symbolic link, too) are one target.
        resolved = os.path.realpath(_resolve(base_dir, target))
        if resolved in written:
            problems.add(path, f"{target!r} is already written by buffer {written[resolved]!r}",
                         "write each buffer to its own file")
            continue
        written[resolved] = name
        outputs[name] = target
    return outputs


__all__ = ["ARRAY_SUFFIXES", "DTYPE_NAMES", "BufferSpec", "JobConfig", "StepSpec", "load_job",
           "parse_job"]
