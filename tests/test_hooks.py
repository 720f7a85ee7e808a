"""One test per hook: the core calls it the documented way and uses its result (see test_docs.py).

Plus how every hook is called: plugin by plugin in call order, a plugin that fails named, and skipped for
other plugins' models.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import pytest

import zoo_core
from zoo_core import (
    CheckReport,
    EmbeddingInput,
    Finding,
    ModelSpec,
    PluginError,
    WeightsFormatError,
    hookimpl,
    hookspecs,
)
from zoo_core.backbone import Backbone
from zoo_core.cli import cli, main
from zoo_core.compatibility import check
from zoo_core.errors import PluginWarning
from zoo_core.plugins import build_backbone, convert_weights, onnx_exporter, plugin_statuses
from zoo_core.testing import FakePlugin
from zoo_core.testing.fake_backbone import FakeBackbone

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


def built_from(backbone: object) -> tuple[ModelSpec, Path | None]:
    """The spec and folder the fake plugin's backbone was built from."""
    assert isinstance(backbone, FakeBackbone)
    return backbone.spec, backbone.weights_dir


def as_vectors(spec: ModelSpec) -> ModelSpec:
    """A copy of `spec` as a word-vector model: no network, so any object its plugin builds is an answer."""
    return dataclasses.replace(spec, modality="embedding", task="word-embedding", input=EmbeddingInput(dim=4))


class TinyBackbone(Backbone):
    """The smallest `Backbone` subclass: every member a plugin provides, none doing anything."""

    feature_dim = 1

    def features(self, x: object) -> object:
        return x

    def forward(self, x: object) -> object:
        return x

    def reset_head(self, num_classes: int) -> None:
        pass

    def layer_groups(self) -> list[object]:
        return []

    def drop_last(self, n: int) -> None:
        pass


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
    spec = as_vectors(zoo_core.get("fakenet_tiny"))
    assert built_from(build_backbone(spec, tmp_path)) == (spec, tmp_path)
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
    spec = as_vectors(zoo_core.get("fakenet_tiny"))
    with pytest.warns(PluginWarning, match=r"^plugin 'broken' failed for 'fakenet_tiny.v1': build_backbone raised"):
        assert built_from(build_backbone(spec, None)) == (spec, None)  # another plugin's model still loads
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
    assert build_backbone(as_vectors(zoo_core.get("fakenet_tiny")), None) == "first" and asked == ["first"]


class BuildsAString:
    """A plugin that answers every build_backbone call with a str, whatever the model."""

    @hookimpl
    def build_backbone(self, spec: ModelSpec, weights_dir: Path | None) -> str:
        return "not a network"


def test_hook_build_backbone_answers_must_be_backbones(fake_plugin: FakePlugin, register_plugin: Register) -> None:
    class BuildsTiny:
        @hookimpl
        def build_backbone(self, spec: ModelSpec, weights_dir: Path | None) -> Backbone | None:
            return TinyBackbone(spec) if spec.plugin == "tiny" else None

    register_plugin(BuildsTiny(), "tiny")
    register_plugin(BuildsAString(), "strings")  # registered last: asked first
    tiny = owned_by("tiny")
    with pytest.warns(PluginWarning) as warned:
        built = build_backbone(tiny, None)
    assert isinstance(built, TinyBackbone) and built.spec == tiny  # the owner's network, after the str is skipped
    assert [str(each.message) for each in warned] == [
        "plugin 'strings' failed for 'tinynet.v1': build_backbone returned a str, not a zoo_core.Backbone: a "
        "model of modality 'image' is built as an instance of a Backbone subclass; skipped it (see `zoo plugins`)"
    ]
    with pytest.raises(PluginError) as raised:
        build_backbone(owned_by("strings"), None)  # its own model: zoo_core.load would have returned a str
    assert str(raised.value) == (
        "plugin 'strings' failed for 'stringsnet.v1': build_backbone returned a str, not a zoo_core.Backbone: a "
        "model of modality 'image' is built as an instance of a Backbone subclass; see `zoo plugins`"
    )
    assert {status.name: status.state for status in plugin_statuses()}["strings"] == "error"
    assert build_backbone(as_vectors(owned_by("strings")), None) == "not a network"  # word vectors: any object


def test_hook_build_backbone_warns_once_per_plugin_model_and_problem(
    fake_plugin: FakePlugin, register_plugin: Register
) -> None:
    register_plugin(RaisesEverywhere(), "broken")
    tiny, large = (as_vectors(zoo_core.get(name)) for name in ("fakenet_tiny", "fakenet_large.v1"))
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")  # what Python would show: each warning, even from the same line
        for spec in (tiny, tiny, tiny, large, tiny):
            assert built_from(build_backbone(spec, None)) == (spec, None)
    assert [re.sub(r": build_backbone .*", "", str(each.message)) for each in warned] == [
        "plugin 'broken' failed for 'fakenet_tiny.v1'",
        "plugin 'broken' failed for 'fakenet_large.v1'",
    ]


def test_hook_failures_include_a_plugin_that_exits(fake_plugin: FakePlugin, register_plugin: Register) -> None:
    class Exits:
        @hookimpl
        def build_backbone(self, spec: ModelSpec, weights_dir: Path | None) -> object:
            raise SystemExit(3)

    register_plugin(Exits(), "exits")
    spec = as_vectors(zoo_core.get("fakenet_tiny"))
    with pytest.warns(PluginWarning, match=r"^plugin 'exits' failed for 'fakenet_tiny.v1': build_backbone raised"):
        assert built_from(build_backbone(spec, None)) == (spec, None)  # zoo carried on
    with pytest.raises(PluginError) as raised:
        build_backbone(owned_by("exits"), None)
    assert (
        str(raised.value)
        == "plugin 'exits' failed for 'exitsnet.v1': build_backbone raised SystemExit: 3; see `zoo plugins`"
    )


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
        "return list(report.findings); see `zoo plugins`"
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
    with warnings.catch_warnings(record=True) as warned, pytest.raises(PluginError, match=r"no plugin converts "):
        warnings.simplefilter("always")
        convert_weights("onnx", source, destination)
    assert warned == []  # "broken" failed alike: the command has warned of it already


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
        assert onnx_exporter(owned_by("chooser")) == ("chooser", "dynamo", "its attention is data-dependent")
    with pytest.warns(PluginWarning):
        assert onnx_exporter(zoo_core.get("fakenet_tiny")) is None  # nobody chooses: zoo's table decides
    register_plugin(Chooses(("tensorrt", "fast")), "chooser")  # now the last registered: asked first
    with pytest.raises(PluginError) as raised:
        onnx_exporter(owned_by("chooser"))
    assert str(raised.value) == (
        "plugin 'chooser' failed for 'choosernet.v1': onnx_exporter returned ('tensorrt', 'fast'), not (exporter, "
        "why) with exporter 'torchscript' or 'dynamo'; see `zoo plugins`"
    )


@contextmanager
def commands_registered_again() -> Iterator[None]:
    """For the block, `main()` registers the CLI's commands again, plugins' included; then the old ones are back."""
    commands = dict(cli.commands)
    cli.commands.clear()
    try:
        yield
    finally:
        cli.commands.clear()
        cli.commands.update(commands)


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
    with commands_registered_again(), pytest.raises(SystemExit) as exited:
        main(["hello", "zoo"])
    assert exited.value.code == 0 and capsys.readouterr().out == "hello zoo\n"


def test_ctrl_c_anywhere_aborts_with_130(register_plugin: Register, capsys: pytest.CaptureFixture[str]) -> None:
    class Interrupted:
        def __init__(self) -> None:
            self.in_command = False

        @hookimpl
        def register_commands(self, cli: click.Group) -> None:
            if not self.in_command:
                raise KeyboardInterrupt  # while zoo starts

            @cli.command()
            def wait() -> None:
                """Wait, until interrupted."""
                raise KeyboardInterrupt

    plugin = Interrupted()
    register_plugin(plugin, "interrupted")
    for in_command in (False, True):
        plugin.in_command = in_command
        with commands_registered_again(), pytest.raises(SystemExit) as exited:
            try:
                main(["wait"])
            except KeyboardInterrupt:  # fail this test, not pytest's whole run
                pytest.fail("a KeyboardInterrupt went through main()")
        assert (exited.value.code, capsys.readouterr().err.strip()) == (130, "Aborted.")
    with commands_registered_again(), pytest.raises(click.Abort) as aborted:
        main(["--debug", "wait"])  # the traceback: click's Abort, from the KeyboardInterrupt
    assert isinstance(aborted.value.__cause__, KeyboardInterrupt)
    plugin.in_command = False
    with commands_registered_again(), pytest.raises(KeyboardInterrupt):
        main(["--debug", "wait"])


def test_hookspecs_are_declared_alike() -> None:
    """zoo calls every hook plugin by plugin (`each_result`), never through pluggy's call: no hookspec has
    options (``firstresult`` would say something zoo does not do)."""
    marker = hookspecs.hookspec.project_name + "_spec"
    options = {
        name: getattr(hookspecs, name).__dict__[marker]
        for name in dir(hookspecs)
        if hasattr(getattr(hookspecs, name), marker)
    }
    assert len(options) == 7 and all(not any(opts.values()) for opts in options.values()), options
    table = re.search(r"``\[\[(\w+)\]\]``", hookspecs.register_models.__doc__ or "")
    registry = (Path(zoo_core.__file__).parent / "registry.toml").read_text(encoding="utf-8")
    assert table is not None and f"\n[[{table[1]}]]\n" in registry  # the table name registry files use
    assert zoo_core.PluginWarning is PluginWarning and "PluginWarning" in zoo_core.__all__


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
