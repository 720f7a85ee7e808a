"""Merging the catalogue's sources in override order, and caching the merged index."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import image_entry

import zoo_core
from zoo_core import RegistryWarning, hookimpl, parse_spec
from zoo_core.catalogue_sources import builtin_registry, load_catalogue, reset_catalogue
from zoo_core.specs import ModelSpec

BERT_OVERRIDE = image_entry("bert-base-uncased", arch="bert")


def test_builtin_registry_and_plugins_load(recwarn: pytest.WarningsRecorder) -> None:
    catalogue = load_catalogue()
    assert catalogue.get("bert-base-uncased").origin == str(builtin_registry())
    assert catalogue.get("resnet18").name == "resnet18.a1_in1k"  # from the timm plugin's data file
    assert len(catalogue) > 1500
    assert not [w for w in recwarn if issubclass(w.category, RegistryWarning)]


def test_later_sources_override_earlier_with_a_warning(
    write_registry: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = write_registry(BERT_OVERRIDE, "env.toml")
    explicit = write_registry(BERT_OVERRIDE.replace('"resnet"', '"explicit"'), "explicit.toml")
    monkeypatch.setenv("ZOO_REGISTRY", f"{from_env.parent / 'absent.toml'}{os.pathsep}{from_env}")
    with pytest.warns(RegistryWarning) as warned:
        catalogue = load_catalogue([explicit])
    messages = [str(w.message) for w in warned]
    assert f"model 'bert-base-uncased' from {from_env} overrides the one from {builtin_registry()}" in messages
    assert f"model 'bert-base-uncased' from {explicit} overrides the one from {from_env}" in messages
    assert any("absent.toml: cannot read registry file" in message for message in messages)
    assert catalogue.get("bert-base-uncased").family == "explicit"


def test_plugin_specs_override_the_builtin_file(register_plugin: Callable[[object, str], None]) -> None:
    class Overrider:
        @hookimpl
        def register_models(self) -> list[ModelSpec]:
            entry = {
                "name": "bert-base-uncased",
                "plugin": "mine",
                "arch": "b",
                "family": "bert",
                "task": "t",
                "modality": "text",
                "source": {"hub": "o/r"},
                "input": {"tokenizer": "t"},
            }
            return [dataclasses.replace(parse_spec(entry, "ignored"), origin="")]

    register_plugin(Overrider(), "mine")
    with pytest.warns(RegistryWarning, match=r"from plugin 'mine' overrides the one from .*registry\.toml"):
        assert zoo_core.get("bert-base-uncased").plugin == "mine"


def test_a_malformed_entry_is_reported_and_the_rest_loads(write_registry: Callable[..., Path]) -> None:
    path = write_registry(image_entry("mine.ok") + image_entry("mine.bad").replace("task =", "tsk ="))
    with pytest.warns(RegistryWarning, match=r"registry\.toml:13: model 'mine\.bad': field 'tsk': unknown field"):
        catalogue = load_catalogue([path])
    assert "mine.ok" in catalogue and "mine.bad" not in catalogue and "resnet50" in catalogue


def test_unchanged_sources_reuse_the_cached_index(write_registry: Callable[..., Path], zoo_env: Path) -> None:
    path = write_registry(image_entry("mine.v1"))
    load_catalogue([path])
    cached = sorted((zoo_env / "catalogue").glob("*.sqlite"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    assert "mine.v1" in load_catalogue([path])
    assert sorted((zoo_env / "catalogue").glob("*.sqlite")) == cached
    assert cached[0].stat().st_mtime_ns == stamp  # opened, not rewritten


def test_an_edited_source_rebuilds_the_index(write_registry: Callable[..., Path]) -> None:
    path = write_registry(image_entry("mine.v1"))
    assert "mine.v1" in load_catalogue([path])
    write_registry(image_entry("mine.v2") + "\n# a longer file\n")
    catalogue = load_catalogue([path])
    assert "mine.v2" in catalogue and "mine.v1" not in catalogue


def test_warnings_repeat_when_the_index_comes_from_the_cache(write_registry: Callable[..., Path]) -> None:
    path = write_registry(image_entry("x.y").replace("arch =", "arc ="))
    for _ in range(2):
        with pytest.warns(RegistryWarning, match="field 'arc'"):
            load_catalogue([path])


def test_an_unwritable_home_still_gives_a_catalogue(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ZOO_HOME", str(blocker / "home"))
    assert "resnet18" in load_catalogue()


def test_the_default_catalogue_is_loaded_once(
    write_registry: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(image_entry("first.v1"))))
    assert zoo_core.get("first.v1").name == "first.v1"
    monkeypatch.setenv("ZOO_REGISTRY", "")
    assert zoo_core.get("first.v1").name == "first.v1"  # still the one loaded before
    reset_catalogue()
    with pytest.raises(zoo_core.ModelNotFoundError):
        zoo_core.get("first.v1")


def test_python_api_search_get_and_list(write_registry: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    found = zoo_core.search("vgg16", license="bsd-3-clause", limit=3)
    assert [spec.name for spec in found] == ["vgg16.tv_in1k", "vgg16_bn.tv_in1k"]
    assert all(isinstance(spec, ModelSpec) for spec in found)
    small = zoo_core.list_models(family="mobilenet", max_params=3_000_000)
    assert small and all(spec.params is not None and spec.params <= 3_000_000 for spec in small)
    assert {spec.name for spec in zoo_core.list_models(modality="text")} >= {"bert-base-uncased", "all-MiniLM-L6-v2"}
    assert zoo_core.get("minilm").output.feature_dim == 384


def test_a_corrupt_cached_index_is_rebuilt(write_registry: Callable[..., Path], zoo_env: Path) -> None:
    path = write_registry(image_entry("mine.v1"))
    load_catalogue([path])
    (cached,) = (zoo_env / "catalogue").glob("*.sqlite")
    cached.write_bytes(b"not a database" * 100)
    assert "mine.v1" in load_catalogue([path])
    assert cached.read_bytes().startswith(b"SQLite format 3")


def test_a_plugins_bad_entry_is_skipped_and_its_other_entries_load(
    register_plugin: Callable[[object, str], None],
) -> None:
    def entry(name: str, **changed: object) -> dict[str, object]:
        common = {"plugin": "mine", "arch": "a", "family": "f", "task": "t", "modality": "text"}
        return {"name": name, **common, "source": {"hub": "o/r"}, "input": {"tokenizer": "t"}, **changed}

    class Entries:
        @hookimpl
        def register_models(self) -> list[dict[str, object]]:
            return [entry("mine.first"), entry("mine.broken", modality="sound"), entry("mine.last")]

    register_plugin(Entries(), "mine")
    with pytest.warns(RegistryWarning, match=r"^plugin 'mine': model 'mine\.broken': field 'modality'"):
        catalogue = load_catalogue()
    assert "mine.first" in catalogue and "mine.last" in catalogue
    assert "mine.broken" not in catalogue


def test_hostile_plugin_entries_are_refused_one_by_one(register_plugin: Callable[[object, str], None]) -> None:
    """Keys that are no strings, a circular entry: each is that entry's problem, never the catalogue's."""
    circular: dict[str, object] = {"name": "mine.loop"}
    circular["self"] = circular

    class Hostile:
        @hookimpl
        def register_models(self) -> list[object]:
            good = {"name": "mine.good", "plugin": "mine", "arch": "a", "family": "f", "task": "t"}
            good |= {"modality": "text", "source": {"hub": "o/r"}, "input": {"tokenizer": "t"}}
            return [{"name": "mine.numbered", 1: 2}, {("a", "tuple"): 1}, circular, good]

    register_plugin(Hostile(), "mine")
    with pytest.warns(RegistryWarning) as warned:
        catalogue = load_catalogue()
    messages = [str(w.message) for w in warned]
    assert "plugin 'mine': model 'mine.numbered': field '1': unknown field" in " ".join(messages)
    refused = [m for m in messages if m.startswith("plugin 'mine': register_models returned a mapping that is not")]
    assert len(refused) == 2
    assert "mine.good" in catalogue and "mine.numbered" not in catalogue
