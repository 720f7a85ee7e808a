"""Attacks on zoo's trust boundary, each played against the real CLI and the real huggingface_hub client.

The attacker controls a registry file, a hub or mirror (the test server lies in its ETag and
X-Repo-Commit headers), or a cache archive. Each payload aims at a file outside zoo's folders: a ``.pth``
file in a folder used as site-packages (it would run on the next Python start) or the user's shell
start-up files. Every test asserts a one-line error naming the culprit and the field, exit 1, nothing
written or changed anywhere under the test's temporary root outside ``ZOO_HOME``/``HF_HOME``, no marker
created by the payload, and nothing unverified left in the cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from attacks import Targets, attack, blobs_folder, refused, write_catalogue
from conftest import CONFIG, REGISTRY, WEIGHTS, Run

import zoo_core
from zoo_core import UntrustedServerError
from zoo_core.testing.hub import HubServer

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
    folder = blobs_folder() if header != "X-Repo-Commit" else blobs_folder().parent / "snapshots"
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
    hub.lie("org/tiny", "config.json", ETag=f'"{os.path.relpath(targets.site / "evil.pth", blobs_folder())}"')
    with attack(targets):
        refused(zoo("download", "tiny.v1"), f"the server {hub.url} sent ETag")


def test_a_commit_in_a_404_cannot_name_a_folder(
    zoo: Run, hub: HubServer, tiny: str, targets: Targets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client records a missing file under ``.no_exist/<X-Repo-Commit>/`` of the 404."""
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "missing.toml"))
    write_catalogue(tmp_path / "missing.toml", REGISTRY.replace('"config.json"', '"absent.json"'))
    no_exist = blobs_folder().parent / ".no_exist"
    hub.lie("org/tiny", "absent.json", **{"X-Repo-Commit": os.path.relpath(targets.home, no_exist)})
    with attack(targets):
        refused(zoo("download", "tiny.v1"), "X-Repo-Commit", "is not a commit")
    assert not (targets.home / "absent.json").exists()


def test_the_guard_holds_on_every_client_huggingface_hub_makes(
    zoo: Run, hub: HubServer, tiny: str, targets: Targets
) -> None:
    """huggingface_hub makes a new client after a connection error; a user may set a client factory."""
    import huggingface_hub
    from huggingface_hub.utils import _http

    from zoo_core.hubclient import guarded

    huggingface_hub.set_client_factory(_http.default_client_factory)  # as a user configuring a proxy would
    hub.lie("org/tiny", "config.json", ETag=f'"{os.path.relpath(targets.site / "evil.pth", blobs_folder())}"')
    with attack(targets):
        refused(zoo("download", "tiny.v1"), "sent ETag")
        with guarded("tiny.v1"), pytest.raises(UntrustedServerError, match="sent ETag"):
            huggingface_hub.close_session()  # what the client does after a connection error, mid-download
            huggingface_hub.get_session().head(f"{hub.url}/org/tiny/resolve/main/config.json")


def test_a_mirror_cannot_replace_what_another_model_verified(
    zoo: Run, hub: HubServer, tiny: str, targets: Targets, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every endpoint shares one hub cache: a mirror that names tiny.v1's commit for other bytes is refused."""
    from zoo_core.testing.hub import running_hub

    assert zoo("download", "tiny.v1")[0] == 0
    with running_hub() as mirror:
        mirror.add_repo("org/tiny", {"config.json": b'{"hidden_size": 666}\n'})
        mirror.lie("org/tiny", "config.json", **{"X-Repo-Commit": tiny})
        entry = REGISTRY.replace("tiny.v1", "evil.v1").replace("files = [", f'endpoint = "{mirror.url}", files = [')
        registry = Path(os.environ["ZOO_REGISTRY"])
        write_catalogue(registry, registry.read_text() + entry.replace(', "model.safetensors"', ""))
        with attack(targets):
            refused(zoo("download", "evil.v1"), f"{mirror.url} serves ETag", "that 'tiny.v1' verified; zoo keeps it")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = zoo("download", "tiny.v1")
    assert code == 0 and err.endswith(", verified\n") and Path(out.strip(), "config.json").read_bytes() == CONFIG


def test_removing_a_model_keeps_the_files_another_model_uses(zoo: Run, tiny: str) -> None:
    registry = Path(os.environ["ZOO_REGISTRY"])
    config_only = REGISTRY.replace("tiny.v1", "tiny-config.v1").replace(', "model.safetensors"', "")
    write_catalogue(registry, registry.read_text() + config_only)
    assert zoo("download", "tiny.v1")[0] == 0 and zoo("download", "tiny-config.v1")[0] == 0
    assert zoo("cache", "rm", "tiny-config.v1")[0] == 0
    assert zoo("cache", "verify")[0] == 0 and zoo("cache", "list")[1].splitlines()[1].split()[-1] == "yes"


def test_only_file_metadata_must_carry_a_digest_etag() -> None:
    """The hub's JSON API may send weak ETags; a file's metadata (HEAD, /resolve/) may not."""
    import httpx2

    from zoo_core.hubclient import check_response, guarded

    commit = "a" * 40

    def response(method: str, path: str, etag: str, repo_commit: str = commit) -> httpx2.Response:
        headers = {"X-Repo-Commit": repo_commit, "ETag": etag}
        return httpx2.Response(200, headers=headers, request=httpx2.Request(method, f"http://hub{path}"))

    with guarded("m") as guard:
        check_response(response("GET", "/api/models/org/x/tree/main", 'W/"12-abc"'))
        check_response(response("HEAD", "/org/x/resolve/main/f.bin", f'"{"b" * 64}"'))
        assert guard.etag == "b" * 64
        for bad in (response("HEAD", "/elsewhere", '"../../x"'), response("GET", "/api/x", '"a"', "../x")):
            with pytest.raises(UntrustedServerError):
                check_response(bad)
    check_response(response("HEAD", "/x", '"../../x"'))  # outside a zoo download: not zoo's business


def test_a_link_planted_in_the_cache_does_not_redirect_a_download(zoo: Run, tiny: str, targets: Targets) -> None:
    outside = targets.root / "outside"
    outside.mkdir()
    blobs_folder().parent.mkdir(parents=True)
    blobs_folder().symlink_to(outside, target_is_directory=True)
    with attack(targets):
        refused(zoo("download", "tiny.v1"), "blobs leads outside", "or through a symbolic link")


@pytest.mark.parametrize("value", ["http://[::1", "http://hub:99999", "ftp://hub", "http://hub/\u202eevil"])
def test_a_bad_hf_endpoint_is_named(zoo: Run, tiny: str, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("HF_ENDPOINT", value.encode().decode("unicode_escape"))
    refused(zoo("download", "tiny.v1"), "HF_ENDPOINT", "is not a hub URL")


def test_hub_caches_without_links_and_with_a_shared_store_verify_alike(
    zoo: Run, tiny: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without links huggingface_hub copies files into the snapshot; its shared (Xet) store makes
    ``blobs/<etag>`` a link to ``hub/blobs/<xx>/<hash>``."""
    from huggingface_hub import constants

    code, out, _ = zoo("download", "tiny.v1")
    blob = blobs_folder() / hashlib.sha256(WEIGHTS).hexdigest()
    store = blobs_folder().parent.parent / "blobs" / "ab" / ("c" * 64)
    store.parent.mkdir(parents=True)
    blob.replace(store)
    blob.symlink_to(store)
    for offline in ("0", "1"):
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
        code, _, err = zoo("download", "tiny.v1")
        assert code == 0 and err.endswith("verified\n"), err
    assert zoo("cache", "verify")[0] == 0 and zoo("cache", "rm", "tiny.v1")[0] == 0 and store.exists()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_SYMLINKS", True)
    code, out, err = zoo("download", "tiny.v1")
    assert code == 0 and err.endswith("verified\n") and not Path(out.strip(), "config.json").is_symlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = zoo("download", "tiny.v1")
    assert code == 0 and err.endswith("verified\n") and zoo("cache", "verify")[0] == 0


def test_plugin_specs_pass_the_registry_checks(zoo: Run, register_plugin: Callable[[object, str], None]) -> None:
    from zoo_core import hookimpl, parse_spec
    from zoo_core.specs import Source

    entry = {"name": "fine.v1", "plugin": "bad", "arch": "x", "family": "x", "task": "t", "modality": "image"}
    entry |= {"source": {"hub": "org/fine"}, "input": {}}

    class Careless:
        @hookimpl
        def register_models(self) -> list[zoo_core.ModelSpec]:
            fine = parse_spec(entry, "plugin 'bad'")
            return [fine, dataclasses.replace(fine, name="evil.v1", source=Source(hub="../../x"))]

    register_plugin(Careless(), "bad")
    code, out, err = zoo("list", "--family", "x")
    assert code == 0 and "fine.v1" in out and "evil.v1" not in out
    assert "plugin 'bad': model 'evil.v1': field 'source.hub': '../../x' is not a hub repo id" in err


def test_an_oversized_number_skips_its_entry_not_the_catalogue(zoo: Run, tiny: str) -> None:
    write_catalogue(Path(os.environ["ZOO_REGISTRY"]), REGISTRY + "params = 9223372036854775808\n")
    code, out, err = zoo("list")
    assert code == 0 and "field 'params': must be from 1 to" in err and "tiny.v1" not in out


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
    hub.lie("org/tiny", "config.json", ETag=f'"{os.path.relpath(secret, blobs_folder())}"')
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


def test_offline_a_changed_url_file_is_refused_without_the_network(zoo: Run, hub: HubServer, tiny: str) -> None:
    url = f"{hub.url}/org/tiny/resolve/main/model.safetensors"
    entry = REGISTRY.replace("tiny.v1", "web.v1").replace(
        'hub = "org/tiny", files = ["config.json", "model.safetensors"]', f'url = "{url}"'
    )
    pin = f'sha256 = {{ "model.safetensors" = "{hashlib.sha256(WEIGHTS).hexdigest()}" }}\n'
    write_catalogue(Path(os.environ["ZOO_REGISTRY"]), entry + pin)
    cached = Path(zoo("download", "web.v1")[1].strip(), "model.safetensors")
    cached.write_bytes(b"x" + WEIGHTS[1:])
    hub.requests.clear()
    refused(zoo("download", "web.v1", "--offline"), "does not match the registry's digest and zoo is offline")
    assert hub.requests == []


def test_records_of_the_previous_version_are_hashed_once_not_called_stale(
    zoo: Run, tiny: str, tmp_path: Path, zoo_env: Path
) -> None:
    """Older records have no modification time, and no sha1 for files the registry pins by sha1 (Caffe)."""
    weights = _url_model(tmp_path, WEIGHTS)
    registry = Path(os.environ["ZOO_REGISTRY"])
    sha1 = hashlib.sha1(WEIGHTS, usedforsecurity=False).hexdigest()
    write_catalogue(registry, registry.read_text().split("sha256 =")[0] + f'sha1 = {{ "weights.bin" = "{sha1}" }}\n')
    assert zoo("download", "tiny-url.v1")[0] == 0 and weights.exists()
    path = zoo_env / "records" / "tiny-url.v1.json"
    old = json.loads(path.read_text())
    for file in old["files"]:
        del file["sha1"], file["mtime_ns"]
    path.write_text(json.dumps(old))
    assert zoo("cache", "list")[1].splitlines()[1].split()[-1] == "changed"
    assert zoo("cache", "verify")[0] == 0
    assert zoo("cache", "list")[1].splitlines()[1].split()[-1] == "yes"


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
        refused(zoo("download", name), "does not match its hub digest", "download it again with network")
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
    rows = [f"{' '.join([word] * repeat)},{label}\n" for repeat in (1, 2, 3) for word, label in words.items()]
    data.write_text("text,label\n" + "".join(rows))  # different texts (a repeated one stays on one side of a split)
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
        assert len(list((zoo_env / "features").glob("*.npy"))) == 3 * (version + 1)  # train, val, test


# --- the terminal --------------------------------------------------------------------------------------


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
