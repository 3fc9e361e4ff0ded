"""Job files: what is accepted, and the exact one-line message for each mistake."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from xv_core.config import BufferSpec, JobConfig, StepSpec, load_job, parse_job
from xv_core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

# The job of ARCHITECTURE.md ("Job files"), word for word (two lines split at 100 columns).
ARCHITECTURE_JOB = (
    "kernels: saxpy.xvk                 # .xvk source or compiled .xvir, relative to the job file\n"
    "buffers:\n"
    "  x:   {load: x.npy}               # .npy (dtype and shape from the file) or .png\n"
    "  y:   {load: y.npy}\n"
    "  out: {zeros: [1024], dtype: f32}\n"
    "steps:                             # run in order; later steps see earlier results\n"
    "  - kernel: saxpy\n"
    "    global: [1024]                 # total work items, rounded up to whole workgroups; "
    "or grid: [...] in workgroups\n"
    "    block: [256]                   # workgroup size; may be left out when the kernel "
    "declares @workgroup\n"
    "    args: {a: 2.0, x: x, y: y}     # scalars inline, buffers by name\n"
    "outputs:\n"
    "  y: y_out.npy                     # .npy or .png, relative to the job file\n"
)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(folder: Path, text: str, name: str = "job.yaml") -> str:
    (folder / name).write_text(textwrap.dedent(text))
    return name


def error_of(path: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_job(path)
    return str(info.value)


# --------------------------------------------------------------------------
# Accepted
# --------------------------------------------------------------------------


def test_the_architecture_job_is_accepted_as_written(folder):
    job = load_job(write(folder, ARCHITECTURE_JOB))
    assert job == JobConfig(
        kernels=("saxpy.xvk",),
        buffers={"x": BufferSpec(load="x.npy"),
                 "y": BufferSpec(load="y.npy"),
                 "out": BufferSpec(zeros=(1024,), dtype="f32")},
        steps=(StepSpec(kernel="saxpy", global_size=(1024,), grid=None, block=(256,),
                        args={"a": 2.0, "x": "x", "y": "y"}, path="$.steps[0]"),),
        outputs={"y": "y_out.npy"},
        base_dir=folder,
        source="job.yaml",
    )
    assert list(job.buffers) == ["x", "y", "out"]  # the file's order
    assert job.resolve(job.kernels[0]) == folder / "saxpy.xvk"


def test_paths_are_relative_to_the_job_file_not_the_current_folder(folder):
    (folder / "jobs").mkdir()
    (folder / "elsewhere").mkdir()
    write(folder, "kernels: [../k/a.xvk, b.xvir]\nbuffers: {i: {load: img/in.png}}\n"
          "steps: [{kernel: a, grid: [2, 2]}]\noutputs: {i: out/i.png}\n", "jobs/job.yaml")
    os.chdir(folder / "elsewhere")
    job = load_job(folder / "jobs" / "job.yaml")
    assert job.base_dir == folder / "jobs"
    assert [job.resolve(k) for k in job.kernels] == [folder / "k" / "a.xvk",
                                                    folder / "jobs" / "b.xvir"]
    assert job.resolve(job.buffers["i"].load) == folder / "jobs" / "img" / "in.png"
    assert job.base_dir / job.outputs["i"] == folder / "jobs" / "out" / "i.png"
    assert job.resolve("/abs/x.npy") == Path("/abs/x.npy")


def test_grid_form_shorthands_and_several_steps(folder):
    job = load_job(write(folder, """\
        kernels: [blur.xvk]
        buffers:
          img: {zeros: [64, 32], dtype: vec4}
          n: {zeros: 8, dtype: i32}
        steps:
          - {kernel: clear, grid: [4, 2], args: {img: img, flag: true, k: 3}}
          - {kernel: blur, global: 2048}
        """))
    first, second = job.steps
    assert (first.grid, first.global_size, first.block) == ((4, 2), None, None)
    assert first.args == {"img": "img", "flag": True, "k": 3}
    assert (second.global_size, second.grid, second.args, second.path) == \
        ((2048,), None, {}, "$.steps[1]")
    assert job.buffers["n"].zeros == (8,)
    assert job.outputs == {}


def test_parse_job_takes_plain_data(folder):
    job = parse_job({"kernels": "k.xvk", "steps": [{"kernel": "k", "global": [1]}]}, "inline",
                    base_dir=folder / "sub")
    assert job.resolve(job.kernels[0]) == folder / "sub" / "k.xvk" and job.source == "inline"
    with pytest.raises(ConfigError) as info:
        parse_job({"kernels": "k.xvk", "steps": [{"kernel": "k"}]}, "inline")
    assert str(info.value) == ("inline: missing global or grid @ $.steps[0] (hint: global: [N] "
                               "counts work items, grid: [N] counts workgroups)")


def test_later_problems_are_reported_in_the_same_located_format(folder):
    job = load_job(write(folder, ARCHITECTURE_JOB))
    error = job.error([("$.steps[0].args.a", "parameter 'a' is f32, got buffer 'x'"),
                       ("$.steps[0].kernel", "unknown kernel 'saxpy'", "did you mean 'saxpi'?"),
                       ("$.nowhere[3]", "somewhere")])
    assert isinstance(error, ConfigError) and error.source == "job.yaml"
    assert str(error).splitlines() == [
        "job.yaml:1:1: somewhere @ $.nowhere[3]",
        "job.yaml:7:13: unknown kernel 'saxpy' @ $.steps[0].kernel (hint: did you mean 'saxpi'?)",
        "job.yaml:10:15: parameter 'a' is f32, got buffer 'x' @ $.steps[0].args.a",
    ]


def test_the_example_job_loads():
    job = load_job(ROOT / "examples" / "jobs" / "saxpy.yaml")
    assert job.resolve(job.kernels[0]) == ROOT / "examples" / "kernels" / "saxpy.xvk"
    assert job.steps[0].args == {"a": 2.0, "x": "x", "y": "y"}


# --------------------------------------------------------------------------
# Refused, one exact line each
# --------------------------------------------------------------------------

BAD_JOBS = [
    pytest.param(
        ("x:   {load: x.npy}", "x:   {load: x.npy, zeros: [4]}"),
        "job.yaml:3:8: a buffer is either loaded or zero-filled, not both @ $.buffers.x "
        "(hint: keep load: or zeros:)",
        id="load-and-zeros"),
    pytest.param(
        ("x:   {load: x.npy}", "x:   {dtype: f32}"),
        "job.yaml:3:8: a buffer needs load: FILE or zeros: SHAPE @ $.buffers.x "
        "(hint: like {load: x.npy} or {zeros: [1024], dtype: f32})",
        id="neither-load-nor-zeros"),
    pytest.param(
        ("{zeros: [1024], dtype: f32}", "{zeros: [1024]}"),
        "job.yaml:5:8: missing required key 'dtype' for a zero-filled buffer @ $.buffers.out "
        "(hint: one of bool, i32, u32, f32, f64, vec4)",
        id="zeros-without-dtype"),
    pytest.param(
        ("{load: y.npy}", "{load: y.npy, dtype: f64}"),
        "job.yaml:4:29: a loaded buffer takes its dtype from the file @ $.buffers.y.dtype "
        "(hint: remove dtype, or convert the file)",
        id="dtype-with-load"),
    pytest.param(
        ("dtype: f32", "dtype: float32"),
        "job.yaml:5:31: unknown dtype 'float32' (known: bool, i32, u32, f32, f64, vec4) @ "
        "$.buffers.out.dtype (hint: write f32)",
        id="numpy-dtype-name"),
    pytest.param(
        ("dtype: f32", "dtype: F32"),
        "job.yaml:5:31: unknown dtype 'F32' (known: bool, i32, u32, f32, f64, vec4) @ "
        "$.buffers.out.dtype (hint: did you mean 'f32'?)",
        id="numpy-dtype-name-case"),
    pytest.param(
        ("{load: x.npy}", "{load: x.csv}"),
        "job.yaml:3:15: cannot load 'x.csv': expected a .npy or .png file @ $.buffers.x.load "
        "(hint: save arrays with numpy.save)",
        id="load-suffix"),
    pytest.param(
        ("zeros: [1024]", "zeros: [1024, 0]"),
        "job.yaml:5:16: every dimension must be a positive integer, got 0 (an integer) @ "
        "$.buffers.out.zeros",
        id="zero-dimension"),
    pytest.param(
        ("global: [1024]", "global: [1024]\n    grid: [4]"),
        "job.yaml:7:5: give either global (work items) or grid (workgroups), not both @ "
        "$.steps[0]",
        id="global-and-grid"),
    pytest.param(
        ("    global: [1024]", "    #"),
        "job.yaml:7:5: missing global or grid @ $.steps[0] (hint: global: [N] counts work "
        "items, grid: [N] counts workgroups)",
        id="neither-global-nor-grid"),
    pytest.param(
        ("block: [256]", "block: [16, 16, 2, 2]"),
        "job.yaml:9:12: expected 1 to 3 dimensions, got 4 @ $.steps[0].block",
        id="four-dimensions"),
    pytest.param(
        ("block: [256]", "block: [-256]"),
        "job.yaml:9:12: every dimension must be a positive integer, got -256 (an integer) @ "
        "$.steps[0].block",
        id="negative-block"),
    pytest.param(
        ("global: [1024]", "global: [1024.0]"),
        "job.yaml:8:13: every dimension must be a positive integer, got 1024.0 (a number) @ "
        "$.steps[0].global",
        id="float-global"),
    pytest.param(
        ("x: x, y: y}", "x: xs, y: y}"),
        "job.yaml:10:23: unknown buffer 'xs' @ $.steps[0].args.x "
        "(hint: did you mean 'x'? buffers: out, x, y)",
        id="arg-names-no-buffer"),
    pytest.param(
        ("x: x, y: y}", "x: x, y: q}"),
        "job.yaml:10:29: unknown buffer 'q' @ $.steps[0].args.y (hint: buffers: out, x, y)",
        id="arg-names-no-buffer-far"),
    pytest.param(
        ("a: 2.0", "a: 2e-3"),
        "job.yaml:10:15: unknown buffer '2e-3' @ $.steps[0].args.a "
        "(hint: YAML reads 2e-3 as text; write 2.0e-3)",
        id="yaml-1.1-float"),
    pytest.param(
        ("a: 2.0", "a: 1.5e3"),
        "job.yaml:10:15: unknown buffer '1.5e3' @ $.steps[0].args.a "
        "(hint: YAML reads 1.5e3 as text; write 1.5e+3)",
        id="yaml-1.1-float-exponent-sign"),
    pytest.param(
        ("a: 2.0", "a: 1e3"),
        "job.yaml:10:15: unknown buffer '1e3' @ $.steps[0].args.a "
        "(hint: YAML reads 1e3 as text; write 1.0e+3)",
        id="yaml-1.1-float-dot-and-sign"),
    pytest.param(
        ("a: 2.0", "a: -.5e3"),
        "job.yaml:10:15: unknown buffer '-.5e3' @ $.steps[0].args.a "
        "(hint: YAML reads -.5e3 as text; write -0.5e+3)",
        id="yaml-1.1-float-digit-before-the-dot"),
    pytest.param(
        ("a: 2.0", "a: inf"),
        "job.yaml:10:15: unknown buffer 'inf' @ $.steps[0].args.a "
        "(hint: YAML reads inf as text; write .inf)",
        id="yaml-1.1-float-inf"),
    pytest.param(
        ("a: 2.0", "a: [2.0]"),
        "job.yaml:10:15: expected a number, true/false or a buffer name, got a list @ "
        "$.steps[0].args.a",
        id="arg-list"),
    pytest.param(
        ("kernel: saxpy", "kernel: ''"),
        "job.yaml:7:13: expected a kernel name, got '' @ $.steps[0].kernel",
        id="empty-kernel"),
    pytest.param(
        ("block: [256]", "blocks: [256]"),
        "job.yaml:9:5: unknown key 'blocks' @ $.steps[0].blocks (hint: did you mean 'block'?)",
        id="unknown-step-key"),
    pytest.param(
        ("  y: y_out.npy", "  z: z_out.npy"),
        "job.yaml:12:3: unknown buffer 'z' @ $.outputs.z (hint: buffers: out, x, y)",
        id="output-unknown-buffer"),
    pytest.param(
        ("y: y_out.npy", "y: y_out.txt"),
        "job.yaml:12:6: cannot write 'y_out.txt': expected a .npy or .png file @ $.outputs.y",
        id="output-suffix"),
    pytest.param(
        ("y: y_out.npy", "y: y_out.npy\n  x: ./y_out.npy"),
        "job.yaml:13:6: './y_out.npy' is already written by buffer 'y' @ $.outputs.x "
        "(hint: write each buffer to its own file)",
        id="two-outputs-one-file"),
    pytest.param(
        ("kernels: saxpy.xvk", "kernel: saxpy.xvk"),
        "job.yaml:1:1: unknown key 'kernel' @ $.kernel (hint: did you mean 'kernels'?)\n"
        "job.yaml:1:1: missing required key 'kernels' @ $ "
        "(hint: name the kernel file, like kernels: saxpy.xvk)",
        id="misspelt-kernels"),
    pytest.param(
        ("kernels: saxpy.xvk", "kernels: []"),
        "job.yaml:1:10: expected a kernel file or a list of them, got an empty list @ $.kernels",
        id="no-kernels"),
    pytest.param(
        ("kernels: saxpy.xvk", "kernels: [saxpy.xvk, saxpy.xvk]"),
        "job.yaml:1:22: kernel file 'saxpy.xvk' is listed twice @ $.kernels[1]",
        id="kernel-twice"),
    pytest.param(
        ("  out: {zeros", "  2out: {zeros"),
        "job.yaml:5:3: buffer name '2out' must start with a letter or _ and hold only letters, "
        "digits and _ @ $.buffers['2out']",
        id="buffer-name"),
    pytest.param(
        ("  y:   {load: y.npy}", "  y:   {load: y.npy}\n  x:   {load: x2.npy}"),
        "job.yaml:5:3: duplicate key 'x' @ $.buffers.x "
        "(hint: it is also at line 3; YAML keeps only the last)",
        id="buffer-declared-twice"),
]


@pytest.mark.parametrize("edit, message", BAD_JOBS)
def test_bad_jobs_give_one_exact_line_per_problem(folder, edit, message):
    text = ARCHITECTURE_JOB.replace(*edit)
    assert text != ARCHITECTURE_JOB
    assert error_of(write(folder, text)) == message


def test_two_outputs_onto_one_file_through_a_link_are_refused(folder):
    (folder / "out").mkdir()
    (folder / "outlink").symlink_to("out")
    text = ARCHITECTURE_JOB.replace("y: y_out.npy", "y: out/a.npy\n  x: outlink/a.npy")
    assert error_of(write(folder, text)) == (
        "job.yaml:13:6: 'outlink/a.npy' is already written by buffer 'y' @ $.outputs.x "
        "(hint: write each buffer to its own file)")


def test_every_problem_is_reported_at_once_in_file_order(folder):
    message = error_of(write(folder, """\
        kernels: saxpy.xvk
        buffers:
          x: {load: x.csv, dtype: f32}
          y: {zeros: [10, 0], dtype: float32}
        steps:
          - kernel: saxpy
            global: [1000]
            grid: [4]
            args: {a: 1e-3, x: q}
          - {kernel: saxpy, glob: 3}
        outputs:
          nope: a.npy
        extra: 1
        """))
    assert message.splitlines() == [
        "job.yaml:3:13: cannot load 'x.csv': expected a .npy or .png file @ $.buffers.x.load "
        "(hint: save arrays with numpy.save)",
        "job.yaml:3:27: a loaded buffer takes its dtype from the file @ $.buffers.x.dtype "
        "(hint: remove dtype, or convert the file)",
        "job.yaml:4:14: every dimension must be a positive integer, got 0 (an integer) @ "
        "$.buffers.y.zeros",
        "job.yaml:4:30: unknown dtype 'float32' (known: bool, i32, u32, f32, f64, vec4) @ "
        "$.buffers.y.dtype (hint: write f32)",
        "job.yaml:6:5: give either global (work items) or grid (workgroups), not both @ "
        "$.steps[0]",
        "job.yaml:9:15: unknown buffer '1e-3' @ $.steps[0].args.a "
        "(hint: YAML reads 1e-3 as text; write 1.0e-3)",
        "job.yaml:9:24: unknown buffer 'q' @ $.steps[0].args.x (hint: buffers: x, y)",
        "job.yaml:10:5: missing global or grid @ $.steps[1] "
        "(hint: global: [N] counts work items, grid: [N] counts workgroups)",
        "job.yaml:10:21: unknown key 'glob' @ $.steps[1].glob (hint: did you mean 'global'?)",
        "job.yaml:12:3: unknown buffer 'nope' @ $.outputs.nope (hint: buffers: x, y)",
        "job.yaml:13:1: unknown key 'extra' @ $.extra "
        "(hint: known keys: kernels, buffers, steps, outputs)",
    ]


@pytest.mark.parametrize("text, message", [
    pytest.param("", "job.yaml: expected a mapping with keys kernels, buffers, steps, outputs; "
                 "the job is empty @ $", id="empty"),
    pytest.param("kernels: k.xvk\nsteps: []\n",
                 "job.yaml:2:8: expected a list of steps, got an empty list @ $.steps "
                 "(hint: a step is {kernel: NAME, global: [N], args: {...}})", id="no-steps"),
    pytest.param("kernels: k.xvk\nsteps: [{global: [1]}]\n",
                 "job.yaml:2:9: missing required key 'kernel' @ $.steps[0]", id="no-kernel-key"),
    pytest.param("kernels: k.xvk\nsteps: [{kernel: k, global: [1]}]\nargs: {a: 1}\n",
                 "job.yaml:3:1: unknown key 'args' @ $.args "
                 "(hint: known keys: kernels, buffers, steps, outputs)", id="args-at-top"),
    pytest.param("kernels: k.xvk\nbuffers: [x]\nsteps: [{kernel: k, global: [1]}]\n",
                 "job.yaml:2:10: expected a mapping of buffer names to buffers, got a list @ "
                 "$.buffers", id="buffers-not-a-mapping"),
])
def test_badly_shaped_jobs(folder, text, message):
    assert error_of(write(folder, text)) == message


def test_a_missing_job_file(folder):
    assert error_of("nope.yaml") == "nope.yaml: no such job file"


def test_a_yaml_syntax_error_is_located(folder):
    assert error_of(write(folder, "kernels: k.xvk\nsteps:\n  - kernel: k\n global: [1]\n")) == (
        "job.yaml:4:2: invalid YAML: expected <block end>, but found '<block mapping start>' "
        "(hint: while parsing a block mapping at line 1)")


def test_the_docs_name_every_dtype_and_key():
    from xv_core.config.job import DTYPE_NAMES

    docs = (ROOT / "docs" / "jobs.md").read_text()
    assert f"`{' '.join(DTYPE_NAMES)}`" in docs
    for key in ("kernels", "buffers", "steps", "outputs", "load", "zeros", "dtype", "kernel",
                "global", "grid", "block", "args"):
        assert f"| `{key}` |" in docs or f"{{{key}: " in docs or f", {key}: " in docs, key
