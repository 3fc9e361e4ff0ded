"""The Python runtime API, end to end on the default fabric."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import xv_core as xv
from xv_core.errors import JobError, XvError

ROOT = Path(__file__).resolve().parents[1]
SAXPY = ROOT / "examples" / "kernels" / "saxpy.xvk"


@pytest.fixture(scope="module")
def fabric():
    with xv.open_fabric("default") as fab:
        yield fab


def test_saxpy_in_a_few_lines_matches_numpy(fabric):
    rng = np.random.default_rng(1)
    n = 1000  # not a multiple of the workgroup size
    x0 = rng.standard_normal(n).astype(np.float32)
    y0 = rng.standard_normal(n).astype(np.float32)
    saxpy = fabric.kernel(SAXPY)
    x = fabric.buffer(x0)
    y = fabric.buffer(y0)
    result = fabric.dispatch(saxpy, global_size=n, block=256, args={"a": 2.5, "x": x, "y": y})
    assert np.array_equal(y.read(), np.float32(2.5) * x0 + y0)
    assert np.array_equal(x.read(), x0)
    assert result.launch.grid == (4, 1, 1) and result.launch.block == (256, 1, 1)
    assert sum(t.group_count for t in result.tiles) == 4
    x.free()
    y.free()


def test_a_large_dispatch_is_split_into_tiles_that_cover_every_group(fabric):
    n = 1 << 20
    x0 = np.arange(n, dtype=np.float32)
    saxpy = fabric.kernel(SAXPY)
    x, y = fabric.buffer(x0), fabric.zeros(n, "f32")
    result = fabric.dispatch(saxpy, global_size=n, block=128, args={"a": -1.0, "x": x, "y": y})
    assert np.array_equal(y.read(), -x0)
    assert len(result.tiles) > 1
    firsts = sorted((t.first_group, t.group_count) for t in result.tiles)
    covered = [g for first, count in firsts for g in range(first, first + count)]
    assert covered == list(range(n // 128))
    x.free()
    y.free()


def _buffers(fabric, dtype=np.float32):
    return fabric.buffer(np.ones(10, dtype)), fabric.buffer(np.ones(10, np.float32))


SIG = "saxpy(f32 a, buffer<f32> x, buffer<f32> y)"


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda x, y: {"x": x, "y": y}, f"missing argument 'a' for kernel {SIG}"),
        (lambda x, y: {"a": 1.0, "x": 3.0, "y": y},
         "parameter 'x' is buffer<f32>, got the scalar 3.0"),
        (lambda x, y: {"a": x, "x": x, "y": y}, "parameter 'a' is f32, got buffer 'buf"),
        (lambda x, y: {"a": 1.0, "x": x, "y": y, "b": 2}, f"kernel {SIG} has no parameter 'b'"),
        (lambda x, y: {"a": "two", "x": x, "y": y}, "parameter 'a' is f32, got 'two'"),
    ],
)
def test_argument_mistakes_are_named(fabric, make_args, message):
    saxpy = fabric.kernel(SAXPY)
    x, y = _buffers(fabric)
    try:
        with pytest.raises(JobError) as err:
            fabric.dispatch(saxpy, global_size=10, block=16, args=make_args(x, y))
        assert message in str(err.value)
    finally:
        x.free()
        y.free()


def test_a_buffer_of_the_wrong_dtype_is_refused(fabric):
    saxpy = fabric.kernel(SAXPY)
    x, y = _buffers(fabric, np.int32)
    try:
        with pytest.raises(JobError) as err:
            fabric.dispatch(saxpy, global_size=10, block=16, args={"a": 1.0, "x": x, "y": y})
        assert str(err.value) == (f"buffer {x.name!r} does not fit parameter 'x': buffer<f32> needs "
                                  "f32 elements, got i32 array of shape [10]")
    finally:
        x.free()
        y.free()


def test_arguments_are_checked_again_when_their_types_shapes_or_values_change(fabric):
    """A kernel's arguments are checked once per argument types, buffer shapes and scalar
    values: a good dispatch does not let a later mistake through."""
    saxpy = fabric.kernel(SAXPY)
    x, y = _buffers(fabric)
    wide = fabric.buffer(np.ones(10, np.int32))
    try:
        fabric.dispatch(saxpy, global_size=10, block=16, args={"a": 2.0, "x": x, "y": y})
        assert np.array_equal(y.read(), np.full(10, 3.0, np.float32))
        with pytest.raises(JobError, match="buffer .* does not fit parameter 'x'"):
            fabric.dispatch(saxpy, global_size=10, block=16, args={"a": 2.0, "x": wide, "y": y})
        with pytest.raises(JobError, match="parameter 'a' is f32, got 'two'"):
            fabric.dispatch(saxpy, global_size=10, block=16, args={"a": "two", "x": x, "y": y})
        # numpy scalars are told apart by their whole dtype: 5 ns is the integer 5 (accepted
        # for an i32), 5 days is a timedelta (refused), though both hold the bytes of 5.
        fill = fabric.compile("kernel fill(i32 v, buffer<f32> y) { y[global_id.x] = f32(v); }")
        fill_k = fill.kernels[0]
        fabric.dispatch(fill_k, global_size=10, block=10,
                        args={"v": np.timedelta64(5, "ns"), "y": y})
        assert np.array_equal(y.read(), np.full(10, 5.0, np.float32))
        with pytest.raises(JobError, match="parameter 'v' is i32, got datetime.timedelta"):
            fabric.dispatch(fill_k, global_size=10, block=10,
                            args={"v": np.timedelta64(5, "D"), "y": y})
        x.free()
        with pytest.raises(JobError) as err:
            fabric.dispatch(saxpy, global_size=10, block=16, args={"a": 2.0, "x": x, "y": y})
        assert str(err.value) == (f"buffer {x.name!r} (argument 'x') has been freed (hint: "
                                  f"allocate it again, or pass a live buffer)")
    finally:
        for b in (x, y, wide):
            b.free()


def test_geometry_mistakes(fabric):
    saxpy = fabric.kernel(SAXPY)
    x, y = _buffers(fabric)
    args = {"a": 1.0, "x": x, "y": y}
    try:
        with pytest.raises(JobError, match="declares no @workgroup, so the block"):
            fabric.dispatch(saxpy, global_size=10, args=args)
        with pytest.raises(JobError, match="give exactly one of global size"):
            fabric.dispatch(saxpy, global_size=10, grid=1, block=16, args=args)
        with pytest.raises(JobError, match="a workgroup of 2048 work items is more than 1024"):
            fabric.dispatch(saxpy, global_size=10, block=2048, args=args)
        with pytest.raises(JobError, match=r"block must be 1 to 3 positive integers, got \[0\]"):
            fabric.dispatch(saxpy, global_size=10, block=0, args=args)
    finally:
        x.free()
        y.free()


def test_unknown_backend_lists_installed_ones():
    with pytest.raises(XvError) as err:
        xv.open_fabric("default", backend="cuda")
    assert "unknown backend 'cuda' (installed: " in str(err.value)
    assert "interp" in str(err.value)


def test_xvir_round_trip_gives_the_same_result(tmp_path, fabric):
    from xv_dsl import compile_file

    from xv_core import ir

    module = compile_file(SAXPY)
    ir.save(module, tmp_path / "saxpy.xvir")
    x0 = np.linspace(-1, 1, 777, dtype=np.float32)
    outputs = []
    for path in (SAXPY, tmp_path / "saxpy.xvir"):
        kernel = fabric.kernel(path)
        x, y = fabric.buffer(x0), fabric.buffer(np.full(777, 3, np.float32))
        fabric.dispatch(kernel, global_size=777, block=64, args={"a": 0.5, "x": x, "y": y})
        outputs.append(y.read())
        x.free()
        y.free()
    assert np.array_equal(outputs[0], outputs[1])
    assert np.array_equal(outputs[0], np.float32(0.5) * x0 + np.float32(3))


def test_a_kernel_file_with_a_byte_order_mark_loads_as_vgpucc_reads_it(tmp_path, fabric):
    """An editor's UTF-8 byte-order mark is not kernel text: vgpucc skips it, and so does every
    fabric that loads the file (it was 'unexpected character U+FEFF' there)."""
    from xv_dsl import compile_file

    path = tmp_path / "bom.xvk"
    path.write_bytes(b"\xef\xbb\xbf" + SAXPY.read_bytes())
    assert [k.name for k in compile_file(path).kernels] == ["saxpy"]
    x0 = np.arange(300, dtype=np.float32)
    x, y = fabric.buffer(x0), fabric.zeros(300, "f32")
    fabric.dispatch(fabric.kernel(path), global_size=300, block=64, args={"a": 2.0, "x": x, "y": y})
    assert np.array_equal(y.read(), np.float32(2.0) * x0)


def test_dispatch_plans_are_reused_only_for_the_same_scalars_and_shapes(fabric):
    """A dispatch's footprints are worked out once per kernel, geometry, scalar values and
    buffer shapes: the pages a dispatch makes resident follow ``n`` every time, also when the
    same ``n`` comes back, and 0.0 and -0.0 are told apart."""
    kernel = pick_fill(fabric)
    out = fabric.zeros(1 << 16)  # 256 KiB: four 64 KiB pages

    def accessed(n: int, v: float = 1.0) -> int:
        before = fabric.vram.stats()["tiers"]["vram"]["accesses"]
        fabric.dispatch(kernel, global_size=1 << 16, block=256, args={"out": out, "n": n, "v": v})
        return fabric.vram.stats()["tiers"]["vram"]["accesses"] - before

    plans = len(fabric._plans)
    assert accessed(100) == 1          # one page written
    assert accessed(40000) == 3        # 160,000 bytes: pages 0..2
    assert accessed(100) == 1          # the first plan again, not the last
    assert len(fabric._plans) == plans + 2
    accessed(100, -0.0)
    accessed(100, 0.0)
    assert len(fabric._plans) == plans + 4
    want = np.zeros(1 << 16, np.float32)
    want[100:40000] = 1.0
    got = out.read()
    assert np.array_equal(got, want) and not np.signbit(got[:100]).any()
    out.free()


def pick_fill(fabric):
    module = fabric.compile("""
kernel fill(buffer<f32> out, i32 n, f32 v) {
    i32 i = global_id.x;
    if (i < n) { out[i] = v; }
}
""")
    return module.kernels[0]


def test_geometry_is_worked_out_for_each_call_of_a_kernel(fabric):
    saxpy = fabric.kernel(SAXPY)
    x, y = fabric.zeros(1000), fabric.zeros(1000)
    try:
        args = {"a": 1.0, "x": x, "y": y}
        for block, grid in ((256, 4), (128, 8), ([64], 16), ((256, 1, 1), 4)):
            result = fabric.dispatch(saxpy, global_size=1000, block=block, args=args)
            assert result.launch.grid == (grid, 1, 1)
        assert fabric.dispatch(saxpy, grid=[3], block=256, args=args).launch.grid == (3, 1, 1)
        with pytest.raises(JobError, match=r"block must be 1 to 3 positive integers, got \[0\]"):
            fabric.dispatch(saxpy, global_size=1000, block=0, args=args)
        with pytest.raises(JobError, match="give exactly one of global size"):
            fabric.dispatch(saxpy, global_size=1000, grid=4, block=256, args=args)
    finally:
        x.free()
        y.free()


def test_a_buffer_too_large_for_the_address_space_is_refused_by_its_size(fabric):
    # The size is worked out exactly: 2**62 x 2**62 f32 once wrapped to "0B".
    with pytest.raises(XvError, match=r"cannot allocate 77371252455336267181195264TiB: more "
                                      r"than the whole device address space"):
        fabric.zeros((2**62, 2**62))


def test_misuse_gives_job_errors_not_python_errors():
    """A closed fabric, freed buffers, geometry, shapes and dtypes that are not numbers,
    dtypes VRAM cannot hold, a Module for a Kernel, args that are not a mapping."""
    f = xv.open_fabric("default")
    saxpy = f.kernel(SAXPY)
    x, y = f.zeros(4), f.zeros(4)
    cases = [
        (lambda: f.zeros(10.0), "invalid buffer shape 10.0"),
        (lambda: f.buffer(np.float32(2.0)),
         r"a buffer has 1 to 3 dimensions, got 0 \(shape \[\]\)"),
        (lambda: f.zeros((2, 2, 2, 2)),
         r"a buffer has 1 to 3 dimensions, got 4 \(shape \[2, 2, 2, 2\]\)"),
        (lambda: f.zeros((2, 2, 2), "vec4"),
         r"a buffer has 1 to 3 dimensions, got 4 \(shape \[2, 2, 2, 4\]\)"),
        (lambda: f.buffer(shape=4, dtype=object), "arrays of object cannot live in VRAM"),
        (lambda: f.zeros(4, np.float16), "arrays of float16 cannot live in VRAM"),
        (lambda: f.dispatch(saxpy, args={"a": 1.0, "x": x, "y": y}, global_size=4.0, block=4),
         "global size must be 1 to 3 positive integers, got 4.0"),
        (lambda: f.dispatch(saxpy, args={"a": 1.0, "x": x, "y": y}, global_size=np.array(4),
                            block=4), "global size must be 1 to 3 positive integers"),
        (lambda: f.dispatch(f.compile("kernel k(i32 n) { i32 a = n; }"), args={"n": 1},
                            global_size=4, block=4), "dispatch needs a Kernel, got Module"),
        (lambda: f.dispatch(saxpy, args=None, global_size=4, block=4),
         "args must map parameter names to values, got NoneType"),
        (lambda: f.kernel(None), "expected a kernel file as a path or a name, got NoneType"),
        (lambda: f.load_module(3), "expected a kernel file as a path or a name, got int"),
        (lambda: f.compile(None), "compile\\(\\) takes kernel source text, got NoneType"),
        (lambda: f.compile("kernel k(i32 n) { i32 a = n; }", None),
         "expected the source's file name as a path or a name, got NoneType"),
        (lambda: xv.open_fabric(None),
         r"expected a fabric \(a built-in name or a YAML file\) as a path or a name, got "
         "NoneType"),
    ]
    for call, message in cases:
        with pytest.raises(JobError, match=message):
            call()
    assert f.zeros(np.int64(3)).shape == (3,)
    taken = f"buf{f._counter + 1}"  # the next automatic name, given by the user first
    assert f.zeros(2, name=taken).name == taken
    assert f.zeros(2).name != taken
    x.free()
    assert repr(x) == f"<Buffer {x.name} (freed)>"
    with pytest.raises(JobError, match=f"buffer '{x.name}' has been freed"):
        x.shape
    f.close()
    for call in (lambda: f.zeros(4), lambda: f.buffer(np.zeros(4, np.float32)),
                 lambda: f.dispatch(saxpy, args={"a": 1.0, "x": y, "y": y}, global_size=4,
                                    block=4)):
        with pytest.raises(JobError, match="fabric 'default' is closed"):
            call()
    with pytest.raises(JobError, match=f"the fabric of buffer '{y.name}' is closed"):
        y.read()
    y.free()  # the closed fabric freed it already: nothing to do


def test_a_kernel_loaded_again_and_again_keeps_the_fabric_bounded(tmp_path, monkeypatch):
    # A notebook that reloads its kernel file before every dispatch: the fabric keeps the
    # latest prepared kernels and dispatch histories, and still reports the compile time the
    # first load spent.
    from xv_core.runtime import api

    monkeypatch.setattr(api, "PREPARED_LIMIT", 3)
    monkeypatch.setattr(api, "PLAN_CACHE_SIZE", 4)
    monkeypatch.setenv("XV_CACHE_DIR", str(tmp_path / "cache"))  # nothing compiled before
    source = tmp_path / "scale.xvk"
    source.write_text("kernel scale(buffer<f32> y, f32 a) {\n"
                      "    y[global_id.x] = y[global_id.x] * a + 40961.0;\n"
                      "}\n")
    with xv.open_fabric("default", backend="jit") as f:
        y = f.zeros(64)
        for _ in range(10):
            f.dispatch(f.kernel(source), args={"y": y, "a": 2.0}, global_size=64, block=64)
        assert len(f._context._prepared) == 3 and len(f._history) == 4
        spent = f.native_compile()
        assert spent["compiles"] == 1 and spent["compile_s"] > 0

