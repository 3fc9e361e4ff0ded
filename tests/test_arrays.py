"""Job file I/O: .npy and .png, written all-or-nothing."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from xv_core.arrays import read_array, read_png, write_array, write_arrays
from xv_core.errors import JobError


def _png(pixels: np.ndarray, colour: int, filters: list[int]) -> bytes:
    """A reference PNG encoder using every filter type (the core's writer uses only 0)."""
    h, w = pixels.shape[:2]
    ch = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw = pixels.reshape(h, w * ch).astype(np.int32)
    out = bytearray()
    prev = np.zeros(w * ch, np.int32)
    for y in range(h):
        f = filters[y % len(filters)]
        line = raw[y]
        left = np.concatenate([np.zeros(ch, np.int32), line[:-ch]])
        up_left = np.concatenate([np.zeros(ch, np.int32), prev[:-ch]])
        if f == 0:
            enc = line
        elif f == 1:
            enc = line - left
        elif f == 2:
            enc = line - prev
        elif f == 3:
            enc = line - (left + prev) // 2
        else:
            p = left + prev - up_left
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - up_left)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, up_left))
            enc = line - pred
        out.append(f)
        out.extend((enc & 0xFF).astype(np.uint8).tobytes())
        prev = line

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b""))


@pytest.mark.parametrize("colour", [0, 2, 4, 6])
def test_png_decoding_handles_every_filter_and_colour_type(colour):
    rng = np.random.default_rng(colour)
    ch = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    pixels = rng.integers(0, 256, size=(9, 7, ch), dtype=np.uint8)
    image = read_png(_png(pixels, colour, [0, 1, 2, 3, 4]), "t.png")
    expect = pixels.astype(np.float32) / 255
    if colour == 0:
        assert np.array_equal(image, expect[:, :, 0])
    elif colour == 4:
        assert np.array_equal(image[:, :, 0], expect[:, :, 0])
        assert np.array_equal(image[:, :, 2], expect[:, :, 0])
        assert np.array_equal(image[:, :, 3], expect[:, :, 1])
    else:
        assert np.array_equal(image[:, :, :ch], expect)
        if ch == 3:
            assert np.all(image[:, :, 3] == 1.0)


def test_png_round_trip_grey_and_rgba(tmp_path):
    grey = np.arange(12, dtype=np.float32).reshape(3, 4) / 11
    write_array(tmp_path / "g.png", grey)
    assert np.allclose(read_array(tmp_path / "g.png"), grey, atol=0.5 / 255)
    rgba = np.random.default_rng(0).random((5, 6, 4), dtype=np.float32)
    write_array(tmp_path / "c.png", rgba)
    assert np.allclose(read_array(tmp_path / "c.png"), rgba, atol=0.5 / 255)


def test_npy_round_trip_and_pickles_refused(tmp_path):
    a = np.arange(10, dtype=np.int32)
    write_array(tmp_path / "a.npy", a)
    assert np.array_equal(read_array(tmp_path / "a.npy"), a)
    np.save(tmp_path / "o.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(JobError, match="not a plain .npy array"):
        read_array(tmp_path / "o.npy")


def _npy_header(shape: tuple[int, ...]) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue()


@pytest.mark.parametrize("name, content, message", [
    ("empty.npy", b"", "not a .npy array file: EOF: reading magic string, expected 8 bytes "
                       "got 0 (hint: write it with numpy.save)"),
    ("text.npy", b"hello world\n", "not a .npy array file: the magic string is not correct; "
                                   "expected b'\\x93NUMPY', got b'hello ' (hint: write it "
                                   "with numpy.save)"),
    ("zip.npy", b"PK\x03\x04\x14\x00rest", "not a .npy array file: the magic string is not "
                                          "correct; expected b'\\x93NUMPY', got "
                                          "b'PK\\x03\\x04\\x14\\x00' (hint: write it with "
                                          "numpy.save)"),
    ("huge.npy", _npy_header((10**12,)) + bytes(64),
     "the .npy file is cut short: its header says shape [1000000000000] of float32, "
     "4000000000000 bytes of data, and it holds 64"),
    ("short.npy", _npy_header((4,)) + bytes(12),
     "the .npy file is cut short: its header says shape [4] of float32, 16 bytes of data, "
     "and it holds 12"),
])
def test_files_that_are_not_whole_npy_arrays_are_refused_before_allocating(
        tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(JobError) as err:
        read_array(tmp_path / name)
    assert str(err.value) == f"{tmp_path / name}: {message}"


def test_a_folder_or_a_pipe_is_not_read(tmp_path):
    import os

    (tmp_path / "dir.npy").mkdir()
    os.mkfifo(tmp_path / "fifo.npy")  # reading it would block until someone writes
    for name in ("dir.npy", "fifo.npy"):
        with pytest.raises(JobError) as err:
            read_array(tmp_path / name)
        assert str(err.value) == f"{tmp_path / name}: cannot read .npy file: not a regular file"


def test_outputs_get_a_new_file_s_mode_and_never_replace_a_pipe(tmp_path):
    import os
    import stat

    umask = os.umask(0o027)
    try:
        write_array(tmp_path / "a.npy", np.arange(3, dtype=np.int32))
        assert stat.S_IMODE((tmp_path / "a.npy").stat().st_mode) == 0o640
    finally:
        os.umask(umask)
    os.mkfifo(tmp_path / "p.npy")
    with pytest.raises(JobError) as err:
        write_array(tmp_path / "p.npy", np.arange(3, dtype=np.int32))
    assert str(err.value) == (f"{tmp_path / 'p.npy'}: cannot write {tmp_path / 'p.npy'}: it is "
                              f"not a regular file (a device, a pipe or a socket), which is "
                              f"never replaced")
    assert (tmp_path / "p.npy").is_fifo()


def test_bad_pngs_are_refused_with_the_file_named(tmp_path):
    with pytest.raises(JobError) as err:
        read_png(b"GIF89a", "x.png")
    assert str(err.value) == "x.png: not a PNG file"
    pixels = np.zeros((2, 2, 1), np.uint8)
    data = bytearray(_png(pixels, 0, [0]))
    data[24] = 16  # bit depth 16
    with pytest.raises(JobError, match="only 8-bit"):
        read_png(bytes(data), "x.png")
    with pytest.raises(JobError, match="cannot be written as PNG"):
        write_array(tmp_path / "bad.png", np.zeros((2, 2, 3), np.float32))


def test_outputs_are_written_all_or_nothing(tmp_path):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(JobError, match="blocker is a file, not a folder"):
        write_arrays([(tmp_path / "new" / "first.npy", np.zeros(3)),
                      (tmp_path / "blocker" / "second.npy", np.zeros(3))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]
    (tmp_path / "adir.npy").mkdir()
    with pytest.raises(JobError, match="adir.npy: it is a directory"):
        write_arrays([(tmp_path / "new" / "first.npy", np.zeros(3)),
                      (tmp_path / "adir.npy", np.zeros(3))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.npy", "blocker"]
