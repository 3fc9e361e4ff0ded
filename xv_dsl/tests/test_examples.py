"""The conformance kernels of examples/kernels compile, verify and round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from xv_core import ir
from xv_dsl import compile_file

KERNELS = Path(__file__).resolve().parents[2] / "examples" / "kernels"
NAMES = ["saxpy", "gauss5", "matmul_tiled", "mandelbrot", "histogram", "block_sum"]


@pytest.mark.parametrize("name", NAMES)
def test_example_compiles_and_verifies(name: str, tmp_path: Path) -> None:
    module = compile_file(KERNELS / f"{name}.xvk")
    ir.verify_module(module)
    assert len(module.kernels) == 1
    # .xvir round trip: save, load (which verifies again), same module.
    target = tmp_path / f"{name}.xvir"
    ir.save(module, target)
    assert ir.load(target) == module


def test_saxpy_ir() -> None:
    module = compile_file(KERNELS / "saxpy.xvk")
    k = module.kernel("saxpy")
    assert k is not None
    assert [(p.name, str(p.type)) for p in k.params] == [
        ("a", "f32"), ("x", "buffer<f32>"), ("y", "buffer<f32>")]
    assert ir.module_text(module).splitlines()[2:] == [
        "kernel saxpy(f32 a, buffer<f32> x, buffer<f32> y) {",
        "  local i32 i",
        "  %i = special(global_id.x)  ; line 3",
        "  if lt:bool(%i, length(x)):  ; line 4",
        "    store y.0[%i] = add:f32(mul:f32(%a, load:f32 x.0[%i]), load:f32 y.0[%i])  ; line 5",
        "}",
    ]


def test_workgroups_and_shared() -> None:
    matmul = compile_file(KERNELS / "matmul_tiled.xvk").kernels[0]
    assert matmul.workgroup == (16, 16, 1)
    shared = {d.name: str(d.type) for d in matmul.decls if d.space == ir.SHARED}
    assert shared == {"ta": "f32[16][16]", "tb": "f32[16][16]"}
    gauss = compile_file(KERNELS / "gauss5.xvk").kernels[0]
    (w,) = [d for d in gauss.decls if d.space == ir.CONSTANT]
    assert w.init == (1.0, 4.0, 6.0, 4.0, 1.0)
    assert compile_file(KERNELS / "block_sum.xvk").kernels[0].workgroup == (256, 1, 1)
