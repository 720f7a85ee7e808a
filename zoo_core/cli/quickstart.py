"""`zoo quickstart`: the whole path, offline, in a few minutes — find, check, develop, fine-tune, compare."""

from __future__ import annotations

import time
from pathlib import Path

import click

from zoo_core.cli import State

__all__ = ["COMMANDS"]


@click.command("quickstart")
@click.option("--out", default=Path("zoo-quickstart"), show_default=True, type=click.Path(path_type=Path))
@click.pass_obj
def quickstart_command(state: State, /, out: Path) -> None:
    """Transfer learning end to end on scikit-learn's digits, with no network, through export and predict.

    No pretrained CNN can be downloaded offline, so the source model is developed here (digits 0-4), then
    adapted to digits 5-9 from 10 images per class, and compared with the same network from scratch.
    """
    from zoo_core.compatibility import check
    from zoo_core.training.digits import write_digits
    from zoo_core.training.pretrain import pretrain
    from zoo_core.training.run import FinetuneOptions, finetune

    started = time.perf_counter()
    step = iter(range(1, 9))
    catalogue = state.catalogue()
    arch = catalogue.get("resnet10t")
    click.echo(f"{next(step)}. find: {arch.name} ({arch.family}, {arch.params or 0:,} parameters, {arch.license})")
    source, train, test = write_digits(out / "data")
    click.echo(f"{next(step)}. data: digits 0-4 for the source task, 5-9 with 10 images per class ({train})")
    name = "quickstart-digits.resnet10t"
    source_options = FinetuneOptions(epochs=8, lr=3e-3, batch_size=64)
    # replace: a second quickstart with the same ZOO_HOME re-develops its own source model
    metrics = pretrain(
        arch.arch,
        source,
        out / "source-model",
        name,
        size=32,
        channels=1,
        options=source_options,
        replace=True,
        catalogue=catalogue,
    )
    click.echo(f"{next(step)}. develop a source model: {name}, {metrics['source']['best']:.1%} on digits 0-4")
    spec = state.catalogue().get(name)
    report = check(spec, train)
    levels = ", ".join(f"{finding.check} {finding.level}" for finding in report.findings)
    click.echo(f"{next(step)}. check: {'usable' if report.usable else 'NOT usable'} ({levels})")
    options = FinetuneOptions(
        strategy="features",
        head="linear",
        val=str(test),
        baseline="scratch",
        epochs=15,
        lr=3e-3,
        batch_size=16,
        patience=5,
    )
    result = finetune(spec, train, out / "run", options)
    transfer, scratch = result["transfer"], result["scratch"]
    click.echo(
        f"{next(step)}. fine-tune on 50 images: transfer {transfer['final']:.1%} vs scratch "
        f"{scratch['final']:.1%} on {result['val_size']} held-out images "
        f"({result['transfer_minus_scratch'] * 100:+.1f} points)"
    )
    click.echo(
        f"   start {transfer['start']:.1%} vs {scratch['start']:.1%}, slope {transfer['slope']:+.1%} vs "
        f"{scratch['slope']:+.1%} per epoch; curves in {out / 'run' / 'curves.png'}"
    )
    from zoo_core.export import export_onnx
    from zoo_core.runtime import Predictor

    exported = export_onnx(out / "run", out / "export")
    click.echo(
        f"{next(step)}. export: {exported.path}, parity max |diff| {exported.max_abs_diff:.1e} over "
        f"{exported.samples} held-out images"
    )
    predictor = Predictor(out / "export")
    images = sorted(test.rglob("*.png"))[:: max(1, result["val_size"] // 100)]
    found = predictor.predict([str(path) for path in images])
    right = sum(ranked[0][0] == path.parent.name for path, ranked in zip(images, found, strict=True))
    click.echo(
        f"{next(step)}. predict on onnxruntime ({predictor.provider}): {right}/{len(images)} held-out images "
        f"right; try `zoo predict {out / 'export'} IMAGE...`"
    )
    click.echo(f"done in {time.perf_counter() - started:.0f} s")


COMMANDS = (quickstart_command,)
