"""`zoo cache` and `zoo import`: what is on this machine, and moving models to machines with no network."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from conftest import CONFIG, WEIGHTS, Run, move_home

import zoo_core
from zoo_core.verification import is_verified


def test_download_prints_the_folder_and_the_commit(zoo: Run, tiny: str, zoo_env: Path) -> None:
    code, out, err = zoo("download", "tiny.v1")
    assert code == 0 and out.strip().endswith(f"models--org--tiny/snapshots/{tiny}")
    assert err.strip() == f"tiny.v1: org/tiny @ {tiny}, 2 files, 1.0MB, verified"
    code, out, _ = zoo("download", "tiny.v1", "--json", "--offline")
    assert code == 0 and json.loads(out)["commit"] == tiny


def test_download_errors_are_one_line(zoo: Run, tiny: str) -> None:
    code, out, err = zoo("download", "tiny.v1", "--revision", "nope")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "revision 'nope' does not exist in org/tiny" in err


def test_cache_list_verify_rm_prune(zoo: Run, tiny: str, zoo_env: Path) -> None:
    zoo("download", "tiny.v1")
    code, out, _ = zoo("cache", "list")
    assert out.splitlines()[1].split() == ["tiny.v1", "hub", tiny[:12], "1.0MB", "yes"]
    assert zoo("cache", "verify")[0] == 0
    record = zoo_core.fetch("tiny.v1", offline=True)
    weights = Path(next(f.path for f in record.files if f.name == "model.safetensors")).resolve()
    weights.chmod(0o644)
    weights.write_bytes(b"x" + WEIGHTS[1:])
    code, out, err = zoo("cache", "verify", "tiny.v1")
    assert code == 1 and "model.safetensors  corrupt" in out and "fix: zoo download tiny.v1 --force" in err
    code, out, _ = zoo("cache", "rm", "tiny.v1")
    assert code == 0 and out == "removed tiny.v1 (1.0MB)\n"
    assert not weights.exists() and zoo("cache", "list", "--json")[1] == "[]\n"
    assert zoo("cache", "rm", "tiny.v1")[0] == 1
    (zoo_env / "records").mkdir(exist_ok=True)
    (zoo_env / "records" / "broken.json").write_text("{")
    code, out, _ = zoo("cache", "prune")
    assert code == 0 and "unreadable record" in out and not (zoo_env / "records" / "broken.json").exists()


def test_export_then_import_on_a_machine_without_network(
    zoo: Run, tiny: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zoo("download", "tiny.v1")
    archive = tmp_path / "models.tar"
    assert zoo("cache", "export", str(archive), "tiny.v1")[1] == f"exported 1 model(s) to {archive}: tiny.v1\n"
    move_home(tmp_path, monkeypatch, "air-gapped")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ZOO_REGISTRY", "")  # the other machine's catalogue does not know tiny.v1 …
    assert zoo("cache", "import", str(archive)) == (0, "imported 1 model(s): tiny.v1\n", "")
    from zoo_core.catalogue_sources import reset_catalogue

    reset_catalogue()  # … until the import added it to the user's registry
    record = zoo_core.fetch("tiny.v1")
    assert record.commit == tiny and Path(record.folder, "model.safetensors").read_bytes() == WEIGHTS
    assert zoo("cache", "verify")[0] == 0


def test_a_tampered_archive_installs_nothing(
    zoo: Run, tiny: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zoo("download", "tiny.v1")
    archive = tmp_path / "models.tar"
    zoo("cache", "export", str(archive))
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(archive) as source, tarfile.open(tampered, "w") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith("model.safetensors"):
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            out.addfile(member, io.BytesIO(data))
    home = move_home(tmp_path, monkeypatch, "other")
    code, _, err = zoo("cache", "import", str(tampered))
    assert code == 1 and "tiny.v1/model.safetensors has sha256" in err and "nothing was installed" in err
    leftovers = [p for p in home.rglob("*") if p.is_file() and "blobs" in p.parts]
    assert leftovers == []
    assert zoo("cache", "list", "--json")[1] == "[]\n"


def test_import_a_local_folder_of_model_files(zoo: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "model"
    (folder / "1_Pooling").mkdir(parents=True)
    files = {
        "config.json": CONFIG,
        "model.safetensors": WEIGHTS,
        "tokenizer.json": b"{}",
        "vocab.txt": b"a\nb\n",
        "tokenizer_config.json": b"{}",
        "special_tokens_map.json": b"{}",
        "1_Pooling/config.json": b"{}",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = zoo("import", str(folder), "--name", "all-MiniLM-L6-v2")
    assert code == 0 and "sentence-transformers/all-MiniLM-L6-v2 @" in err
    record = zoo_core.fetch("all-MiniLM-L6-v2")  # offline: from the cache the import filled
    assert {each.name for each in record.files} == set(zoo_core.get("minilm").source.files)
    assert Path(record.folder, "model.safetensors").read_bytes() == WEIGHTS

    code, _, err = zoo("import", str(folder), "--name", "my-encoder", "--like", "all-MiniLM-L6-v2")
    assert code == 0
    from zoo_core.catalogue_sources import reset_catalogue

    reset_catalogue()
    spec = zoo_core.get("my-encoder")
    assert spec.plugin == "transformers" and spec.source.hub == "local/my-encoder"
    assert spec.sha256["model.safetensors"] == hashlib.sha256(WEIGHTS).hexdigest()
    assert "1_Pooling/config.json" in spec.source.files
    assert is_verified(zoo_core.fetch("my-encoder"), spec)
    code, _, err = zoo("import", str(folder), "--name", "unknown-model")
    assert code == 1 and "add --like MODEL" in err
