"""PageFile: pages in slots of one file, against a dict model."""

import os
import random
import threading

import numpy as np
import pytest

from xv_core.errors import XvError
from xv_nvme.pagefile import MAGIC, PageFile, PageFileFull


def page(n, size=16):
    return bytes((n + i) % 256 for i in range(size))


def test_round_trip_and_layout(tmp_path):
    path = tmp_path / "pages.bin"
    with PageFile(path, capacity=64, page_size=16) as pf:
        assert pf.slots == 4
        assert os.path.getsize(path) == 16 * 5  # header page + 4 slots
        assert pf.write_page(("x", 0), page(1)) == 0
        assert pf.write_page(("x", 1), page(2)) == 1
        assert pf.read_page(("x", 0)) == page(1)
        assert pf.read_page(("x", 1)) == page(2)
        raw = path.read_bytes()
        assert raw[: len(MAGIC)] == MAGIC
        assert raw[16:32] == page(1) and raw[32:48] == page(2)  # on disk, in its slot
        assert pf.read_page(("y", 0)) is None
        assert ("x", 0) in pf and len(pf) == 2
        s = pf.stats()
        assert (s["used"], s["free"], s["reads"], s["writes"], s["misses"]) == (2, 2, 2, 2, 1)
        assert (s["bytes_read"], s["bytes_written"]) == (32, 32)


def test_overwrite_keeps_the_slot_and_short_pages_keep_their_length(tmp_path):
    with PageFile(tmp_path / "p", capacity=64, page_size=16) as pf:
        slot = pf.write_page("k", page(1))
        assert pf.write_page("k", b"abc") == slot
        assert pf.read_page("k") == b"abc"
        assert pf.write_page("empty", b"") == 1
        assert pf.read_page("empty") == b""


def test_drop_frees_the_lowest_slot_first(tmp_path):
    with PageFile(tmp_path / "p", capacity=64, page_size=16) as pf:
        for k in "abcd":
            pf.write_page(k, page(ord(k)))
        assert pf.drop("c") and pf.drop("b")
        assert not pf.drop("b")
        assert pf.write_page("e", page(5)) == 1
        assert pf.write_page("f", page(6)) == 2
        assert pf.read_page("d") == page(ord("d"))


def test_full_is_an_error_that_changes_nothing(tmp_path):
    with PageFile(tmp_path / "p", capacity=32, page_size=16) as pf:
        pf.write_page("a", page(1))
        pf.write_page("b", page(2))
        with pytest.raises(PageFileFull) as err:
            pf.write_page("c", page(3))
        assert str(err.value) == (
            f"page file {tmp_path / 'p'}: all 2 pages (32B) are taken (hint: drop a page "
            f"first, or raise the nvme component's capacity)"
        )
        assert pf.write_page("a", page(9)) == 0  # an existing key can still be rewritten
        assert len(pf) == 2


def test_page_larger_than_page_size(tmp_path):
    with PageFile(tmp_path / "p", capacity=32, page_size=16) as pf:
        with pytest.raises(XvError, match=r"page file .*: page 'a' is 17 bytes, more than the "
                                          r"page size \(16\)"):
            pf.write_page("a", bytes(17))


def test_numpy_pages(tmp_path):
    with PageFile(tmp_path / "p", capacity=1 << 16, page_size=4096) as pf:
        data = np.arange(1024, dtype=np.float32)
        pf.write_page(("buf", 3), data)
        back = np.frombuffer(pf.read_page(("buf", 3)), dtype=np.float32)
        np.testing.assert_array_equal(back, data)


def test_close_deletes_or_keeps(tmp_path):
    gone = PageFile(tmp_path / "gone", capacity=32, page_size=16)
    gone.write_page("a", page(1))
    gone.close()
    gone.close()
    assert not (tmp_path / "gone").exists()
    with pytest.raises(XvError, match="page file is closed"):
        gone.read_page("a")
    kept = PageFile(tmp_path / "kept", capacity=32, page_size=16, keep=True)
    kept.write_page("a", page(1))
    kept.close()
    assert (tmp_path / "kept").read_bytes()[16:32] == page(1)
    # a kept file is reopened empty: a cache tier is not a store
    with PageFile(tmp_path / "kept", capacity=32, page_size=16) as again:
        assert again.read_page("a") is None and len(again) == 0


def test_refuses_a_file_that_is_not_a_page_file(tmp_path):
    precious = tmp_path / "thesis.txt"
    precious.write_text("years of work")
    with pytest.raises(XvError) as err:
        PageFile(precious, capacity=32, page_size=16)
    assert str(err.value) == (f"page file {precious}: the file exists and is not an xv_nvme page "
                              f"file (hint: choose another path, or delete the file if it is not "
                              f"needed)")
    assert precious.read_text() == "years of work"


def test_two_page_files_cannot_share_a_path(tmp_path):
    with PageFile(tmp_path / "p", capacity=32, page_size=16):
        with pytest.raises(XvError, match=r"the file is in use by another page file \(hint: give "
                                          r"each nvme component a path of its own\)"):
            PageFile(tmp_path / "p", capacity=32, page_size=16)


def test_capacity_below_one_page(tmp_path):
    with pytest.raises(XvError, match=r"capacity 8B holds no page of 16B"):
        PageFile(tmp_path / "p", capacity=8, page_size=16)


def test_random_operations_match_a_dict(tmp_path):
    rng = random.Random(3)
    model: dict = {}
    with PageFile(tmp_path / "p", capacity=8 * 32, page_size=32) as pf:
        for step in range(3000):
            key = ("b", rng.randrange(12))
            op = rng.random()
            if op < 0.5:
                data = bytes(rng.randrange(256) for _ in range(rng.randrange(33)))
                if key in model or len(model) < pf.slots:
                    pf.write_page(key, data)
                    model[key] = data
                else:
                    with pytest.raises(PageFileFull):
                        pf.write_page(key, data)
            elif op < 0.8:
                assert pf.read_page(key) == model.get(key)
            else:
                assert pf.drop(key) == (model.pop(key, None) is not None)
            assert len(pf) == len(model)
        slots = [pf.slot_of(k) for k in model]
        assert len(set(slots)) == len(slots) and all(0 <= s < pf.slots for s in slots)


def test_concurrent_writers_and_readers(tmp_path):
    with PageFile(tmp_path / "p", capacity=64 * 4096, page_size=4096) as pf:
        errors = []

        def work(t):
            try:
                for i in range(200):
                    key = (t, i % 16)
                    data = bytes([t, i % 256]) * 2048
                    pf.write_page(key, data)
                    assert pf.read_page(key) == data
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors
        assert len(pf) == 64


def test_read_into_copies_into_a_buffer(tmp_path):
    with PageFile(tmp_path / "p", 4 * 4096, 4096, name="nvme0", profile="nvme-gen3") as pages:
        assert (pages.name, pages.profile) == ("nvme0", "nvme-gen3")
        pages.write_page(7, bytes(range(200)))
        out = bytearray(4096)
        assert pages.read_into(7, out) == 200
        assert bytes(out[:200]) == bytes(range(200)) and not any(out[200:])
        assert pages.read_into(8, out) is None
        with pytest.raises(XvError, match=r"page 7 is 200 bytes, more than the 100 bytes given"):
            pages.read_into(7, bytearray(100))
        assert pages.stats()["reads"] == 1 and pages.stats()["misses"] == 1
