"""The nvme kind in a fabric file, through the core's loader and the runtime API."""

import pytest

import xv_core as xv
from xv_core.config import load_fabric
from xv_core.errors import ConfigError
from xv_core.plugins import load_plugins


def write(tmp_path, components):
    path = tmp_path / "fabric.yaml"
    path.write_text("name: t\nvram: {capacity: 16MiB, page_size: 64KiB, eviction: lru}\n"
                    "components:\n" + "".join(f"  - {c}\n" for c in components))
    return path


def at(path, line, token):
    """``path:line:col`` of the first ``token`` on ``line`` of the file (1-based)."""
    text = path.read_text().splitlines()[line - 1]
    return f"{path}:{line}:{text.index(token) + 1}"


def test_bad_options_are_located(tmp_path):
    path = write(tmp_path, ["{name: n0, kind: nvme, path: p.bin, capacity: 1KiB}",
                            "{name: n1, kind: nvme, path: p.bin, capacity: lots}",
                            "{name: n2, kind: nvme, capacity: 1MiB, keep: yes please}"])
    with pytest.raises(ConfigError) as err:
        load_fabric(path, load_plugins())
    assert str(err.value).splitlines() == [
        f"{path}:4:3: no component can run kernels @ $.components (hint: add a component of a "
        f"compute kind (cpu, hdd, net))",
        f"{at(path, 4, '1KiB')}: capacity (1KiB) must hold at least one page (64KiB) "
        f"@ $.components[0].capacity",
        f"{at(path, 5, 'lots')}: 'lots' is not a size @ $.components[1].capacity "
        f"(hint: write a number and "
        f"a unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB), like 256MiB)",
        f"{path}:6:5: missing required key 'path' @ $.components[2]",
        f"{at(path, 6, 'yes')}: expected true or false, got 'yes please' (a string) "
        f"@ $.components[2].keep",
    ]


def test_the_tier_opens_and_closes_with_the_fabric(tmp_path):
    plugins = load_plugins()
    if "cpu" not in plugins.components:
        pytest.skip("a fabric needs a compute component: xenovectra-cpu is not installed")
    path = write(tmp_path, ["{name: alu, kind: cpu, threads: 1}",
                            "{name: n0, kind: nvme, path: cache/pages.bin, capacity: 1MiB}"])
    with xv.open_fabric(path, plugins=plugins) as fabric:
        tier = fabric.components["n0"]
        assert fabric.compute == ["alu"]
        assert tier.path == tmp_path / "cache" / "pages.bin" and tier.path.exists()
        assert tier.pages.slots == 16
    assert not (tmp_path / "cache" / "pages.bin").exists()


def test_a_fabric_closes_with_live_buffers_whose_pages_are_in_the_tier(tmp_path):
    """Closing frees the VRAM's buffers (dropping their pages from the tier) before the tier's
    page file closes: closing the other way round failed with 'page file is closed'."""
    import numpy as np

    plugins = load_plugins()
    if "cpu" not in plugins.components:
        pytest.skip("a fabric needs a compute component: xenovectra-cpu is not installed")
    path = tmp_path / "fabric.yaml"
    path.write_text("name: t\nvram: {capacity: 256KiB, page_size: 64KiB, backing: file, "
                    "path: vram}\ncomponents:\n  - {name: alu, kind: cpu, threads: 1}\n"
                    "  - {name: n0, kind: nvme, path: pages.bin, capacity: 1MiB}\n")
    kernel = tmp_path / "scale.xvk"
    kernel.write_text("kernel scale(buffer<f32> x) { x[global_id.x] = 2.0 * x[global_id.x]; }\n")
    fabric = xv.open_fabric(path, plugins=plugins)
    scale = fabric.kernel(kernel)
    data = [np.full(32768, i, np.float32) for i in range(4)]  # 128KiB each: 512KiB in all
    buffers = [fabric.buffer(d) for d in data]
    for b in buffers:  # each dispatch pages its buffer in, evicting others to the tier
        fabric.dispatch(scale, args={"x": b}, global_size=32768, block=256)
    assert len(fabric.components["n0"].pages) > 0
    fabric.close()  # the buffers are still live
    assert not (tmp_path / "pages.bin").exists()
    fabric.close()  # twice is fine


def test_pages_smaller_than_the_vrams_are_refused_when_the_fabric_is_loaded(tmp_path):
    """Found by ``xv fabric validate`` (the loader), not only when the fabric opens, and
    located at the option; the same page size is fine."""
    path = write(tmp_path, ["{name: alu, kind: cpu}",
                            "{name: n0, kind: nvme, path: p.bin, capacity: 1MiB, "
                            "page_size: 4KiB}"])
    with pytest.raises(ConfigError) as err:
        load_fabric(path, load_plugins())
    assert str(err.value) == (
        f"{at(path, 5, '4KiB')}: its page size (4KiB) is smaller than vram.page_size (64KiB) "
        f"@ $.components[1].page_size (hint: set its page_size to 64KiB)")
    assert not (tmp_path / "p.bin").exists()
    path.write_text(path.read_text().replace("page_size: 4KiB", "page_size: 64KiB"))
    assert load_fabric(path, load_plugins()).components[1].options.page_size == 64 << 10


def opening_refused(tmp_path, components):
    """The fabric file of ``components`` and the ConfigError opening it gives (a cpu first)."""
    plugins = load_plugins()
    if "cpu" not in plugins.components:
        pytest.skip("a fabric needs a compute component: xenovectra-cpu is not installed")
    path = write(tmp_path, ["{name: alu, kind: cpu, threads: 1}", *components])
    with pytest.raises(ConfigError) as err:
        xv.open_fabric(path, plugins=plugins)
    return path, str(err.value)


def test_a_page_file_that_cannot_be_opened_is_located_in_the_fabric(tmp_path):
    (tmp_path / "folder").mkdir()
    path, error = opening_refused(tmp_path, ["{name: n0, kind: nvme, path: folder, "
                                             "capacity: 1MiB}"])
    assert error == (
        f"{path}:5:5: page file {tmp_path / 'folder'}: cannot open: Is a directory "
        f"@ $.components[1] (hint: check the permissions, or choose another path)")


def test_a_tier_the_vram_refuses_is_located_in_the_fabric_and_leaves_no_file(tmp_path):
    path, error = opening_refused(tmp_path, ["{name: vram, kind: nvme, path: p.bin, "
                                             "capacity: 1MiB}"])
    assert error == (
        f"{path}:4:3: component 'vram': a cache tier cannot be named 'vram': the VRAM "
        f"statistics use that name @ $.components (hint: rename the component)")
    assert not (tmp_path / "p.bin").exists()
