"""`zoo quickstart`: the whole path, offline, in a few minutes — find, check, develop, adapt, compare, ship.

The comparison is the one a sceptic asks for: every method on the same target split of scikit-learn's
digits (5-9, 10 labelled images per class, 10 more for validation, the rest for the test), ranked by
test accuracy as measured, whatever the ranking is.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from zoo_core.cli import State

__all__ = ["COMMANDS"]

SOURCE_NAME = "quickstart-digits.resnet10t"


@click.command("quickstart")
@click.option("--out", default=Path("zoo-quickstart"), show_default=True, type=click.Path(path_type=Path))
@click.pass_obj
def quickstart_command(state: State, /, out: Path) -> None:
    """Transfer learning end to end on scikit-learn's digits, with no network, through export and predict.

    Compares, on one test split: EfficientNet-Lite0 with real ImageNet weights (frozen features, and
    fine-tuned), a source model developed here on digits 0-4, the same network from scratch, and a
    logistic regression on raw pixels.
    """
    from zoo_core.compatibility import check
    from zoo_core.settings import Settings
    from zoo_core.training.digits import PRETRAINED, comparison, develop_source, ranking, run_folder, write_digits
    from zoo_core.training.run import finetune
    from zoo_core.user_registry import user_registry

    started = time.perf_counter()
    step = iter(range(1, 10))
    catalogue = state.catalogue()
    pretrained = catalogue.get(PRETRAINED)
    click.echo(
        f"{next(step)}. find: {pretrained.name} ({pretrained.params or 0:,} parameters, {pretrained.license}, "
        f"ImageNet-1k weights from the pip package {pretrained.source.package})"
    )
    folders = write_digits(out / "data")
    click.echo(
        f"{next(step)}. data: digits 0-4 for the source task; 5-9 with 10 training and 10 validation images per "
        f"class, the rest for the test ({folders.train.parent})"
    )
    report = check(pretrained, folders.train)
    levels = ", ".join(f"{finding.check} {finding.level}" for finding in report.findings)
    click.echo(f"{next(step)}. check: {'usable' if report.usable else 'NOT usable'} ({levels})")
    source = develop_source(folders, out / "source-model", SOURCE_NAME, catalogue)
    click.echo(
        f"{next(step)}. develop a source model: {SOURCE_NAME}, {source['source']['test_accuracy']:.1%} on held-out "
        f"digits 0-4; added to your registry {user_registry(Settings.from_env().home)} (delete its entry to remove it)"
    )
    results = {}
    for label, (name, options) in comparison(folders, SOURCE_NAME).items():
        folder = run_folder(out, label)
        results[label] = metrics = finetune(state.catalogue().get(name), folders.train, folder, options)
        test = metrics["transfer"]["test"]["accuracy"]["mean"]
        click.echo(f"{next(step)}. {label}: test accuracy {test:.1%} on {metrics['sizes']['test']} images ({folder})")
    click.echo(f"{next(step)}. ranking on the same {metrics['sizes']['test']} test images, as measured:")
    for place, (method, summary) in enumerate(ranking(results), 1):
        click.echo(f"   {place}. {method}: {summary['test']['accuracy']['mean']:.1%}")
    # chosen on validation accuracy: the test split chooses nothing, not even which model ships
    shipped = max(results, key=lambda label: results[label]["transfer"]["val_accuracy"]["mean"])
    _ship(out, run_folder(out, shipped), folders.test, next(step))
    click.echo(f"done in {time.perf_counter() - started:.0f} s; everything is under {out}")


def _ship(out: Path, run: Path, test: Path, number: int) -> None:
    """Export `run` with its parity check and predict a sample of the test images on onnxruntime."""
    from zoo_core.export import export_onnx
    from zoo_core.runtime import Predictor

    exported = export_onnx(run, out / "export")
    predictor = Predictor(out / "export")
    images = sorted(test.rglob("*.png"))[::10]
    found = predictor.predict([str(path) for path in images])
    right = sum(ranked[0][0] == path.parent.name for path, ranked in zip(images, found, strict=True))
    click.echo(
        f"{number}. export {run.name}: {exported.path}, parity max |diff| {exported.max_abs_diff:.1e}; on "
        f"onnxruntime ({predictor.provider}) {right}/{len(images)} test images right; try `zoo predict "
        f"{out / 'export'} IMAGE...`"
    )


COMMANDS = (quickstart_command,)
