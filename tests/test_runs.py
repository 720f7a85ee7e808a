"""Fine-tuning runs that lose nothing and refuse what cannot work: one writer per run folder, folders moved
into place whole, absolute paths, options checked up front, checkpoints that know their run, source-model
names that take nothing over, and the same bits on any thread count.

The models are the session's digits source model (tests/conftest.py `source`) and, for `zoo pretrain`,
resnet10t on a few generated images.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import Run

import zoo_core
from zoo_core.catalogue_sources import reset_catalogue
from zoo_core.settings import Settings
from zoo_core.user_registry import add_to_user_registry, user_registry

pytest.importorskip("sklearn", reason="the dev extra installs scikit-learn")
pytest.importorskip("timm")

Source = tuple[zoo_core.ModelSpec, Path, Path, Path]


def _registered(spec: zoo_core.ModelSpec) -> str:
    """Put the spec in the user's registry, so the CLI finds it by name; returns the name."""
    add_to_user_registry(Settings.from_env().home, spec)
    reset_catalogue()
    return spec.name


def _images(root: Path, counts: dict[str, int], size: int = 8) -> Path:
    """An image folder: `counts[name]` random RGB images in each class subfolder."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for index in range(count):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / name / f"{index}.png")
    return root


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


# --- one writer, written whole ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_folder_has_one_writer_and_a_killed_rerun_leaves_the_old_run_whole(
    source: Source, tmp_path: Path, zoo: Run
) -> None:
    from zoo_core.training.run import FinetuneOptions, finetune

    spec, train, _, _ = source
    name = _registered(spec)
    out = tmp_path / "run"
    finetune(spec, train, out, FinetuneOptions(epochs=2))
    before = _contents(out)
    partial = tmp_path / ".run.partial" / "last.pt"
    full = [name, str(train), "--out", str(out), "--strategy", "full", "--patience", "200", "--batch-size", "8"]
    command = [sys.executable, "-m", "zoo_core", "finetune", *full, "--epochs", "200"]
    writer = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while not partial.exists() and (out / "last.pt").read_bytes() == before["last.pt"]:
            assert writer.poll() is None and time.monotonic() < deadline, writer.stderr and writer.stderr.read()
            time.sleep(0.2)
        started = time.monotonic()
        code, _, err = zoo("finetune", name, str(train), "--out", str(out), "--epochs", "1")
        assert code == 1 and time.monotonic() - started < 5
        assert err.count("\n") == 1 and f"{out} is being written by another run (pid {writer.pid} " in err
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        writer.kill()
    assert _contents(out) == before  # the killed re-run wrote nothing into the run folder
    import torch

    done = len(torch.load(partial, weights_only=True)["curve"])
    code, _, err = zoo("finetune", *full, "--epochs", str(done + 1), "--resume")
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert [epoch["epoch"] for epoch in metrics["transfer"]["runs"][0]["curve"]] == list(range(1, done + 2))
    assert metrics["strategy"] == "full" and not partial.parent.exists()
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(".run")) == [".run.lock"]


def test_a_failed_rerun_leaves_the_finished_run_and_a_folder_of_other_files_is_never_replaced(
    source: Source, tmp_path: Path
) -> None:
    from zoo_core.training.run import FinetuneOptions, finetune

    spec, train, _, _ = source
    out = tmp_path / "run"
    finetune(spec, train, out, FinetuneOptions(epochs=1))
    before = _contents(out)
    with pytest.raises(zoo_core.ZooError, match="belongs to another run"):  # fails after the run has started
        finetune(spec, train, out, FinetuneOptions(epochs=2, seed=1), resume=True)
    assert _contents(out) == before
    # a swap that a dead process left half done: the old run waits beside the folder, and the next run puts it back
    out.rename(tmp_path / ".run.replaced")
    with pytest.raises(zoo_core.ZooError, match="belongs to another run"):
        finetune(spec, train, out, FinetuneOptions(epochs=2, seed=1), resume=True)
    assert _contents(out) == before and not (tmp_path / ".run.replaced").exists()
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(zoo_core.ZooError, match=r"^--out .*documents holds files but no run"):
        finetune(spec, train, mine, FinetuneOptions(epochs=1))
    assert [path.name for path in mine.iterdir()] == ["thesis.tex"]


# --- paths ---------------------------------------------------------------------------------------------


def test_a_run_records_absolute_paths_and_exports_from_another_folder(
    source: Source, tmp_path: Path, zoo: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    spec, train, val, test = source
    name = _registered(spec)
    monkeypatch.chdir(train.parent)
    code, _, err = zoo(
        "finetune",
        name,
        train.name,
        "--val",
        val.name,
        "--test",
        test.name,
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "1",
    )
    assert code == 0, err
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["data"] == str(train.resolve()) and manifest["options"]["val"] == str(val.resolve())
    assert manifest["options"]["test"] == str(test.resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = zoo("export", str(tmp_path / "run"), "--out", str(tmp_path / "exported"))
    assert code == 0, err
    code, _, err = zoo("finetune", name, str(train), "--val", "target-test", "--out", str(tmp_path / "x"))
    assert code == 2  # click checks that --val exists; the API says "not found" rather than blaming the layout
    from zoo_core.training.data import load_dataset

    with pytest.raises(zoo_core.DataError, match=rf"^target-test: not found in {elsewhere}; check the path$"):
        load_dataset(Path("target-test"), "image")


# --- options and data refused up front -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--head", "logreg", "--strategy", "finetune"], "--head logreg cannot go with --strategy finetune"),
        (["--head", "logreg", "--strategy", "full"], "--head logreg cannot go with --strategy full"),
        (["--val-split", "1.5"], "--val-split 1.5: must be between 0 and 1"),
        (["--epochs", "0"], "--epochs 0: must be at least 1"),
        (["--threads", "0"], "--threads 0: must be at least 1"),
    ],
)
def test_options_no_run_can_use_are_one_line_before_anything_is_written(
    source: Source, tmp_path: Path, zoo: Run, options: list[str], expected: str
) -> None:
    spec, train, _, _ = source
    name = _registered(spec)
    code, _, err = zoo("finetune", name, str(train), "--out", str(tmp_path / "run"), *options)
    assert code == 1 and err.startswith(f"Error: {expected}") and err.count("\n") == 1, err
    assert not [path for path in tmp_path.iterdir() if "run" in path.name]


@pytest.mark.parametrize(
    ("counts", "split", "expected"),
    [
        ({"a": 1, "b": 1}, "0.2", r"class 'a' has 1 item left, too few for a test split beside training .*--test$"),
        ({"a": 2, "b": 2}, "0.5", r"class 'a' has 1 item left, too few for a validation split .*--val-split 0.5\)"),
        ({"a": 9, "b": 9}, "0.9", r"--val-split 0.9 and --test-split 0.2 leave nothing to train on"),
        ({"only": 6}, "0.2", r"a classifier needs at least two classes, found 1 \('only'\); add one subfolder"),
    ],
)
def test_data_a_run_cannot_split_is_one_line(
    source: Source, tmp_path: Path, zoo: Run, counts: dict[str, int], split: str, expected: str
) -> None:
    spec, *_ = source
    name = _registered(spec)
    data = _images(tmp_path / "data", counts)
    code, out, err = zoo("finetune", name, str(data), "--out", str(tmp_path / "run"), "--val-split", split)
    assert code == 1 and err.count("\n") == 1, err
    assert out == "" and not (tmp_path / "run").exists()
    assert re.search(expected, err), err


# --- resuming ------------------------------------------------------------------------------------------


@pytest.fixture
def finished(source: Source, tmp_path: Path) -> tuple[str, Path, Path]:
    """A finished two-epoch run, its model in the user's registry: (model name, data, run folder)."""
    from zoo_core.training.run import FinetuneOptions, finetune

    spec, train, _, _ = source
    finetune(spec, train, tmp_path / "run", FinetuneOptions(epochs=2, patience=10))
    return _registered(spec), train, tmp_path / "run"


def test_resume_refuses_a_checkpoint_of_another_run(finished: tuple[str, Path, Path], tmp_path: Path, zoo: Run) -> None:
    name, train, out = finished
    other = tmp_path / "other"
    shutil.copytree(train, other)
    sorted((other / "5").iterdir())[0].unlink()
    refused = {
        ("--seed", "1"): "--seed 0 there, 1 now",
        ("--strategy", "finetune"): "--strategy features there, finetune now",
        ("--lr", "0.01"): "--lr 0.001 there, 0.01 now",
    }
    for (option, value), expected in refused.items():
        code, _, err = zoo("finetune", name, str(train), "--out", str(out), "--epochs", "4", option, value, "--resume")
        assert code == 1 and err.count("\n") == 1 and expected in err, err
        assert "last.pt belongs to another run" in err
    code, _, err = zoo("finetune", name, str(other), "--out", str(out), "--epochs", "4", "--resume")
    assert code == 1 and "belongs to another run (data " in err, err
    code, _, err = zoo("finetune", name, str(train), "--out", str(out), "--epochs", "4", "--resume")
    assert code == 0, err
    curve = json.loads((out / "metrics.json").read_text())["transfer"]["runs"][0]["curve"]
    assert [epoch["epoch"] for epoch in curve] == [1, 2, 3, 4]


def test_resume_from_a_truncated_checkpoint_is_one_line(
    finished: tuple[str, Path, Path], tmp_path: Path, zoo: Run
) -> None:
    name, train, out = finished
    checkpoint = out / "last.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    code, _, err = zoo("finetune", name, str(train), "--out", str(out), "--epochs", "4", "--resume")
    assert code == 1 and err.count("\n") == 1, err
    assert "last.pt: not a readable checkpoint" in err and "run without --resume to start afresh" in err
    code, _, err = zoo("finetune", name, str(train), "--out", str(tmp_path / "new"), "--resume")
    assert code == 1 and "--resume: nothing to resume" in err, err


def test_from_manifest_honours_the_registry_option(source: Source, tmp_path: Path, zoo: Run) -> None:
    from zoo_core.training.run import FinetuneOptions, finetune

    spec, train, _, _ = source
    first = finetune(spec, train, tmp_path / "a", FinetuneOptions(epochs=2, seed=3))
    registry = add_to_user_registry(tmp_path / "elsewhere", spec)  # a registry file only --registry names
    reset_catalogue()
    manifest = str(tmp_path / "a" / "manifest.json")
    code, _, err = zoo(
        "--registry", str(registry), "finetune", "--from-manifest", manifest, "--out", str(tmp_path / "b")
    )
    assert code == 0, err
    again = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert again["transfer"]["runs"][0]["curve"] == first["transfer"]["runs"][0]["curve"]
    code, _, err = zoo("finetune", "--from-manifest", manifest, "--out", str(tmp_path / "c"), "--seed", "4")
    assert code == 2 and "drop --seed" in err


# --- zoo pretrain names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "resnet18",
            r"--name resnet18: 'resnet18' is an alias of model 'resnet18.a1_in1k' \(.*\); .*choose another --name$",
        ),
        ("ResNet18.A1_IN1K", r"'ResNet18.A1_IN1K' is the name of model 'resnet18.a1_in1k'"),
    ],
)
def test_pretrain_refuses_a_name_the_catalogue_already_resolves(
    tmp_path: Path, zoo: Run, zoo_env: Path, name: str, expected: str
) -> None:
    data = _images(tmp_path / "data", {"a": 3, "b": 3})
    code, _, err = zoo(
        "pretrain", "resnet10t", str(data), "--out", str(tmp_path / "src"), "--name", name, "--epochs", "1"
    )
    assert code == 1 and err.count("\n") == 1 and re.search(expected, err.strip()), err
    assert not user_registry(zoo_env).exists() and zoo_core.get("resnet18").name == "resnet18.a1_in1k"
    code, _, err = zoo("pretrain", "resnet10t", str(data), "--out", str(tmp_path / "src"), "--name", name, "--replace")
    assert code == 1 and "--replace only replaces an entry of your registry" in err, err


def test_pretrain_replaces_only_the_users_own_entry_and_says_what_it_shadows(
    tmp_path: Path, zoo: Run, zoo_env: Path
) -> None:
    data = _images(tmp_path / "data", {"a": 3, "b": 3})
    pretrain = ["pretrain", "resnet10t", str(data), "--out", str(tmp_path / "src"), "--epochs", "1"]
    assert zoo(*pretrain, "--name", "mine.v1")[0] == 0
    code, _, err = zoo(*pretrain, "--name", "MINE.V1")
    assert code == 1 and "to replace your entry, pass --name mine.v1 --replace" in err, err
    code, _, err = zoo(*pretrain, "--name", "mine.v1", "--replace")
    assert code == 0, err
    # the user's own entry that overrides timm's: replacing it says it still hides timm's model
    add_to_user_registry(zoo_env, zoo_core.get("resnet18.a1_in1k"))
    reset_catalogue()
    code, _, err = zoo(*pretrain, "--name", "resnet18.a1_in1k", "--replace")
    assert code == 0 and "goes on shadowing the model 'resnet18.a1_in1k' from " in err, err
    import tomlkit

    names = [entry["name"] for entry in tomlkit.parse(user_registry(zoo_env).read_text())["model"]]
    assert names == ["mine.v1", "resnet18.a1_in1k"]
    assert "zoo-pretrain" in zoo_core.get("resnet18.a1_in1k").tags


# --- determinism ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["features", "full"])
def test_training_gives_the_same_bits_whatever_the_thread_count(source: Source, tmp_path: Path, strategy: str) -> None:
    import torch

    from zoo_core.training.run import FinetuneOptions, finetune

    spec, train, _, _ = source
    options = FinetuneOptions(strategy=strategy, epochs=2, batch_size=16, lr=3e-3)
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)  # what a busy or a bigger machine would give torch
            finetune(spec, train, tmp_path / f"threads-{threads}", options)
            assert torch.get_num_threads() == threads  # the caller's setting comes back
    finally:
        torch.set_num_threads(previous)
    one, two = ((tmp_path / f"threads-{n}" / "model.safetensors").read_bytes() for n in (1, 2))
    assert one == two
    assert json.loads((tmp_path / "threads-2" / "manifest.json").read_text())["options"]["threads"] == 1
