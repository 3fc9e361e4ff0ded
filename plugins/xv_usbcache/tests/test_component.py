"""The usbcache component and its options."""

import pytest

from xv_usbcache.component import UsbCache, UsbCacheOptions


class Context:
    def __init__(self, workdir):
        self.workdir = str(workdir)


def test_component_scans_its_paths(tmp_path, repo, lib):
    comp = UsbCache("usb", UsbCacheOptions(paths=["media", str(tmp_path / "absent")]),
                    Context(tmp_path))
    assert comp.kind == "usbcache"
    assert comp.names() == ["scale", "triple"]
    assert comp.get("scale").name == "scale"
    lib.make_repo(tmp_path / "media" / "NEW", {"fresh": lib.scale_ir("fresh")})
    assert "fresh" not in comp.names()
    comp.rescan()
    assert "fresh" in comp.names()
    comp.close()


def test_options_validation():
    with pytest.raises(ValueError, match="paths must list at least one folder to scan"):
        UsbCacheOptions(paths=[])
    with pytest.raises(ValueError, match=r"paths\[1\] must be a non-empty path"):
        UsbCacheOptions(paths=["/media", ""])
