"""Multi-task runs: one backbone, a head per task, trained jointly; saved, loaded, exported, predicted, evaluated."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import Run, registered_in_own_home
from test_export import _rewrite_metadata, one_line_error

import zoo_core

SOURCE = tuple[zoo_core.ModelSpec, Path, Path, Path]
PER_CLASS = 60  # images of each digit 5-9 in the module's tasks


def _digit_tasks(test: Path, root: Path, per_class: int = PER_CLASS, start: int = 0) -> tuple[Path, Path]:
    """Two tasks on the same images of digits 5-9: which digit (5 classes) and odd or even (2)."""
    for digit in sorted(test.iterdir()):
        for image in sorted(digit.glob("*.png"))[start : start + per_class]:
            parity = "odd" if int(digit.name) % 2 else "even"
            for folder in (root / "digit" / digit.name, root / "parity" / parity):
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(image, folder / image.name)
    return root / "digit", root / "parity"


@pytest.fixture(scope="module")
def multitask_run(source: SOURCE, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One multi-task run for the whole module (every test only reads it): digit and parity on features."""
    from zoo_core.training.multitask import finetune_tasks
    from zoo_core.training.run import FinetuneOptions

    spec, _, _, test = source
    root = tmp_path_factory.mktemp("multitask")
    digit, parity = _digit_tasks(test, root / "data")
    options = FinetuneOptions(epochs=15, patience=5, lr=3e-3, batch_size=32)
    with registered_in_own_home(spec, root):
        metrics = finetune_tasks(spec.name, {"digit": digit, "parity": parity}, root / "run", options, {"parity": 0.5})
    return root / "run", metrics


@pytest.fixture
def run(multitask_run: tuple[Path, dict[str, Any]], source: SOURCE) -> Path:
    """The module's run, its source model in this test's user registry."""
    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    add_to_user_registry(Settings.from_env().home, source[0])
    reset_catalogue()
    return multitask_run[0]


def test_joint_training_beats_chance_on_both_tasks(multitask_run: tuple[Path, dict[str, Any]]) -> None:
    folder, metrics = multitask_run
    digit, parity = metrics["tasks"]["digit"], metrics["tasks"]["parity"]
    assert digit["classes"] == ["5", "6", "7", "8", "9"] and parity["classes"] == ["even", "odd"]
    assert digit["sizes"] == {"train": 180, "val": 60, "test": 60} == parity["sizes"]
    assert digit["transfer"]["test"]["accuracy"]["mean"] > 0.5  # chance: 20%
    assert parity["transfer"]["test"]["accuracy"]["mean"] > 0.7  # chance: 50%
    assert digit["test"]["samples"] == 60 and parity["weight"] == 0.5 and digit["weight"] == 1.0
    joint = metrics["joint"]["runs"][0]
    assert joint["steps"] == 6 * len(joint["curve"])  # 180 items in batches of 32: 6 an epoch
    # the curve and its gains are the joint training's, kept once under "joint", not copied as each task's
    assert {"start", "slope", "asymptote", "selected_epoch"} <= set(joint)
    assert (
        not {"curve", "start", "slope", "asymptote"} & set(digit["transfer"]["runs"][0])
        and "start" not in digit["transfer"]
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["tasks"]) == {"digit", "parity"} and manifest["tasks"]["parity"]["weight"] == 0.5
    assert len(manifest["tasks"]["digit"]["test_fingerprint"]) == 16
    assert json.loads((folder / "labels.json").read_text()) == {"digit": digit["classes"], "parity": ["even", "odd"]}
    assert sorted(path.name for path in folder.iterdir()) == [
        "curves.png",
        "labels.json",
        "last.pt",
        "manifest.json",
        "metrics.json",
        "model.safetensors",
        "preprocessing.json",
        "tasks",
    ]


def test_shared_items_land_in_the_same_split_for_every_task(source: SOURCE, tmp_path: Path) -> None:
    """Tasks that share half their images (one shared image under another name, a copy of its bytes):
    drawn independently, some shared image would sit in one task's test split and another's training split."""
    from zoo_core.hashing import file_digest
    from zoo_core.training.multitask_splits import joint, task_splits
    from zoo_core.training.run import FinetuneOptions, run_splits

    digit, _ = _digit_tasks(source[3], tmp_path / "a", per_class=20)
    _, parity = _digit_tasks(source[3], tmp_path / "b", per_class=20, start=10)
    copied = sorted((parity / "odd").glob("*.png"))[0]
    shutil.copyfile(copied, parity / "odd" / f"copy-{copied.name}")  # the same bytes under a second name
    tasks = {"digit": digit, "parity": parity}
    options = FinetuneOptions()

    def placement(splits: dict[str, Any]) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        for name, task in splits.items():
            for split, dataset in task.named().items():
                for item in dataset.items:
                    found.setdefault(file_digest(Path(item)), {})[f"{name} {Path(item).name}"] = split
        return found

    independent = placement({name: run_splits(data, "image", options, 0) for name, data in tasks.items()})
    assert any(len(set(where.values())) > 1 for where in independent.values())  # what the rule prevents
    splits = task_splits(tasks, "image", options, 0)
    placed = placement(splits)
    shared = [where for where in placed.values() if len(where) > 1]
    assert len(shared) == 50 and all(len(set(where.values())) == 1 for where in shared)
    assert all(len(dataset.items) for task in splits.values() for dataset in task)
    assert len(splits["parity"].train.items) + len(splits["parity"].val.items) + len(splits["parity"].test.items) == 101
    test = joint(splits, "test")  # each shared test image once, labelled in both tasks
    both = int(((test.labels >= 0).sum(axis=1) == 2).sum())
    assert both == sum(1 for where in shared if "test" in where.values()) > 0 and test.labels.shape[1] == 2


def test_a_class_the_shared_items_empty_from_a_split_is_refused(source: SOURCE, tmp_path: Path) -> None:
    """Task b's class x holds three images task a trains on: the rule keeps them all in training, and x then
    has no validation or test item; refused in one line naming the task and the class."""
    from zoo_core.errors import DataError
    from zoo_core.training.multitask_splits import task_splits
    from zoo_core.training.run import FinetuneOptions, run_splits

    digit, _ = _digit_tasks(source[3], tmp_path / "a", per_class=10)
    options = FinetuneOptions()
    trained_on = run_splits(digit, "image", options, 0).train.items
    for label, images in (("x", trained_on[:3]), ("y", sorted(map(str, (source[3] / "5").glob("*.png")))[-5:])):
        (tmp_path / "b" / label).mkdir(parents=True)
        for image in images:
            shutil.copyfile(image, tmp_path / "b" / label / Path(image).name)
    with pytest.raises(DataError, match=r"--task b=.*: class 'x' has no validation item left once the items it shares"):
        task_splits({"a": digit, "b": tmp_path / "b"}, "image", options, 0)


def test_a_tasks_data_problem_names_the_task(tmp_path: Path) -> None:
    """Two tasks of one file: a problem with one task's column names that task, not just the file."""
    from zoo_core.errors import DataError
    from zoo_core.training.multitask_splits import task_splits
    from zoo_core.training.run import FinetuneOptions

    data = tmp_path / "one.csv"
    data.write_text("text,topic,mood\n" + "".join(f"text {index},{'ab'[index % 2]},same\n" for index in range(20)))
    with pytest.raises(DataError, match=r"^--task mood: .*one.csv: a classifier needs at least two classes, found 1"):
        task_splits({"topic": data, "mood": data}, "text", FinetuneOptions(), 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "a=X", "--task", "b=Y", "DATA"], "DATA DATA and --task both give the data"),
        (["--task", "a=X"], "needs two or more tasks"),
        (["--task", "a=X", "--task", "a=Y"], "--task a: given twice"),
        (["--task", "Digit=X", "--task", "b=Y"], "task name 'Digit' is not a lowercase identifier"),
        (["--task", "input=X", "--task", "b=Y"], "task name 'input' is taken by the exported graph"),
        (["--task", "a", "--task", "b=Y"], "--task 'a': give NAME=VALUE"),
        (["--task", "a=X", "--task", "b=Y", "--task-weight", "c=2"], "no --task c; the tasks are a, b"),
        (["--task", "a=X", "--task", "b=Y", "--task-weight", "a=0"], "must be a number above 0 and at most 1000"),
        (["--task", "a=X", "--task", "b=Y", "--task-weight", "a=nan"], "must be a number above 0 and at most 1000"),
        (["--task", "a=X", "--task", "b=Y", "--task-weight", "a=-1"], "must be a number above 0 and at most 1000"),
        (["--task", "a=X", "--task", "b=Y", "--task-weight", "a=inf"], "must be a number above 0 and at most 1000"),
        (["--task", "a=X", "--task", "b=Y", "--task-weight", "a=1001"], "must be a number above 0 and at most 1000"),
        (["--task", "a=X", "--task", "b=Y", "--task-weight", "a=2", "--task-weight", "a=3"], "a: given twice"),
        (["--task-weight", "a=2", "DATA"], "--task-weight weighs a --task"),
        (["--task", "a=X", "--task", "b=Y", "--baseline", "pixels"], "--baseline pixels: baselines compare"),
        (["--task", "a=X", "--task", "b=Y", "--strategy", "features", "--head", "logreg"], "--head logreg"),
        (["--task", "a=X", "--task", "b=Y", "--val", "DATA"], "--val/--test give one dataset's split"),
    ],
)
def test_task_options_are_refused_in_one_line(
    args: list[str], message: str, tmp_path: Path, zoo: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "DATA").mkdir()
    err = one_line_error(zoo, "finetune", "resnet18", *args, "--out", str(tmp_path / "out"))
    assert message in err
    assert not (tmp_path / "out").exists()


def test_torchrun_with_several_processes_is_refused(tmp_path: Path, zoo: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    err = one_line_error(zoo, "finetune", "resnet18", "--task", "a=X", "--task", "b=Y", "--out", str(tmp_path / "o"))
    assert "--task runs in one process" in err


def test_load_run_round_trip(run: Path, multitask_run: tuple[Path, dict[str, Any]]) -> None:
    """The saved model gives the test figures the run reported, for each task."""
    from zoo_core.catalogue_sources import default_catalogue
    from zoo_core.training.evaluate import predict_scores
    from zoo_core.training.saved import load_run

    saved = load_run(run, default_catalogue())
    assert list(saved.tasks) == ["digit", "parity"] and saved.splits is None and saved.classes == []
    for name, task in saved.tasks.items():
        scores = predict_scores(saved.task_model(name), task.splits.test, saved.transform, 32)
        accuracy = float(np.mean(scores.argmax(1) == np.asarray(task.splits.test.labels)))
        assert accuracy == pytest.approx(multitask_run[1]["tasks"][name]["test"]["accuracy"], abs=1e-9)
        assert task.classes == multitask_run[1]["tasks"][name]["classes"]


def test_a_single_task_run_still_loads(source: SOURCE, tmp_path: Path) -> None:
    from zoo_core.catalogue_sources import default_catalogue
    from zoo_core.training.run import FinetuneOptions, finetune
    from zoo_core.training.saved import load_run

    spec, train, val, test = source
    with registered_in_own_home(spec, tmp_path):
        finetune(spec.name, train, tmp_path / "single", FinetuneOptions(epochs=1, val=str(val), test=str(test)))
        saved = load_run(tmp_path / "single", default_catalogue())
    assert saved.tasks == {} and saved.classes == ["5", "6", "7", "8", "9"] and saved.splits is not None


def _images(run: Path, task: str, count: int) -> list[str]:
    return json.loads((run / "tasks" / task / "splits.json").read_text())["test"]["items"][:count]


@pytest.fixture(scope="module")
def exported(
    multitask_run: tuple[Path, dict[str, Any]], source: SOURCE, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Any]:
    """The module's run exported once: one ONNX file with an output per task."""
    pytest.importorskip("onnx", reason="the dev extra installs onnx and onnxruntime")
    from zoo_core.export import export_onnx

    root = tmp_path_factory.mktemp("multitask-export")
    with registered_in_own_home(source[0], root):
        report = export_onnx(multitask_run[0], root / "export", triton=root / "triton")
    return root / "export", report


def test_export_writes_one_file_with_a_named_output_per_task(
    exported: tuple[Path, Any], run: Path, source: SOURCE
) -> None:
    import onnx

    from zoo_core.catalogue_sources import default_catalogue
    from zoo_core.images import decode
    from zoo_core.runtime import Predictor
    from zoo_core.training.saved import load_run

    folder, report = exported
    assert sorted(path.name for path in folder.iterdir()) == ["export.json", "model.onnx"]
    model = onnx.load(str(folder / "model.onnx"))
    assert [output.name for output in model.graph.output] == ["digit", "parity"]
    meta = {entry.key: entry.value for entry in model.metadata_props}
    assert json.loads(meta["zoo.labels"]) == {"digit": ["5", "6", "7", "8", "9"], "parity": ["even", "odd"]}
    triton = folder.parent / "triton" / "digits-src_resnet10t"
    config = (triton / "config.pbtxt").read_text()
    assert 'name: "digit" data_type: TYPE_FP32 dims: [ 5 ] label_filename: "digit.labels.txt"' in config
    assert 'name: "parity" data_type: TYPE_FP32 dims: [ 2 ] label_filename: "parity.labels.txt"' in config
    assert (triton / "parity.labels.txt").read_text() == "even\nodd\n"
    # the tasks' 60 validation images are the same bytes under two folders: each counted once, not 64 of 120
    assert set(report.outputs) == {"digit", "parity"} and report.samples == 60
    for figures in report.outputs.values():
        assert figures["tolerance"] is not None and figures["max_abs_diff"] <= figures["tolerance"]
        assert figures["top1_agreement"] == 1.0
    # onnxruntime's answers are torch's, task by task, on test images parity never saw
    saved = load_run(run, default_catalogue())
    images = _images(run, "digit", 12)
    batch = torch.stack([saved.transform(decode(Path(path))) for path in images])
    with torch.no_grad():
        expected = {name: logits.softmax(1).numpy() for name, logits in saved.model(batch).items()}
    found = Predictor(folder).task_scores(images)
    for name in ("digit", "parity"):
        assert np.abs(found[name] - expected[name]).max() < 1e-4
        assert (found[name].argmax(1) == expected[name].argmax(1)).all()


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (
            {"digit": ["5", "6", "7", "8", "9"], "colour": ["a", "b"]},
            "names outputs 'digit', 'colour', the graph gives",
        ),
        ({"digit": ["5", "6", "7", "8", "9"], "parity": ["even"]}, "'zoo.labels' output 'parity' names 1 labels for 2"),
        (["5", "6", "7", "8", "9"], "no 'logits' output of shape (batch, classes)"),
    ],
)
def test_a_multitask_files_labels_are_checked_against_its_outputs(
    exported: tuple[Path, Any], run: Path, labels: Any, expected: str, tmp_path: Path, zoo: Run
) -> None:
    folder = tmp_path / "export"
    shutil.copytree(exported[0], folder)
    _rewrite_metadata(folder, "zoo.labels", json.dumps(labels))
    assert expected in one_line_error(zoo, "predict", str(folder), _images(run, "digit", 1)[0])


def test_predict_prints_each_tasks_answer(exported: tuple[Path, Any], run: Path, zoo: Run) -> None:
    folder = exported[0]
    images = _images(run, "digit", 3)
    code, out, err = zoo("predict", str(folder), *images)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["INPUT", "DIGIT", "PARITY"] and len(lines) == 4, (out, err)
    cells = [line.split() for line in lines[1:]]  # input, digit (p), parity (p)
    assert [row[0] for row in cells] == images and all(
        row[1] in {"5", "6", "7", "8", "9"} and row[3] in {"even", "odd"} for row in cells
    )
    code, out, _ = zoo("predict", str(folder), *images, "--json", "--top", "2")
    answers = json.loads(out)
    assert [answer["input"] for answer in answers] == images
    assert [label["label"] for label in answers[0]["tasks"]["parity"]] in (["even", "odd"], ["odd", "even"])
    assert len(answers[0]["tasks"]["digit"]) == 2 and code == 0
    digit = answers[0]["tasks"]["digit"][0]["label"]
    parity = answers[0]["tasks"]["parity"][0]["label"]
    assert digit in {"5", "6", "7", "8", "9"} and parity in {"even", "odd"}


def test_evaluate_measures_each_task_on_its_own_test_split(
    run: Path, multitask_run: tuple[Path, dict[str, Any]], exported: tuple[Path, Any], tmp_path: Path, zoo: Run
) -> None:
    code, out, err = zoo("evaluate", str(run), "--out", str(tmp_path / "eval"), "--json")
    assert code == 0, err
    reports = json.loads(out)
    assert list(reports) == ["digit", "parity"]
    for name, report in reports.items():
        assert report["accuracy"] == pytest.approx(multitask_run[1]["tasks"][name]["test"]["accuracy"])
        assert report["samples"] == 60
        written = json.loads((tmp_path / "eval" / name / "evaluation.json").read_text())
        assert written["accuracy"] == report["accuracy"] and (tmp_path / "eval" / name / "confusion.png").is_file()
    code, out, _ = zoo("evaluate", str(run), "--out", str(tmp_path / "table"))
    assert (
        code == 0 and out.count("digit head of digits-src.resnet10t (torch)") == 1 and out.count("parity head of") == 1
    )
    data = str(multitask_run[0].parent / "data" / "digit")
    assert "each task is measured on its own test split; drop DATA" in one_line_error(zoo, "evaluate", str(run), data)
    err = one_line_error(zoo, "evaluate", str(exported[0]), data, "--out", str(tmp_path / "e"))
    assert "answers 2 tasks (digit, parity): evaluate the run folder" in err


def test_the_command_line_trains_a_network_over_seeds_and_resumes(source: SOURCE, tmp_path: Path, zoo: Run) -> None:
    """``--strategy finetune`` through `zoo finetune --task`, two seeds; then ``--resume`` goes on for longer
    from last.pt, and a manifest reproduces the run."""
    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    add_to_user_registry(Settings.from_env().home, source[0])
    reset_catalogue()
    digit, parity = _digit_tasks(source[3], tmp_path / "data", per_class=12)
    out = str(tmp_path / "run")
    common = ["--task", f"digit={digit}", "--task", f"parity={parity}", "--strategy", "finetune", "--patience", "9"]
    code, printed, err = zoo(
        "finetune", "digits-src.resnet10t", *common, "--epochs", "2", "--repeats", "2", "--out", out
    )
    assert code == 0, err
    assert "2 tasks on one backbone (finetune); mean ± std over 2 seeds" in printed
    # parity's images are digit's, so they take digit's splits (parity alone would hold out 5 even and 7 odd)
    assert "task digit (weight 1; 40 train, 10 validation, 10 test; chance 20.0%)" in printed
    assert "task parity (weight 1; 40 train, 10 validation, 10 test; chance 50.0%)" in printed
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["seeds"] == [0, 1] and [len(run["curve"]) for run in metrics["joint"]["runs"]] == [2, 2]
    assert len(metrics["tasks"]["digit"]["transfer"]["runs"]) == 2
    assert metrics["joint"]["runs"][0]["steps"] == 4  # 40 items in batches of 32 (32 + 8), two epochs
    code, _, err = zoo(
        "finetune", "digits-src.resnet10t", *common, "--epochs", "3", "--repeats", "2", "--out", out, "--resume"
    )
    assert code == 0, err
    resumed = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert resumed["joint"]["runs"][0]["curve"][:2] == metrics["joint"]["runs"][0]["curve"]  # went on from epoch 2
    assert len(resumed["joint"]["runs"][0]["curve"]) == 3
    assert resumed["joint"]["runs"][0]["steps"] == 6  # all three epochs' steps, not the resumed process's 2
    err = one_line_error(
        zoo, "finetune", "digits-src.resnet10t", *common, "--epochs", "3", "--lr", "0.1", "--out", out, "--resume"
    )
    assert "belongs to another run" in err
    manifest = str(tmp_path / "run" / "manifest.json")
    # where it trains may change beside a manifest (a GPU run's manifest replays on a CPU), not what it computes
    placed = ["--device", "cpu", "--workers", "1"]
    code, _, err = zoo("finetune", "--from-manifest", manifest, *placed, "--out", str(tmp_path / "again"))
    assert code == 0, err
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["tasks"]["digit"]["test"]["accuracy"] == resumed["tasks"]["digit"]["test"]["accuracy"]
    code, _, err = zoo("finetune", "--from-manifest", manifest, "--lr", "0.1", "--out", out)
    assert code == 2 and "drop --lr (only --device, --workers may change)" in err


def _trained_on(device: str, precision: str, source: SOURCE, root: Path) -> dict[str, Any]:
    """A short joint run (full strategy) on `device` at `precision`; returns its manifest."""
    from zoo_core.training.multitask import finetune_tasks
    from zoo_core.training.run import FinetuneOptions

    digit, parity = _digit_tasks(source[3], root / "data", per_class=12)
    options = FinetuneOptions(strategy="full", epochs=2, lr=3e-3, device=device, precision=precision)
    with registered_in_own_home(source[0], root):
        metrics = finetune_tasks(source[0].name, {"digit": digit, "parity": parity}, root / "run", options)
    assert all(len(task["test"]["per_class"]) == len(task["classes"]) for task in metrics["tasks"].values())
    manifest: dict[str, Any] = json.loads((root / "run" / "manifest.json").read_text())
    return manifest


def test_mixed_precision_on_the_cpu_shares_the_gpu_code_path(source: SOURCE, tmp_path: Path) -> None:
    """bf16 autocast through the same loop a GPU run takes (--device cpu --precision bf16)."""
    manifest = _trained_on("cpu", "bf16", source, tmp_path)
    assert manifest["device"] == "cpu" and manifest["options"]["precision"] == "bf16"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU on this machine")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_joint_training_on_a_gpu(precision: str, source: SOURCE, tmp_path: Path) -> None:
    """fp16 adds the loss scaler; the saved model loads on the CPU."""
    from zoo_core.catalogue_sources import default_catalogue
    from zoo_core.training.saved import load_run

    manifest = _trained_on("cuda", precision, source, tmp_path)
    assert manifest["device"].startswith("cuda:0 (")
    with registered_in_own_home(source[0], tmp_path):
        saved = load_run(tmp_path / "run", default_catalogue())
    assert all(tensor.device.type == "cpu" for tensor in saved.model.state_dict().values())


class _Logits(torch.nn.Module):
    """Its inputs are already the two tasks' logits: columns 0-2 task a's, 3-4 task b's."""

    def forward(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"a": inputs[:, :3], "b": inputs[:, 3:]}


def test_the_validation_loss_is_each_tasks_mean_over_the_whole_split_weighted() -> None:
    """Σ w_t · CE_t with CE_t over all of task t's validation items, however the items fall into batches
    (task-ordered batches hold mostly one task: a per-batch mean averaged by batch size would weigh them)."""
    from zoo_core.training.loop import _evaluate
    from zoo_core.training.multitask import weighted_objective

    logits = torch.randn(10, 5, generator=torch.Generator().manual_seed(0)) * 3
    labels = torch.full((10, 2), -1, dtype=torch.int64)
    labels[:7, 0] = torch.tensor([0, 1, 2, 0, 1, 2, 0])  # task a: rows 0-6
    labels[6:, 1] = torch.tensor([1, 0, 1, 0])  # task b: rows 6-9 (row 6 in both)
    weights = {"a": 1.0, "b": 0.25}
    ce_a = torch.nn.functional.cross_entropy(logits[:7, :3], labels[:7, 0])
    ce_b = torch.nn.functional.cross_entropy(logits[6:, 3:], labels[6:, 1])
    expected = float(1.0 * ce_a + 0.25 * ce_b)
    objective = weighted_objective(weights)
    cpu = torch.device("cpu")
    for cuts in ([10], [6, 4], [3, 3, 3, 1], [8, 2]):
        batches = list(zip(logits.split(cuts), labels.split(cuts), strict=True))
        loss, accuracy = _evaluate(_Logits(), batches, objective, cpu, "fp32")
        assert loss == pytest.approx(expected, rel=1e-6), cuts
    hits = int((logits[:7, :3].argmax(1) == labels[:7, 0]).sum() + (logits[6:, 3:].argmax(1) == labels[6:, 1]).sum())
    assert accuracy == pytest.approx(hits / 11)


def test_weights_are_checked_as_numbers() -> None:
    from zoo_core.errors import RunOptionError
    from zoo_core.training.tasks import checked_weights

    assert checked_weights({"b": np.float64(0.5), "a": 3}, ["a", "b"]) == {"a": 3.0, "b": 0.5}
    assert checked_weights({"a": 1000}, ["a", "b"]) == {"a": 1000.0, "b": 1.0}
    for bad in (math.inf, math.nan, 0, -1.0, 1000.5, "2", True, None):
        with pytest.raises(RunOptionError, match="must be a number above 0 and at most 1000"):
            checked_weights({"a": bad}, ["a", "b"])
    with pytest.raises(RunOptionError, match="'c' is no task's name; the tasks are a, b"):
        checked_weights({"c": 1.0}, ["a", "b"])


def _copy_run(run: Path, tmp_path: Path) -> Path:
    copied = tmp_path / "run"
    shutil.copytree(run, copied)
    return copied


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (lambda folder: _edit_json(folder / "manifest.json", ("tasks", "parity", "weight"), math.inf), "at most 1000"),
        (lambda folder: shutil.rmtree(folder / "tasks"), "no tasks/digit/splits.json, the items task digit was"),
        (lambda folder: _edit_json(folder / "labels.json", ("parity",), ["even"]), "labels.json"),
        (lambda folder: _edit_json(folder / "labels.json", ("digit",), None), "labels.json"),
        (
            lambda folder: _edit_json(folder / "labels.json", ("parity",), ["odd", "even"]),
            "labels.json: parity: not the classes manifest.json recorded (output 0 is 'odd' here, 'even' there)",
        ),
        (
            lambda folder: (folder / "labels.json").write_text(json.dumps({"parity": ["even", "odd"], "digit": []})),
            "not the classes of each of manifest.json's two or more tasks",
        ),
    ],
)
def test_a_tampered_multitask_run_folder_is_refused_in_one_line(
    run: Path, tamper: Any, expected: str, tmp_path: Path, zoo: Run
) -> None:
    """evaluate (and every reader through load_run) names the file and what is wrong; nothing is written."""
    folder = _copy_run(run, tmp_path)
    tamper(folder)
    err = one_line_error(zoo, "evaluate", str(folder))
    assert expected in err and str(folder) in err
    assert not (folder / "evaluation").exists()


def _edit_json(path: Path, keys: tuple[str, ...], value: Any) -> None:
    saved = json.loads(path.read_text())
    entry = saved
    for key in keys[:-1]:
        entry = entry[key]
    entry[keys[-1]] = value
    path.write_text(json.dumps(saved))


def test_a_diverging_run_ends_in_one_line(source: SOURCE, tmp_path: Path, zoo: Run) -> None:
    """A loss that goes infinite or NaN is named as such, with what to lower; no run folder is left."""
    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    add_to_user_registry(Settings.from_env().home, source[0])
    reset_catalogue()
    digit, parity = _digit_tasks(source[3], tmp_path / "data", per_class=12)
    tasks = ["--task", f"digit={digit}", "--task", f"parity={parity}", "--strategy", "features"]
    out = tmp_path / "run"
    err = one_line_error(
        zoo, "finetune", "digits-src.resnet10t", *tasks, "--lr", "1e30", "--epochs", "3", "--out", str(out)
    )
    assert err == (
        "Error: epoch 1: the validation loss is not finite (nan): the weighted loss diverged; lower --lr or "
        "--task-weight\n"
    )
    assert not out.exists()


def test_task_weights_change_what_is_trained(source: SOURCE, tmp_path: Path) -> None:
    """The same network run with parity weighed 1000 times less: the shared backbone trains to other values
    (the weight reaches the optimiser), and the training loss drops parity's share (≈ ln 2 at the start)."""
    from safetensors.torch import load_file

    from zoo_core.training.multitask import finetune_tasks
    from zoo_core.training.run import FinetuneOptions

    digit, parity = _digit_tasks(source[3], tmp_path / "data", per_class=12)
    options = FinetuneOptions(strategy="finetune", epochs=1, lr=3e-3)
    curves, backbones = [], []
    for name, weights in (("even", {}), ("light", {"parity": 0.001})):
        with registered_in_own_home(source[0], tmp_path / name):
            tasks = {"digit": digit, "parity": parity}
            metrics = finetune_tasks(source[0].name, tasks, tmp_path / name / "r", options, weights)
        curves.append(metrics["joint"]["runs"][0]["curve"][0])
        state = load_file(str(tmp_path / name / "r" / "model.safetensors"))
        backbones.append({key: value for key, value in state.items() if key.startswith("backbone.")})
    assert curves[0]["train_loss"] > curves[1]["train_loss"] + 0.5
    moved = [key for key in backbones[0] if not torch.equal(backbones[0][key], backbones[1][key])]
    assert len(moved) > 0


def _news(path: Path) -> Path:
    """A CSV with two label columns: every text's topic, and the sentiment of all but four (left blank); and a
    ``label`` column no task uses, one class throughout (which a task named after no column would take)."""
    subjects = {
        "sports": ["the team", "the striker", "the club", "the goalkeeper", "our side"],
        "finance": ["the bank", "the stock", "investors", "the market", "the fund"],
    }
    sayings = {
        "pos": ["had a wonderful, joyful day", "celebrated a great triumph"],
        "neg": ["had a terrible, miserable day", "suffered a painful disaster"],
    }
    rows = [
        (f"{subject} {saying}", topic, sentiment, "news")
        for topic, names in subjects.items()
        for subject in names
        for sentiment, lines in sayings.items()
        for saying in lines
    ]
    rows += [
        (f"{subject} met on tuesday", topic, "", "news") for topic, names in subjects.items() for subject in names[:2]
    ]
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([("text", "topic", "sentiment", "label"), *rows])
    return path


@pytest.mark.slow
def test_one_csv_with_a_label_column_per_task(minilm: zoo_core.ModelSpec, tmp_path: Path, zoo: Run) -> None:
    """``--task topic=news.csv --task sentiment=news.csv``: each task takes the column of its name (real
    MiniLM weights, frozen features), texts with no sentiment train the topic only; one ONNX answers both. The
    input check reads each task's own labels, not the one-class ``label`` column (which would stop the run)."""
    news = _news(tmp_path / "news.csv")
    code, out, err = zoo(
        "finetune", minilm.name, "--task", f"topic={news}", "--task", f"sentiment={news}", "--out",
        str(tmp_path / "run"), "--epochs", "30", "--lr", "1e-2", "--val-split", "0.25", "--test-split", "0.25",
    )  # fmt: skip
    assert code == 0, err
    assert f"{news}: left out 4 text(s) with no sentiment, the first 'the team met on tuesday'" in err
    run = tmp_path / "run"
    assert json.loads((run / "labels.json").read_text()) == {
        "topic": ["finance", "sports"],
        "sentiment": ["neg", "pos"],
    }
    splits = {name: json.loads((run / "tasks" / name / "splits.json").read_text()) for name in ("topic", "sentiment")}
    assert [sum(len(split["items"]) for split in splits[name].values()) for name in splits] == [44, 40]
    for split in ("train", "val", "test"):  # a text both tasks label is in the same split for both
        assert set(splits["sentiment"][split]["items"]) <= set(splits["topic"][split]["items"])
    metrics = json.loads((run / "metrics.json").read_text())["tasks"]
    accuracy = {name: metrics[name]["test"]["accuracy"] for name in ("topic", "sentiment")}
    assert accuracy["topic"] == 1.0 and accuracy["sentiment"] >= 0.8, accuracy
    code, _, err = zoo("export", str(run), "--out", str(tmp_path / "export"))
    assert code == 0, err
    code, out, err = zoo("predict", str(tmp_path / "export"), "the goalkeeper had a joyful day", "--json")
    answer = json.loads(out)[0]["tasks"]
    assert code == 0 and (answer["topic"][0]["label"], answer["sentiment"][0]["label"]) == ("sports", "pos"), err
    # two tasks named after no column would both learn the file's `label` column: refused before anything
    mood = one_line_error(zoo, "finetune", minilm.name, "--task", f"mood={news}", "--task", f"sentimnet={news}",
                          "--out", str(tmp_path / "mood"))  # fmt: skip
    assert mood == (
        f"Error: --task sentimnet={news}: its labels would be column 'label', as task mood's; name each task after "
        "its own label column (topic, sentiment, label)\n"
    )
    assert not (tmp_path / "mood").exists()
