"""The vgpucc command line, driven through Typer's test runner."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xv_core import ir
from xv_core.errors import SourceError
from xv_dsl import compile_file, vgpucc

KERNELS = Path(__file__).resolve().parents[2] / "examples" / "kernels"
runner = CliRunner()


def test_writes_the_named_output(tmp_path: Path) -> None:
    out = tmp_path / "saxpy.xvir"
    result = runner.invoke(vgpucc.app, [str(KERNELS / "saxpy.xvk"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {out} (1 kernel: saxpy)\n"
    assert ir.load(out) == compile_file(KERNELS / "saxpy.xvk")


def test_the_output_gets_the_mode_a_new_file_or_the_replaced_one_has(tmp_path: Path) -> None:
    import os
    import stat

    out = tmp_path / "saxpy.xvir"
    umask = os.umask(0o027)
    try:
        assert runner.invoke(vgpucc.app, [str(KERNELS / "saxpy.xvk"), "-o", str(out)]
                             ).exit_code == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o640  # not mkstemp's private 0o600
        out.chmod(0o604)
        assert runner.invoke(vgpucc.app, [str(KERNELS / "saxpy.xvk"), "-o", str(out)]
                             ).exit_code == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o604
    finally:
        os.umask(umask)


def test_a_device_or_a_pipe_is_never_replaced(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "p.xvir"
    os.mkfifo(fifo)
    result = runner.invoke(vgpucc.app, [str(KERNELS / "saxpy.xvk"), "-o", str(fifo)])
    assert result.exit_code == 1
    assert result.stderr == (f"{fifo}: cannot write {fifo}: it is not a regular file (a device, "
                             f"a pipe or a socket), which is never replaced\n")
    assert fifo.is_fifo() and sorted(p.name for p in tmp_path.iterdir()) == ["p.xvir"]


def test_a_source_that_is_a_pipe_or_too_large_is_refused_without_reading_it_all(
        tmp_path: Path) -> None:
    import os

    from xv_dsl.parser import MAX_SOURCE_CHARS

    fifo = tmp_path / "pipe.xvk"
    os.mkfifo(fifo)  # reading it would block until someone writes
    result = runner.invoke(vgpucc.app, [str(fifo)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{fifo}:1:1: cannot read the file: not a regular file")
    big = tmp_path / "big.xvk"
    big.write_bytes(b" " * (4 * MAX_SOURCE_CHARS + 10))
    result = runner.invoke(vgpucc.app, [str(big)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{big}:1:1: source is larger than {MAX_SOURCE_CHARS} "
                                    f"characters")


def test_default_output_is_next_to_the_source(tmp_path: Path) -> None:
    src = tmp_path / "gauss5.xvk"
    shutil.copy(KERNELS / "gauss5.xvk", src)
    result = runner.invoke(vgpucc.app, [str(src)])
    assert result.exit_code == 0, result.output
    module = ir.load(tmp_path / "gauss5.xvir")
    assert module.kernels[0].name == "gauss5" and module.kernels[0].workgroup == (16, 16, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gauss5.xvir", "gauss5.xvk"]


def test_emit_ir_prints_the_text_form(tmp_path: Path) -> None:
    result = runner.invoke(vgpucc.app, [str(KERNELS / "saxpy.xvk"), "--emit", "ir"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ir.module_text(compile_file(KERNELS / "saxpy.xvk"))
    assert "kernel saxpy(f32 a, buffer<f32> x, buffer<f32> y) {" in result.stdout
    assert not list(KERNELS.glob("*.xvir"))  # --emit ir writes nothing


def test_source_errors_print_diagnostics_and_exit_1(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XV_DEBUG", raising=False)
    src = tmp_path / "bad.xvk"
    src.write_text("kernel k(buffer<f32> x) {\n    x[0] = x.length;\n    x[1] = y;\n}\n")
    result = runner.invoke(vgpucc.app, [str(src)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"{src}:2:12: cannot assign to 'x[0]': mixing integers and floats needs an explicit cast"
        " (i32 to f32)\n"
        "        x[0] = x.length;\n"
        "               ^^^^^^^^\n"
        "    hint: write f32(x.length)\n"
        f"{src}:3:12: unknown name 'y'\n"
        "        x[1] = y;\n"
        "               ^\n")
    assert "Traceback" not in result.output
    assert not (tmp_path / "bad.xvir").exists()


def test_missing_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XV_DEBUG", raising=False)
    result = runner.invoke(vgpucc.app, [str(tmp_path / "nope.xvk")])
    assert result.exit_code == 1
    assert result.stderr == f"{tmp_path / 'nope.xvk'}:1:1: cannot read the file: No such file or " \
                            "directory\n"


def test_debug_shows_the_exception(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XV_DEBUG", "1")
    src = tmp_path / "bad.xvk"
    src.write_text("kernel k() { i32 x = ; }")
    result = runner.invoke(vgpucc.app, [str(src)])
    assert result.exit_code != 0
    assert isinstance(result.exception, SourceError)


def test_internal_errors_say_so_in_one_line(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XV_DEBUG", raising=False)

    def broken(path: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("xv_dsl.compile_file", broken)
    result = runner.invoke(vgpucc.app, [str(KERNELS / "saxpy.xvk")])
    assert result.exit_code == 2
    assert result.stderr.startswith("internal error: RuntimeError: boom (this is a bug in vgpucc")
