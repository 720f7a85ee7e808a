"""Plugin discovery through entry points, plugin states, and the environment switches."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import zoo_core
from zoo_core import PluginUnavailableError, Requirement, hookimpl
from zoo_core.plugins import build_backbone, each_result, get_plugin_manager, plugin_statuses, reset_plugin_manager
from zoo_core.sources import reset_catalogue
from zoo_core.testing import FakePlugin


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


def test_a_plugin_that_raises_is_reported_and_skipped(register_plugin: Callable[[object, str], None]) -> None:
    class Broken:
        @hookimpl
        def register_models(self) -> list[object]:
            raise RuntimeError("catalogue file is corrupt")

    register_plugin(Broken(), "broken")
    assert "resnet18" in zoo_core.load_catalogue()  # the other plugins still contribute
    assert states()["broken"] == ("error", "register_models raised RuntimeError: catalogue file is corrupt", None)


def test_a_plugin_that_fails_to_import_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real distribution on sys.path whose entry point imports a missing module."""
    dist = tmp_path / "zoo_broken-1.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-broken\nVersion: 1.2\n")
    (dist / "entry_points.txt").write_text("[zoo]\nbroken = zoo_broken_plugin\n")
    (tmp_path / "zoo_broken_plugin.py").write_text("import zoo_module_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reset_plugin_manager()
    status = {each.name: each for each in plugin_statuses()}["broken"]
    assert (status.distribution, status.version, status.state) == ("zoo-broken", "1.2", "error")
    assert status.reason == (
        "importing zoo_broken_plugin raised ModuleNotFoundError: No module named 'zoo_module_that_is_not_installed'"
    )
    assert states()["timm"][0] == "ok"


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


def test_tracing_prints_hook_calls(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ZOO_TRACE_PLUGINS", "1")
    reset_plugin_manager()
    zoo_core.load_catalogue()
    err = capsys.readouterr().err
    assert "zoo trace: register_models() -> [timm]" in err
    assert "zoo trace: register_models returned [[PosixPath(" in err


def test_plugin_modules_stay_light() -> None:
    """The built-in plugin modules declare their heavy modules instead of importing them."""
    source = textwrap.dedent((Path(zoo_core.__file__).parent.parent / "plugins/zoo_timm/__init__.py").read_text())
    assert "import timm" not in source and "import torch" not in source
    timm = dict(each_result("plugin_requirements"))["timm"]
    assert {requirement.module for requirement in timm} >= {"torch", "timm"}
