"""`zoo evaluate`: classification figures of a trained model (a run folder on torch, or an export folder on
onnxruntime) on its test split or on labelled data, printed and written as evaluation.json and
confusion.png.

A multi-task run is evaluated task by task, each on its own test split, into ``OUT/<task>/``; DATA (which
holds one task's labels) and a multi-task export folder (whose outputs answer several tasks) are refused
in one line."""

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
    """DATA read with the model's classes, in the model's order; a class the model does not know is a
    one-line `DataError`."""
    from zoo_core.errors import DataError
    from zoo_core.training.data import Dataset, load_dataset

    found = load_dataset(data, kind)
    unknown = sorted(set(found.classes) - set(classes))
    if unknown:
        raise DataError(
            f"{data}: labels {unknown} are not among the model's classes {classes}; give data labelled with those"
        )
    if not found.items:
        raise DataError(f"{data}: no labelled items to evaluate")
    index = {name: position for position, name in enumerate(classes)}
    return Dataset(found.kind, found.items, [index[found.classes[label]] for label in found.labels], classes)


def _warn_if_seen(data: Path, dataset: Any, splits: Any) -> None:
    """One warning when DATA holds images the run trained on or picked its epoch with (the same file, by
    its resolved path): the figures then measure memory, not a held-out set."""
    import warnings
    from collections import Counter

    from zoo_core.errors import DataWarning

    if splits is None or dataset.kind != "image":  # texts may repeat legitimately
        return
    seen = {Path(item).resolve(): "training" for item in splits.train.items}
    seen |= {Path(item).resolve(): "validation" for item in splits.val.items}
    counts = Counter(seen[path] for path in map(Path.resolve, map(Path, dataset.items)) if path in seen)
    if counts:
        where = ", ".join(f"{count} {name}" for name, count in counts.items())
        warnings.warn(
            f"{data}: {counts.total()} of its {len(dataset.items)} images are the run's own ({where}), so these "
            "figures are not held-out ones; evaluate on images the run never saw",
            DataWarning,
            stacklevel=2,
        )


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
    saved = load_run(run, state.catalogue(), verify_splits=data is None)
    if data is not None:
        dataset, measured = _dataset(data, saved.kind, saved.classes), str(data)
        _warn_if_seen(data, dataset, saved.splits)
    else:
        assert saved.splits is not None
        dataset, measured = saved.splits.test, f"the test split of {run} ({SPLITS_FILE})"
    options = saved.options
    with pinned_threads(options["threads"]):  # the thread count the run measured its test figure with
        scores = predict_scores(saved.model, dataset, saved.transform, batch_size or options["batch_size"])
    adapted = saved.manifest.get("adaptation")  # checked by load_run
    model = saved.spec.name + (f", adapted by {adapted['method']} to {printable(adapted['target'])}" if adapted else "")
    return dataset, scores, {"data": measured, "model": model, "runtime": "torch"}


def _export_inputs(folder: Path, data: Path | None, out: Path | None) -> tuple[Path, Path]:
    """(DATA, --out) for an export folder, which needs both: the missing one is named, DATA first."""
    from zoo_core.errors import DataError, RunOptionError

    if data is None:
        raise DataError(
            f"{folder} is an export folder, which holds no data: give DATA (an image folder with one subfolder "
            f"per class, or a labelled CSV/JSONL): zoo evaluate {folder} DATA --out DIR"
        )
    if out is None:
        raise RunOptionError(
            f"{folder} is an export folder, which holds only what export.json records: give --out DIR for "
            "evaluation.json and confusion.png"
        )
    return data, out


def _on_export(folder: Path, data: Path, batch_size: int | None, provider: str) -> tuple[Any, Any, dict[str, str]]:
    """(dataset, scores, what was measured) for an export folder on onnxruntime."""
    from zoo_core.runtime import Predictor
    from zoo_core.training.data import dataset_kind

    predictor = Predictor(folder, provider)
    if predictor.tasks:
        from zoo_core.errors import ExportError

        raise ExportError(
            f"{folder} answers {len(predictor.tasks)} tasks ({', '.join(predictor.tasks)}): evaluate the run folder "
            "it was exported from (zoo evaluate RUN), which measures each task on its own test split"
        )
    dataset = _dataset(data, dataset_kind(predictor.modality), predictor.labels)
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


def _evaluate_tasks(
    state: State, run: Path, data: Path | None, out: Path, batch_size: int | None, top_k: int, worst: int
) -> dict[str, dict[str, Any]]:
    """Each task of a multi-task run on its own test split: {task: report}, written to ``out/<task>/``."""
    from zoo_core.errors import RunOptionError
    from zoo_core.training.evaluate import classification_report, predict_scores
    from zoo_core.training.evaluation_files import write_evaluation
    from zoo_core.training.run import pinned_threads
    from zoo_core.training.saved import load_run

    if data is not None:
        raise RunOptionError(
            f"{run} is a multi-task run: each task is measured on its own test split; drop DATA {data} "
            "(to measure one task on other data, train it alone)"
        )
    saved = load_run(run, state.catalogue())
    reports = {}
    with pinned_threads(saved.options["threads"]):
        for name, task in saved.tasks.items():
            test = task.splits.test
            scores = predict_scores(
                saved.task_model(name), test, saved.transform, batch_size or saved.options["batch_size"]
            )
            measured = {
                "data": f"the test split of task {name} of {run}",
                "model": f"{name} head of {saved.spec.name}",
                "runtime": "torch",
            }
            reports[name] = {
                **measured,
                **classification_report(test.labels, scores, test.classes, test.items, top_k, worst),
            }
            write_evaluation(reports[name], out / name)
    return reports


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
    from zoo_core.errors import DataError, RunFolderError
    from zoo_core.training.evaluate import classification_report
    from zoo_core.training.evaluation_files import check_out, write_evaluation
    from zoo_core.training.tasks import is_multitask_manifest

    if data is not None and not data.exists():
        raise DataError(f"{data}: not found; give an image folder or a labelled CSV/JSONL")
    if (target / "model.onnx").is_file():
        data, out = _export_inputs(target, data, out)
        check_out(out)
        dataset, scores, measured = _on_export(target, data, batch_size, provider)
    elif is_multitask_manifest(target / "manifest.json"):
        out = out or target / "evaluation"
        check_out(out)
        reports = _evaluate_tasks(state, target, data, out, batch_size, top_k, worst)
        if as_json:
            print_json(reports)
        for position, report in enumerate([] if as_json else reports.values()):
            click.echo("\n" if position else "", nl=False)
            _print_report(report)
        click.echo(f"wrote evaluation.json and confusion.png for each task under {out}", err=True)
        return
    elif (target / "manifest.json").is_file():
        out = out or target / "evaluation"
        check_out(out)
        dataset, scores, measured = _on_run(state, target, data, batch_size)
    else:
        raise RunFolderError(
            f"{target}: neither a run folder (manifest.json) nor an export folder (model.onnx); give a folder "
            "`zoo finetune` or `zoo export` wrote"
        )
    figures = classification_report(dataset.labels, scores, dataset.classes, dataset.items, top_k, worst)
    report = {**measured, **figures}
    written = write_evaluation(report, out)
    if as_json:
        print_json(report)
    else:
        _print_report(report)
    click.echo(f"wrote {' and '.join(str(path) for path in written)}", err=True)


COMMANDS = (evaluate_command,)
