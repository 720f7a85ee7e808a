"""One test per hook: the core calls it the documented way and uses its result (see test_docs.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import click
import pytest

import zoo_core
from zoo_core import PluginError, hookimpl
from zoo_core.cli import cli, main
from zoo_core.plugins import build_backbone, check_input, convert_weights, plugin_statuses, reset_plugin_manager
from zoo_core.testing import FakeBackbone, FakePlugin


def test_hook_plugin_requirements(fake_plugin: FakePlugin) -> None:
    statuses = {status.name: status.state for status in plugin_statuses()}
    assert statuses["fake"] == "ok"  # no requirements: nothing missing


def test_hook_register_models(fake_plugin: FakePlugin) -> None:
    spec = zoo_core.get("fakenet_tiny")
    assert (spec.name, spec.origin, spec.params) == ("fakenet_tiny.v1", "plugin 'fake'", 1000)
    assert [each.name for each in zoo_core.list_models(plugin="fake")] == [
        "fakebert.v1", "fakenet_large.v1", "fakenet_tiny.v1",
    ]  # fmt: skip


def test_hook_register_models_may_return_registry_files(
    register_plugin: Callable[[object, str], None], write_registry: Callable[..., Path]
) -> None:
    from conftest import image_entry

    path = write_registry(image_entry("shipped.v1"), "shipped.toml")

    class ShipsAFile:
        @hookimpl
        def register_models(self) -> list[Path]:
            return [path]

    register_plugin(ShipsAFile(), "ships")
    assert zoo_core.get("shipped.v1").origin == str(path)


class ListsOnly:
    """A plugin that contributes nothing but its (empty) requirements: it builds nothing."""

    @hookimpl
    def plugin_requirements(self) -> list[object]:
        return []


def test_hook_build_backbone(
    fake_plugin: FakePlugin, register_plugin: Callable[[object, str], None], tmp_path: Path
) -> None:
    spec = zoo_core.get("fakenet_tiny")
    assert build_backbone(spec, tmp_path) == FakeBackbone(spec, tmp_path)
    register_plugin(ListsOnly(), "lister")
    orphan = dataclasses.replace(spec, name="orphan.v1", plugin="lister", arch="orphan")
    with pytest.raises(PluginError, match=r"plugin 'lister' did not build 'orphan.v1' \(arch 'orphan'\)"):
        build_backbone(orphan, None)  # every plugin answered None


def test_hook_build_backbone_errors_name_the_model(register_plugin: Callable[[object, str], None]) -> None:
    class Crashes(FakePlugin):
        @hookimpl
        def build_backbone(self, spec: object, weights_dir: object) -> object:
            raise OSError("weights truncated")

    register_plugin(Crashes(), "fake")
    with pytest.raises(PluginError, match=r"building 'fakenet_tiny.v1' failed in a plugin's build_backbone: OSError"):
        build_backbone(zoo_core.get("fakenet_tiny"), None)


def test_hook_check_input(fake_plugin: FakePlugin, monkeypatch: pytest.MonkeyPatch) -> None:
    report = check_input(zoo_core.get("fakenet_tiny"), "images/")
    assert report.usable and report.findings[0].message == "got 'images/'"
    assert not check_input(zoo_core.get("fakenet_tiny"), "").usable
    bert = zoo_core.get("bert-base-uncased")
    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", "transformers")  # the plugin that checks text
    reset_plugin_manager()
    with pytest.raises(PluginError, match=r"no plugin checks text data for 'bert-base-uncased'"):
        check_input(bert, "texts.csv")


def test_hook_convert_weights(fake_plugin: FakePlugin, tmp_path: Path) -> None:
    source = tmp_path / "net.caffemodel"
    source.write_bytes(b"\x00weights")
    destination = tmp_path / "out"
    destination.mkdir()
    spec = convert_weights("fake", source, destination)
    assert spec.name == "converted.net" and (destination / "model.safetensors").read_bytes() == b"\x00weights"
    with pytest.raises(PluginError, match=r"no plugin converts the format 'onnx'"):
        convert_weights("onnx", source, destination)


def test_hook_register_commands(
    register_plugin: Callable[[object, str], None], capsys: pytest.CaptureFixture[str]
) -> None:
    class AddsACommand:
        @hookimpl
        def register_commands(self, cli: click.Group) -> None:
            @cli.command()
            @click.argument("name")
            def hello(name: str) -> None:
                """Say hello."""
                click.echo(f"hello {name}")

    register_plugin(AddsACommand(), "greeter")
    commands = dict(cli.commands)
    cli.commands.clear()  # make main() register commands again, plugins included
    try:
        with pytest.raises(SystemExit) as exited:
            main(["hello", "zoo"])
        assert exited.value.code == 0 and capsys.readouterr().out == "hello zoo\n"
    finally:
        cli.commands.clear()
        cli.commands.update(commands)
