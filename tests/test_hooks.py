"""One test per hook: the core calls it the documented way and uses its result (see test_docs.py).

Plus how every hook is called: plugin by plugin in call order, a plugin that fails named, and skipped for
other plugins' models.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable
from pathlib import Path

import click
import pytest

import zoo_core
from zoo_core import CheckReport, Finding, ModelSpec, PluginError, WeightsFormatError, hookimpl
from zoo_core.cli import cli, main
from zoo_core.compatibility import check
from zoo_core.errors import PluginWarning
from zoo_core.plugins import build_backbone, convert_weights, onnx_exporter, plugin_statuses
from zoo_core.testing import FakeBackbone, FakePlugin

Register = Callable[[object, str], None]


class RaisesEverywhere:
    """A plugin that raises in every hook that acts on a model, and owns no model of its own."""

    @hookimpl
    def build_backbone(self, spec: ModelSpec, weights_dir: Path | None) -> object:
        raise ValueError(f"boom building {spec.name}")

    @hookimpl
    def check_input(self, spec: ModelSpec, data: object, report: CheckReport) -> list[Finding]:
        raise ValueError("boom checking")

    @hookimpl
    def convert_weights(self, format: str, source: Path, destination: Path) -> ModelSpec:
        raise RuntimeError("boom converting")

    @hookimpl
    def onnx_exporter(self, spec: ModelSpec) -> tuple[str, str]:
        raise KeyError("boom exporting")


def owned_by(plugin: str, name: str = "fakenet_tiny") -> ModelSpec:
    """A copy of one of the fake plugin's specs, naming another plugin."""
    return dataclasses.replace(zoo_core.get(name), name=f"{plugin}net.v1", plugin=plugin)


def test_hook_plugin_requirements(fake_plugin: FakePlugin) -> None:
    statuses = {status.name: status.state for status in plugin_statuses()}
    assert statuses["fake"] == "ok"  # no requirements: nothing missing


def test_hook_register_models(fake_plugin: FakePlugin) -> None:
    spec = zoo_core.get("fakenet_tiny")
    assert (spec.name, spec.origin, spec.params) == ("fakenet_tiny.v1", "plugin 'fake'", 1000)
    assert [each.name for each in zoo_core.list_models(plugin="fake")] == [
        "fakebert.v1",
        "fakenet_large.v1",
        "fakenet_tiny.v1",
    ]


def test_hook_register_models_may_return_registry_files(
    register_plugin: Register, write_registry: Callable[..., Path]
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


def test_hook_build_backbone(fake_plugin: FakePlugin, register_plugin: Register, tmp_path: Path) -> None:
    spec = zoo_core.get("fakenet_tiny")
    assert build_backbone(spec, tmp_path) == FakeBackbone(spec, tmp_path)
    register_plugin(ListsOnly(), "lister")
    orphan = dataclasses.replace(spec, name="orphan.v1", plugin="lister", arch="orphan")
    with pytest.raises(PluginError, match=r"plugin 'lister' did not build 'orphan.v1' \(arch 'orphan'\)"):
        build_backbone(orphan, None)  # every plugin answered None


def test_hook_build_backbone_errors_name_the_plugin(register_plugin: Register) -> None:
    class Crashes(FakePlugin):
        @hookimpl
        def build_backbone(self, spec: object, weights_dir: object) -> object:
            raise OSError("weights\ntruncated")

    register_plugin(Crashes(), "fake")
    with pytest.raises(PluginError) as raised:
        build_backbone(zoo_core.get("fakenet_tiny"), None)
    assert str(raised.value) == (
        "plugin 'fake' failed for 'fakenet_tiny.v1': build_backbone raised OSError: weights truncated; "
        "see `zoo plugins`"
    )


def test_hook_build_backbone_isolates_a_plugin_that_raises(fake_plugin: FakePlugin, register_plugin: Register) -> None:
    register_plugin(RaisesEverywhere(), "broken")  # registered last: asked before "fake"
    spec = zoo_core.get("fakenet_tiny")
    with pytest.warns(PluginWarning, match=r"^plugin 'broken' failed for 'fakenet_tiny.v1': build_backbone raised"):
        assert build_backbone(spec, None) == FakeBackbone(spec, None)  # another plugin's model still loads
    with pytest.raises(PluginError, match=r"^plugin 'broken' failed for 'brokennet.v1': build_backbone raised "):
        build_backbone(owned_by("broken"), None)  # its own model names it


def test_hook_build_backbone_takes_the_first_answer_in_call_order(
    fake_plugin: FakePlugin, register_plugin: Register
) -> None:
    asked: list[str] = []

    class Answers:
        def __init__(self, name: str) -> None:
            self.name = name

        @hookimpl
        def build_backbone(self, spec: ModelSpec, weights_dir: Path | None) -> str:
            asked.append(self.name)
            return self.name

    class AnswersFirst(Answers):
        @hookimpl(tryfirst=True)
        def build_backbone(self, spec: ModelSpec, weights_dir: Path | None) -> str:
            return super().build_backbone(spec, weights_dir)

    register_plugin(AnswersFirst("first"), "first")
    register_plugin(Answers("second"), "second")
    assert build_backbone(zoo_core.get("fakenet_tiny"), None) == "first" and asked == ["first"]


def test_hook_check_input(fake_plugin: FakePlugin) -> None:
    report = check(zoo_core.get("fakebert.v1"), ["The bank raised rates", "Markets fell"])
    assert [finding.check for finding in report.findings] == ["rows", "casing", "script", "fake"]  # zoo's first
    assert report.findings[-1].message == "got ['The bank raised rates', 'Markets fell']" and report.usable


def test_hook_check_input_isolates_a_plugin_that_raises(fake_plugin: FakePlugin, register_plugin: Register) -> None:
    register_plugin(RaisesEverywhere(), "broken")
    with pytest.warns(PluginWarning, match=r"^plugin 'broken' failed for 'fakebert.v1': check_input raised Val"):
        report = check(zoo_core.get("fakebert.v1"), ["some text"])
    assert [finding.check for finding in report.findings][-1] == "fake"
    with pytest.raises(PluginError, match=r"^plugin 'broken' failed for 'brokennet.v1': check_input raised "):
        check(owned_by("broken", "fakebert.v1"), ["some text"])


def test_hook_check_input_answers_must_be_findings(register_plugin: Register) -> None:
    class OldStyle(FakePlugin):
        @hookimpl
        def check_input(self, spec: ModelSpec, data: object) -> CheckReport:  # the hook before findings combined
            return CheckReport(spec.name, (Finding("fake", "ok", "fine"),))

    register_plugin(OldStyle(), "fake")
    with pytest.raises(PluginError) as raised:
        check(zoo_core.get("fakebert.v1"), ["some text"])
    assert str(raised.value) == (
        "plugin 'fake' failed for 'fakebert.v1': check_input returned a CheckReport, not a list of Finding; "
        "see `zoo plugins`"
    )


def test_hook_convert_weights(fake_plugin: FakePlugin, register_plugin: Register, tmp_path: Path) -> None:
    source = tmp_path / "net.caffemodel"
    source.write_bytes(b"\x00weights")
    destination = tmp_path / "out"
    destination.mkdir()
    register_plugin(RaisesEverywhere(), "broken")  # asked first, skipped
    with pytest.warns(PluginWarning, match=r"^plugin 'broken' failed: convert_weights raised RuntimeError: boom"):
        spec = convert_weights("fake", source, destination)
    assert spec.name == "converted.net" and (destination / "model.safetensors").read_bytes() == b"\x00weights"
    with pytest.raises(PluginError, match=r"no plugin converts the format 'onnx'"), pytest.warns(PluginWarning):
        convert_weights("onnx", source, destination)


def test_hook_convert_weights_passes_on_what_the_plugin_says_about_the_file(
    register_plugin: Register, tmp_path: Path
) -> None:
    class Refuses:
        @hookimpl
        def convert_weights(self, format: str, source: Path, destination: Path) -> ModelSpec:
            raise WeightsFormatError(f"{source}: not a Caffe model (no layers); pass the .caffemodel file")

    register_plugin(Refuses(), "refuses")
    with pytest.raises(WeightsFormatError, match=r"net.bin: not a Caffe model"):
        convert_weights("caffe", tmp_path / "net.bin", tmp_path)


def test_hook_onnx_exporter(fake_plugin: FakePlugin, register_plugin: Register) -> None:
    class Chooses:
        def __init__(self, answer: object) -> None:
            self.answer = answer

        @hookimpl
        def onnx_exporter(self, spec: ModelSpec) -> object:
            return self.answer if spec.plugin == "chooser" else None

    register_plugin(Chooses(("dynamo", "its attention is data-dependent")), "chooser")
    register_plugin(RaisesEverywhere(), "broken")
    with pytest.warns(PluginWarning, match=r"^plugin 'broken' failed for 'choosernet.v1': onnx_exporter raised Key"):
        assert onnx_exporter(owned_by("chooser")) == ("dynamo", "its attention is data-dependent")
    with pytest.warns(PluginWarning):
        assert onnx_exporter(zoo_core.get("fakenet_tiny")) is None  # nobody chooses: zoo's table decides
    register_plugin(Chooses(("tensorrt", "fast")), "chooser")  # now the last registered: asked first
    with pytest.raises(PluginError) as raised:
        onnx_exporter(owned_by("chooser"))
    assert str(raised.value) == (
        "plugin 'chooser' failed for 'choosernet.v1': onnx_exporter returned ('tensorrt', 'fast'), not (exporter, "
        "why) with exporter 'torchscript' or 'dynamo'; see `zoo plugins`"
    )


def test_hook_register_commands(register_plugin: Register, capsys: pytest.CaptureFixture[str]) -> None:
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


def test_hookspecs_import_nothing_that_imports_plugins() -> None:
    """No import cycle through the contract: `hookspecs` (even under TYPE_CHECKING) never reaches `plugins`."""
    root = Path(zoo_core.__file__).parent.parent
    seen: set[str] = set()
    queue = ["zoo_core.hookspecs"]
    while queue:
        module = queue.pop()
        path = root / (module.replace(".", "/") + ".py")
        if module in seen or not path.exists():
            continue
        seen.add(module)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("zoo_core"):
                queue += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                queue += [alias.name for alias in node.names if alias.name.startswith("zoo_core")]
    assert {"zoo_core.hookspecs", "zoo_core.checks", "zoo_core.specs"} <= seen  # TYPE_CHECKING imports followed
    assert "zoo_core.plugins" not in seen
