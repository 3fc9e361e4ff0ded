"""Run-time errors, on every registered backend and in both geometries: out-of-bounds accesses
name the source line, the memory, the index and the work item; integer division by zero fails
only where a work item really divides by zero; a barrier that only some work items of a group
reach is detected while running.

A backend registered with ``checks_bounds=False`` (``BackendSpec``, as ``jit-unchecked`` is:
out-of-bounds accesses are undefined there, as on a GPU) skips the out-of-bounds tests and only
those.

Each failing kernel fails in exactly one work item (or, for barriers, in every group alike), so
the message does not depend on the order in which tiles or work items are checked. Messages are
pinned whole: ``file:line: message (hint: ...)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xv_core import ir
from xv_core.errors import KernelRuntimeError, SourceError
from xv_core.ir import LOCAL, PARAM, Decl, Kernel, Module, Node, Op, Type
from xv_core.plugins import load_plugins

HERE = Path(__file__).resolve().parent
ERRORS = HERE / "runtime_errors.xvk"
OOB_HINT = " (hint: check the index, or guard the access with a bounds test)"
DIV_HINT = " (hint: guard the operation where the divisor can be 0)"
BARRIER_HINT = (" (hint: every work item of a workgroup that has not returned must reach the same "
                "barrier(); move it out of control flow that differs between work items)")
f32, i32, u32 = np.float32, np.int32, np.uint32


def at(marker: str, path: Path = ERRORS) -> str:
    """``file:line`` of the line that carries ``// @marker``."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.rstrip().endswith(f"// @{marker}"):
            return f"{path}:{number}"
    raise LookupError(marker)


@pytest.fixture
def checked(run):
    """``run``, for a backend that promises bounds checks."""
    if not load_plugins().backends.get(run.backend).checks_bounds:
        pytest.skip(f"backend {run.backend!r} does not check bounds (out of bounds is undefined)")
    return run


def fails(run, *args, **kwargs) -> str:
    with pytest.raises(KernelRuntimeError) as err:
        run(*args, **kwargs)
    return str(err.value)


# ---------------------------------------------------------------------------------------------
# out of bounds
# ---------------------------------------------------------------------------------------------


def test_read_past_the_end_of_a_buffer(checked):
    message = fails(checked, "runtime_errors.xvk",
                    {"x": np.ones(64, f32), "y": np.zeros(64, f32)},
                    name="read_past_end", global_size=64, block=16)
    assert message == (f"{at('read')}: out-of-bounds read x[64] by work item global_id=(63, 0, 0)"
                       f" in kernel 'read_past_end': buffer 'x' has 64 elements{OOB_HINT}")


def test_write_past_the_end_of_a_buffer(checked):
    message = fails(checked, "runtime_errors.xvk", {"y": np.zeros(126, f32)},
                    name="write_past_end", global_size=64, block=16)
    assert message == (f"{at('write')}: out-of-bounds write y[126] by work item "
                       f"global_id=(63, 0, 0) in kernel 'write_past_end': buffer 'y' has 126 "
                       f"elements{OOB_HINT}")


def test_image_read_outside_the_image(checked):
    src = np.ones((12, 20), f32)
    message = fails(checked, "runtime_errors.xvk", {"src": src, "dst": np.zeros_like(src),
                                               "bx": 5, "by": 9},
                    name="image_read", global_size=(20, 12), block=(4, 4))
    assert message == (f"{at('image-read')}: out-of-bounds read src[25, 9] by work item "
                       f"global_id=(5, 9, 0) in kernel 'image_read': image 'src' is 20 wide and 12 "
                       f"high{OOB_HINT}")


def test_image_write_outside_the_image(checked):
    message = fails(checked, "runtime_errors.xvk", {"dst": np.zeros((12, 20, 4), f32), "bx": 17,
                                               "by": 2},
                    name="image_write", global_size=(20, 12), block=(4, 4))
    assert message == (f"{at('image-write')}: out-of-bounds write dst[17, -1] by work item "
                       f"global_id=(17, 2, 0) in kernel 'image_write': image 'dst' is 20 wide and "
                       f"12 high{OOB_HINT}")


def one_bad_index(n: int, bad_at: int, bad: int, good: int = 3) -> np.ndarray:
    idx = np.full(n, good, i32)
    idx[bad_at] = bad
    return idx


def test_private_array_index_out_of_range(checked):
    message = fails(checked, "runtime_errors.xvk", {"idx": one_bad_index(48, 40, 4),
                                               "out": np.zeros(48, i32)},
                    name="private_array", global_size=48, block=16)
    assert message == (f"{at('private')}: out-of-bounds write g[1][4] by work item "
                       f"global_id=(40, 0, 0) in kernel 'private_array': private array 'g' is "
                       f"i32[3][4]{OOB_HINT}")


def test_shared_array_index_out_of_range(checked):
    message = fails(checked, "runtime_errors.xvk", {"idx": one_bad_index(48, 21, -1),
                                               "out": np.zeros(48, i32)},
                    name="shared_array", global_size=48)
    assert message == (f"{at('shared')}: out-of-bounds read s[-1] by work item "
                       f"global_id=(21, 0, 0) in kernel 'shared_array': shared array 's' is "
                       f"i32[16]{OOB_HINT}")


def test_constant_array_index_out_of_range(checked):
    message = fails(checked, "runtime_errors.xvk", {"idx": one_bad_index(48, 7, 4),
                                               "out": np.zeros(48, i32)},
                    name="const_array", global_size=48, block=16)
    assert message == (f"{at('const')}: out-of-bounds read PRIMES[4] by work item "
                       f"global_id=(7, 0, 0) in kernel 'const_array': constant array 'PRIMES' is "
                       f"i32[4]{OOB_HINT}")


def test_atomic_on_an_element_past_the_end(checked):
    message = fails(checked, "runtime_errors.xvk", {"idx": one_bad_index(48, 33, 8),
                                               "counts": np.zeros(8, u32)},
                    name="atomic_index", global_size=48, block=16)
    assert message == (f"{at('atomic')}: out-of-bounds atomic_add counts[8] by work item "
                       f"global_id=(33, 0, 0) in kernel 'atomic_index': buffer 'counts' has 8 "
                       f"elements{OOB_HINT}")


# ---------------------------------------------------------------------------------------------
# division by zero
# ---------------------------------------------------------------------------------------------


def test_integer_division_by_zero_names_the_work_item(run):
    d = np.arange(1, 49, dtype=i32)
    d[29] = 0
    message = fails(run, "runtime_errors.xvk", {"d": d, "q": np.zeros(48, i32)}, name="divide",
                    global_size=48, block=16)
    assert message == (f"{at('div')}: integer division by zero by work item global_id=(29, 0, 0) "
                       f"in kernel 'divide'{DIV_HINT}")


def test_u32_remainder_by_zero_names_the_work_item(run):
    d = np.arange(1, 49, dtype=u32)
    d[44] = 0
    message = fails(run, "runtime_errors.xvk", {"d": d, "r": np.full(48, 7, u32)},
                    name="remainder", global_size=48, block=16)
    assert message == (f"{at('mod')}: integer modulo by zero by work item "
                       f"global_id=(44, 0, 0) in kernel 'remainder'{DIV_HINT}")


def test_division_by_zero_only_where_a_work_item_divides(run):
    """Zeros wait where no work item divides by them: past ``limit``, and where ``?:`` takes
    the other side. Then one zero where an item does divide, and the error is that item's."""
    n = 48
    x = np.where(np.arange(n) % 3 == 0, -1.0, 1.0).astype(f32)
    d = np.arange(1, n + 1, dtype=i32)
    d[np.arange(n) % 3 == 0] = 0  # only where x <= 0: the ?: never divides there
    d[40:] = 0  # past the limit
    q = np.full(n, 5, i32)
    out = run("runtime_errors.xvk", {"x": x, "d": d, "q": q, "limit": 40},
              name="divide_where_asked", global_size=n, block=16)
    i = np.arange(n)
    want = np.where(i >= 40, 5, np.where(x > 0, 1000 // np.maximum(d, 1), 5))
    np.testing.assert_array_equal(out["q"], want)

    assert x[13] > 0
    d[13] = 0  # item 13 takes the dividing side: now it divides by zero
    message = fails(run, "runtime_errors.xvk", {"x": x, "d": d, "q": q, "limit": 40},
                    name="divide_where_asked", global_size=n, block=16)
    assert message == (f"{at('guarded-div')}: integer division by zero by work item "
                       f"global_id=(13, 0, 0) in kernel 'divide_where_asked'{DIV_HINT}")


# ---------------------------------------------------------------------------------------------
# barrier divergence
# ---------------------------------------------------------------------------------------------

#: Assignments in a loop, in an order that makes the compiler's uniformity analysis need one
#: pass per assignment to reach its fixed point: past its work limit it gives up, accepts the
#: kernel and leaves what it could not prove to the backend (xv_dsl/uniformity.py).
CHAIN = 400


def hidden_divergence_source() -> str:
    lines = ["// a barrier that only work items 0, 1 and 2 of each group reach, after a loop",
             "// that the compiler's uniformity analysis gives up on",
             "@workgroup(8)", "kernel hidden_divergence(buffer<i32> out) {"]
    lines += [f"    i32 v{k} = 0;" for k in range(CHAIN + 1)]
    lines += ["    for (i32 k = 0; k < 1; k++) {"]
    lines += [f"        v{k} = v{k + 1};" for k in range(CHAIN)]
    lines += [f"        v{CHAIN} = local_id.x;", "    }",
              "    if (local_id.x < 3) {", "        barrier();  // @barrier", "    }",
              "    out[global_id.x] = v0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def hidden_divergence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kernels") / "hidden_divergence.xvk"
    path.write_text(hidden_divergence_source())
    return path


def test_barrier_divergence_the_compiler_cannot_see(run, hidden_divergence):
    path = hidden_divergence
    try:
        run.kernel(str(path))
    except SourceError as exc:  # a smarter analysis proving it at compile time is fine too
        assert "barrier() under control flow" in str(exc)
        pytest.skip("the compiler now rejects this divergence at compile time")
    message = fails(run, str(path), {"out": np.zeros(24, i32)}, global_size=24)
    assert message == (f"{at('barrier', path)}: barrier divergence in kernel 'hidden_divergence': "
                       "only 3 of the 8 work items of workgroup (0, 0, 0) that have not returned "
                       f"reached this barrier(){BARRIER_HINT}")


def hand_written_module(source: str) -> Module:
    """A kernel no front end would emit: a barrier inside a loop whose trip count is the work
    item's local id, so items leave the loop at different barriers."""
    i32_t = Type("i32")
    lid = Node(Op.SPECIAL, i32_t, (), "local_id.x", 3)
    k = Node(Op.VAR, i32_t, (), "k", 3)
    cond = Node(Op.LT, Type("bool"), (k, lid), None, 3)
    body = Node.block([Node(Op.BARRIER, line=4)])
    step = Node.block([Node(Op.ASSIGN, args=(Node(Op.ADD, i32_t, (k, Node.const(1, i32_t))),),
                            arg="k", line=3)])
    loop = Node(Op.LOOP, args=(cond, body, step), arg="L0", line=3)
    store = Node(Op.STORE, args=(Node(Op.SPECIAL, i32_t, (), "global_id.x"), k), arg=("out", 0),
                 line=6)
    kernel = Kernel("loop_barrier", (Decl("out", Type("buffer", "i32"), PARAM),),
                    (Decl("k", i32_t, LOCAL),), Node.block([loop, store]), (4, 1, 1), source)
    return Module((kernel,), source=source)


def test_barrier_inside_a_loop_whose_trip_count_differs(run, tmp_path):
    """Through a .xvir file: the runtime loads it like any kernel, and the backend, not the
    front end, must notice that work item 0 left the loop while the others wait at a barrier."""
    path = tmp_path / "loop_barrier.xvir"
    ir.save(hand_written_module("hand-written.xvk"), path)
    message = fails(run, str(path), {"out": np.zeros(8, i32)}, global_size=8)
    assert message == ("hand-written.xvk:4: barrier divergence in kernel 'loop_barrier': only 3 "
                       "of the 4 work items of workgroup (0, 0, 0) that have not returned reached "
                       f"this barrier(){BARRIER_HINT}")
