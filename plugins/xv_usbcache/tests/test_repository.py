"""Scanning, verifying and loading kernel repositories -- including hostile ones."""

import json
import os
from pathlib import Path

import pytest

from xv_core import ir
from xv_core.errors import IRError
from xv_core.ir import Module
from xv_usbcache import repository
from xv_usbcache.repository import KernelCache, RepositoryError, read_manifest, scan

# The helpers (make_repo, scale_ir, sha) come from conftest.py through the ``lib`` fixture.


def rewrite(manifest: Path, change) -> None:
    data = json.loads(manifest.read_text())
    change(data)
    manifest.write_text(json.dumps(data))


def test_scan_finds_repositories_below_mount_points(tmp_path, repo, lib):
    other = lib.make_repo(tmp_path / "media" / "OTHER", {"other": lib.scale_ir("other")})
    too_deep = lib.make_repo(tmp_path / "media" / "A" / "B" / "C" / "D",
                            {"deep": lib.scale_ir("deep")})
    repos = scan([tmp_path / "media", tmp_path / "not-plugged-in"])
    assert [r.manifest for r in repos] == [other, repo]  # folder name order: OTHER < STICK
    assert too_deep not in [r.manifest for r in repos]
    assert repos[1].names() == ["scale", "triple"]
    assert repos[1].root == repo.parent.resolve()


def test_scan_of_the_repository_folder_itself_and_duplicates(repo):
    repos = scan([repo.parent, repo.parent.parent])
    assert [r.manifest for r in repos] == [repo]


def test_get_returns_the_verified_kernel(tmp_path, repo, lib):
    cache = KernelCache(scan([tmp_path / "media"]))
    assert cache.names() == ["scale", "triple"]
    kernel = cache.get("triple")
    assert kernel == lib.scale_ir("triple", 3.0)
    assert cache.get("triple") is kernel  # loaded once
    assert cache.repository_of("scale").manifest == repo


def test_unknown_kernel(tmp_path, repo):
    cache = KernelCache(scan([tmp_path / "media"]))
    with pytest.raises(RepositoryError) as err:
        cache.get("tripel")
    assert str(err.value) == ("kernel 'tripel': no kernel repository offers 'tripel' (offered: "
                              "scale, triple) (hint: did you mean 'triple'?)")


def test_tampered_file_is_refused(tmp_path, repo, lib):
    file = repo.parent / "scale.xvir"
    expected = lib.sha(file)
    text = file.read_text().replace("2.0", "20.0")  # a kernel that now scales by 20
    file.write_text(text)
    ir.loads(text)  # still perfectly valid IR: only the digest can tell
    cache = KernelCache(scan([tmp_path / "media"]))
    with pytest.raises(RepositoryError) as err:
        cache.get("scale")
    actual = lib.sha(file)
    assert str(err.value) == (
        f"{file.resolve()}: sha256 {actual[:16]}… does not match the manifest's "
        f"{expected[:16]}…: the file was changed or damaged (hint: get the repository again "
        f"from its source; .xvir files are not meant to be edited)"
    )
    assert cache.get("triple").name == "triple"  # the untouched kernel still loads


def test_a_matching_digest_does_not_excuse_invalid_ir(tmp_path, lib):
    root = tmp_path / "r"
    manifest = lib.make_repo(root, {"scale": lib.scale_ir()})
    bad = json.loads((root / "scale.xvir").read_text())
    bad["kernels"][0]["body"][3][0][0] = "launch_missiles"  # an op that does not exist
    (root / "scale.xvir").write_text(json.dumps(bad))
    rewrite(manifest, lambda d: d["kernels"]["scale"].update(sha256=lib.sha(root / "scale.xvir")))
    with pytest.raises(IRError, match=r"scale.xvir: \$.kernels\[0\].body\[3\]\[0\]\[0\]: "
                                      r"unknown op 'launch_missiles'"):
        KernelCache(scan([root])).get("scale")


def test_manifest_naming_a_kernel_its_file_lacks(tmp_path, lib):
    root = tmp_path / "r"
    manifest = lib.make_repo(root, {"scale": lib.scale_ir()})
    rewrite(manifest, lambda d: d["kernels"].update(blur=d["kernels"]["scale"]))
    with pytest.raises(RepositoryError) as err:
        KernelCache(scan([root])).get("blur")
    assert str(err.value) == (f"{(root / 'scale.xvir').resolve()}: defines no kernel 'blur' "
                              f"(defined: scale), but the manifest says it does (hint: fix "
                              f"$.kernels.blur in {manifest})")


@pytest.mark.parametrize("file,message", [
    ("../outside.xvir", "path '../outside.xvir' leaves the repository"),
    ("sub/../../outside.xvir", "path 'sub/../../outside.xvir' leaves the repository"),
    ("/etc/passwd.xvir", "absolute path '/etc/passwd.xvir' is refused"),
    ("..\\outside.xvir", "invalid path '..\\\\outside.xvir'"),
    ("scale.py", "'scale.py' is not a .xvir file"),
    ("", "invalid path ''"),
])
def test_hostile_paths_are_refused(tmp_path, file, message, lib):
    (tmp_path / "outside.xvir").write_text("{}")
    manifest = lib.make_repo(tmp_path / "stick", {"scale": lib.scale_ir()})
    rewrite(manifest, lambda d: d["kernels"]["scale"].update(file=file))
    with pytest.raises(RepositoryError) as err:
        scan([tmp_path / "stick"])
    assert str(err.value) == (f"{manifest}: $.kernels.scale.file: {message} (hint: a manifest "
                              f"may only name .xvir files inside its own folder)")


def test_symlink_leading_outside_is_refused(tmp_path, lib):
    secret = tmp_path / "secret.xvir"
    ir.save(Module((lib.scale_ir(),)), secret)
    manifest = lib.make_repo(tmp_path / "stick", {"scale": lib.scale_ir()})
    (tmp_path / "stick" / "link.xvir").symlink_to(secret)
    rewrite(manifest, lambda d: d["kernels"]["scale"].update(file="link.xvir",
                                                             sha256=lib.sha(secret)))
    with pytest.raises(RepositoryError, match=r"\$.kernels.scale.file: path 'link.xvir' leads "
                                              r"outside the repository \(through a symlink\)"):
        read_manifest(manifest)


def test_symlinked_manifest_is_refused(tmp_path, lib):
    real = lib.make_repo(tmp_path / "elsewhere", {"scale": lib.scale_ir()})
    (tmp_path / "stick").mkdir()
    (tmp_path / "stick" / "xv-kernels.json").symlink_to(real)
    assert scan([tmp_path / "stick"]) == []  # a scan never follows it
    with pytest.raises(RepositoryError, match="the manifest is not a regular file"):
        read_manifest(tmp_path / "stick" / "xv-kernels.json")


def test_fifo_in_place_of_a_kernel_file_does_not_hang(tmp_path, lib):
    manifest = lib.make_repo(tmp_path / "stick", {"scale": lib.scale_ir()})
    (tmp_path / "stick" / "scale.xvir").unlink()
    os.mkfifo(tmp_path / "stick" / "scale.xvir")
    with pytest.raises(RepositoryError, match=r"scale.xvir: is not a regular file"):
        KernelCache([read_manifest(manifest)]).get("scale")


@pytest.mark.parametrize("change,where,message", [
    (lambda d: d.update(format="pickle"), "$.format", "expected 'xv-kernels', got 'pickle'"),
    (lambda d: d.update(version=2), "$.version",
     "version 2 is not supported (this Xenovectra reads version 1)"),
    (lambda d: d.update(version=True), "$.version", "version True is not supported"),
    (lambda d: d.update(exec="rm -rf /"), "$.exec", "unknown key 'exec'"),
    (lambda d: d.update(kernels=[]), "$.kernels", "expected an object, got a list"),
    (lambda d: d["kernels"].update({"bad name": {}}), '$.kernels["bad name"]',
     "'bad name' is not a kernel name"),
    (lambda d: d["kernels"]["scale"].update(loader="pickle"), "$.kernels.scale.loader",
     "unknown key 'loader'"),
    (lambda d: d["kernels"]["scale"].update(sha256="ABC"), "$.kernels.scale.sha256",
     "expected 64 lowercase hex digits, got 'ABC'"),
    (lambda d: d["kernels"]["scale"].update(file=7), "$.kernels.scale.file",
     "expected a relative path, got a number"),
])
def test_bad_manifests(tmp_path, change, where, message, lib):
    manifest = lib.make_repo(tmp_path / "stick", {"scale": lib.scale_ir()})
    rewrite(manifest, change)
    with pytest.raises(RepositoryError) as err:
        read_manifest(manifest)
    assert str(err.value).startswith(f"{manifest}: {where}: {message}")


def test_manifest_that_is_not_json_or_too_large(tmp_path, monkeypatch, lib):
    manifest = lib.make_repo(tmp_path / "stick", {"scale": lib.scale_ir()})
    manifest.write_text("{'format': 'xv-kernels'")
    with pytest.raises(RepositoryError, match=r"^.*xv-kernels.json: the manifest is not valid "
                                              r"JSON: Expecting property name"):
        scan([tmp_path / "stick"])
    monkeypatch.setattr(repository, "MAX_MANIFEST_BYTES", 10)
    with pytest.raises(RepositoryError, match="the manifest is larger than"):
        read_manifest(manifest)


def test_same_kernel_on_two_sticks(tmp_path, lib):
    a = lib.make_repo(tmp_path / "a", {"scale": lib.scale_ir()})
    # identical contents: fine, the first is used
    lib.make_repo(tmp_path / "b", {"scale": lib.scale_ir()})
    cache = KernelCache(scan([tmp_path / "a", tmp_path / "b"]))
    assert cache.repository_of("scale").manifest == a
    c = lib.make_repo(tmp_path / "c", {"scale": lib.scale_ir("scale", 5.0)})
    with pytest.raises(RepositoryError) as err:
        KernelCache(scan([tmp_path / "a", tmp_path / "c"]))
    assert str(err.value) == (f"kernel 'scale': kernel 'scale' is offered by both {a} and {c}, "
                              f"with different contents (hint: remove or unplug one of the two)")


def test_nothing_is_ever_unpickled_or_evaluated():
    source = Path(repository.__file__).read_text()
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))
    body = code.split('"""', 2)[2]  # past the module docstring, which names what is avoided
    for word in ("pickle", "eval(", "exec(", "marshal", "importlib", "__import__"):
        assert word not in body
