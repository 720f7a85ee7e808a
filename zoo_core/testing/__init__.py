"""pytest fixtures for testing zoo and zoo plugins, installed as the ``zoo`` pytest plugin.

Use them from any project that has zoo installed; none is autouse::

    def test_my_plugin_models(zoo_env, register_plugin):
        register_plugin(my_plugin, "mine")
        assert zoo_core.get("my-net.v1").plugin == "mine"

- `zoo_env`: yields the ``ZOO_HOME`` `Path` of this test, a fresh folder under ``tmp_path`` (not created
  until zoo writes to it); ``HF_HOME`` is ``tmp_path / "hf-home"``; zoo's switches (``ZOO_REGISTRY``,
  ``ZOO_DISABLE_PLUGIN*``, ``ZOO_TRACE_PLUGINS``) and ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``, ``HF_TOKEN`` are
  unset; the plugin manager and the catalogue are made afresh. Installed (entry-point) plugins stay loaded.
- `register_plugin`: a function ``register(plugin, name)`` adding an in-memory plugin for one test. An
  installed plugin of that name (yours, when you test your own plugin) is unregistered for the test and
  registered again afterwards, so a plugin's tests run the same whether it is installed or not.
- `fake_plugin`: a `FakePlugin` registered as "fake". Its models: ``fakenet_tiny.v1`` (alias
  ``fakenet_tiny``, image 3x32x32, 1,000 parameters, tag "toy"), ``fakenet_large.v1`` (image, 5M) and
  ``fakebert.v1`` (text, tokenizer "fake/tokenizer", 16 tokens), all family "fakenet", licence "mit", hub
  repo ``fake/NAME``. Its hooks: `plugin_requirements` (none), `register_models` (those three),
  `build_backbone` (a `zoo_core.testing.fake_backbone.FakeBackbone`: a real, tiny Backbone of random
  weights that records its `spec` and `weights_dir`), `check_input` (one finding, check "fake":
  ok when the data is truthy, else an error) and `convert_weights` (format "fake": copies the file).
- `hub`: a running `zoo_core.testing.hub.HubServer` on 127.0.0.1, with ``HF_ENDPOINT`` pointing at it.
  ``hub.add_repo(repo, {name: bytes})`` serves files; ``hub.fail(repo, name, fault, times=N)`` spoils the
  next N requests of a file: ``"flip"`` (a byte changed) and ``"cut"`` (the connection closed halfway) act
  on GETs, an HTTP status such as ``"500"`` on HEAD and GET alike; then the file is served intact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from zoo_core.catalogue_sources import reset_catalogue, use_registry_files
from zoo_core.checks import CheckReport, Finding
from zoo_core.hookspecs import hookimpl
from zoo_core.plugins import Requirement, get_plugin_manager, reset_plugin_manager
from zoo_core.registry import parse_spec
from zoo_core.specs import ModelSpec
from zoo_core.testing.hub import HubServer, running_hub

__all__ = ["FakePlugin", "fake_plugin", "hub", "plugin_registered", "register_plugin", "zoo_env"]

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


@contextmanager
def plugin_registered(plugin: object, name: str) -> Iterator[None]:
    """For the block, `plugin` is the plugin called `name`; one installed under that name steps aside."""
    manager = get_plugin_manager()
    installed = manager.unregister(name=name) if manager.get_plugin(name) is not None else None
    manager.register(plugin, name=name)
    reset_catalogue()
    try:
        yield
    finally:
        manager = get_plugin_manager()  # the same one, unless the test made a new one (then nothing to undo)
        if manager.get_plugin(name) is plugin:
            manager.unregister(name=name)
            if installed is not None:
                manager.register(installed, name=name)
        reset_catalogue()


@pytest.fixture
def register_plugin(zoo_env: Path) -> Iterator[Callable[[object, str], None]]:
    """A function ``register(plugin, name)`` that makes `plugin` the plugin `name` until the test ends."""
    with ExitStack() as registered:
        yield lambda plugin, name: registered.enter_context(plugin_registered(plugin, name))


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
    def build_backbone(self, spec: ModelSpec, weights_dir: Path | None) -> object | None:
        if spec.plugin != "fake":
            return None
        from zoo_core.testing.fake_backbone import FakeBackbone

        return FakeBackbone(spec, weights_dir)

    @hookimpl
    def check_input(self, spec: ModelSpec, data: object, report: CheckReport) -> list[Finding] | None:
        if spec.plugin != "fake":
            return None
        return [Finding("fake", "ok" if data else "error", f"got {data!r}", None if data else "pass some data")]

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
