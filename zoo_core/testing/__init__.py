"""pytest fixtures for testing zoo and zoo plugins, installed as the ``zoo`` pytest plugin.

Use them from any project that has zoo installed; none is autouse::

    def test_my_plugin_models(zoo_env, register_plugin):
        register_plugin(my_plugin, "mine")
        assert zoo_core.get("my-net.v1").plugin == "mine"

- `zoo_env`: ``ZOO_HOME`` and ``HF_HOME`` in a temporary folder, zoo's switches cleared, caches reset.
- `register_plugin`: register an in-memory plugin for one test; it is removed afterwards.
- `fake_plugin`: a registered `FakePlugin` ("fake") with three tiny models and every model hook.
- `hub`: a running `zoo_core.testing.hub.HubServer` on 127.0.0.1, with ``HF_ENDPOINT`` pointing at it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from zoo_core.checks import CheckReport, Finding
from zoo_core.hookspecs import hookimpl
from zoo_core.plugins import Requirement, get_plugin_manager, reset_plugin_manager
from zoo_core.registry import parse_spec
from zoo_core.sources import reset_catalogue, use_registry_files
from zoo_core.specs import ModelSpec
from zoo_core.testing.hub import HubServer, running_hub

__all__ = ["FakeBackbone", "FakePlugin", "fake_plugin", "hub", "register_plugin", "zoo_env"]

_SWITCHES = (
    "ZOO_REGISTRY",
    "ZOO_DISABLE_PLUGIN_AUTOLOAD",
    "ZOO_DISABLE_PLUGINS",
    "ZOO_TRACE_PLUGINS",
    "HF_HUB_CACHE",
    "HF_HUB_OFFLINE",
    "HF_TOKEN",
)


@pytest.fixture
def zoo_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point zoo and huggingface_hub at a fresh temporary home; yields ``ZOO_HOME``."""
    home = tmp_path / "zoo-home"
    monkeypatch.setenv("ZOO_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    for name in _SWITCHES:
        monkeypatch.delenv(name, raising=False)
    reset_plugin_manager()
    use_registry_files(())
    reset_catalogue()
    yield home
    reset_plugin_manager()
    reset_catalogue()


@pytest.fixture
def register_plugin(zoo_env: Path) -> Iterator[Callable[[object, str], None]]:
    """A function ``register(plugin, name)`` that adds an in-memory plugin until the test ends."""
    names: list[str] = []

    def register(plugin: object, name: str) -> None:
        get_plugin_manager().register(plugin, name=name)
        names.append(name)
        reset_catalogue()

    try:
        yield register
    finally:
        manager = get_plugin_manager()
        for name in names:
            if manager.has_plugin(name):
                manager.unregister(name=name)
        reset_catalogue()


@dataclass(frozen=True)
class FakeBackbone:
    """What `FakePlugin` builds: the spec and folder it was asked for, so tests can check the call."""

    spec: ModelSpec
    weights_dir: Path | None


def _fake_entry(name: str, modality: str, **extra: object) -> dict[str, object]:
    inputs: dict[str, dict[str, object]] = {
        "image": {"channels": 3, "height": 32, "width": 32},
        "text": {"tokenizer": "fake/tokenizer", "max_length": 16},
    }
    return {
        "name": name,
        "plugin": "fake",
        "arch": name.split(".")[0],
        "family": "fakenet",
        "task": "image-classification" if modality == "image" else "feature-extraction",
        "modality": modality,
        "license": "mit",
        "source": {"hub": f"fake/{name}", "files": ["model.safetensors"]},
        "input": inputs[modality],
        **extra,
    }


class FakePlugin:
    """An in-memory plugin implementing every hook that acts on models, with tiny specs."""

    @hookimpl
    def plugin_requirements(self) -> list[Requirement]:
        return []

    @hookimpl
    def register_models(self) -> list[ModelSpec]:
        entries = [
            _fake_entry("fakenet_tiny.v1", "image", aliases=["fakenet_tiny"], params=1000, tags=["toy"]),
            _fake_entry("fakenet_large.v1", "image", params=5_000_000, description="a larger fake network"),
            _fake_entry("fakebert.v1", "text", params=20_000),
        ]
        return [parse_spec(entry, "plugin 'fake'") for entry in entries]

    @hookimpl
    def build_backbone(self, spec: ModelSpec, weights_dir: Path | None) -> FakeBackbone | None:
        return FakeBackbone(spec, weights_dir) if spec.plugin == "fake" else None

    @hookimpl
    def check_input(self, spec: ModelSpec, data: object) -> CheckReport | None:
        if spec.plugin != "fake":
            return None
        finding = Finding("fake", "ok" if data else "error", f"got {data!r}", None if data else "pass some data")
        return CheckReport(spec.name, (finding,))

    @hookimpl
    def convert_weights(self, format: str, source: Path, destination: Path) -> ModelSpec | None:
        if format != "fake":
            return None
        (destination / "model.safetensors").write_bytes(source.read_bytes())
        entry = _fake_entry(f"converted.{source.stem}", "image")
        return parse_spec(entry, f"converted from {source}")


@pytest.fixture
def fake_plugin(register_plugin: Callable[[object, str], None]) -> FakePlugin:
    """`FakePlugin` registered as "fake" for this test."""
    plugin = FakePlugin()
    register_plugin(plugin, "fake")
    return plugin


@pytest.fixture
def hub(zoo_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """A hub-protocol server on 127.0.0.1 for this test; ``HF_ENDPOINT`` points at it."""
    with running_hub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server
