"""`zoo evaluate` and its figures: scikit-learn's metrics wired right (checked by hand and against
scikit-learn), a run's in-memory test figure equal to the one recomputed from its folder, an export that
agrees with its run, and every bad input one line.

The runs are built from the session's digits source model (tests/conftest.py `source`): one trained here by
hand, as a run's training leaves its model in memory, and written as a run folder with its splits.json.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import Run, registered_in_own_home

import zoo_core
from zoo_core.training.evaluate import classification_report

SOURCE = tuple[zoo_core.ModelSpec, Path, Path, Path]
FIGURES = ("accuracy", "balanced_accuracy", "macro_f1", "top_k", "top_k_accuracy", "per_class", "confusion")


def one_line_error(zoo: Run, *args: str) -> str:
    code, out, err = zoo(*args)
    assert code == 1 and out == "" and err.count("\n") == 1 and err.startswith("Error: "), (code, out, err)
    return err


# --- the figures ---------------------------------------------------------------------------------------


def test_figures_of_a_small_case_computed_by_hand() -> None:
    classes = ["cat", "dog", "fox"]
    labels = [0, 0, 0, 1, 1, 2]
    scores = np.array(
        [
            [0.7, 0.2, 0.1],  # cat, right
            [0.6, 0.3, 0.1],  # cat, right
            [0.2, 0.5, 0.3],  # cat taken for a dog; cat is third: outside the top 2
            [0.1, 0.8, 0.1],  # dog, right
            [0.5, 0.4, 0.1],  # dog taken for a cat; dog is second
            [0.1, 0.1, 0.8],  # fox, right
        ]
    )
    items = ["c1", "c2", "c3", "d1", "d2", "f1"]
    report = classification_report(labels, scores, classes, items, top_k=2, worst=2)
    assert report["samples"] == 6 and report["accuracy"] == pytest.approx(4 / 6)
    recalls = [2 / 3, 1 / 2, 1.0]
    assert report["balanced_accuracy"] == pytest.approx(sum(recalls) / 3)
    precisions = [2 / 3, 1 / 2, 1.0]  # cat predicted 3 times (2 right), dog twice (1 right), fox once
    f1 = [2 * p * r / (p + r) for p, r in zip(precisions, recalls, strict=True)]
    assert report["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert report["top_k"] == 2 and report["top_k_accuracy"] == pytest.approx(5 / 6)
    assert [row["class"] for row in report["per_class"]] == classes
    assert [row["precision"] for row in report["per_class"]] == pytest.approx(precisions)
    assert [row["recall"] for row in report["per_class"]] == pytest.approx(recalls)
    assert [row["support"] for row in report["per_class"]] == [3, 2, 1]
    assert report["confusion"] == {"classes": classes, "matrix": [[2, 1, 0], [1, 1, 0], [0, 0, 1]]}
    assert report["worst"] == [
        {"item": "c3", "true": "cat", "predicted": "dog", "p_true": 0.2, "p_predicted": 0.5},
        {"item": "d2", "true": "dog", "predicted": "cat", "p_true": 0.4, "p_predicted": 0.5},
    ]
    json.dumps(report)  # plain JSON, as evaluation.json holds it


def test_figures_equal_scikit_learns_and_undefined_ones_are_none() -> None:
    from sklearn import metrics

    rng = np.random.default_rng(0)
    classes = [f"c{index}" for index in range(7)]
    labels = rng.integers(0, 6, 300)  # c6 has no items
    logits = rng.normal(size=(300, 7)) + 2.0 * np.eye(7)[labels]
    logits[:, 5] -= 10.0  # c5 is never predicted
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    predicted = scores.argmax(axis=1)
    report = classification_report(labels, scores, classes, [str(i) for i in range(300)])
    assert report["accuracy"] == metrics.accuracy_score(labels, predicted)
    assert report["balanced_accuracy"] == pytest.approx(
        metrics.recall_score(labels, predicted, labels=range(6), average="macro")
    )
    assert report["macro_f1"] == pytest.approx(metrics.f1_score(labels, predicted, labels=range(6), average="macro"))
    assert report["top_k"] == 5
    assert report["top_k_accuracy"] == metrics.top_k_accuracy_score(labels, scores, k=5, labels=range(7))
    assert report["confusion"]["matrix"] == metrics.confusion_matrix(labels, predicted, labels=range(7)).tolist()
    rows = {row["class"]: row for row in report["per_class"]}
    assert rows["c5"]["precision"] is None and rows["c5"]["recall"] == 0.0  # never predicted, items missed
    assert rows["c6"]["recall"] is None and rows["c6"]["support"] == 0  # no items: nothing to recall
    assert rows["c0"]["f1"] == pytest.approx(metrics.f1_score(labels, predicted, labels=[0], average="macro"))
    p_true = scores[np.arange(300), labels]
    assert [row["p_true"] for row in report["worst"]] == sorted(p_true)[:10]


def test_two_classes_top_k_is_top_1_and_shapes_are_checked() -> None:
    scores = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    report = classification_report([0, 0, 1], scores, ["no", "yes"], ["a", "b", "c"])
    assert report["top_k"] == 1 and report["top_k_accuracy"] == report["accuracy"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="one score row of 3 classes"):
        classification_report([0, 1], scores[:2], ["a", "b", "c"], ["x", "y"])
    with pytest.raises(ValueError, match="class indices below 2"):
        classification_report([0, 2, 1], scores, ["no", "yes"], ["a", "b", "c"])


# --- runs and exports ----------------------------------------------------------------------------------


def _splits(train_dir: Path, val_dir: Path, test_dir: Path) -> Any:
    from zoo_core.training.data import load_dataset
    from zoo_core.training.splits import Splits

    train = load_dataset(train_dir, "image")
    return Splits(train, load_dataset(val_dir, "image", train.classes), load_dataset(test_dir, "image", train.classes))


def _trained_by_hand(spec: zoo_core.ModelSpec, splits: Any, transform: Any) -> Any:
    """The source model under a new MLP head trained in memory, then left in training mode after one pass
    over the validation images: BatchNorm's running statistics moved from the source model's, so only a
    saved model that keeps its buffers (and is evaluated without dropout) gives the same figures."""
    import torch

    from zoo_core.loading import load
    from zoo_core.training.features import batches
    from zoo_core.training.model import TransferModel, make_head

    torch.manual_seed(0)
    backbone = load(spec)
    model = TransferModel(backbone, make_head("mlp", backbone.feature_dim, len(splits.train.classes)))
    optimizer = torch.optim.AdamW(model.head.parameters(), lr=3e-3)
    model.train()
    backbone.eval()
    for _ in range(10):
        for inputs, labels in batches(splits.train, transform, 10):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(inputs), labels).backward()
            optimizer.step()
    model.train()
    with torch.no_grad():
        for inputs, _ in batches(splits.val, transform, 25):
            model(inputs)
    return model


@pytest.fixture(scope="module")
def hand_run(source: SOURCE, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A run folder written by hand from a model trained in memory, and that model's test report computed
    in memory before it was saved (what a run reports as its test figure)."""
    from safetensors.torch import save_model

    from zoo_core.compatibility import check
    from zoo_core.training.evaluate import evaluate_model
    from zoo_core.training.run import pinned_threads

    spec, train_dir, val_dir, test_dir = source
    root = tmp_path_factory.mktemp("evaluate")
    run = root / "run"
    run.mkdir()
    with registered_in_own_home(spec, root):
        splits = _splits(train_dir, val_dir, test_dir)
        transform = check(spec, train_dir).transform
        model = _trained_by_hand(spec, splits, transform)
        with pinned_threads(1):
            expected = evaluate_model(model, splits.test, transform, 16)
        save_model(model, str(run / "model.safetensors"))
    (run / "labels.json").write_text(json.dumps(splits.train.classes))
    # the options a run before --test and --repeats wrote, less those with defaults that loading never reads
    options = {"drop_last": 0, "head": "mlp", "batch_size": 16, "threads": 1, "val": None, "val_split": 0.3, "seed": 0}
    (run / "manifest.json").write_text(json.dumps({"model": spec.name, "data": str(train_dir), "options": options}))
    _record(run, splits)
    return run, expected


def _record(run: Path, splits: Any, **fields: Any) -> None:
    """`splits` written as the run's splits.json, their fingerprints into its manifest as a run records them,
    and `fields` over the manifest's."""
    from zoo_core.training.splits import write_splits

    write_splits(splits, run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest |= {"data_fingerprint": splits.train.fingerprint(), "val_fingerprint": splits.val.fingerprint()}
    manifest |= {"test_fingerprint": splits.test.fingerprint(), **fields}
    (run / "manifest.json").write_text(json.dumps(manifest))


def _copy(run: Path, where: Path) -> Path:
    return Path(shutil.copytree(run, where, ignore=shutil.ignore_patterns("evaluation")))


def _edit(path: Path, **fields: Any) -> None:
    """`fields` over a JSON object's, None removing one."""
    saved = json.loads(path.read_text())
    saved |= fields
    path.write_text(json.dumps({key: value for key, value in saved.items() if value is not None}))


@pytest.fixture
def run(hand_run: tuple[Path, dict[str, Any]], source: SOURCE) -> Path:
    """The module's run folder, its source model in this test's user registry."""
    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    add_to_user_registry(Settings.from_env().home, source[0])
    reset_catalogue()
    return hand_run[0]


def test_evaluate_recomputes_the_in_memory_test_figure_from_the_run_folder(
    run: Path, hand_run: tuple[Path, dict[str, Any]], zoo: Run
) -> None:
    expected = hand_run[1]
    assert 0.3 < expected["accuracy"] < 1.0  # a trained model that still makes mistakes to count
    code, out, err = zoo("evaluate", str(run), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert {key: report[key] for key in FIGURES} == {key: expected[key] for key in FIGURES}
    assert report["worst"] == expected["worst"] and report["samples"] == expected["samples"]
    assert report["data"] == f"the test split of {run} (splits.json)" and report["runtime"] == "torch"
    assert err == f"wrote {run / 'evaluation' / 'evaluation.json'} and {run / 'evaluation' / 'confusion.png'}\n"
    assert json.loads((run / "evaluation" / "evaluation.json").read_text()) == report
    from PIL import Image

    with Image.open(run / "evaluation" / "confusion.png") as picture:
        assert picture.format == "PNG" and picture.width >= 300
    assert sorted(path.name for path in (run / "evaluation").iterdir()) == ["confusion.png", "evaluation.json"]


def test_the_table_names_what_it_measured(run: Path, source: SOURCE, tmp_path: Path, zoo: Run) -> None:
    code, out, _ = zoo("evaluate", str(run), str(source[3]), "--out", str(tmp_path / "eval"), "--top-k", "2")
    assert code == 0
    saved = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    lines = out.splitlines()
    assert lines[0] == f"digits-src.resnet10t (torch) on {source[3]}: {saved['samples']} items, 5 classes"
    assert f"accuracy           {saved['accuracy']:.1%}" in lines
    assert f"top-2 accuracy     {saved['top_k_accuracy']:.1%}" in lines
    assert any(line.split()[:2] == ["5", f"{saved['per_class'][0]['precision']:.1%}"] for line in lines)
    assert "ITEM" in out and saved["worst"][0]["true"] in out


def test_an_export_agrees_with_its_run(run: Path, source: SOURCE, tmp_path: Path, zoo: Run) -> None:
    """The same data through onnxruntime (its numpy preprocessing) and through torch: the same answers,
    probabilities within fp32 parity."""
    from zoo_core.export import export_onnx
    from zoo_core.runtime import Predictor
    from zoo_core.training.data import load_dataset
    from zoo_core.training.evaluate import predict_scores
    from zoo_core.training.saved import load_run

    pytest.importorskip("onnxruntime", reason="the dev extra installs onnxruntime")
    report = export_onnx(run, tmp_path / "export")
    assert report.samples == 50  # splits.json's validation folder, not a split drawn again from the options
    code, out, _ = zoo("evaluate", str(tmp_path / "export"), str(source[3]), "--out", str(tmp_path / "e"), "--json")
    assert code == 0
    on_onnx = json.loads(out)
    code, out, _ = zoo("evaluate", str(run), str(source[3]), "--json")
    on_torch = json.loads(out)
    assert on_onnx["runtime"] == "onnxruntime CPUExecutionProvider"
    assert {key: on_onnx[key] for key in FIGURES} == {key: on_torch[key] for key in FIGURES}
    other = tmp_path / "other"
    shutil.copytree(source[3], other)
    (other / "5").rename(other / "cat")
    err = one_line_error(zoo, "evaluate", str(tmp_path / "export"), str(other), "--out", str(tmp_path / "e"))
    assert (
        err
        == f"Error: {other}: labels ['cat'] are not among the model's classes {on_onnx['classes']}; give data labelled with those\n"
    )
    saved = load_run(run, zoo_core.catalogue_sources.default_catalogue())
    test = load_dataset(source[3], "image", saved.classes)
    torch_scores = predict_scores(saved.model, test, saved.transform, 16)
    onnx_scores = Predictor(tmp_path / "export").scores(test.items)
    assert np.abs(torch_scores - onnx_scores).max() <= 1e-4


def test_bad_input_is_one_line_and_writes_nothing(run: Path, source: SOURCE, tmp_path: Path, zoo: Run) -> None:
    old = tmp_path / "old-run"
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("splits.json", "evaluation"))
    assert "no splits.json" in one_line_error(zoo, "evaluate", str(old)) and "DATA" in one_line_error(
        zoo, "evaluate", str(old)
    )
    other = tmp_path / "other"
    shutil.copytree(source[3], other)
    (other / "5").rename(other / "cat")
    assert "['cat'] are not among the model's classes" in one_line_error(zoo, "evaluate", str(run), str(other))
    assert "not found" in one_line_error(zoo, "evaluate", str(run), str(tmp_path / "missing"))
    nowhere = tmp_path / "plain"
    nowhere.mkdir()
    assert "neither a run folder" in one_line_error(zoo, "evaluate", str(nowhere))
    (tmp_path / "file").write_text("")
    assert "is a file" in one_line_error(zoo, "evaluate", str(run), "--out", str(tmp_path / "file"))
    (old / "splits.json").write_text('{"train": {"items": ["x"], "labels": ["cat"]}}')
    assert "splits.json: not the run's splits" in one_line_error(zoo, "evaluate", str(old))
    (old / "splits.json").write_text(
        json.dumps({name: {"items": [7, 8], "labels": ["5", "6"]} for name in ("train", "val", "test")})
    )
    assert f"{old / 'splits.json'}: " in one_line_error(zoo, "evaluate", str(old))  # no TypeError from deep down
    (old / "splits.json").unlink()
    (old / "labels.json").write_text('["5", "6"]')
    assert "model.safetensors: does not fit" in one_line_error(zoo, "evaluate", str(old), str(source[3]))
    assert not (old / "evaluation").exists() and not (nowhere / "evaluation").exists()


def test_an_export_folder_needs_data_and_out(run: Path, source: SOURCE, tmp_path: Path, zoo: Run) -> None:
    pytest.importorskip("onnxruntime", reason="the dev extra installs onnxruntime")
    export = tmp_path / "export"
    export.mkdir()
    (export / "model.onnx").write_bytes(b"")  # never opened: the arguments are refused first
    assert "give --out DIR" in one_line_error(zoo, "evaluate", str(export), str(source[3]))
    err = one_line_error(zoo, "evaluate", str(export), "--out", str(tmp_path / "e"))
    assert "holds no data: give DATA" in err and not (tmp_path / "e").exists()
    assert "holds no data: give DATA" in one_line_error(zoo, "evaluate", str(export))  # the missing input first


# --- a run folder trusted for nothing ------------------------------------------------------------------


def test_swapped_classes_in_labels_json_are_refused(run: Path, tmp_path: Path, zoo: Run) -> None:
    """labels.json names the model's outputs in order: two names swapped would relabel every answer, so
    evaluate and export compare it with manifest.json's copy and refuse, naming the first output that differs."""
    swapped = _copy(run, tmp_path / "swapped")
    classes = json.loads((swapped / "labels.json").read_text())
    _edit(swapped / "manifest.json", classes=classes)  # as a run records them (test_transfer checks that it does)
    assert zoo("evaluate", str(swapped))[0] == 0
    shutil.rmtree(swapped / "evaluation")
    (swapped / "labels.json").write_text(json.dumps(["6", "5", *classes[2:]]))
    err = one_line_error(zoo, "evaluate", str(swapped))
    assert f"{swapped / 'labels.json'}: not the classes manifest.json recorded (output 0 is '6' here, '5' there)" in err
    assert "restore the file" in err and not (swapped / "evaluation").exists()
    out = tmp_path / "export"
    assert "output 0 is '6' here, '5' there" in one_line_error(zoo, "export", str(swapped), "--out", str(out))
    assert not out.exists()
    (swapped / "labels.json").write_text(json.dumps(classes[:4]))
    assert classes == ["5", "6", "7", "8", "9"]
    assert "(4 classes here, 5 there)" in one_line_error(zoo, "evaluate", str(swapped))
    _edit(swapped / "manifest.json", classes="5\n6")  # the manifest is the broken file: it is the one named
    err = one_line_error(zoo, "evaluate", str(swapped))
    assert f"{swapped / 'manifest.json'}: classes is '5\\n6', not a list of class names; train the run again" in err


def test_a_splits_json_that_is_not_the_runs_is_refused(run: Path, source: SOURCE, tmp_path: Path, zoo: Run) -> None:
    """Test items made the training items, or images moved since the run: refused, naming splits.json and
    the way out; DATA given instead is measured."""
    edited = _copy(run, tmp_path / "edited")
    saved = json.loads((edited / "splits.json").read_text())
    (edited / "splits.json").write_text(json.dumps({**saved, "test": saved["train"]}))
    mismatch = (
        f"Error: {edited / 'splits.json'}: does not match the run (edited, or its images changed or moved); give "
        f"DATA: zoo evaluate {edited} DATA\n"
    )
    assert one_line_error(zoo, "evaluate", str(edited)) == mismatch
    # a manifest from before test_fingerprint: what it has is compared, and overlap refused all the same
    _edit(edited / "manifest.json", test_fingerprint=None)
    err = one_line_error(zoo, "evaluate", str(edited))
    assert "splits.json: 50 test item(s) are also training or validation items" in err
    assert "give DATA" in err and not (edited / "evaluation").exists()

    data = tmp_path / "data"
    folders = [Path(shutil.copytree(folder, data / folder.name)) for folder in source[1:]]
    moved = _copy(run, tmp_path / "moved")
    _record(moved, _splits(*folders))
    code, out, err = zoo("evaluate", str(moved), "--json")
    assert code == 0 and json.loads(out)["samples"] == len(list(source[3].rglob("*.png"))), err
    (data / "target-test" / "5" / sorted(path.name for path in (data / "target-test" / "5").iterdir())[0]).touch()
    changed = one_line_error(zoo, "evaluate", str(moved))
    assert changed == mismatch.replace(str(edited), str(moved))
    data.rename(tmp_path / "elsewhere")
    assert one_line_error(zoo, "evaluate", str(moved)) == changed
    code, out, err = zoo("evaluate", str(moved), str(source[3]), "--json")
    assert code == 0 and json.loads(out)["data"] == str(source[3]), err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": None}, "options.batch_size is missing"),
        ({"threads": "x"}, "options.threads is 'x', not int"),
        ({"lr": "fast"}, "options.lr is 'fast', not float"),
        ({"threads": 0}, "its options cannot make a run (--threads 0: must be at least 1)"),
        ({"colour": "red"}, "options.colour is not a run option"),
        ({"baseline": [3]}, "options.baseline is [3], not tuple[str, ...]"),
    ],
)
def test_manifest_options_are_checked_as_a_runs(
    run: Path, tmp_path: Path, zoo: Run, options: dict[str, Any], message: str
) -> None:
    broken = _copy(run, tmp_path / "broken")
    manifest = json.loads((broken / "manifest.json").read_text())
    changed = {**manifest["options"], **options}
    _edit(broken / "manifest.json", options={key: value for key, value in changed.items() if value is not None})
    err = one_line_error(zoo, "evaluate", str(broken))
    assert err.startswith(f"Error: {broken / 'manifest.json'}: {message}") and "train the run again" in err


def test_old_manifest_options_take_their_defaults(run: Path, tmp_path: Path) -> None:
    """Options an older zoo did not write (test, test_split, repeats, strategy, ...) take FinetuneOptions'
    defaults; a single baseline name, as an older zoo wrote it, becomes a list of one."""
    import dataclasses

    from zoo_core.catalogue_sources import default_catalogue
    from zoo_core.training.run import FinetuneOptions
    from zoo_core.training.saved import load_run

    old = _copy(run, tmp_path / "old")
    _edit(
        old / "manifest.json",
        options={**json.loads((old / "manifest.json").read_text())["options"], "baseline": "scratch"},
    )
    options = load_run(old, default_catalogue()).options
    defaults = dataclasses.asdict(FinetuneOptions())
    assert options == {**defaults, "head": "mlp", "batch_size": 16, "val_split": 0.3, "baseline": ("scratch",)}


def test_data_the_run_trained_on_is_measured_with_a_warning(run: Path, source: SOURCE, zoo: Run) -> None:
    code, out, err = zoo("evaluate", str(run), str(source[1]), "--json")
    assert code == 0 and json.loads(out)["samples"] == 50
    assert err.splitlines()[0] == (
        f"zoo: warning: {source[1]}: 50 of its 50 images are the run's own (50 training), so these figures are "
        "not held-out ones; evaluate on images the run never saw"
    )
    code, _, err = zoo("evaluate", str(run), str(source[2]))
    assert code == 0 and "50 of its 50 images are the run's own (50 validation)" in err
    code, _, err = zoo("evaluate", str(run), str(source[3]))
    assert code == 0 and "warning" not in err


def test_the_preprocessing_is_the_runs_without_its_training_data(
    run: Path, source: SOURCE, tmp_path: Path, zoo: Run
) -> None:
    """The transform comes from the spec's input, as the run's did from checking its data: a run whose
    training folder is gone is still measured on DATA, with the same figures."""
    from zoo_core.catalogue_sources import default_catalogue
    from zoo_core.compatibility import check
    from zoo_core.training.saved import load_run

    code, out, _ = zoo("evaluate", str(run), str(source[3]), "--json")
    assert code == 0
    gone = _copy(run, tmp_path / "gone")
    _edit(gone / "manifest.json", data=str(tmp_path / "no-such-folder"))
    transform = load_run(gone, default_catalogue()).transform
    assert repr(transform) == repr(check(source[0], source[1]).transform)
    code, moved, err = zoo("evaluate", str(gone), str(source[3]), "--json")
    assert code == 0, err
    assert {key: json.loads(moved)[key] for key in FIGURES} == {key: json.loads(out)[key] for key in FIGURES}
