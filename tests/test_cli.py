"""The ``xv`` command line, through Typer's runner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from xv_core.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
runner = CliRunner()


def xv(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env)


@pytest.fixture
def job_dir(tmp_path):
    """A copy of the saxpy job and its data in a temporary folder."""
    shutil.copytree(EXAMPLES / "jobs" / "data", tmp_path / "data")
    shutil.copy(EXAMPLES / "kernels" / "saxpy.xvk", tmp_path / "saxpy.xvk")
    return tmp_path


def write_job(folder: Path, text: str) -> Path:
    path = folder / "job.yaml"
    path.write_text(text)
    return path


def _refuses_huge_maps() -> bool:
    try:  # the kernel's heuristic overcommit refuses a 4 TiB mapping on a machine this size
        return Path("/proc/sys/vm/overcommit_memory").read_text().strip() == "0"
    except OSError:
        return False


_REFUSES_HUGE_MAPS = _refuses_huge_maps()

SAXPY_JOB = """\
kernels: saxpy.xvk
buffers:
  x: {load: data/saxpy_x.npy}
  y: {load: data/saxpy_y.npy}
steps:
  - kernel: saxpy
    global: [1000]
    block: [256]
    args: {a: 2.0, x: x, y: y}
outputs:
  y: out/y.npy
"""


def test_plugins_list_names_distributions_versions_and_kinds():
    result = xv("plugins", "list")
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if ln.startswith("xenovectra-cpu"))
    assert "0.1.0" in line and "component kind: cpu" in line
    assert "backend: interp, jit, jit-unchecked (no bounds checks)" in line
    data = json.loads(xv("plugins", "list", "--json").output)
    assert data["failed"] == []
    checks = {b["name"]: b["checks_bounds"] for b in data["backends"] if b["plugin"] == "xv_cpu"}
    assert checks == {"interp": True, "jit": True, "jit-unchecked": False}
    assert {p["distribution"] for p in data["plugins"]} >= {
        "xenovectra", "xenovectra-dsl", "xenovectra-buffer", "xenovectra-cpu"}


def test_validate_and_describe_the_builtin_and_the_example_fabric():
    result = xv("fabric", "validate", "default")
    assert result.exit_code == 0 and "fabric 'default' is valid" in result.output
    path = str(EXAMPLES / "fabrics" / "workstation.yaml")
    result = xv("fabric", "validate", path)
    assert result.output.strip() == "fabric 'workstation' is valid: 2 components, 2 links"
    result = xv("fabric", "describe", path)
    assert result.exit_code == 0, result.output
    assert "256MiB in 64KiB pages, eviction lru" in result.output
    assert "pcie0" in result.output and "host <-> alu" in result.output
    data = json.loads(xv("fabric", "describe", path, "--json").output)
    assert [c["kind"] for c in data["components"]] == ["cpu", "hdd"]
    assert data["components"][0]["threads"] == 2


def test_run_writes_saxpy_matching_numpy(job_dir):
    job = write_job(job_dir, SAXPY_JOB)
    result = xv("fabric", "run", "default", str(job))
    assert result.exit_code == 0, result.output
    assert "step 0  saxpy" in result.output and "wall time" in result.output
    x = np.load(job_dir / "data" / "saxpy_x.npy")
    y = np.load(job_dir / "data" / "saxpy_y.npy")
    assert np.array_equal(np.load(job_dir / "out" / "y.npy"), np.float32(2.0) * x + y)


def test_run_json_summary(job_dir):
    job = write_job(job_dir, SAXPY_JOB)
    result = xv("fabric", "run", "default", str(job), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["fabric"] == "default"
    assert [s["kernel"] for s in data["steps"]] == ["saxpy"]
    assert data["steps"][0]["grid"] == [4, 1, 1]
    assert data["wall_s"] > 0


def test_the_example_job_runs_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = EXAMPLES / "jobs" / "out" / "saxpy_y.npy"
    result = xv("fabric", "run", "default", str(EXAMPLES / "jobs" / "saxpy.yaml"))
    assert result.exit_code == 0, result.output
    x = np.load(EXAMPLES / "jobs" / "data" / "saxpy_x.npy")
    y = np.load(EXAMPLES / "jobs" / "data" / "saxpy_y.npy")
    assert np.array_equal(np.load(out), np.float32(2.0) * x + y)


@pytest.mark.parametrize(
    "edit, message",
    [
        (("kernel: saxpy", "kernel: saxpi"),
         "6:13: unknown kernel 'saxpi' (defined: saxpy) @ $.steps[0].kernel (hint: did you mean 'saxpy'?)"),
        (("args: {a: 2.0, x: x, y: y}", "args: {x: x, y: y}"),
         "9:11: missing argument 'a' for kernel saxpy(f32 a, buffer<f32> x, buffer<f32> y) @ $.steps[0].args"),
        (("args: {a: 2.0, x: x, y: y}", "args: {a: x, x: x, y: y}"),
         "9:15: parameter 'a' is f32, got buffer 'x' @ $.steps[0].args.a"),
        (("args: {a: 2.0, x: x, y: y}", "args: {a: 2.0, x: 1.5, y: y}"),
         "9:23: parameter 'x' is buffer<f32>, got the scalar 1.5 @ $.steps[0].args.x "
         "(hint: pass the name of a buffer)"),
        (("args: {a: 2.0, x: x, y: y}", "args: {a: 2.0, x: x, y: y, z: 1}"),
         "9:35: kernel saxpy(f32 a, buffer<f32> x, buffer<f32> y) has no parameter 'z' @ $.steps[0].args.z"),
        (("y: {load: data/saxpy_y.npy}", "y: {zeros: [10, 10], dtype: f32}"),
         "9:29: buffer 'y' does not fit parameter 'y': buffer<f32> needs a 1-D array, got f32 array of "
         "shape [10, 10] @ $.steps[0].args.y"),
        (("y: {load: data/saxpy_y.npy}", "y: {zeros: [1000], dtype: i32}"),
         "9:29: buffer 'y' does not fit parameter 'y': buffer<f32> needs f32 elements, got i32 array of "
         "shape [1000] @ $.steps[0].args.y"),
        (("block: [256]", "block: [2048]"),
         "6:5: a workgroup of 2048 work items is more than 1024 @ $.steps[0]"),
        (("kernels: saxpy.xvk", "kernels: nothere.xvk"),
         "1:10: kernel file 'nothere.xvk' does not exist @ $.kernels"),
        # A failed load is reported once, at the buffer (not again as a scalar argument).
        (("x: {load: data/saxpy_x.npy}", "x: {load: data/missing.npy}"),
         "3:13: cannot read .npy file: No such file or directory @ $.buffers.x.load"),
        # Outputs are checked before anything runs.
        (("y: out/y.npy", "y: out/y.png"),
         "11:6: an array of shape [1000] cannot be written as PNG @ $.outputs.y (hint: PNG "
         "outputs need shape (height, width) or (height, width, 4))"),
        (("y: out/y.npy", "y: data/saxpy_x.npy/y.npy"),
         "11:6: cannot write {dir}/data/saxpy_x.npy/y.npy: {dir}/data/saxpy_x.npy is a file, "
         "not a folder @ $.outputs.y"),
        (("y: out/y.npy", "y: saxpy.xvk/y.npy"),
         "11:6: cannot write {dir}/saxpy.xvk/y.npy: {dir}/saxpy.xvk is a file, not a folder "
         "@ $.outputs.y"),
        # A folder nobody can make files in, whatever its permissions say (root may write
        # anywhere by them): found before the run, not when writing at its end.
        pytest.param(
            ("y: out/y.npy", "y: /proc/xv_out.npy"),
            "11:6: cannot write /proc/xv_out.npy: no file can be made in /proc (No such file or "
            "directory) @ $.outputs.y",
            marks=pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")),
        # Numbers too large for what they give.
        (("global: [1000]", "global: [4294967296]"),
         "6:5: more than 2147483648 work items along x: global_id.x is an i32, so at most "
         "2147483648 are numbered @ $.steps[0] (hint: split the work into several dispatches)"),
        (("args: {a: 2.0, x: x, y: y}", "args: {a: 1" + "0" * 400 + ", x: x, y: y}"),
         "9:15: parameter 'a' is f32, got 1" + "0" * 400 + ", too large for a floating-point "
         "number @ $.steps[0].args.a"),
        (("args: {a: 2.0, x: x, y: y}", "args: {a: 1.0e+300, x: x, y: y}"),
         "9:15: parameter 'a' is f32, got 1e+300, outside the f32 range (at most "
         "3.40282347e+38 either way) @ $.steps[0].args.a"),
        (("kernels: saxpy.xvk", "kernels: data"),
         "1:10: kernel file 'data' is a folder @ $.kernels"),
        # A buffer the host cannot map: said where the job declares it, nothing written.
        pytest.param(
            ("y: {load: data/saxpy_y.npy}", "y: {zeros: [1099511627776], dtype: f32}"),
            "4:6: the host has no memory left for 4TiB @ $.buffers.y (hint: make the buffer "
            "smaller: its array is mapped in this machine's memory)",
            marks=pytest.mark.skipif(not _REFUSES_HUGE_MAPS, reason="this kernel maps any size "
                                     "(vm.overcommit_memory is not 0)")),
    ],
)
def test_bad_jobs_give_one_located_line_and_write_nothing(job_dir, edit, message):
    message = message.replace("{dir}", str(job_dir))
    job = write_job(job_dir, SAXPY_JOB.replace(*edit))
    result = xv("fabric", "run", "default", str(job))
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {job}:{message}"
    assert "Traceback" not in result.output
    assert not (job_dir / "out").exists()


@pytest.mark.parametrize("shape", [(), (2, 2, 2, 2)])
def test_an_array_no_kernel_could_take_is_refused_at_its_load(job_dir, shape):
    # A 0-D or 4-D .npy: refused where the job loads it (not as an argument: no parameter
    # of any kernel takes it), whether or not a step uses it, before anything runs.
    np.save(job_dir / "data" / "odd.npy", np.zeros(shape, np.float32))
    job = write_job(job_dir, SAXPY_JOB.replace("  y: {load: data/saxpy_y.npy}",
                                               "  y: {load: data/saxpy_y.npy}\n"
                                               "  z: {load: data/odd.npy}"))
    result = xv("fabric", "run", "default", str(job))
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: {job}:5:13: data/odd.npy: a buffer has 1 to 3 dimensions, got {len(shape)} "
        f"(shape {list(shape)}) @ $.buffers.z.load (hint: buffer<T> takes a 1-D array, "
        "buffer<vec4> an array of shape (n, 4), image<T> a 2-D array (height, width), "
        "image<vec4> an array of shape (height, width, 4))")
    assert not (job_dir / "out").exists()


def test_a_kernel_file_no_front_end_compiles_is_located_in_the_job(job_dir):
    (job_dir / "saxpy.cl").write_text((job_dir / "saxpy.xvk").read_text())
    job = write_job(job_dir, SAXPY_JOB.replace("kernels: saxpy.xvk", "kernels: saxpy.cl"))
    result = xv("fabric", "run", "default", str(job))
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: {job}:1:10: no installed front end compiles .cl (known: .xvk, .xvir) "
        f"@ $.kernels (hint: install xenovectra-dsl for .xvk kernels)")


def test_an_output_onto_a_folder_or_a_page_trace_onto_one_stops_before_running(job_dir):
    (job_dir / "taken.npy").mkdir()
    job = write_job(job_dir, SAXPY_JOB.replace("y: out/y.npy", "x: out/x.npy\n  y: taken.npy"))
    result = xv("fabric", "run", "default", str(job))
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: {job}:12:6: cannot write {job_dir}/taken.npy: it is a directory @ $.outputs.y "
        f"(hint: give the path of a file, not of a folder)")
    assert not (job_dir / "out").exists()  # x is not written either
    job = write_job(job_dir, SAXPY_JOB)
    result = xv("fabric", "run", "default", str(job), "--record-pages", str(job_dir / "data"))
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: --record-pages: cannot write {job_dir}/data: it is a directory (hint: give "
        f"the path of a file, not of a folder)")
    assert not (job_dir / "out").exists() and not (job_dir / "data.tmp").exists()


def test_a_kernel_syntax_error_points_at_the_source(job_dir):
    (job_dir / "saxpy.xvk").write_text("kernel saxpy(f32 a) {\n    i32 i = global_id.x\n}\n")
    job = write_job(job_dir, SAXPY_JOB)
    result = xv("fabric", "run", "default", str(job))
    assert result.exit_code == 1
    assert f"{job_dir / 'saxpy.xvk'}:" in result.output
    assert "^" in result.output and "Traceback" not in result.output


def test_a_bad_fabric_is_one_line_with_its_path(tmp_path):
    fabric = tmp_path / "f.yaml"
    fabric.write_text("name: f\ncomponents:\n  - {name: a, kind: cpus}\n")
    result = xv("fabric", "validate", str(fabric))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {fabric}")
    assert "unknown component kind 'cpus'" in lines[0] and "$.components[0].kind" in lines[0]


def test_an_unknown_backend_in_a_fabric_is_found_by_validate_with_its_path(tmp_path):
    fabric = tmp_path / "f.yaml"
    fabric.write_text("name: f\ncomponents:\n  - {name: a, kind: cpu, backend: jti}\n")
    for command in (("fabric", "validate", str(fabric)),
                    ("fabric", "run", str(fabric), str(tmp_path / "job.yaml"))):
        result = xv(*command)
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {fabric}:3:"), lines
        assert "unknown backend 'jti' (installed: interp, jit, jit-unchecked)" in lines[0]
        assert "$.components[0].backend" in lines[0] and "did you mean 'jit'?" in lines[0]


def test_xv_debug_lets_the_traceback_through(tmp_path):
    fabric = tmp_path / "f.yaml"
    fabric.write_text("name: f\ncomponents:\n  - {name: a, kind: cpus}\n")
    result = xv("fabric", "validate", str(fabric), env={"XV_DEBUG": "1"})
    assert result.exit_code != 0
    assert result.exception is not None and type(result.exception).__name__ == "ConfigError"


_FLAKY_PLUGIN = """\
from xv_core import hookimpl
from xv_core.registry import SchedulerSpec


class Flaky:
    def choose(self, tile, candidates):
        raise ValueError(f"no lanes left for {len(candidates)} candidate(s)")


@hookimpl
def xv_schedulers():
    return [SchedulerSpec("flaky", Flaky, "fails")]
"""


@pytest.fixture
def flaky_plugin(tmp_path, monkeypatch):
    """An installed plugin (a module on disk, found through an entry point) whose scheduling
    policy raises."""
    import importlib.metadata

    from xv_core import plugins

    (tmp_path / "flaky_sched_xv.py").write_text(_FLAKY_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    installed = plugins._entry_points()
    ep = importlib.metadata.EntryPoint(name="flaky", value="flaky_sched_xv", group="xenovectra")
    monkeypatch.setattr(plugins, "_entry_points",
                        lambda: sorted([*installed, ep], key=lambda e: e.name))
    return tmp_path / "flaky_sched_xv.py"


def test_a_plugin_s_bug_is_blamed_on_the_plugin_with_its_line(job_dir, flaky_plugin):
    job = write_job(job_dir, SAXPY_JOB)
    fabric = job_dir / "fabric.yaml"
    fabric.write_text("name: f\nscheduler: flaky\ncomponents:\n  - {name: a, kind: cpu}\n")
    result = xv("fabric", "run", str(fabric), str(job))
    assert result.exit_code == 2
    line = 7  # the raise in _FLAKY_PLUGIN
    assert result.stderr == (
        f"error: plugin 'flaky' failed: ValueError: no lanes left for 1 candidate(s), at "
        f"{flaky_plugin}:{line} in choose; raised by scheduling policy 'flaky' choosing a "
        f"component for tile 0 "
        f"(hint: this is a bug in that plugin, not in your fabric or job: report it to its "
        f"authors; XV_DEBUG=1 shows the traceback)\n")
    assert not (job_dir / "out").exists()  # nothing half-written
    debug = xv("fabric", "run", str(fabric), str(job), env={"XV_DEBUG": "1"})
    assert isinstance(debug.exception, ValueError)


def test_an_installed_plugin_is_named_with_its_distribution():
    import importlib.metadata

    from xv_core.cli.errors import unexpected_message

    scope = {"__name__": "xv_cpu.somewhere"}  # code of the installed xenovectra-cpu
    exec(compile("def run():\n    raise OSError('disk gone')\n", "/x/xv_cpu/somewhere.py",
                 "exec"), scope)
    with pytest.raises(OSError) as err:
        scope["run"]()
    version = importlib.metadata.version("xenovectra-cpu")
    assert unexpected_message(err.value) == (
        f"error: plugin 'xv_cpu' (xenovectra-cpu {version}) failed: OSError: disk gone, at "
        f"/x/xv_cpu/somewhere.py:2 in run (hint: this is a bug in that plugin, not in your "
        f"fabric or job: report it to its authors; XV_DEBUG=1 shows the traceback)")


def test_a_bug_in_the_core_is_still_called_one(job_dir, monkeypatch):
    from xv_core.runtime import model

    def broken(self, placed, works, walls):
        raise KeyError("lost")

    monkeypatch.setattr(model.FabricModel, "finish", broken)
    result = xv("fabric", "run", "default", str(write_job(job_dir, SAXPY_JOB)))
    assert result.exit_code == 2
    assert result.stderr.startswith("internal error: KeyError: 'lost' (this is a bug in "
                                    "Xenovectra; run with XV_DEBUG=1")


def test_unknown_builtin_fabric_lists_the_builtins():
    result = xv("fabric", "describe", "nonesuch")
    assert result.exit_code == 1
    assert "nonesuch" in result.output and "default" in result.output


def test_json_logs_on_request(job_dir):
    job = write_job(job_dir, SAXPY_JOB)
    result = runner.invoke(app, ["--log-format", "json", "--log-level", "debug", "fabric", "run",
                                 "default", str(job)])
    assert result.exit_code == 0, result.output
    events = [json.loads(ln) for ln in result.output.splitlines() if ln.startswith("{")]
    assert any(e.get("event") == "dispatch" and e.get("kernel") == "saxpy" for e in events)
