"""Attacks through cache archives (`zoo cache import`) and local folders (`zoo import`), against the real CLI.

Each hostile archive aims at a file outside zoo's folders (a ``.pth`` file in a folder used as
site-packages, the user's shell start-up files) or at passing other bytes as verified; see tests/attacks.py
for what every attack must leave unchanged.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from attacks import Targets, attack, blobs_folder, refused, write_catalogue
from conftest import REGISTRY, WEIGHTS, Run, move_home

import zoo_core

# --- cache archives ------------------------------------------------------------------------------------


def rewrite_archive(
    source: Path,
    out: Path,
    manifest: Callable[[dict[str, Any]], None] = lambda _: None,
    members: Callable[[tarfile.TarInfo, bytes], tuple[tarfile.TarInfo, bytes]] = lambda info, data: (info, data),
    mode: str = "w",
) -> Path:
    """A copy of an archive with its manifest edited (in place by `manifest`) and members replaced."""
    with tarfile.open(source) as original, tarfile.open(out, mode) as copy:
        for member in original.getmembers():
            data = original.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "manifest.json":
                document = json.loads(data)
                manifest(document)
                data = json.dumps(document).encode()
                member.size = len(data)
            else:
                member, data = members(member, data)
                member.size = len(data) if member.isreg() else 0
            copy.addfile(member, io.BytesIO(data) if member.isreg() else None)
    return out


@pytest.fixture
def archive(zoo: Run, tiny: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A genuine archive of tiny.v1; afterwards zoo runs on a fresh machine whose catalogue lacks tiny.v1."""
    assert zoo("download", "tiny.v1")[0] == 0
    path = tmp_path / "attacker" / "models.tar"
    assert zoo("cache", "export", str(path), "tiny.v1")[0] == 0
    move_home(tmp_path, monkeypatch, "victim")
    monkeypatch.setenv("ZOO_REGISTRY", "")
    return path


def _record(document: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = document["models"][0]["record"]
    return record


def _file(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(each for each in _record(document)["files"] if each["name"] == name)


def _hostile_manifests(targets: Targets) -> dict[str, tuple[Callable[[dict[str, Any]], None], str]]:
    """Manifest edits that aimed outside the cache before the fix, with the field the error must name."""
    pth = targets.site / "evil.pth"
    snapshots = blobs_folder().parent / "snapshots"

    def set_file(field: str, value: str) -> Callable[[dict[str, Any]], None]:
        return lambda document: _file(document, "model.safetensors").update({field: value})

    def set_record(field: str, value: str) -> Callable[[dict[str, Any]], None]:
        return lambda document: _record(document).update({field: value})

    def set_name(document: dict[str, Any]) -> None:
        document["models"][0]["spec"]["name"] = "../../../../../evil"
        _record(document)["model"] = "../../../../../evil"

    return {
        "etag absolute": (set_file("etag", str(pth)), "field 'etag'"),
        "etag relative": (set_file("etag", os.path.relpath(pth, blobs_folder())), "field 'etag'"),
        "commit to ~/.bashrc": (set_record("commit", os.path.relpath(targets.home, snapshots)), "record.commit"),
        "revision to ~/.profile": (
            set_record("revision", os.path.relpath(targets.home / ".profile", snapshots.parent / "refs")),
            "record.revision",
        ),
        "file name": (set_file("name", "../../../../../home/.bashrc"), "field 'name'"),
        "model name": (set_name, "field 'name'"),
        "spec revision": (
            lambda document: document["models"][0]["spec"]["source"].update({"revision": "../../../home/.profile"}),
            "field 'source.revision'",
        ),
    }


HOSTILE_MANIFESTS = ["etag absolute", "etag relative", "commit to ~/.bashrc", "revision to ~/.profile"]


@pytest.mark.parametrize("attack_name", [*HOSTILE_MANIFESTS, "file name", "model name", "spec revision"])
def test_a_hostile_archive_manifest_writes_nothing_outside_the_cache(
    zoo: Run, archive: Path, targets: Targets, attack_name: str
) -> None:
    edit, field = _hostile_manifests(targets)[attack_name]

    def plant_payload(info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
        return info, (targets.payload if info.name.endswith("model.safetensors") else data)

    def edit_with_payload(document: dict[str, Any]) -> None:
        _file(document, "model.safetensors").update(size=len(targets.payload))
        _file(document, "model.safetensors").update(sha256=hashlib.sha256(targets.payload).hexdigest())
        edit(document)

    hostile = rewrite_archive(archive, archive.with_name("hostile.tar"), edit_with_payload, plant_payload)
    with attack(targets):
        refused(zoo("cache", "import", str(hostile)), str(hostile), field)
    assert zoo("cache", "list", "--json")[1] == "[]\n"


def test_an_archive_member_that_is_a_link_is_refused(zoo: Run, archive: Path, targets: Targets) -> None:
    def link(info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
        if info.name.endswith("config.json"):
            info.type, info.linkname, info.size = tarfile.SYMTYPE, str(targets.home / ".bashrc"), 0
        return info, data

    hostile = rewrite_archive(archive, archive.with_name("link.tar"), members=link)
    with attack(targets):
        refused(zoo("cache", "import", str(hostile)), "files/tiny.v1/config.json is a link or a folder")


def test_a_re_signed_archive_cannot_pass_other_bytes_under_the_hub_etag(
    zoo: Run, archive: Path, targets: Targets
) -> None:
    altered = bytes([WEIGHTS[0] ^ 1]) + WEIGHTS[1:]

    def alter(info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
        return info, (altered if info.name.endswith("model.safetensors") else data)

    def re_sign(document: dict[str, Any]) -> None:  # the manifest's sha256 matches; the genuine ETag stays
        _file(document, "model.safetensors")["sha256"] = hashlib.sha256(altered).hexdigest()

    hostile = rewrite_archive(archive, archive.with_name("re-signed.tar"), re_sign, alter)
    with attack(targets):
        refused(zoo("cache", "import", str(hostile)), "does not have the content its hub ETag", "nothing was installed")
    assert zoo("cache", "list", "--json")[1] == "[]\n"


def test_an_archive_cannot_replace_bytes_the_registry_pins(
    zoo: Run, archive: Path, targets: Targets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bytes, sha256 and ETag all consistent, but not what the importing machine's registry pins."""
    altered = bytes([WEIGHTS[0] ^ 1]) + WEIGHTS[1:]
    pinned = tmp_path / "pinned.toml"
    pinned.write_text(REGISTRY + f'sha256 = {{ "model.safetensors" = "{hashlib.sha256(WEIGHTS).hexdigest()}" }}\n')
    monkeypatch.setenv("ZOO_REGISTRY", str(pinned))

    def alter(info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
        return info, (altered if info.name.endswith("model.safetensors") else data)

    def re_sign(document: dict[str, Any]) -> None:
        digest = hashlib.sha256(altered).hexdigest()
        _file(document, "model.safetensors").update(sha256=digest, etag=digest)
        document["models"][0]["spec"].pop("sha256", None)

    hostile = rewrite_archive(archive, archive.with_name("re-pinned.tar"), re_sign, alter)
    with attack(targets):
        refused(zoo("cache", "import", str(hostile)), "model.safetensors has sha256", "the registry pins")


def test_a_compression_bomb_stops_before_it_is_written(zoo: Run, archive: Path, targets: Targets) -> None:
    big = 64 << 20  # compresses to ~64 kB; the manifest still says 1 MiB

    def inflate(info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
        if info.name.endswith("model.safetensors"):
            info.size = big
            return info, bytes(big)
        return info, data

    bomb = rewrite_archive(archive, archive.with_name("bomb.tar.gz"), members=inflate, mode="w:gz")
    assert bomb.stat().st_size < 1 << 20
    with attack(targets):
        refused(zoo("cache", "import", str(bomb)), f"is {big} bytes, the manifest says {len(WEIGHTS)}")
    written = [p.stat().st_size for p in Path(os.environ["HF_HOME"]).rglob("*") if p.is_file()]
    assert sum(written) < 1 << 20


@pytest.mark.parametrize(
    "content", [b"", b"not a tar archive at all", gzip.compress(b"x" * 1000)[:-20], bz2.compress(b"x" * 1000)[:-20]]
)
def test_an_unreadable_archive_is_one_line(zoo: Run, tmp_path: Path, targets: Targets, content: bytes) -> None:
    path = tmp_path / "broken.tar"
    path.write_bytes(content)
    with attack(targets):
        refused(zoo("cache", "import", str(path)), str(path))


def _altered(document: dict[str, Any], info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return info, (bytes([WEIGHTS[0] ^ 1]) + WEIGHTS[1:] if info.name.endswith("model.safetensors") else data)


def _self_consistent(document: dict[str, Any]) -> None:
    """Other bytes for model.safetensors, with a manifest whose sha256 and ETag both name them."""
    digest = hashlib.sha256(bytes([WEIGHTS[0] ^ 1]) + WEIGHTS[1:]).hexdigest()
    _file(document, "model.safetensors").update(sha256=digest, etag=digest)


def test_an_archive_is_consistent_not_verified_until_the_hub_confirms_it(
    zoo: Run, archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other bytes under the genuine commit, for an entry that pins nothing: the archive alone vouches."""
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "tiny.toml"))  # this machine knows tiny.v1, unpinned
    altered = rewrite_archive(
        archive, archive.with_name("altered.tar"), _self_consistent, lambda i, d: _altered({}, i, d)
    )
    assert zoo("cache", "import", str(altered))[0] == 0
    assert zoo("cache", "list")[1].splitlines()[1].split()[-1] == "no"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = zoo("download", "tiny.v1")
    assert code == 0 and "not verified (checked only against the digests of the archive" in err
    monkeypatch.delenv("HF_HUB_OFFLINE")
    code, out, err = zoo("download", "tiny.v1")  # online: the hub serves another ETag for this commit
    assert code == 0 and err.endswith(", verified\n")
    assert Path(out.strip(), "model.safetensors").read_bytes() == WEIGHTS
    from huggingface_hub import hf_hub_download

    plain = hf_hub_download("org/tiny", "model.safetensors", cache_dir=Path(os.environ["HF_HOME"]) / "hub")
    assert Path(plain).read_bytes() == WEIGHTS  # other users of the hub cache get the hub's bytes too


def test_a_new_model_from_an_archive_cannot_change_a_known_one(
    zoo: Run, archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new entry on tiny.v1's repo, at another commit: tiny.v1, downloaded here, keeps its files offline."""
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "tiny.toml"))
    assert zoo("download", "tiny.v1")[0] == 0

    def other_model(document: dict[str, Any]) -> None:
        _self_consistent(document)
        document["models"][0]["spec"]["name"] = _record(document)["model"] = "cool.v1"
        _record(document)["commit"] = "e" * 40

    def renamed(info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
        info.name = info.name.replace("files/tiny.v1/", "files/cool.v1/")
        return _altered({}, info, data)

    cool = rewrite_archive(archive, archive.with_name("cool.tar"), other_model, renamed)
    assert zoo("cache", "import", str(cool))[0] == 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = zoo("download", "tiny.v1")
    assert code == 0 and err.endswith(", verified\n") and Path(out.strip(), "model.safetensors").read_bytes() == WEIGHTS


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"aliases": ["TINY"]}, "'TINY' is taken by the catalogue's tiny.v1"),
        ({"name": "Tiny.V1"}, "'Tiny.V1' is taken by the catalogue's tiny.v1"),
        ({"params": 2**63}, "field 'params'"),
    ],
)
def test_a_new_model_from_an_archive_cannot_take_a_name(
    zoo: Run,
    archive: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    targets: Targets,
    change: dict[str, Any],
    message: str,
) -> None:
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "tiny.toml"))
    registry = tmp_path / "tiny.toml"
    write_catalogue(registry, registry.read_text().replace('arch = "tiny"', 'arch = "tiny"\naliases = ["tiny"]'))

    def rename(document: dict[str, Any]) -> None:
        spec = document["models"][0]["spec"]
        spec.update({"name": "cool.v1", **change})
        _record(document)["model"] = spec["name"]

    def renamed(info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
        info.name = info.name.replace("files/tiny.v1/", f"files/{change.get('name', 'cool.v1')}/")
        return info, data

    hostile = rewrite_archive(archive, archive.with_name("names.tar"), rename, renamed)
    with attack(targets):
        refused(zoo("cache", "import", str(hostile)), message, "nothing was installed")


def test_an_archive_cannot_choose_where_the_token_goes(zoo: Run, archive: Path) -> None:
    def mirror(document: dict[str, Any]) -> None:
        document["models"][0]["spec"]["source"]["endpoint"] = "https://attacker.example"

    code, _, err = zoo("cache", "import", str(rewrite_archive(archive, archive.with_name("ep.tar"), mirror)))
    assert code == 0 and "names the endpoint https://attacker.example; zoo leaves it out" in err
    code, out, _ = zoo("info", "tiny.v1", "--json")
    assert "endpoint" not in json.loads(out)["source"] or json.loads(out)["source"]["endpoint"] is None


def test_a_known_model_comes_whole(
    zoo: Run, archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, targets: Targets
) -> None:
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "tiny.toml"))

    def half(document: dict[str, Any]) -> None:
        _record(document)["files"] = [_file(document, "config.json")]

    hostile = rewrite_archive(archive, archive.with_name("half.tar"), half)
    with attack(targets):
        refused(zoo("cache", "import", str(hostile)), "the record lacks model.safetensors, which the entry needs")


def test_an_archive_cannot_add_unpinned_files_to_a_commit_held_here(
    zoo: Run, archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, targets: Targets
) -> None:
    """A new model at tiny.v1's commit, with a file tiny.v1 does not have: it would land in tiny.v1's folder."""
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "tiny.toml"))
    assert zoo("download", "tiny.v1")[0] == 0

    def addon(document: dict[str, Any]) -> None:
        document["models"][0]["spec"].update(name="addon.v1", source={"hub": "org/tiny"})
        _record(document)["model"] = "addon.v1"
        _file(document, "config.json")["name"] = "tokenizer_config.json"

    def renamed(info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
        info.name = info.name.replace("files/tiny.v1/", "files/addon.v1/").replace(
            "config.json", "tokenizer_config.json"
        )
        return info, data

    hostile = rewrite_archive(archive, archive.with_name("addon.tar"), addon, renamed)
    with attack(targets):
        refused(zoo("cache", "import", str(hostile)), "would add tokenizer_config.json, which no registry pins")


def test_an_unverified_copy_never_replaces_a_verified_one(
    zoo: Run, archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "tiny.toml"))
    assert zoo("download", "tiny.v1")[0] == 0
    assert zoo("cache", "import", str(archive)) == (0, "imported 1 model(s): tiny.v1\n", "")  # the same files
    assert zoo("cache", "list")[1].splitlines()[1].split()[-1] == "yes"

    def elsewhere(document: dict[str, Any]) -> None:
        _record(document)["commit"] = "e" * 40

    other = rewrite_archive(archive, archive.with_name("other-commit.tar"), elsewhere)
    refused(zoo("cache", "import", str(other)), "'tiny.v1' is cached here and verified; the archive's copy is not")


def test_a_manifest_cannot_name_one_model_twice(zoo: Run, archive: Path, targets: Targets) -> None:
    def twice(document: dict[str, Any]) -> None:
        second = json.loads(json.dumps(document["models"][0]))
        second["spec"]["name"] = second["record"]["model"] = "TINY.v1"
        document["models"].append(second)

    hostile = rewrite_archive(archive, archive.with_name("twice.tar"), twice)
    with attack(targets):
        refused(zoo("cache", "import", str(hostile)), "names 'tiny.v1' twice")


def _hand_made(path: Path, models: list[dict[str, Any]], members: dict[str, bytes], mode: str = "w") -> Path:
    """An archive with this manifest and these members, in this order."""
    with tarfile.open(path, mode) as tar:
        for name, data in {"manifest.json": json.dumps({"models": models}).encode(), **members}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _url_entry(files: dict[str, bytes], sizes: dict[str, int] | None = None) -> dict[str, Any]:
    """A manifest entry of a new URL model with these files (and these announced sizes)."""
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    source = {"url": "https://example.org/w", "files": list(files)}
    spec = {"name": "web.v1", "plugin": "timm", "arch": "x", "family": "x", "task": "t", "modality": "image"}
    spec |= {"input": {}, "source": source, "sha256": digests}
    sizes = {name: len(data) for name, data in files.items()} | (sizes or {})
    record_files = [{"name": name, "size": sizes[name], "sha256": digests[name]} for name in files]
    record = {"model": "web.v1", "source": "url", "repo": None, "revision": None, "commit": None, "files": record_files}
    return {"spec": spec, "record": record}


def test_a_model_installs_whole_or_not_at_all(zoo: Run, tmp_path: Path, targets: Targets, zoo_env: Path) -> None:
    """Files ``a`` and ``a/b`` cannot both be placed: the check comes before the first file moves."""
    files = {"a": b"first", "a/b": b"second"}
    path = _hand_made(tmp_path / "clash.tar", [_url_entry(files)], {f"files/web.v1/{n}": d for n, d in files.items()})
    with attack(targets):
        refused(zoo("cache", "import", str(path)), "inside another placed file")
    assert not (zoo_env / "files" / "web.v1").exists()


def test_an_archive_larger_than_the_free_space_writes_nothing(zoo: Run, tmp_path: Path, targets: Targets) -> None:
    files = {"w.bin": b"tiny"}
    entry = _url_entry(files, sizes={"w.bin": 1 << 48})  # 256 TB, the manifest says
    path = _hand_made(tmp_path / "huge.tar", [entry], {"files/web.v1/w.bin": b"tiny"})
    with attack(targets):
        refused(zoo("cache", "import", str(path)), "bytes, more than", "has free")


def test_a_bomb_whose_manifest_agrees_leaves_nothing(zoo: Run, archive: Path, targets: Targets) -> None:
    big = 64 << 20

    def inflate(info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
        return (info, bytes(big)) if info.name.endswith("model.safetensors") else (info, data)

    def agree(document: dict[str, Any]) -> None:
        _file(document, "model.safetensors")["size"] = big

    bomb = rewrite_archive(archive, archive.with_name("agreeing.tar.gz"), agree, inflate, mode="w:gz")
    with attack(targets):
        refused(zoo("cache", "import", str(bomb)), "model.safetensors has sha256", "nothing was installed")


def test_a_deeply_nested_manifest_is_one_line(zoo: Run, tmp_path: Path, targets: Targets) -> None:
    path = tmp_path / "deep.tar"
    with tarfile.open(path, "w") as tar:
        data = b'{"models": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with attack(targets):
        refused(zoo("cache", "import", str(path)), "manifest.json is not JSON zoo can read")


@pytest.mark.parametrize("tamper", [{"model": 123}, {"model": "../../x"}, {"files": [{"path": 5}]}, {"size": "big"}])
def test_a_tampered_record_is_ignored_and_pruned(zoo: Run, tiny: str, zoo_env: Path, tamper: dict[str, Any]) -> None:
    assert zoo("download", "tiny.v1")[0] == 0
    path = zoo_env / "records" / "tiny.v1.json"
    record = json.loads(path.read_text())
    if "size" in tamper:
        record["files"][0]["size"] = tamper["size"]
    else:
        record.update(tamper)
    path.write_text(json.dumps(record))
    for args in (["cache", "list"], ["cache", "verify"], ["cache", "export", str(zoo_env / "x.tar")]):
        code, out, err = zoo(*args)
        assert code == 0 and "tiny.v1" not in out and "Error" not in err, (args, out, err)
    code, out, _ = zoo("cache", "prune")
    assert code == 0 and "unreadable record" in out and not path.exists()


# --- local folders ---------------------------------------------------------------------------------------


def _every_file_of_minilm(folder: Path, config: Callable[[Path], object]) -> None:
    """Fill `folder` with every file MiniLM's entry names that is not there yet; `config` makes config.json."""
    for name in zoo_core.get("all-MiniLM-L6-v2").source.files:
        path = folder / name
        path.parent.mkdir(exist_ok=True)
        if name == "config.json":
            config(path)
        elif not path.exists():
            path.write_bytes(b"{}")


def test_import_of_a_folder_does_not_follow_links_out_of_it(
    zoo: Run, tmp_path: Path, targets: Targets, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(WEIGHTS)
    (folder / "id_ed25519").symlink_to(targets.home / ".bashrc")
    (folder / "outside").symlink_to(targets.home, target_is_directory=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with attack(targets):
        code, _, err = zoo("import", str(folder), "--name", "mine.v1", "--like", "all-MiniLM-L6-v2")
    assert code == 0 and "skipped 2 symbolic link(s)" in err
    from zoo_core.catalogue_sources import reset_catalogue

    reset_catalogue()
    code, out, _ = zoo("info", "mine.v1", "--json")
    assert json.loads(out)["source"]["files"] == ["model.safetensors"]
    assert zoo("cache", "verify")[0] == 0
    _every_file_of_minilm(folder, config=lambda path: path.symlink_to(targets.home / ".bashrc"))
    with attack(targets):
        code, _, err = zoo("import", str(folder), "--name", "all-MiniLM-L6-v2")
    assert code == 1 and err.splitlines()[-1].endswith(
        "config.json: a symbolic link, or it leads out of the folder; import its target instead"
    )
    (folder / "config.json").unlink()
    (folder / "config.json").write_bytes(b"{}")
    code, _, err = zoo("import", str(folder), "--name", "ALL-MiniLM-L6-v2")  # the catalogue's name, other case
    assert code == 0 and zoo_core.fetch("all-MiniLM-L6-v2").model == "all-MiniLM-L6-v2"


def test_import_of_a_folder_skips_odd_names_and_refuses_a_pipe(
    zoo: Run, tmp_path: Path, targets: Targets, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(WEIGHTS)
    (folder / "evil\x1b[31mname\nline2").write_bytes(b"x")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = zoo("import", str(folder), "--name", "odd.v1", "--like", "all-MiniLM-L6-v2")
    assert code == 0 and "skipped 1 symbolic link(s), special or unprintably named file(s)" in err
    assert "\x1b" not in err and json.loads(zoo("info", "odd.v1", "--json")[1])["source"]["files"] == [
        "model.safetensors"
    ]
    _every_file_of_minilm(folder, config=os.mkfifo)
    with attack(targets):
        code, _, err = zoo("import", str(folder), "--name", "all-MiniLM-L6-v2")
    assert code == 1 and err.splitlines()[-1].endswith(
        "config.json: not a regular file; zoo imports only the folder's own regular files"
    )
