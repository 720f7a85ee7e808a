"""What a run folder stores and records: only the tensors its exported model uses (no backbone classifier beside
zoo's head), each plugin whose hook answered in the run and torchvision among the packages; a run written by an
older zoo, with the backbone's classifier in it, still evaluates and exports.

The model is the session's digits source model (tests/conftest.py `source`): resnet10t, classifier `fc`.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Run

import zoo_core
from zoo_core.checks import Finding
from zoo_core.specs import ModelSpec

pytest.importorskip("sklearn", reason="the dev extra installs scikit-learn")
pytest.importorskip("timm")

Source = tuple[ModelSpec, Path, Path, Path]
FIGURES = ("accuracy", "balanced_accuracy", "macro_f1", "per_class", "confusion")  # zoo evaluate's, of the test split


def _run(source: Source, out: Path, **options: Any) -> Path:
    """A short run of the source model on the target digits into `out`, the model in this test's registry."""
    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.settings import Settings
    from zoo_core.training.run import FinetuneOptions, finetune
    from zoo_core.user_registry import add_to_user_registry

    spec, train, val, test = source
    add_to_user_registry(Settings.from_env().home, spec)
    reset_catalogue()
    finetune(spec.name, train, out, FinetuneOptions(epochs=2, val=str(val), test=str(test), **options))
    return out


def _tensors(run: Path) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(run / "model.safetensors"), "pt") as opened:
        return set(opened.keys())


@pytest.mark.parametrize(
    ("drop_last", "unused"),
    [  # timm's own classifier; with --drop-last, the cut stage and the classifier drop_last puts on too
        (0, ("backbone.network.fc.",)),
        (1, ("backbone.network.fc.", "backbone.network.layer4.", "backbone.head.")),
    ],
)
def test_a_run_stores_only_what_its_export_uses(
    source: Source, tmp_path: Path, drop_last: int, unused: tuple[str, ...]
) -> None:
    names = _tensors(_run(source, tmp_path / "run", drop_last=drop_last))
    assert {"head.weight", "head.bias"} <= names and any(name.startswith("backbone.network.layer3.") for name in names)
    assert [name for name in names if name.startswith(unused)] == []


def test_the_manifest_names_each_plugin_that_answered_and_torchvision(
    source: Source, tmp_path: Path, register_plugin: Callable[[object, str], None]
) -> None:
    spec = source[0]

    class Notes:
        """A plugin that adds a finding to the check of the source model's data, and nothing else."""

        @zoo_core.hookimpl
        def check_input(self, spec: ModelSpec, data: object, report: object) -> list[Finding] | None:
            return [Finding("notes", "ok", "digits, as expected")] if spec.name == source[0].name else None

    register_plugin(Notes(), "digit-notes")
    manifest = json.loads((_run(source, tmp_path / "run") / "manifest.json").read_text())
    assert manifest["plugins"] == [
        {"name": "digit-notes", "distribution": None, "version": None, "hooks": ["check_input"]},
        {"name": spec.plugin, "distribution": "zoo-tl", "version": zoo_core.__version__, "hooks": ["build_backbone"]},
    ]
    assert manifest["packages"]["torchvision"] == importlib.metadata.version("torchvision")


def test_a_run_written_with_the_backbone_classifier_still_evaluates_and_exports(
    source: Source, tmp_path: Path, zoo: Run
) -> None:
    """A run folder of an older zoo: its model.safetensors also holds the backbone's own classifier, which the
    model never read. It is left out on loading; any other tensor too many is still refused."""
    from safetensors.torch import load_file, save_file

    from zoo_core.export import export_onnx

    run = _run(source, tmp_path / "run")
    old = tmp_path / "old"
    shutil.copytree(run, old)
    state = load_file(run / "model.safetensors")
    classifier = zoo_core.load(source[0]).network.fc.state_dict()
    save_file(
        {**state, **{f"backbone.network.fc.{key}": value for key, value in classifier.items()}},
        old / "model.safetensors",
    )
    assert {"backbone.network.fc.weight", "backbone.network.fc.bias"} <= _tensors(old)

    code, out, err = zoo("evaluate", str(old), "--json")
    assert code == 0, err
    measured, trained = json.loads(out), json.loads((run / "metrics.json").read_text())["test"]
    assert [measured[key] for key in FIGURES] == [trained[key] for key in FIGURES]  # the model the run saved
    report = export_onnx(old, tmp_path / "export")
    assert report.tolerance is not None and report.max_abs_diff <= report.tolerance and report.top1_agreement == 1.0

    save_file({**state, "backbone.network.extra": state["head.bias"].clone()}, old / "model.safetensors")
    code, _, err = zoo("evaluate", str(old), "--json")
    assert code == 1 and "does not fit" in err and "backbone.network.extra" in err
