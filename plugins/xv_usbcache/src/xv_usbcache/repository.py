"""Kernel repositories on removable media: finding, checking and loading them.

A kernel repository is a folder holding ``xv-kernels.json`` and ``.xvir``
files.  The manifest is JSON data, never code::

    {
      "format": "xv-kernels",
      "version": 1,
      "kernels": {
        "saxpy": {"file": "saxpy.xvir", "sha256": "<64 lowercase hex digits>"}
      }
    }

Each entry names a kernel, the ``.xvir`` file (a relative path inside the
repository) whose module defines it, and the SHA-256 of that file.  What a
stick offers is untrusted, so:

* the manifest is checked strictly (known keys only, types, kernel names,
  hex digests); a file path that is absolute, contains ``..`` or resolves
  (through symlinks) outside the repository is refused;
* a kernel file is read once, from a regular file no larger than the IR's
  limit; its bytes are hashed and compared with the manifest *before* they
  are parsed, and the same bytes are parsed by :func:`xv_core.ir.loads`,
  which only reads JSON data and runs the IR verifier -- so what was hashed
  is exactly what is loaded.  Nothing is unpickled, evaluated or executed.

Every error names the file (and the ``$.path`` in the manifest) and what
failed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

import attrs
import structlog

from xv_core import ir
from xv_core.errors import XvError, closest_name
from xv_core.ir import Kernel
from xv_core.ir.serial import MAX_FILE_BYTES

log = structlog.get_logger("xv.usbcache")

MANIFEST = "xv-kernels.json"
FORMAT = "xv-kernels"
VERSION = 1
#: A manifest larger than this is refused before it is parsed.
MAX_MANIFEST_BYTES = 1 << 20
#: How deep below a scanned path repositories are looked for (0 = the path itself).
MAX_DEPTH = 3
#: Folders a scan visits at most per path, so a huge disk cannot stall a fabric.
MAX_FOLDERS = 10_000

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TRUST_HINT = "get the repository again from its source; .xvir files are not meant to be edited"


class RepositoryError(XvError):
    """A kernel repository, its manifest or one of its files is not acceptable."""


@attrs.frozen
class Entry:
    """One kernel a repository offers: its name, file (absolute) and expected digest."""

    name: str
    file: Path
    sha256: str


@attrs.frozen
class Repository:
    """A checked manifest: the repository's folder and the kernels it offers."""

    root: Path
    manifest: Path
    entries: dict[str, Entry]

    def names(self) -> list[str]:
        return sorted(self.entries)

    def load(self, name: str) -> Kernel:
        """The verified kernel ``name``: digest checked, IR parsed and verified."""
        entry = self.entries.get(name)
        if entry is None:
            raise RepositoryError(f"offers no kernel {name!r} (offered: "
                                  f"{', '.join(self.names()) or 'none'})", where=str(self.manifest))
        data = read_verified(entry.file, entry.sha256)
        module = ir.loads(data, where=str(entry.file))
        kernel = module.kernel(name)
        if kernel is None:
            defined = ", ".join(k.name for k in module.kernels) or "none"
            raise RepositoryError(f"defines no kernel {name!r} (defined: {defined}), but the "
                                  f"manifest says it does", where=str(entry.file),
                                  hint=f"fix $.kernels.{name} in {self.manifest}")
        return kernel


def read_verified(path: Path, sha256: str) -> bytes:
    """The bytes of regular file ``path`` if their SHA-256 is ``sha256``; RepositoryError if not."""
    where = str(path)
    try:
        # O_NONBLOCK: opening a FIFO planted on the stick must not hang; O_NOFOLLOW: the file
        # checked to lie inside the repository cannot be swapped for a symlink.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise RepositoryError(f"cannot open kernel file: {exc.strerror}", where=where,
                              hint=_TRUST_HINT) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise RepositoryError("is not a regular file", where=where, hint=_TRUST_HINT)
        if info.st_size > MAX_FILE_BYTES:
            raise RepositoryError(f"is larger than {MAX_FILE_BYTES >> 20} MiB", where=where)
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > MAX_FILE_BYTES:  # grew while being read
                raise RepositoryError(f"is larger than {MAX_FILE_BYTES >> 20} MiB", where=where)
            chunks.append(chunk)
    except OSError as exc:
        raise RepositoryError(f"cannot read kernel file: {exc.strerror}", where=where) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise RepositoryError(f"sha256 {actual[:16]}… does not match the manifest's "
                              f"{sha256[:16]}…: the file was changed or damaged",
                              where=where, hint=_TRUST_HINT)
    return data


# -- manifests --------------------------------------------------------------------------------


def _fail(manifest: Path, path: str, message: str, hint: str | None = None) -> RepositoryError:
    return RepositoryError(message, where=f"{manifest}: {path}", hint=hint)


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), "?")


def _key_path(name: str) -> str:
    return f"$.kernels.{name}" if _NAME.fullmatch(name) else f"$.kernels[{json.dumps(name)}]"


def read_manifest(manifest: str | os.PathLike[str]) -> Repository:
    """Check the manifest at ``manifest`` and return its repository (files are not read yet)."""
    manifest = Path(manifest)
    where = str(manifest)
    try:
        info = manifest.lstat()
        if not stat.S_ISREG(info.st_mode):
            raise RepositoryError("the manifest is not a regular file (symlinks are refused)",
                                  where=where, hint=_TRUST_HINT)
        if info.st_size > MAX_MANIFEST_BYTES:
            raise RepositoryError(f"the manifest is larger than {MAX_MANIFEST_BYTES >> 20} MiB",
                                  where=where)
        with open(manifest, "rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise RepositoryError(f"cannot read the manifest: {exc.strerror}", where=where) from None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise RepositoryError(f"the manifest is not valid JSON: {exc}", where=where,
                              hint=_TRUST_HINT) from None
    if not isinstance(data, dict):
        raise _fail(manifest, "$", f"expected an object, got {_kind(data)}")
    unknown = sorted(set(data) - {"format", "version", "kernels"})
    if unknown:
        raise _fail(manifest, f"$.{unknown[0]}" if _NAME.fullmatch(unknown[0]) else "$",
                    f"unknown key {unknown[0]!r}", hint="keys are format, version and kernels")
    if data.get("format") != FORMAT:
        raise _fail(manifest, "$.format", f"expected {FORMAT!r}, got {data.get('format')!r}")
    version = data.get("version")
    if isinstance(version, bool) or version != VERSION:
        raise _fail(manifest, "$.version", f"version {version!r} is not supported "
                    f"(this Xenovectra reads version {VERSION})")
    kernels = data.get("kernels")
    if not isinstance(kernels, dict):
        raise _fail(manifest, "$.kernels", f"expected an object, got {_kind(kernels)}")

    root = manifest.parent.resolve()
    entries: dict[str, Entry] = {}
    for name, spec in kernels.items():
        path = _key_path(name)
        if not _NAME.fullmatch(name):
            raise _fail(manifest, path, f"{name!r} is not a kernel name",
                        hint="a kernel name is a letter or _ then letters, digits or _")
        if not isinstance(spec, dict):
            raise _fail(manifest, path, f"expected an object, got {_kind(spec)}")
        unknown = sorted(set(spec) - {"file", "sha256"})
        if unknown:
            raise _fail(manifest, f"{path}.{unknown[0]}", f"unknown key {unknown[0]!r}",
                        hint="an entry has file and sha256")
        file = spec.get("file")
        digest = spec.get("sha256")
        if not isinstance(file, str):
            raise _fail(manifest, f"{path}.file", f"expected a relative path, got {_kind(file)}")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise _fail(manifest, f"{path}.sha256",
                        f"expected 64 lowercase hex digits, got {digest!r}")
        entries[name] = Entry(name, _inside(root, manifest, f"{path}.file", file), digest)
    return Repository(root, manifest, entries)


def _inside(root: Path, manifest: Path, path: str, file: str) -> Path:
    """``file`` resolved inside ``root``, or a RepositoryError saying why it is refused."""
    hint = "a manifest may only name .xvir files inside its own folder"
    pure = PurePosixPath(file)
    if not file or "\x00" in file or "\\" in file:
        raise _fail(manifest, path, f"invalid path {file!r}", hint)
    if pure.is_absolute():
        raise _fail(manifest, path, f"absolute path {file!r} is refused", hint)
    if ".." in pure.parts:
        raise _fail(manifest, path, f"path {file!r} leaves the repository", hint)
    if pure.suffix != ".xvir":
        raise _fail(manifest, path, f"{file!r} is not a .xvir file", hint)
    resolved = (root / pure).resolve()
    if not resolved.is_relative_to(root):
        raise _fail(manifest, path, f"path {file!r} leads outside the repository (through a "
                    f"symlink) to {resolved}", hint)
    return resolved


# -- scanning ---------------------------------------------------------------------------------


def scan(paths: Iterable[str | os.PathLike[str]]) -> list[Repository]:
    """Every repository at or below each path (at most ``MAX_DEPTH`` folders down).

    Missing paths are skipped (the device is not plugged in).  Symlinked
    folders are not followed.  Order: paths in the order given, then folders
    in name order.  A manifest that is not acceptable raises RepositoryError
    naming it: a hostile or broken stick is reported, never half-used.
    """
    found: list[Repository] = []
    seen: set[Path] = set()
    for base in paths:
        base = Path(base)
        if not base.is_dir():
            log.info("kernel repository path not present", path=str(base))
            continue
        for manifest in _manifests(base):
            key = manifest.resolve()
            if key not in seen:
                seen.add(key)
                found.append(read_manifest(manifest))
    for repo in found:
        log.debug("kernel repository", manifest=str(repo.manifest), kernels=repo.names())
    return found


def _manifests(base: Path) -> list[Path]:
    out: list[Path] = []
    queue: list[tuple[Path, int]] = [(base, 0)]
    visited = 0
    while queue and visited < MAX_FOLDERS:
        folder, depth = queue.pop(0)
        visited += 1
        try:
            children = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue  # unreadable folder: nothing of ours can be in it
        for child in children:
            if child.name == MANIFEST and child.is_file(follow_symlinks=False):
                out.append(Path(child.path))
            elif depth < MAX_DEPTH and child.is_dir(follow_symlinks=False):
                queue.append((Path(child.path), depth + 1))
    if visited >= MAX_FOLDERS and queue:
        log.warning("kernel repository scan stopped early", path=str(base), folders=visited)
    return out


# -- the cache ---------------------------------------------------------------------------------


class KernelCache:
    """The kernels of several repositories, verified on first use and then kept.

    Two repositories offering one kernel name are fine when the digests
    agree (the first is used); different digests are a RepositoryError
    naming both manifests.  Thread-safe.
    """

    def __init__(self, repositories: Sequence[Repository]):
        self.repositories = list(repositories)
        self._where: dict[str, Repository] = {}
        for repo in self.repositories:
            for name, entry in repo.entries.items():
                first = self._where.get(name)
                if first is None:
                    self._where[name] = repo
                elif first.entries[name].sha256 != entry.sha256:
                    raise RepositoryError(
                        f"kernel {name!r} is offered by both {first.manifest} and "
                        f"{repo.manifest}, with different contents",
                        where=f"kernel {name!r}", hint="remove or unplug one of the two")
        self._loaded: dict[str, Kernel] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_paths(cls, paths: Iterable[str | os.PathLike[str]]) -> KernelCache:
        return cls(scan(paths))

    def names(self) -> list[str]:
        return sorted(self._where)

    def __contains__(self, name: object) -> bool:
        return name in self._where

    def repository_of(self, name: str) -> Repository:
        return self._where[name]

    def get(self, name: str) -> Kernel:
        """The verified kernel ``name``; RepositoryError when no repository offers it,
        or its file fails the digest or the IR verifier."""
        with self._lock:
            kernel = self._loaded.get(name)
            if kernel is not None:
                return kernel
            repo = self._where.get(name)
            if repo is None:
                offered = ", ".join(self.names()) or "none"
                close = closest_name(name, self.names())
                hint = f"did you mean {close!r}?" if close else "plug in the stick that has it"
                raise RepositoryError(f"no kernel repository offers {name!r} "
                                      f"(offered: {offered})", where=f"kernel {name!r}",
                                      hint=hint)
            kernel = repo.load(name)
            self._loaded[name] = kernel
            log.debug("kernel loaded from repository", kernel=name, manifest=str(repo.manifest))
            return kernel
