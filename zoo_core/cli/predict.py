"""`zoo predict` (an exported folder on onnxruntime, a catalogue image classifier on torch, or zero-shot text
labels), `zoo export`, `zoo doctor`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Literal

import click

from zoo_core.cli import State
from zoo_core.cli.output import print_json, print_table

__all__ = ["COMMANDS"]


@click.command("predict")
@click.argument("model")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--labels", help="Zero-shot (with a text model NAME): comma-separated label names to choose from.")
@click.option(
    "--provider",
    type=click.Choice(["auto", "tensorrt", "cuda", "cpu"]),
    default="auto",
    show_default=True,
    help="onnxruntime's execution provider, for an export folder only.",
)
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--top", default=1, show_default=True, type=click.IntRange(min=1), help="Labels to show per input.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.pass_obj
def predict_command(
    state: State,
    /,
    model: str,
    inputs: tuple[str, ...],
    labels: str | None,
    provider: str,
    batch_size: int,
    top: int,
    as_json: bool,
) -> None:
    """Labels for INPUTS (image files, or texts) from an export folder (MODEL = the folder of model.onnx),
    from a catalogue image classifier run with torch (MODEL = its name: its own classes, e.g. ImageNet's),
    or zero-shot from a text model (MODEL = a catalogue name, with --labels)."""
    is_export = Path(model).is_dir()
    if not is_export and provider != "auto":  # a catalogue name runs in-process (torch, numpy): nothing to choose
        raise click.UsageError(
            f"--provider chooses onnxruntime's execution provider for an export folder; '{model}' is a catalogue "
            "name, run without onnxruntime: leave --provider out, or predict on an export folder (zoo export)"
        )
    if is_export:
        from zoo_core.runtime import Predictor

        predictor = Predictor(Path(model), provider)
        if predictor.tasks:  # a multi-task export: each task's answer
            answers = predictor.predict_tasks(list(inputs), top=top, batch_size=batch_size)
        else:
            ranked = predictor.predict(list(inputs), top=top, batch_size=batch_size)
        click.echo(f"onnxruntime provider: {predictor.provider}", err=True)  # after: an error is one line
        if predictor.tasks:
            _print_tasks(inputs, answers, top, as_json)
            return
    elif labels:
        from zoo_core.zeroshot import zero_shot

        names = [label.strip() for label in labels.split(",") if label.strip()]
        ranked = zero_shot(state.catalogue().get(model), inputs, names)
    elif model in state.catalogue() and state.catalogue().get(model).modality == "image":
        from zoo_core.classify import classify

        ranked = classify(state.catalogue().get(model), [Path(item) for item in inputs], top, batch_size)
    else:
        raise click.UsageError(
            f"'{model}' is not an export folder or a catalogue image model; for zero-shot with a text model "
            "give --labels"
        )
    if as_json:
        print_json(
            [
                {"input": item, "labels": [{"label": label, "score": score} for label, score in found[:top]]}
                for item, found in zip(inputs, ranked, strict=True)
            ]
        )
        return
    rows = [(item, _shown(found[:top])) for item, found in zip(inputs, ranked, strict=True)]
    print_table(("input", "labels"), rows)


def _shown(ranked: list[tuple[str, float]]) -> str:
    """Labels with their probabilities, " | " between them: class names hold commas ("tabby, tabby cat")."""
    return " | ".join(f"{label} ({score:.2f})" for label, score in ranked)


def _print_tasks(
    inputs: tuple[str, ...], answers: list[dict[str, list[tuple[str, float]]]], top: int, as_json: bool
) -> None:
    """A multi-task export's answers: a column per task (a table), or {"input", "tasks": {task: labels}}."""
    if as_json:
        print_json(
            [
                {
                    "input": item,
                    "tasks": {
                        task: [{"label": label, "score": score} for label, score in found[:top]]
                        for task, found in answer.items()
                    },
                }
                for item, answer in zip(inputs, answers, strict=True)
            ]
        )
        return
    tasks = list(answers[0]) if answers else []
    rows = [
        (item, *(_shown(answer[task][:top]) for task in tasks)) for item, answer in zip(inputs, answers, strict=True)
    ]
    print_table(("input", *tasks), rows)


@click.command("export")
@click.argument("target")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write.")
@click.option(
    "--fp16", is_flag=True, help="Float16 weights and activations (logits within 1% of PyTorch's largest |logit|)."
)
@click.option(
    "--int8", is_flag=True, help="Int8: dynamic for text, calibrated static for CNNs (≥ 99% top-1 agreement)."
)
@click.option("--optimize", is_flag=True, help="Store onnxruntime's graph optimisations (fusions) in the file.")
@click.option(
    "--exporter",
    type=click.Choice(["auto", "torchscript", "dynamo"]),
    default="auto",
    show_default=True,
    help="torch.onnx exporter; auto picks per model family.",
)
@click.option(
    "--triton", type=click.Path(file_okay=False, path_type=Path), help="Also write a Triton model repository."
)
@click.option("--json", "as_json", is_flag=True, help="Print the parity report as JSON.")
@click.pass_obj
def export_command(
    state: State,
    /,
    target: str,
    out: Path,
    fp16: bool,
    int8: bool,
    optimize: bool,
    exporter: Literal["auto", "torchscript", "dynamo"],
    triton: Path | None,
    as_json: bool,
) -> None:
    """Export a run folder (or an image model NAME) to ONNX, proven equal to PyTorch on real inputs."""
    from zoo_core.export import export_onnx

    if fp16 and int8:
        raise click.UsageError("--fp16 and --int8 are two precisions: choose one")
    precision: Literal["fp32", "fp16", "int8"] = "fp16" if fp16 else "int8" if int8 else "fp32"
    report = export_onnx(
        target,
        out,
        precision=precision,
        optimize=optimize,
        exporter=exporter,
        triton=triton,
        catalogue=state.catalogue(),
    )
    if as_json:
        print_json(asdict(report))
        return
    click.echo(f"exporter: {report.exporter} ({report.exporter_reason})", err=True)
    allowed = f" (allowed {report.tolerance:.1e})" if report.tolerance is not None else ""
    click.echo(
        f"{report.path}: parity on {report.samples} inputs: max |diff| {report.max_abs_diff:.1e}{allowed}, "
        f"top-1 agreement {report.top1_agreement:.1%}"
        + (" (the output furthest from its bound)" if report.outputs else "")
    )
    for output, figures in report.outputs.items():
        bound = f" (allowed {figures['tolerance']:.1e})" if figures["tolerance"] is not None else ""
        click.echo(
            f"  output {output}: max |diff| {figures['max_abs_diff']:.1e}{bound}, "
            f"top-1 agreement {figures['top1_agreement']:.1%}"
        )


@click.command("doctor")
def doctor_command() -> None:
    """What this machine can run: onnxruntime's execution providers."""
    import onnxruntime

    from zoo_core.runtime import available_providers

    click.echo(
        f"onnxruntime {onnxruntime.__version__}; compiled in: {', '.join(onnxruntime.get_available_providers())}"
    )
    click.echo(f"usable here, best first: {', '.join(available_providers())}")


COMMANDS = (predict_command, export_command, doctor_command)
