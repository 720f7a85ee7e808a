"""Downloads with the real huggingface_hub client against a hub-protocol server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CONFIG, REGISTRY, WEIGHTS, Run

import zoo_core
from zoo_core import ChecksumError, DownloadError, NotCachedError, parse_spec
from zoo_core.specs import ModelSpec
from zoo_core.testing.hub import HubServer


def model(name: str = "tiny.v1", sha256: dict[str, str] | None = None, **source: object) -> ModelSpec:
    """A registry entry for org/tiny (or what `source` changes)."""
    entry = {
        "name": name,
        "plugin": "timm",
        "arch": "tiny",
        "family": "tiny",
        "task": "image-classification",
        "modality": "image",
        "input": {},
        "sha256": sha256 or {},
        "source": {"hub": "org/tiny", "files": ["config.json", "model.safetensors"], **source},
    }
    return parse_spec(entry, "test")


def blobs(zoo_env: Path) -> list[str]:
    folder = zoo_env.parent / "hf-home" / "hub" / "models--org--tiny" / "blobs"
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_first_download_verifies_every_file_and_records_the_commit(hub: HubServer, tiny: str, zoo_env: Path) -> None:
    record = zoo_core.fetch(model())
    assert record.commit == tiny and record.revision == "main" and record.repo == "org/tiny"
    files = {each.name: each for each in record.files}
    assert files["model.safetensors"].verified_by == "hub sha256"
    assert files["config.json"].verified_by == "hub git sha1"
    assert files["model.safetensors"].sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    folder = Path(record.folder)
    assert folder == zoo_env.parent / "hf-home" / "hub" / "models--org--tiny" / "snapshots" / tiny
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS and (folder / "config.json").read_bytes() == CONFIG
    assert zoo_core.download(model()) == folder
    agents = [headers.get("user-agent", "") for _, path, headers in hub.requests if "/resolve/" in path]
    assert agents and all(agent.startswith("zoo/0.1.0;") for agent in agents)  # library_name="zoo"


def test_a_cached_model_is_not_downloaded_again(hub: HubServer, tiny: str) -> None:
    zoo_core.fetch(model())
    hub.requests.clear()
    zoo_core.fetch(model())
    # one HEAD to learn main's commit; the next file is already in that commit's snapshot: no request at all
    assert [method for method, path, _ in hub.requests if "/resolve/" in path] == ["HEAD"]


def test_a_cached_model_loads_when_the_hub_is_unreachable(
    hub: HubServer, tiny: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    online = zoo_core.fetch(model())
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed.getsockname()[1]}")
    try:
        with pytest.warns(UserWarning, match=r"cannot reach 127\.0\.0\.1:\d+ .*; using the copy of 'tiny.v1'"):
            assert zoo_core.fetch(model()).files == online.files  # not offline: zoo tries, then uses the cache
    finally:
        closed.close()


def test_an_unreachable_hub_is_one_line_at_once(zoo: Run, tiny: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that does not resolve is not retried; a refused connection only briefly; no client log lines."""
    monkeypatch.setenv("HF_ENDPOINT", "http://no-such-host.invalid")
    code, out, err = zoo("download", "tiny.v1")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("Error: cannot reach no-such-host.invalid: the name does not resolve") and "--offline" in err
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed.getsockname()[1]}")
    try:
        code, out, err = zoo("download", "tiny.v1")
    finally:
        closed.close()
    assert code == 1 and err.count("\n") == 1 and "cannot reach 127.0.0.1" in err and "Connection refused" in err


def test_a_forced_download_keeps_the_verified_copy_until_the_new_one_verifies(
    zoo: Run, hub: HubServer, tiny: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert zoo("download", "tiny.v1")[0] == 0
    hub.fail("org/tiny", "model.safetensors", "flip", times=2)
    code, _, err = zoo("download", "tiny.v1", "--force")
    assert code == 1 and "twice" in err and "the copy verified before was kept" in err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = zoo("download", "tiny.v1")
    assert code == 0 and err.endswith(", verified\n")
    assert Path(out.strip(), "model.safetensors").read_bytes() == WEIGHTS
    assert zoo("cache", "verify")[0] == 0


def test_new_weights_upstream_under_a_pin_keep_the_verified_commit(
    zoo: Run, hub: HubServer, tiny: str, zoo_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = Path(os.environ["ZOO_REGISTRY"])
    registry.write_text(REGISTRY + f'sha256 = {{ "model.safetensors" = "{hashlib.sha256(WEIGHTS).hexdigest()}" }}\n')
    assert zoo("download", "tiny.v1")[0] == 0
    newer = hub.add_repo("org/tiny", {"config.json": CONFIG, "model.safetensors": WEIGHTS[::-1]})
    code, _, err = zoo("download", "tiny.v1")
    assert code == 1 and err.count("\n") == 1 and "server or a proxy" not in err
    assert f"main is now commit {newer}" in err and f"the copy verified at commit {tiny} stays in the cache" in err
    storage = zoo_env.parent / "hf-home" / "hub" / "models--org--tiny"
    assert (storage / "refs" / "main").read_text() == tiny
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = zoo("download", "tiny.v1")
    assert code == 0 and out.strip().endswith(tiny) and err.endswith(", verified\n")


def test_prune_removes_what_interrupted_commands_left(zoo: Run, tiny: str, zoo_env: Path) -> None:
    """A killed download leaves huggingface_hub's ``<etag>.<id>.incomplete``; a killed import, zoo's staging."""
    assert zoo("download", "tiny.v1")[0] == 0
    blobs = zoo_env.parent / "hf-home" / "hub" / "models--org--tiny" / "blobs"
    partial = blobs / f"{'a' * 64}.1234abcd.incomplete"
    partial.write_bytes(b"half")
    staged = blobs / ".zoo-staged-x.incomplete"
    staged.write_bytes(b"half")
    os.utime(staged, (0, 0))
    kept = blobs / ".zoo-kept-x-999999999"
    kept.write_bytes(b"old")
    code, out, _ = zoo("cache", "prune")
    assert code == 0 and not partial.exists() and not staged.exists() and not kept.exists()
    assert str(partial) in out and zoo("cache", "verify")[0] == 0


def test_registry_sha256_is_checked(hub: HubServer, tiny: str) -> None:
    with pytest.raises(
        ChecksumError,
        match=r"model.safetensors of org/tiny@[0-9a-f]{40} has sha256 [0-9a-f]{64}, not the one the registry pins \(0{64}\)",
    ):
        zoo_core.fetch(model("other.v1", sha256={"model.safetensors": "0" * 64}))
    good = hashlib.sha256(WEIGHTS).hexdigest()
    record = zoo_core.fetch(model(sha256={"model.safetensors": good}))
    assert {each.name: each.verified_by for each in record.files}["model.safetensors"] == "registry sha256"
    # another entry pinning other bytes for the same file does not take the verified copy away
    with pytest.raises(
        ChecksumError, match=r"the hub cache holds a copy with ETag [0-9a-f]{64} that 'tiny.v1' verified"
    ):
        zoo_core.fetch(model("other.v1", sha256={"model.safetensors": "0" * 64}), force=True)
    assert Path(record.folder, "model.safetensors").read_bytes() == WEIGHTS


def test_pinned_revision(hub: HubServer, tiny: str) -> None:
    newer = hub.add_repo("org/tiny", {"config.json": b"{}\n", "model.safetensors": WEIGHTS[::-1]})
    pinned = zoo_core.fetch(model(revision=tiny))
    assert pinned.commit == tiny and Path(pinned.folder, "config.json").read_bytes() == CONFIG
    latest = zoo_core.fetch(model(), revision="main")
    assert latest.commit == newer and Path(latest.folder, "config.json").read_bytes() == b"{}\n"


def test_bytes_flipped_by_the_server_are_caught_and_nothing_is_kept(hub: HubServer, tiny: str, zoo_env: Path) -> None:
    hub.fail("org/tiny", "model.safetensors", "flip", times=2)
    with pytest.raises(ChecksumError, match=r"model.safetensors from org/tiny@\w+ does not match its hub digest"):
        zoo_core.fetch(model())
    assert len(hub.downloads("model.safetensors")) == 2  # tried once more, then gave up
    assert hashlib.sha256(WEIGHTS).hexdigest() not in blobs(zoo_env)
    assert not (Path(zoo_env.parent / "hf-home/hub/models--org--tiny/snapshots") / tiny / "model.safetensors").exists()
    assert not any(name.endswith(".incomplete") for name in blobs(zoo_env))
    assert not (zoo_env / "records" / "tiny.v1.json").exists()


def test_one_flipped_download_is_retried(hub: HubServer, tiny: str) -> None:
    hub.fail("org/tiny", "model.safetensors", "flip")
    record = zoo_core.fetch(model())
    assert Path(record.folder, "model.safetensors").read_bytes() == WEIGHTS
    assert len(hub.downloads("model.safetensors")) == 2


def test_a_connection_cut_halfway_is_resumed(hub: HubServer) -> None:
    big = WEIGHTS * 24  # larger than the client's 10 MiB read chunk, so part of it is on disk when the cut comes
    hub.add_repo("org/tiny", {"config.json": CONFIG, "model.safetensors": big})
    hub.fail("org/tiny", "model.safetensors", "cut")
    record = zoo_core.fetch(model())
    assert Path(record.folder, "model.safetensors").read_bytes() == big
    first, second = ({key.lower(): value for key, value in each.items()} for each in hub.downloads("model.safetensors"))
    assert "range" not in first
    resumed_at = int(second["range"].removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at <= len(big) // 2  # from where it stopped, not from the start


def test_server_errors_are_retried(hub: HubServer, tiny: str) -> None:
    hub.fail("org/tiny", "model.safetensors", "500", times=2)
    record = zoo_core.fetch(model())
    assert Path(record.folder, "model.safetensors").read_bytes() == WEIGHTS


def test_missing_repo_and_missing_file_are_clear_errors(hub: HubServer, tiny: str) -> None:
    with pytest.raises(DownloadError, match=r"'x.v1': repo org/nothing not found on http://127\.0\.0\.1:\d+"):
        zoo_core.fetch(model("x.v1", hub="org/nothing"))
    with pytest.raises(
        DownloadError, match=r"'y.v1': file 'absent.bin' is not in org/tiny@main on .*fix source\.files"
    ):
        zoo_core.fetch(model("y.v1", files=["absent.bin"]))


@pytest.fixture
def listening_socket() -> Iterator[tuple[str, list[object]]]:
    """A socket on 127.0.0.1 that accepts connections and records them: (its URL, the connections)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.05)
    accepted: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[1])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    stop.set()
    thread.join()
    server.close()


def test_offline_makes_no_network_call(
    hub: HubServer, tiny: str, listening_socket: tuple[str, list[object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    online = zoo_core.fetch(model())
    url, accepted = listening_socket
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert zoo_core.fetch(model()).folder == online.folder
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert zoo_core.fetch(model(), offline=True).files == online.files
    with pytest.raises(NotCachedError, match=r"'never.v1' \(config.json\) is not in the hub cache .* zoo is offline"):
        zoo_core.fetch(model("never.v1", hub="org/never"), offline=True)
    assert accepted == []
    with pytest.raises(DownloadError):
        zoo_core.fetch(model(), force=True)  # online, the same socket does see connections
    assert accepted


@pytest.mark.slow
def test_two_processes_downloading_at_once_both_succeed_with_one_copy(
    hub: HubServer, zoo_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = WEIGHTS * 48
    hub.add_repo("org/tiny", {"config.json": CONFIG, "model.safetensors": big})
    registry = tmp_path / "tiny.toml"
    registry.write_text(REGISTRY)
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    code = "import zoo_core, json; print(json.dumps(zoo_core.fetch('tiny.v1', quiet=True).to_dict()))"
    runs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    records = [json.loads(run.communicate(timeout=120)[0]) for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert records[0]["folder"] == records[1]["folder"]
    assert Path(records[0]["folder"], "model.safetensors").read_bytes() == big
    assert blobs(zoo_env) == sorted([hashlib.sha256(big).hexdigest(), records[0]["files"][0]["etag"]])


def url_model(url: str, sha256: dict[str, str], files: list[str] | None = None) -> ModelSpec:
    source: dict[str, object] = {"url": url}
    if files is not None:
        source["files"] = files
    entry = {
        "name": "plain.v1",
        "plugin": "wordvec",
        "arch": "glove",
        "family": "glove",
        "task": "word-embedding",
        "modality": "embedding",
        "input": {"dim": 4},
        "source": source,
        "sha256": sha256,
    }
    return parse_spec(entry, "test")


def test_a_local_path_source_is_copied_and_verified(tmp_path: Path, zoo_env: Path) -> None:
    original = tmp_path / "vectors.txt"
    original.write_bytes(b"the 0.1 0.2 0.3 0.4\n")
    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    record = zoo_core.fetch(url_model(f"file://{original}", {"vectors.txt": digest}))
    assert record.source == "url" and record.files[0].verified_by == "registry sha256"
    assert Path(record.folder) == zoo_env / "files" / "plain.v1"
    assert Path(record.files[0].path).read_bytes() == original.read_bytes()
    original.unlink()
    assert zoo_core.fetch(url_model(str(original), {"vectors.txt": digest}), offline=True).files == record.files


def test_a_url_source_needs_a_sha256_and_a_wrong_one_keeps_nothing(hub: HubServer, tiny: str, zoo_env: Path) -> None:
    url = f"{hub.url}/org/tiny/resolve/main/model.safetensors"
    with pytest.raises(DownloadError, match=r"a URL source needs a sha256 for every file; add sha256 = \{ \"model"):
        zoo_core.fetch(url_model(url, {}))
    with pytest.raises(ChecksumError, match=r"has sha256 [0-9a-f]{64}, not the registry's 1{64}, twice"):
        zoo_core.fetch(url_model(url, {"model.safetensors": "1" * 64}))
    assert [path.name for path in (zoo_env / "files" / "plain.v1").iterdir()] == ["model.safetensors.lock"]


def test_a_url_download_cut_halfway_is_resumed(hub: HubServer) -> None:
    big = WEIGHTS * 24
    hub.add_repo("org/tiny", {"model.safetensors": big})
    hub.fail("org/tiny", "model.safetensors", "cut")
    url = f"{hub.url}/org/tiny/resolve/main/"
    record = zoo_core.fetch(
        url_model(url, {"model.safetensors": hashlib.sha256(big).hexdigest()}, ["model.safetensors"])
    )
    assert Path(record.files[0].path).read_bytes() == big
    second = {key.lower(): value for key, value in hub.downloads("model.safetensors")[1].items()}
    assert int(second["range"].removeprefix("bytes=").removesuffix("-")) > 0


@pytest.mark.parametrize("listed", [False, True])
def test_a_url_file_name_that_needs_percent_encoding(hub: HubServer, listed: bool) -> None:
    """The registry names the file as it is ("my net.bin"); the URL spells it encoded."""
    hub.add_repo("org/spaces", {"my net.bin": WEIGHTS})
    digest = {"my net.bin": hashlib.sha256(WEIGHTS).hexdigest()}
    base = f"{hub.url}/org/spaces/resolve/main"
    spec = url_model(f"{base}/", digest, ["my net.bin"]) if listed else url_model(f"{base}/my%20net.bin", digest)
    record = zoo_core.fetch(spec)
    assert record.files[0].name == "my net.bin" and Path(record.files[0].path).read_bytes() == WEIGHTS
