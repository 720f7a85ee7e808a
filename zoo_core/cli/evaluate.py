"""`zoo evaluate`: classification figures of a trained model (a run folder on torch, or an export folder on
onnxruntime) on its test split or on labelled data, printed and written as evaluation.json and
confusion.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from zoo_core.cli import State
from zoo_core.cli.output import print_json, print_table, printable

__all__ = ["COMMANDS"]

SHOWN_WORST = 5  # worst-classified items the table shows; evaluation.json keeps --worst of them
ITEM_WIDTH = 60  # characters of an item (a path, a text) the table shows


def _dataset(data: Path, kind: str, classes: list[str]) -> Any:
    """DATA read with the model's classes; a class the model does not know is a one-line `DataError`."""
    from zoo_core.errors import DataError
    from zoo_core.training.data import load_dataset

    dataset = load_dataset(data, kind, classes)
    if not dataset.items:
        raise DataError(f"{data}: no labelled items to evaluate")
    return dataset


def _on_run(state: State, run: Path, data: Path | None, batch_size: int | None) -> tuple[Any, Any, dict[str, str]]:
    """(dataset, scores, what was measured) for a run folder: DATA, else its test split."""
    from zoo_core.errors import RunFolderError
    from zoo_core.training.evaluate import predict_scores
    from zoo_core.training.run import pinned_threads
    from zoo_core.training.saved import load_run
    from zoo_core.training.splits import SPLITS_FILE

    if data is None and not (run / SPLITS_FILE).is_file():
        raise RunFolderError(
            f"{run}: no {SPLITS_FILE} (the run was written before zoo kept its splits), so there is no test "
            f"split to measure; give the data: zoo evaluate {run} DATA"
        )
    saved = load_run(run, state.catalogue())
    if data is not None:
        dataset, measured = _dataset(data, saved.kind, saved.classes), str(data)
    else:
        assert saved.splits is not None
        dataset, measured = saved.splits.test, f"the test split of {run} ({SPLITS_FILE})"
    options = saved.options
    with pinned_threads(options.get("threads", 1)):  # the thread count the run measured its test figure with
        scores = predict_scores(saved.model, dataset, saved.transform, batch_size or options["batch_size"])
    return dataset, scores, {"data": measured, "model": saved.spec.name, "runtime": "torch"}


def _on_export(
    folder: Path, data: Path | None, batch_size: int | None, provider: str
) -> tuple[Any, Any, dict[str, str]]:
    """(dataset, scores, what was measured) for an export folder on onnxruntime: DATA is needed."""
    from zoo_core.errors import DataError
    from zoo_core.runtime import Predictor

    if data is None:
        raise DataError(
            f"{folder} is an export folder, which holds no data: give DATA (an image folder with one subfolder "
            f"per class, or a labelled CSV/JSONL): zoo evaluate {folder} DATA --out DIR"
        )
    predictor = Predictor(folder, provider)
    dataset = _dataset(data, "image" if predictor.modality == "image" else "text", predictor.labels)
    scores = predictor.scores(dataset.items, batch_size or 32)
    return dataset, scores, {"data": str(data), "model": str(folder), "runtime": f"onnxruntime {predictor.provider}"}


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _short(item: str) -> str:
    return item if len(item) <= ITEM_WIDTH else "…" + item[-(ITEM_WIDTH - 1) :]


def _print_report(report: dict[str, Any]) -> None:
    click.echo(
        f"{report['model']} ({report['runtime']}) on {printable(report['data'])}: {report['samples']} items, "
        f"{len(report['classes'])} classes"
    )
    figures = [
        ("accuracy", report["accuracy"]),
        ("balanced accuracy", report["balanced_accuracy"]),
        ("macro-F1", report["macro_f1"]),
        (f"top-{report['top_k']} accuracy", report["top_k_accuracy"]),
    ]
    print_table(("figure", "value"), [(name, _percent(value)) for name, value in figures])
    click.echo()
    rows = [
        (row["class"], _percent(row["precision"]), _percent(row["recall"]), _percent(row["f1"]), str(row["support"]))
        for row in report["per_class"]
    ]
    print_table(("class", "precision", "recall", "f1", "support"), rows)
    if report["worst"]:
        click.echo(f"\nworst classified (lowest probability of the true class), {SHOWN_WORST} at most:")
        worst = [
            (_short(row["item"]), row["true"], row["predicted"], f"{row['p_true']:.3f}", f"{row['p_predicted']:.3f}")
            for row in report["worst"][:SHOWN_WORST]
        ]
        print_table(("item", "true", "predicted", "p(true)", "p(predicted)"), worst)


@click.command("evaluate")
@click.argument("target", type=click.Path(path_type=Path))
@click.argument("data", required=False, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Folder for evaluation.json and confusion.png. Default: TARGET/evaluation for a run folder; needed "
    "for an export folder.",
)
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(min=1), help="k of top-k accuracy.")
@click.option("--worst", default=10, show_default=True, type=click.IntRange(min=0), help="Worst items kept.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Default: the run's, or 32 for an export folder.")
@click.option("--provider", type=click.Choice(["auto", "tensorrt", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def evaluate_command(
    state: State,
    /,
    target: Path,
    data: Path | None,
    out: Path | None,
    top_k: int,
    worst: int,
    batch_size: int | None,
    provider: str,
    as_json: bool,
) -> None:
    """Accuracy, balanced accuracy, macro-F1, top-k, per-class precision and recall, the confusion matrix
    and the worst-classified items of TARGET (a run folder, or an export folder) on DATA (an image folder
    with one subfolder per class, or a labelled CSV/JSONL; default for a run: its test split)."""
    from zoo_core.errors import DataError, RunFolderError, RunOptionError
    from zoo_core.training.evaluate import classification_report
    from zoo_core.training.evaluation_files import check_out, write_evaluation

    if data is not None and not data.exists():
        raise DataError(f"{data}: not found; give an image folder or a labelled CSV/JSONL")
    if out is not None:
        check_out(out)
    if (target / "model.onnx").is_file():
        if out is None:
            raise RunOptionError(
                f"{target} is an export folder, which holds only what export.json records: give --out DIR for "
                "evaluation.json and confusion.png"
            )
        dataset, scores, measured = _on_export(target, data, batch_size, provider)
    elif (target / "manifest.json").is_file():
        dataset, scores, measured = _on_run(state, target, data, batch_size)
    else:
        raise RunFolderError(
            f"{target}: neither a run folder (manifest.json) nor an export folder (model.onnx); give a folder "
            "`zoo finetune` or `zoo export` wrote"
        )
    figures = classification_report(dataset.labels, scores, dataset.classes, dataset.items, top_k, worst)
    report = {**measured, **figures}
    written = write_evaluation(report, out or target / "evaluation")
    if as_json:
        print_json(report)
    else:
        _print_report(report)
    click.echo(f"wrote {' and '.join(str(path) for path in written)}", err=True)


COMMANDS = (evaluate_command,)
