"""The nvme component and its options."""

import pytest

from xv_core.errors import XvError
from xv_nvme.component import NvmeOptions, NvmeTier


class Context:
    def __init__(self, workdir):
        self.workdir = str(workdir)


def test_options_parse_sizes():
    opts = NvmeOptions(path="cache/pages.bin", capacity="1MiB")
    assert (opts.capacity, opts.page_size, opts.keep) == (1 << 20, 64 << 10, False)
    assert NvmeOptions(path="p", capacity=4096, page_size="4KiB").page_size == 4096


def test_options_validation():
    with pytest.raises(ValueError,
                       match=r"capacity \(1KiB\) must hold at least one page \(64KiB\)"):
        NvmeOptions(path="p", capacity="1KiB")
    with pytest.raises(ValueError, match="path must not be empty"):
        NvmeOptions(path=" ", capacity="1MiB")
    with pytest.raises(ValueError, match="is not a size"):
        NvmeOptions(path="p", capacity="lots")


def test_tier_opens_its_file_under_the_workdir_and_closes_it(tmp_path):
    tier = NvmeTier("nvme0", NvmeOptions(path="cache/pages.bin", capacity="256KiB",
                                         page_size="64KiB"), Context(tmp_path))
    assert tier.kind == "nvme"
    assert tier.path == tmp_path / "cache" / "pages.bin" and tier.path.exists()
    assert tier.pages.slots == 4
    tier.pages.write_page(("y", 0), b"\x01" * 100)
    assert tier.stats()["used"] == 1
    tier.close()
    assert not tier.path.exists()
    with pytest.raises(XvError, match="closed"):
        tier.pages.write_page(("y", 0), b"")


def test_keep_leaves_the_file(tmp_path):
    tier = NvmeTier("nvme0", NvmeOptions(path=str(tmp_path / "p.bin"), capacity="128KiB",
                                         keep=True), Context("/nonexistent"))
    tier.close()
    assert (tmp_path / "p.bin").exists()


def test_the_tier_is_offered_to_the_vram_with_its_profile(tmp_path):
    tier = NvmeTier("nvme0", NvmeOptions(path="p", capacity="256KiB", profile="nvme-gen3"),
                    Context(tmp_path))
    assert tier.page_tier is tier.pages
    assert (tier.page_tier.name, tier.page_tier.profile) == ("nvme0", "nvme-gen3")
    tier.close()
    assert NvmeOptions(path="p", capacity="1MiB").profile == "nvme-gen4"
    with pytest.raises(ValueError, match=r"unknown link profile 'nvme9'"):
        NvmeOptions(path="p", capacity="1MiB", profile="nvme9")
