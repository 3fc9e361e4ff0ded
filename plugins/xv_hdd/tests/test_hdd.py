"""The hdd component: its directory, its worker threads, its options."""

import threading

import attrs
import numpy as np
import pytest

from xv_core.errors import XvError
from xv_core.runtime.interfaces import Launch, Tile, TileWork
from xv_hdd.component import LOCK_NAME, HddComponent, HddOptions


def tiles(n_items, block, count):
    launch = Launch((-(-n_items // block), 1, 1), (block, 1, 1))
    groups = launch.groups
    base, extra = divmod(groups, count)
    out, first = [], 0
    for i in range(count):
        n = base + (i < extra)
        out.append(Tile(i, launch, first, n))
        first += n
    return out


def test_creates_its_directory_relative_to_the_workdir(tmp_path, context):
    comp = HddComponent("disk0", HddOptions(path="data/hdd0"), context)
    try:
        assert comp.path == tmp_path / "data" / "hdd0"
        assert comp.path.is_dir()
        assert (comp.path / LOCK_NAME).read_text().startswith("hdd component 'disk0' (pid ")
    finally:
        comp.close()
    assert comp.path.is_dir()  # kept: the directory is data, not scratch


def test_absolute_path_is_used_as_is(tmp_path, context):
    target = tmp_path / "abs"
    comp = HddComponent("disk0", HddOptions(path=str(target)), context)
    comp.close()
    assert comp.path == target and target.is_dir()


def test_runs_tiles_on_its_worker_threads_with_its_backend(context, saxpy, xy):
    x, y = xy
    expected = np.float32(2.5) * x + y
    comp = HddComponent("disk0", HddOptions(path="hdd", backend="interp", workers=2), context)
    try:
        assert comp.workers == 2 and comp.kind == "hdd"
        args = {"a": np.float32(2.5), "x": x, "y": y}
        futures = [comp.submit(saxpy, t, args) for t in tiles(1000, 64, 6)]
        works = [f.result(timeout=30) for f in futures]
    finally:
        comp.close()
    np.testing.assert_array_equal(y, expected)
    assert sum((w for w in works), TileWork()).ops == 2000
    assert set(context.prepared) == {("saxpy", "interp")}
    assert context.last.threads and all(t.startswith("xv-hdd-disk0") for t in context.last.threads)
    assert threading.current_thread().name not in context.last.threads


def test_a_failing_tile_fails_its_future(context, saxpy):
    comp = HddComponent("disk0", HddOptions(path="hdd"), context)
    try:
        fut = comp.submit(saxpy, tiles(10, 4, 1)[0], {"a": np.float32(1)})  # x and y missing
        with pytest.raises(KeyError):
            fut.result(timeout=30)
    finally:
        comp.close()


def test_two_components_cannot_share_a_directory(context):
    first = HddComponent("disk0", HddOptions(path="shared"), context)
    try:
        with pytest.raises(XvError) as err:
            HddComponent("disk1", HddOptions(path="shared"), context)
        assert str(err.value) == (
            f"component 'disk1': directory {first.path} is in use by hdd component 'disk0' "
            f"(pid {__import__('os').getpid()}) (hint: give each hdd component a path of its own)"
        )
    finally:
        first.close()
    HddComponent("disk1", HddOptions(path="shared"), context).close()  # free again once closed


def test_directory_that_cannot_be_created(tmp_path, context):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(XvError, match=r"^component 'disk0': cannot create directory "
                                      r".*/file/sub: Not a directory \(hint: check the "):
        HddComponent("disk0", HddOptions(path="file/sub"), context)


def test_submit_after_close_is_an_error(context, saxpy):
    comp = HddComponent("disk0", HddOptions(path="hdd"), context)
    comp.close()
    comp.close()
    with pytest.raises(XvError, match=r"^component 'disk0': component is closed"):
        comp.submit(saxpy, tiles(4, 4, 1)[0], {})


def test_options_defaults_and_validation():
    opts = HddOptions(path="x")
    assert (opts.backend, opts.workers) == ("interp", 1)
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        HddOptions(path="x", workers=0)
    with pytest.raises(ValueError, match="path must not be empty"):
        HddOptions(path="")
    with pytest.raises(TypeError):
        HddOptions()  # path is required
    assert [a.name for a in attrs.fields(HddOptions)] == ["path", "backend", "workers"]
