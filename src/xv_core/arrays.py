"""Reading and writing the array files jobs use: ``.npy`` and ``.png``.

``.npy`` files are read with ``allow_pickle=False`` (object arrays are
refused), so a job's inputs are always data.  PNG is handled here with zlib
alone, for 8-bit greyscale, grey+alpha, RGB and RGBA, non-interlaced: an
image becomes float32 in [0, 1], shape (height, width) for greyscale and
(height, width, 4) otherwise (an ``image<f32>`` or ``image<vec4>``).
Writes are atomic: a temporary file in the same folder, then a rename.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from xv_core.errors import JobError
from xv_core.replace import give_mode, replace_problem

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> channels
MAX_PIXELS = 1 << 28


def read_array(path: str | os.PathLike[str]) -> np.ndarray:
    path = Path(path)
    if path.suffix not in (".npy", ".png"):
        raise JobError("only .npy and .png files can be loaded", where=str(path))
    try:
        if path.exists() and not path.is_file():  # a folder, a pipe (which would block), ...
            raise JobError(f"cannot read {path.suffix} file: not a regular file",
                           where=str(path))
        if path.suffix == ".npy":
            return _read_npy(path)
        return read_png(path.read_bytes(), str(path))
    except OSError as exc:
        raise JobError(f"cannot read {path.suffix} file: {exc.strerror or exc}",
                       where=str(path)) from None
    except MemoryError:
        raise JobError(f"cannot read {path.suffix} file: its array does not fit in memory",
                       where=str(path)) from None


def _read_npy(path: Path) -> np.ndarray:
    """A plain ``.npy`` array, its header checked against the file before anything is
    allocated: numpy's magic, a header it reads, no Python objects, and as many bytes of
    data as the header's shape and dtype need."""
    fmt = np.lib.format
    with path.open("rb") as fh:
        try:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(fh)
            else:
                shape, fortran, dtype = fmt._read_array_header(fh, version)
        except (ValueError, EOFError) as exc:
            raise JobError(f"not a .npy array file: {exc}", where=str(path),
                           hint="write it with numpy.save") from None
        if dtype.hasobject:
            raise JobError("not a plain .npy array: it holds Python objects, which are never "
                           "loaded", where=str(path))
        need = int(np.prod(shape, dtype=object)) * dtype.itemsize
        have = os.fstat(fh.fileno()).st_size - fh.tell()
        if have < need:
            raise JobError(f"the .npy file is cut short: its header says shape "
                           f"{list(shape)} of {dtype}, {need} bytes of data, and it holds "
                           f"{have}", where=str(path))
        fh.seek(0)
        try:
            return np.load(fh, allow_pickle=False)
        except ValueError as exc:
            raise JobError(f"not a plain .npy array: {exc}", where=str(path)) from None


def encode_check(path: Path, shape: tuple[int, ...], where: str | None = None) -> None:
    """Raise JobError when an array of ``shape`` cannot be written in the format ``path``'s
    suffix names (before it is computed)."""
    where = where or str(path)
    if path.suffix not in (".npy", ".png"):
        raise JobError("outputs must be .npy or .png files", where=where)
    if path.suffix == ".png" and not (len(shape) == 2 or (len(shape) == 3 and shape[2] == 4)):
        raise JobError(f"an array of shape {list(shape)} cannot be written as PNG", where=where,
                       hint="PNG outputs need shape (height, width) or (height, width, 4)")


def encode_array(path: Path, array: np.ndarray) -> bytes:
    """The bytes of ``array`` in the format ``path``'s suffix names."""
    encode_check(path, tuple(np.shape(array)))
    if path.suffix == ".npy":
        import io

        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        return buf.getvalue()
    return encode_png(array, str(path))


def write_array(path: str | os.PathLike[str], array: np.ndarray) -> None:
    write_arrays([(Path(path), array)])


def check_output_path(path: Path, where: str | None = None) -> None:
    """Raise JobError when a file cannot be written at ``path``: it is a directory, or a
    part of its folder is a file, or its nearest existing folder cannot be written."""
    where = where or str(path)
    if path.is_dir():
        raise JobError(f"cannot write {path}: it is a directory", where=where,
                       hint="give the path of a file, not of a folder")
    problem = replace_problem(path)
    if problem:
        raise JobError(f"cannot write {path}: {problem}", where=where)
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise JobError(f"cannot write {path}: {folder} is a file, not a folder", where=where)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise JobError(f"cannot write {path}: {folder} is not writable", where=where)
    # Permissions are not the whole story (a read-only mount, /proc, root's access to
    # everything): a file made and removed there says whether the write at the end can be.
    try:
        fd, probe = tempfile.mkstemp(prefix=".xv-probe-", dir=folder)
    except OSError as exc:
        raise JobError(f"cannot write {path}: no file can be made in {folder} "
                       f"({exc.strerror or exc})", where=where) from None
    os.close(fd)
    os.unlink(probe)


def write_arrays(items: list[tuple[Path, np.ndarray]]) -> None:
    """Write every file or none: each target is checked, all are encoded and written to
    temporary files first, then renamed into place; a failure before the renames leaves no
    trace (temporary files and the folders made for them are removed)."""
    encoded = [(Path(path), encode_array(Path(path), array)) for path, array in items]
    for path, _ in encoded:
        check_output_path(path)
    staged: list[tuple[str, Path]] = []
    made: list[Path] = []  # folders this call created, outermost first
    try:
        for path, data in encoded:
            missing = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                made.extend(reversed(missing))
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                           dir=path.parent)
                staged.append((tmp, path))
                give_mode(fd, path)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                raise JobError(f"cannot write {path}: {exc.strerror or exc}",
                               where=str(path)) from None
        for i, (tmp, path) in enumerate(staged):
            try:
                os.replace(tmp, path)
            except OSError as exc:
                staged = staged[i:]
                raise JobError(f"cannot write {path}: {exc.strerror or exc} (the outputs "
                               f"before it in the list were written)", where=str(path)) from None
        staged = []
    except BaseException:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        for folder in reversed(made):
            try:
                folder.rmdir()
            except OSError:
                pass
        raise


def read_png(data: bytes, where: str) -> np.ndarray:
    if not data.startswith(_PNG_SIGNATURE):
        raise JobError("not a PNG file", where=where)
    pos, header, idat = 8, None, []
    try:
        while pos < len(data):
            (length,) = struct.unpack(">I", data[pos : pos + 4])
            kind = data[pos + 4 : pos + 8]
            body = data[pos + 8 : pos + 8 + length]
            pos += 12 + length
            if kind == b"IHDR":
                header = struct.unpack(">IIBBBBB", body)
            elif kind == b"IDAT":
                idat.append(body)
            elif kind == b"IEND":
                break
    except struct.error:
        raise JobError("truncated PNG file", where=where) from None
    if header is None:
        raise JobError("PNG file has no header", where=where)
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in _CHANNELS or interlace != 0:
        raise JobError("only 8-bit, non-interlaced grey, grey+alpha, RGB and RGBA PNGs are supported",
                       where=where)
    if width * height > MAX_PIXELS or width == 0 or height == 0:
        raise JobError(f"PNG size {width}x{height} is out of range", where=where)
    ch = _CHANNELS[colour]
    stride = width * ch
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise JobError(f"corrupt PNG data: {exc}", where=where) from None
    if len(raw) != height * (stride + 1):
        raise JobError("PNG data does not match its header", where=where)
    rows = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.uint8)
    for y in range(height):
        f, line = rows[y, 0], rows[y, 1:].copy()
        if f == 1:
            for x in range(ch, stride):  # sub: depends on the reconstructed left neighbour
                line[x] = (int(line[x]) + int(line[x - ch])) & 0xFF
        elif f == 2:
            line = (line.astype(np.uint16) + prev).astype(np.uint8)
        elif f == 3:
            for x in range(stride):
                left = int(line[x - ch]) if x >= ch else 0
                line[x] = (int(line[x]) + ((left + int(prev[x])) >> 1)) & 0xFF
        elif f == 4:
            for x in range(stride):
                a = int(line[x - ch]) if x >= ch else 0
                c = int(prev[x - ch]) if x >= ch else 0
                b = int(prev[x])
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (int(line[x]) + pred) & 0xFF
        elif f != 0:
            raise JobError(f"PNG row {y} has unknown filter {f}", where=where)
        out[y] = line
        prev = line
    pixels = out.reshape(height, width, ch).astype(np.float32) / 255.0
    if ch == 1:
        return pixels[:, :, 0]
    rgba = np.ones((height, width, 4), np.float32)
    if ch == 2:
        rgba[:, :, :3] = pixels[:, :, :1]
        rgba[:, :, 3] = pixels[:, :, 1]
    else:
        rgba[:, :, :ch] = pixels
    return rgba


def encode_png(array: np.ndarray, where: str) -> bytes:
    """Greyscale from (h, w), RGBA from (h, w, 4); float values in [0, 1] are clamped,
    integer values are taken as 0..255."""
    a = np.asarray(array)
    if a.ndim == 2:
        colour, ch = 0, 1
    elif a.ndim == 3 and a.shape[2] == 4:
        colour, ch = 6, 4
    else:
        raise JobError(f"an array of shape {list(a.shape)} cannot be written as PNG",
                       where=where, hint="PNG outputs need shape (height, width) or (height, width, 4)")
    if a.dtype.kind == "f":
        a = np.clip(np.nan_to_num(a), 0.0, 1.0) * 255.0 + 0.5
    a = np.clip(a, 0, 255).astype(np.uint8)
    h, w = a.shape[:2]
    rows = np.zeros((h, w * ch + 1), np.uint8)
    rows[:, 1:] = a.reshape(h, w * ch)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return (_PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))
