"""Plugin discovery through entry points, plugin states (failures remembered across commands), the
environment switches, the test fixtures, and which plugins' answers a block of work used."""

from __future__ import annotations

import dataclasses
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Run
from test_hooks import as_vectors, built_from, commands_registered_again

import zoo_core
from zoo_core import ModelSpec, PluginUnavailableError, Requirement, hookimpl
from zoo_core.catalogue_sources import reset_catalogue
from zoo_core.compatibility import check
from zoo_core.errors import PluginError, PluginWarning
from zoo_core.plugins import (
    build_backbone,
    each_result,
    get_plugin_manager,
    plugin_distribution,
    plugin_statuses,
    reset_plugin_manager,
    used_plugins,
)
from zoo_core.testing import FakePlugin, plugin_registered

Register = Callable[[object, str], None]
WHEN = r"\(\d{4}-\d\d-\d\d \d\d:\d\d\)"  # when a hook failed, as `zoo plugins` shows it


def states() -> dict[str, tuple[str, str | None, str | None]]:
    return {status.name: (status.state, status.reason, status.hint) for status in plugin_statuses()}


def test_builtin_plugins_come_from_entry_points() -> None:
    statuses = {status.name: status for status in plugin_statuses()}
    assert statuses["timm"].state == "ok" and statuses["transformers"].state == "ok"
    assert statuses["timm"].distribution == "zoo-tl" and statuses["timm"].version == zoo_core.__version__


def test_a_plugin_missing_a_module_is_unavailable_with_the_install_hint(
    register_plugin: Callable[[object, str], None],
) -> None:
    class NeedsMissing(FakePlugin):
        @hookimpl
        def plugin_requirements(self) -> list[Requirement]:
            return [Requirement("json", "-"), Requirement("zoo_no_such_module", "pip install zoo-no-such")]

    register_plugin(NeedsMissing(), "fake")
    assert states()["fake"] == ("unavailable", "missing zoo_no_such_module", "pip install zoo-no-such")
    assert zoo_core.get("fakenet_tiny").plugin == "fake"  # its models stay findable
    with pytest.raises(
        PluginUnavailableError, match=r"needs plugin 'fake', which is unavailable: .*pip install zoo-no-such"
    ):
        build_backbone(zoo_core.get("fakenet_tiny"), None)


def test_a_requirement_zoo_cannot_look_up_is_missing_or_refused(
    register_plugin: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Needs:
        def __init__(self, module: str) -> None:
            self.module = module

        @hookimpl
        def plugin_requirements(self) -> list[Requirement]:
            return [Requirement(self.module, "pip install zoo-needed")]

    (tmp_path / "zoo_raising_parent").mkdir()
    (tmp_path / "zoo_raising_parent/__init__.py").write_text("raise RuntimeError('not importable')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    register_plugin(Needs("zoo_raising_parent.child"), "child")  # find_spec imports the parent, which raises
    register_plugin(Needs(".relative"), "relative")  # find_spec raises ImportError: no package for it
    with pytest.warns(PluginWarning, match=r"^plugin 'relative' failed: plugin_requirements returned a Req"):
        found = states()
    assert found["child"] == ("unavailable", "missing zoo_raising_parent.child", "pip install zoo-needed")
    state, reason, _ = found["relative"]
    assert state == "error" and re.fullmatch(
        rf"plugin_requirements returned a Requirement whose module '.relative' is no module name like 'timm' {WHEN}",
        reason or "",
    )


def test_building_a_model_asks_only_its_plugin_for_its_requirements(
    fake_plugin: FakePlugin, register_plugin: Register
) -> None:
    asked: list[str] = []

    class Counted:
        @hookimpl
        def plugin_requirements(self) -> list[Requirement]:
            asked.append("counted")
            return []

    register_plugin(Counted(), "counted")
    spec = as_vectors(zoo_core.get("fakenet_tiny"))
    assert built_from(build_backbone(spec, None)) == (spec, None) and asked == []
    with pytest.raises(PluginError, match=r"^plugin 'counted' did not build 'counted.v1'"):
        build_backbone(dataclasses.replace(spec, name="counted.v1", plugin="counted"), None)
    assert asked == ["counted"]


def test_a_plugin_that_raises_is_reported_and_skipped(register_plugin: Register) -> None:
    class Broken:
        @hookimpl
        def register_models(self) -> list[object]:
            raise RuntimeError("catalogue file is corrupt")

    register_plugin(Broken(), "broken")
    with pytest.warns(PluginWarning, match=r"^plugin 'broken' failed: register_models raised RuntimeError"):
        assert "resnet18" in zoo_core.load_catalogue()  # the other plugins still contribute
    state, reason, hint = states()["broken"]
    assert (state, hint) == ("error", None)
    assert re.fullmatch(rf"register_models raised RuntimeError: catalogue file is corrupt {WHEN}", reason or "")


def test_register_models_answers_must_be_lists(register_plugin: Register) -> None:
    class Offers:
        def __init__(self, answer: object) -> None:
            self.answer = answer

        @hookimpl
        def register_models(self) -> object:
            return self.answer

    register_plugin(Offers("resnet18"), "stringy")
    register_plugin(Offers({"name": "x.v1"}), "dicty")
    with pytest.warns(PluginWarning) as warned:
        assert "resnet18" in zoo_core.load_catalogue()
    assert sorted(str(each.message) for each in warned if each.category is PluginWarning) == [
        "plugin 'dicty' failed: register_models returned {'name': 'x.v1'}, not a list of registry entries, Paths "
        "or ModelSpecs; skipped it (see `zoo plugins`)",
        "plugin 'stringy' failed: register_models returned 'resnet18', not a list of registry entries, Paths or "
        "ModelSpecs; skipped it (see `zoo plugins`)",
    ]
    assert states()["stringy"][0] == states()["dicty"][0] == "error"


def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> None:
    """A real distribution, zoo-NAME 1.2, on sys.path: its ``zoo`` entry point NAME is the module `source`."""
    dist = tmp_path / f"zoo_{name}-1.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: zoo-{name}\nVersion: 1.2\n")
    (dist / "entry_points.txt").write_text(f"[zoo]\n{name} = zoo_{name}_plugin\n")
    (tmp_path / f"zoo_{name}_plugin.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    reset_plugin_manager()


def test_a_plugin_that_fails_to_import_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real distribution on sys.path whose entry point imports a missing module."""
    install(tmp_path, monkeypatch, "broken", "import zoo_module_that_is_not_installed\n")
    status = {each.name: each for each in plugin_statuses()}["broken"]
    assert (status.distribution, status.version, status.state) == ("zoo-broken", "1.2", "error")
    assert status.reason == (
        "importing zoo_broken_plugin raised ModuleNotFoundError: No module named 'zoo_module_that_is_not_installed'"
    )
    assert get_plugin_manager().import_errors == {"broken": status.reason}
    assert states()["timm"][0] == "ok"


def test_a_plugin_that_exits_at_import_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo: Run) -> None:
    install(tmp_path, monkeypatch, "exits", "raise SystemExit(3)\n")
    assert states()["exits"] == ("error", "importing zoo_exits_plugin raised SystemExit: 3", None)
    code, out, _ = zoo("plugins")
    assert code == 0 and re.search(r"^exits +zoo-exits +1.2 +error ", out, re.MULTILINE), out


def test_ctrl_c_while_a_plugin_imports_aborts_with_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo: Run
) -> None:
    install(tmp_path, monkeypatch, "slow", "raise KeyboardInterrupt\n")
    with commands_registered_again():  # plugins are imported as zoo starts, before click runs the command
        try:
            code, out, err = zoo("plugins")
        except KeyboardInterrupt:  # fail this test, not pytest's whole run
            pytest.fail("a KeyboardInterrupt went through main()")
    assert (code, out, err) == (130, "", "Aborted.\n")


MISSPELLED = """\
    from zoo_core import hookimpl

    @hookimpl
    def plugin_requirements():
        return []

    @hookimpl
    def register_model():
        return []

    @hookimpl(optionalhook=True)
    def a_hook_of_a_later_zoo():
        return None
"""


def test_a_plugin_defining_a_hook_zoo_does_not_have_is_in_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, register_plugin: Register, fake_plugin: FakePlugin
) -> None:
    install(tmp_path, monkeypatch, "typo", MISSPELLED)  # an installed plugin: its entry point is loaded

    class Misspelled(FakePlugin):
        @hookimpl
        def check_inputs(self, spec: ModelSpec, data: object, report: object) -> list[object]:
            return []

        @hookimpl
        def trains(self) -> None:
            return None

    register_plugin(Misspelled(), "fake")  # an in-memory plugin, registered by zoo's fixture
    unknown = "defines hook '{}', which zoo does not have, so zoo never calls it; {}"
    assert states()["typo"] == ("error", unknown.format("register_model", "rename it to 'register_models'"), None)
    hooks = "build_backbone, check_input, convert_weights, onnx_exporter, plugin_requirements, register_commands, "
    assert states()["fake"] == (
        "error",
        unknown.format("check_inputs", "rename it to 'check_input'")
        + "; "
        + unknown.format("trains", f"zoo's hooks are {hooks}register_models"),
        None,
    )
    spec = as_vectors(zoo_core.get("fakenet_tiny"))
    assert built_from(build_backbone(spec, None)) == (spec, None)  # its hooks that exist are called


def test_disabled_plugins_are_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", "timm, nothing")
    reset_plugin_manager()
    assert states()["timm"] == ("blocked", "listed in ZOO_DISABLE_PLUGINS", None)
    assert "nothing" not in states()  # names that match no installed plugin are not listed
    assert "resnet18" not in zoo_core.load_catalogue()
    assert "bert-base-uncased" in zoo_core.load_catalogue()


def test_autoload_can_be_disabled(monkeypatch: pytest.MonkeyPatch, fake_plugin: FakePlugin) -> None:
    monkeypatch.setenv("ZOO_DISABLE_PLUGIN_AUTOLOAD", "1")
    reset_plugin_manager()
    reset_catalogue()
    get_plugin_manager().register(fake_plugin, name="fake")
    assert list(states()) == ["fake"]
    assert "resnet18" not in zoo_core.load_catalogue()


def test_tracing_prints_each_call_in_call_order(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fake_plugin: FakePlugin,
    register_plugin: Register,
) -> None:
    class Early:
        @hookimpl(tryfirst=True)
        def build_backbone(self, spec: ModelSpec, weights_dir: Path | None) -> None:
            return None

    class Late:
        @hookimpl
        def build_backbone(self, spec: ModelSpec, weights_dir: Path | None) -> None:
            return None

    spec = as_vectors(zoo_core.get("fakenet_tiny"))
    monkeypatch.setenv("ZOO_TRACE_PLUGINS", "1")
    reset_plugin_manager()
    register_plugin(Early(), "early")  # registered first, asked first: tryfirst
    register_plugin(fake_plugin, "fake")
    register_plugin(Late(), "late")  # the most recently registered of the others: asked before "fake"
    capsys.readouterr()
    build_backbone(spec, None)
    err = capsys.readouterr().err
    lines = err[err.index("zoo trace: build_backbone(") :].splitlines()  # after plugin_requirements' calls
    assert re.fullmatch(
        r"zoo trace: build_backbone\(spec=ModelSpec\(.*, weights_dir=None\) asks, in order: (.*)", lines[0]
    )
    asked = lines[0].rsplit(": ", 1)[1].split(", ")
    assert asked[:3] == ["early", "late", "fake"] and {"timm", "transformers"} <= set(asked[3:])
    assert lines[1:3] == ["zoo trace:   early returned None", "zoo trace:   late returned None"]
    assert lines[3].startswith("zoo trace:   fake returned FakeBackbone( (stem): Sequential(")
    assert len(lines) == 4  # the first answer wins: no other plugin is asked


def test_plugin_modules_stay_light() -> None:
    """The built-in plugin modules declare their heavy modules instead of importing them."""
    source = textwrap.dedent((Path(zoo_core.__file__).parent.parent / "plugins/zoo_timm/__init__.py").read_text())
    assert "import timm" not in source and "import torch" not in source
    timm = dict(each_result("plugin_requirements"))["timm"]
    assert {requirement.module for requirement in timm} >= {"torch", "timm"}


class Flaky:
    """A plugin that raises in build_backbone and check_input while `broken`; then it answers for the models it
    owns (and None for others')."""

    def __init__(self) -> None:
        self.broken = True

    @hookimpl
    def build_backbone(self, spec: ModelSpec, weights_dir: Path | None) -> str | None:
        if self.broken:
            raise ValueError("boom")
        return "built" if spec.plugin == "flaky" else None

    @hookimpl
    def check_input(self, spec: ModelSpec, data: object, report: object) -> list[object] | None:
        if self.broken:
            raise TypeError("bad data")
        return [] if spec.plugin == "flaky" else None


def flaky_model(name: str) -> ModelSpec:
    """A copy of the fake plugin's model `name` that plugin "flaky" owns, as word vectors (no network)."""
    return as_vectors(dataclasses.replace(zoo_core.get(name), name=f"flaky-{name}", plugin="flaky"))


def test_a_failing_hook_is_shown_by_a_later_command_until_it_succeeds(
    fake_plugin: FakePlugin, register_plugin: Register, zoo: Run
) -> None:
    flaky = Flaky()
    register_plugin(flaky, "flaky")
    image, text = as_vectors(zoo_core.get("fakenet_tiny")), zoo_core.get("fakebert.v1")
    own_image, own_text = flaky_model("fakenet_tiny"), flaky_model("fakebert.v1")
    with pytest.warns(PluginWarning, match="plugin 'flaky'"):
        build_backbone(image, None)
    with pytest.warns(PluginWarning, match="plugin 'flaky'"):
        check(text, ["some text"])
    reset_plugin_manager()  # as in a new process, with the same plugins installed
    register_plugin(fake_plugin, "fake")
    register_plugin(flaky, "flaky")
    code, out, _ = zoo("plugins")
    assert code == 0 and re.search(r"^flaky +- +- +error +0 +-$", out, re.MULTILINE), out
    line = re.escape("flaky: error: build_backbone raised ValueError: boom ") + WHEN
    line += re.escape("; check_input raised TypeError: bad data ") + WHEN
    assert re.search(rf"^{line}$", out, re.MULTILINE), out
    flaky.broken = False
    build_backbone(image, None)
    check(text, ["some text"])  # flaky answers None for fake's models: no news of its own
    reset_plugin_manager()
    register_plugin(flaky, "flaky")
    assert states()["flaky"][0] == "error" and "check_input raised" in (states()["flaky"][1] or "")
    assert build_backbone(own_image, None) == "built"  # its build_backbone works again
    reset_plugin_manager()
    register_plugin(flaky, "flaky")
    assert re.fullmatch(rf"check_input raised TypeError: bad data {WHEN}", states()["flaky"][1] or "")
    check(own_text, ["some text"])  # [] : nothing to add, and no error
    reset_plugin_manager()
    register_plugin(flaky, "flaky")
    assert states()["flaky"] == ("ok", None, None)


def test_a_plugin_in_error_is_asked_again_for_its_own_model(fake_plugin: FakePlugin, register_plugin: Register) -> None:
    flaky = Flaky()
    register_plugin(flaky, "flaky")
    spec = flaky_model("fakenet_tiny")
    with pytest.raises(PluginError, match=r"^plugin 'flaky' failed for 'flaky-fakenet_tiny': build_backbone raised"):
        build_backbone(spec, None)
    assert states()["flaky"][0] == "error"
    flaky.broken = False  # the cause is gone (a file replaced, the network back)
    assert build_backbone(spec, None) == "built" and states()["flaky"][0] == "ok"


def test_register_plugin_replaces_an_installed_plugin_for_the_block() -> None:
    class MyWordvec:
        @hookimpl
        def build_backbone(self, spec: ModelSpec, weights_dir: Path | None) -> str | None:
            return "mine" if spec.plugin == "wordvec" else None

    manager = get_plugin_manager()
    installed = manager.get_plugin("wordvec")
    spec = next(each for each in zoo_core.list_models(plugin="wordvec"))
    with plugin_registered(MyWordvec(), "wordvec"):
        assert build_backbone(spec, None) == "mine"
        assert [name for name, plugin in manager.list_name_plugin()].count("wordvec") == 1
    assert manager.get_plugin("wordvec") is installed is not None


def test_the_register_plugin_fixture_accepts_an_installed_name(register_plugin: Register) -> None:
    mine = FakePlugin()
    register_plugin(mine, "wordvec")  # the docs' example, as a plugin's author runs it: their plugin installed
    assert get_plugin_manager().get_plugin("wordvec") is mine


def test_used_plugins_records_the_answers_used_in_a_block(fake_plugin: FakePlugin, register_plugin: Register) -> None:
    class Silent:
        @hookimpl
        def check_input(self, spec: ModelSpec, data: object, report: object) -> list[object]:
            return []  # nothing to add: not a use

    register_plugin(Silent(), "silent")
    vectors = as_vectors(zoo_core.get("fakenet_tiny"))
    with used_plugins() as outer:
        build_backbone(vectors, None)
        with used_plugins() as inner:
            check(zoo_core.get("fakebert.v1"), ["some text"])
        assert inner == {"fake": {"check_input"}}
    assert outer == {"fake": {"build_backbone", "check_input"}}
    build_backbone(vectors, None)
    assert outer == {"fake": {"build_backbone", "check_input"}}  # outside the block: not recorded


def test_plugin_distribution_names_the_installed_distribution(fake_plugin: FakePlugin) -> None:
    assert plugin_distribution("timm") == ("zoo-tl", zoo_core.__version__)
    assert plugin_distribution("fake") == (None, None)  # registered in memory
