"""Attacks on zoo's trust boundary, each played against the real CLI and the real huggingface_hub client.

The attacker controls a registry file, a hub or mirror (the test server lies in its ETag and
X-Repo-Commit headers), or a cache archive. Each payload aims at a file outside zoo's folders: a ``.pth``
file in a folder used as site-packages (it would run on the next Python start) or the user's shell
start-up files. Every test asserts a one-line error naming the culprit and the field, exit 1, nothing
written or changed anywhere under the test's temporary root outside ``ZOO_HOME``/``HF_HOME``, no marker
created by the payload, and nothing unverified left in the cache.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import CONFIG, REGISTRY, WEIGHTS, Run, move_home

import zoo_core
from zoo_core.hashing import matches_etag
from zoo_core.testing.hub import HubServer


@dataclass
class Targets:
    """What the payloads aim at, and the marker a payload would create if it ever ran."""

    root: Path  # the test's temporary root: nothing outside ZOO_HOME/HF_HOME may change under it
    site: Path  # a folder used as site-packages
    home: Path  # $HOME, with .bashrc and .profile
    marker: Path

    @property
    def payload(self) -> bytes:
        """A .pth line: Python runs it at start-up when the file lies in a site folder."""
        return f"import pathlib; pathlib.Path({str(self.marker)!r}).touch()\n".encode()


@pytest.fixture
def targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Targets:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("# the user's bashrc\n")
    (home / ".profile").write_text("# the user's profile\n")
    monkeypatch.setenv("HOME", str(home))
    site = tmp_path / "site"
    site.mkdir()
    return Targets(tmp_path, site, home, tmp_path / "PWNED")


def _zoo_folders() -> list[Path]:
    return [Path(os.environ["ZOO_HOME"]).resolve(), Path(os.environ["HF_HOME"]).resolve()]


def _snapshot(root: Path) -> dict[str, str]:
    """Every entry under `root` except zoo's own folders: a link's target or a file's sha256."""
    skipped = _zoo_folders()
    found = {}
    for top, folders, files in os.walk(root):
        base = Path(top)
        folders[:] = [each for each in folders if (base / each).resolve() not in skipped]
        for name in folders + files:
            path = base / name
            if path.is_symlink():
                found[str(path)] = f"link to {path.readlink()}"
            elif path.is_file():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif not any(folder.is_relative_to(path.resolve()) for folder in skipped):  # zoo's folders' parents
                found[str(path)] = "folder"
    return found


def assert_cache_clean() -> None:
    """Nothing unverified stays: every hub blob has the content its name (the ETag) promises, every
    snapshot link leads to a blob, and no staging file is left behind."""
    hub_cache = Path(os.environ["HF_HOME"]) / "hub"
    for path in hub_cache.rglob("*") if hub_cache.exists() else []:
        if path.parent.name == "blobs":
            assert matches_etag(path, path.name, hashlib.sha256(path.read_bytes()).hexdigest()), path
        if "snapshots" in path.parts and path.is_symlink():
            assert path.resolve().parent.name == "blobs" and path.resolve().is_file(), path
        assert not path.name.endswith((".incomplete", ".tmp")), path
    files = Path(os.environ["ZOO_HOME"]) / "files"
    assert not [path for path in files.rglob("*.incomplete")] if files.exists() else True


@contextmanager
def attack(targets: Targets) -> Iterator[None]:
    """Run an attack; afterwards, nothing outside zoo's folders has changed and the payload never ran."""
    before = _snapshot(targets.root)
    yield
    assert _snapshot(targets.root) == before
    subprocess.run([sys.executable, "-S", "-c", f"import site; site.addsitedir({str(targets.site)!r})"], check=True)
    assert not targets.marker.exists()
    assert_cache_clean()


def write_catalogue(path: Path, text: str) -> None:
    """Rewrite a registry file the catalogue reads, and have the next command read it again."""
    from zoo_core.sources import reset_catalogue

    path.write_text(text)
    reset_catalogue()


def refused(result: tuple[int, str, str], *fragments: str) -> None:
    code, out, err = result
    assert code == 1 and out == "", result
    assert err.startswith("Error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


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


def _blobs_folder() -> Path:
    return Path(os.environ["HF_HOME"]) / "hub" / "models--org--tiny" / "blobs"


def _hostile_manifests(targets: Targets) -> dict[str, tuple[Callable[[dict[str, Any]], None], str]]:
    """Manifest edits that aimed outside the cache before the fix, with the field the error must name."""
    pth = targets.site / "evil.pth"
    snapshots = _blobs_folder().parent / "snapshots"

    def set_file(field: str, value: str) -> Callable[[dict[str, Any]], None]:
        return lambda document: _file(document, "model.safetensors").update({field: value})

    def set_record(field: str, value: str) -> Callable[[dict[str, Any]], None]:
        return lambda document: _record(document).update({field: value})

    def set_name(document: dict[str, Any]) -> None:
        document["models"][0]["spec"]["name"] = "../../../../../evil"
        _record(document)["model"] = "../../../../../evil"

    return {
        "etag absolute": (set_file("etag", str(pth)), "field 'etag'"),
        "etag relative": (set_file("etag", os.path.relpath(pth, _blobs_folder())), "field 'etag'"),
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
        refused(zoo("cache", "import", str(hostile)), "does not have the content its hub ETag", "nothing of")
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


@pytest.mark.parametrize("content", [b"", b"not a tar archive at all", gzip.compress(b"x" * 1000)[:-20]])
def test_an_unreadable_archive_is_one_line(zoo: Run, tmp_path: Path, targets: Targets, content: bytes) -> None:
    path = tmp_path / "broken.tar"
    path.write_bytes(content)
    with attack(targets):
        refused(zoo("cache", "import", str(path)), str(path))


# --- registries ----------------------------------------------------------------------------------------


def test_a_registry_revision_cannot_name_a_file_outside_the_cache(
    zoo: Run, tiny: str, targets: Targets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile = tmp_path / "attacker" / "registry.toml"
    hostile.parent.mkdir()
    hostile.write_text(REGISTRY.replace("files = [", 'revision = "../../../../../home/.profile", files = ['))
    with attack(targets):
        refused(zoo("download", "tiny.v1", "--revision", "../../../../home/.profile"), "is not a revision")
        monkeypatch.setenv("ZOO_REGISTRY", "")  # the hostile file is the only entry for tiny.v1
        code, out, err = zoo("--registry", str(hostile), "download", "tiny.v1")
        assert code == 1 and out == "" and err.splitlines()[-1].startswith("Error: 'tiny.v1' is not in the catalogue")
        assert f"its entry was skipped, {hostile}:2: model 'tiny.v1': field 'source.revision'" in err


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "../../x"), ("source.hub", "../../x"), ("source.files", "/etc/passwd"), ("source.endpoint", "file:///")],
)
def test_registry_values_that_would_become_paths_are_refused(
    zoo: Run, tmp_path: Path, targets: Targets, field: str, value: str
) -> None:
    entry = {"name": "evil.v1", "source": {"hub": "org/evil", "files": ["model.safetensors"]}}
    section, _, key = field.rpartition(".")
    (entry[section] if section else entry)[key] = [value] if key == "files" else value  # type: ignore[index]
    source = ", ".join(f"{k} = {json.dumps(v)}" for k, v in entry["source"].items())  # type: ignore[union-attr]
    path = tmp_path / "hostile.toml"
    path.write_text(
        f'[[model]]\nname = {json.dumps(entry["name"])}\nplugin = "timm"\narch = "x"\nfamily = "x"\n'
        f'task = "image-classification"\nmodality = "image"\nsource = {{ {source} }}\ninput = {{}}\n'
    )
    with attack(targets):
        code, out, err = zoo("--registry", str(path), "list")
    assert code == 0  # a bad entry is skipped, with a warning; the rest of the catalogue works
    assert f"{path}:1: model" in err and f"field '{field}'" in err
    assert "evil" not in out


# --- hostile hubs and mirrors --------------------------------------------------------------------------


def _use_mirror(how: str, hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point tiny.v1 at the server the way `how` says: HF_ENDPOINT, source.endpoint or a file-level endpoint."""
    registry = Path(os.environ["ZOO_REGISTRY"])
    if how == "HF_ENDPOINT":
        return
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the default hub is not the one that lies
    text = REGISTRY
    if how == "source.endpoint":
        text = text.replace("files = [", f'endpoint = "{hub.url}", files = [')
    else:
        text = f'endpoint = "{hub.url}"\n' + text
    write_catalogue(registry, text)


@pytest.mark.parametrize(
    ("header", "aim"),
    [("ETag", "relative"), ("ETag", "absolute"), ("X-Linked-Etag", "relative"), ("X-Repo-Commit", "relative")],
)
def test_a_hub_whose_headers_are_paths_is_refused_before_anything_is_written(
    zoo: Run, hub: HubServer, tiny: str, targets: Targets, header: str, aim: str
) -> None:
    pth = targets.site / "evil.pth"
    folder = _blobs_folder() if header != "X-Repo-Commit" else _blobs_folder().parent / "snapshots"
    value = str(pth) if aim == "absolute" else os.path.relpath(pth, folder)
    hub.add_repo("org/tiny", {"config.json": CONFIG, "model.safetensors": targets.payload})
    hub.lie("org/tiny", "config.json", **{header: f'"{value}"' if "Etag" in header.title() else value})
    with attack(targets):
        refused(zoo("download", "tiny.v1"), f"the server {hub.url} sent {header}", "zoo refuses this server")
    assert not pth.exists()


@pytest.mark.parametrize("how", ["HF_ENDPOINT", "source.endpoint", "file endpoint"])
def test_every_way_of_naming_a_mirror_is_guarded(
    zoo: Run, hub: HubServer, tiny: str, targets: Targets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    _use_mirror(how, hub, tmp_path, monkeypatch)
    hub.lie("org/tiny", "config.json", ETag=f'"{os.path.relpath(targets.site / "evil.pth", _blobs_folder())}"')
    with attack(targets):
        refused(zoo("download", "tiny.v1"), f"the server {hub.url} sent ETag")


def test_a_commit_in_a_404_cannot_name_a_folder(
    zoo: Run, hub: HubServer, tiny: str, targets: Targets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client records a missing file under ``.no_exist/<X-Repo-Commit>/`` of the 404."""
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "missing.toml"))
    write_catalogue(tmp_path / "missing.toml", REGISTRY.replace('"config.json"', '"absent.json"'))
    hub.lie("org/tiny", "absent.json", **{"X-Repo-Commit": "../../../../../home"})
    with attack(targets):
        refused(zoo("download", "tiny.v1"), "X-Repo-Commit", "is not a commit")


@pytest.mark.parametrize("pinned", [False, True])
def test_an_etag_naming_an_existing_file_neither_adopts_nor_deletes_it(
    zoo: Run, hub: HubServer, tiny: str, targets: Targets, tmp_path: Path, pinned: bool
) -> None:
    """Before: an unpinned entry took the user's file as the model (and `cache export` packed it);
    a pinned one deleted it."""
    secret = targets.home / ".ssh" / "id_ed25519"
    secret.parent.mkdir()
    secret.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY-----\n")
    if pinned:
        pin = f'sha256 = {{ "config.json" = "{hashlib.sha256(CONFIG).hexdigest()}" }}\n'
        write_catalogue(Path(os.environ["ZOO_REGISTRY"]), REGISTRY + pin)
    hub.lie("org/tiny", "config.json", ETag=f'"{os.path.relpath(secret, _blobs_folder())}"')
    with attack(targets):
        refused(zoo("download", "tiny.v1"), "sent ETag")
        refused(zoo("cache", "export", str(tmp_path / "out.tar"), "tiny.v1"), "'tiny.v1' is not in the cache")
    assert secret.read_bytes().startswith(b"-----BEGIN")


def test_a_file_listing_cannot_name_a_path_outside_the_repo(
    zoo: Run, hub: HubServer, tiny: str, targets: Targets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spec without `files` takes the server's listing of the repo."""
    hub.add_repo("org/tiny", {"config.json": CONFIG, "../../../../../site/evil.pth": targets.payload})
    registry = tmp_path / "whole-repo.toml"
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    write_catalogue(registry, REGISTRY.replace(', files = ["config.json", "model.safetensors"]', ""))
    with attack(targets):
        refused(zoo("download", "tiny.v1"), f"the server {hub.url} listed a file", "not a safe file name")


# --- "verified" means verified -------------------------------------------------------------------------


def _url_model(tmp_path: Path, data: bytes) -> Path:
    """tiny-url.v1 from a local file holding `data`, pinned to its sha256; returns the file."""
    weights = tmp_path / "published" / "weights.bin"
    weights.parent.mkdir(exist_ok=True)
    weights.write_bytes(data)
    entry = REGISTRY.replace("tiny.v1", "tiny-url.v1").replace(
        'hub = "org/tiny", files = ["config.json", "model.safetensors"]', f'url = "{weights}"'
    )
    pin = f'sha256 = {{ "weights.bin" = "{hashlib.sha256(data).hexdigest()}" }}\n'
    write_catalogue(Path(os.environ["ZOO_REGISTRY"]), entry + pin)
    return weights


def test_a_url_model_whose_registry_digest_changes_gets_the_new_bytes(
    zoo: Run, tiny: str, tmp_path: Path, zoo_env: Path
) -> None:
    """Before: `zoo download` kept the old bytes, printed "verified" and recorded the new sha256."""
    _url_model(tmp_path, b"old weights")
    assert zoo("download", "tiny-url.v1")[0] == 0
    _url_model(tmp_path, b"new weights")  # a plugin ships new weights under the same file name
    assert zoo("cache", "list")[1].splitlines()[1].split()[-1] == "stale"
    code, out, _ = zoo("cache", "verify")
    assert code == 1 and "stale" in out
    code, out, err = zoo("download", "tiny-url.v1")
    assert code == 0 and "verified" in err
    assert Path(out.strip(), "weights.bin").read_bytes() == b"new weights"
    assert zoo("cache", "verify")[0] == 0 and zoo("cache", "list")[1].splitlines()[1].split()[-1] == "yes"


@pytest.mark.parametrize("source", ["hub", "url"])
def test_a_cached_file_changed_in_place_is_not_called_verified(
    zoo: Run, tiny: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    if source == "url":
        _url_model(tmp_path, WEIGHTS)
    name = "tiny.v1" if source == "hub" else "tiny-url.v1"
    code, out, _ = zoo("download", name)
    cached = Path(out.strip(), "model.safetensors" if source == "hub" else "weights.bin").resolve()
    cached.chmod(0o644)
    cached.write_bytes(bytes([WEIGHTS[0] ^ 1]) + WEIGHTS[1:])  # same size
    assert zoo("cache", "list")[1].splitlines()[1].split()[-1] == "changed"
    code, out, _ = zoo("cache", "verify")
    assert code == 1 and "corrupt" in out
    if source == "hub":  # offline, the bad copy cannot be replaced: say so, keep nothing unverified
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        refused(zoo("download", name), "no longer matches its hub digest", "download it again with network")
        monkeypatch.delenv("HF_HUB_OFFLINE")
    code, out, err = zoo("download", name)
    assert code == 0 and "verified" in err
    assert cached.read_bytes() == WEIGHTS
    assert zoo("cache", "verify")[0] == 0


def test_touching_a_file_makes_list_ask_for_verify_and_verify_settles_it(zoo: Run, tiny: str) -> None:
    out = zoo("download", "tiny.v1")[1]
    os.utime(Path(out.strip(), "config.json").resolve())
    assert zoo("cache", "list")[1].splitlines()[1].split()[-1] == "changed"
    assert zoo("cache", "verify")[0] == 0
    assert zoo("cache", "list")[1].splitlines()[1].split()[-1] == "yes"


def test_the_features_cache_is_keyed_on_the_weights(
    tmp_path: Path, zoo_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New vectors under the same model name and file name (a URL model has no revision) are new features."""
    pytest.importorskip("sklearn", reason="the dev extra installs scikit-learn")
    from zoo_core.training.run import FinetuneOptions, finetune

    words = {"cat": "pet", "dog": "pet", "bank": "money", "loan": "money"}
    data = tmp_path / "texts.csv"
    data.write_text("text,label\n" + "".join(f"{word} {word},{label}\n" for word, label in words.items()) * 3)
    vectors = tmp_path / "published" / "vectors.txt"
    vectors.parent.mkdir()
    registry = tmp_path / "vectors.toml"
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    for version, scale in enumerate((1.0, -1.0)):
        vectors.write_text("".join(f"{word} {scale * i:.1f} {scale:.1f}\n" for i, word in enumerate(words)))
        digest = hashlib.sha256(vectors.read_bytes()).hexdigest()
        write_catalogue(
            registry,
            '[[model]]\nname = "tiny-vectors.v1"\nplugin = "wordvec"\narch = "glove"\nfamily = "glove"\n'
            'task = "word-embedding"\nmodality = "embedding"\ninput = { dim = 2, file = "vectors.txt" }\n'
            f'source = {{ url = "{vectors}" }}\nsha256 = {{ "vectors.txt" = "{digest}" }}\n',
        )
        finetune("tiny-vectors.v1", data, tmp_path / f"run{version}", FinetuneOptions(epochs=1, val_split=0.5))
        assert len(list((zoo_env / "features").glob("*.npy"))) == 2 * (version + 1)


# --- other resources -----------------------------------------------------------------------------------


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
    from zoo_core.sources import reset_catalogue

    reset_catalogue()
    code, out, _ = zoo("info", "mine.v1", "--json")
    assert json.loads(out)["source"]["files"] == ["model.safetensors"]
    assert zoo("cache", "verify")[0] == 0
    for name in zoo_core.get("all-MiniLM-L6-v2").source.files:  # every file the entry names; one a link
        if name == "config.json":
            (folder / name).symlink_to(targets.home / ".bashrc")
        elif name != "model.safetensors":
            (folder / name).parent.mkdir(exist_ok=True)
            (folder / name).write_bytes(b"{}")
    with attack(targets):
        code, _, err = zoo("import", str(folder), "--name", "all-MiniLM-L6-v2")
    assert code == 1 and err.splitlines()[-1].endswith(
        "config.json: a symbolic link or not a file; zoo imports only the folder's own files"
    )


def test_registry_text_reaches_the_terminal_without_control_characters(
    zoo: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile = "\x1b]0;owned\x07\x1b[2J\x9b31m\u202enetwork\x00 evil\nsecond line"
    registry = tmp_path / "ansi.toml"
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    write_catalogue(
        registry,
        '[[model]]\nname = "ansi.v1"\nplugin = "timm"\narch = "x"\nfamily = "ansi"\ntask = "image-classification"\n'
        f'modality = "image"\ndescription = {json.dumps(hostile)}\ntags = [{json.dumps(hostile)}]\n'
        'source = { hub = "org/ansi" }\ninput = {}\n',
    )
    for args in (["info", "ansi.v1"], ["search", "evil"], ["list", "--family", "ansi"]):
        code, out, err = zoo(*args)
        assert code == 0 and "ansi.v1" in out
        assert not set(out + err) & {"\x1b", "\x07", "\x9b", "\x00", "\u202e"}, args
        assert "second line" not in [line.strip() for line in out.splitlines()]
    code, out, _ = zoo("info", "ansi.v1", "--json")
    assert json.loads(out)["description"] == hostile and not set(out) & {"\x1b", "\x07", "\x9b", "\x00", "\u202e"}
    write_catalogue(registry, registry.read_text().replace('"ansi.v1"', '"ansi\\u001b[31m.v1"'))
    code, _, err = zoo("list")
    assert "\x1b" not in err and "is not a model name" in err
