"""`zoo rank`: which backbone will do best on the user's data, scored on its frozen features in minutes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from zoo_core.cli import State
from zoo_core.cli.output import format_count, print_json, print_table, printable

if TYPE_CHECKING:
    from zoo_core.ranking import Ranking

__all__ = ["COMMANDS"]

SCORE_NAMES = ("logme", "hscore", "linear")  # zoo_core.transferability.SCORES, named here to keep --help light


def _names(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(part.strip() for part in (value or "").split(",") if part.strip()))


def _report(ranking: Ranking) -> None:
    score = ranking.score
    headers = ("rank", "model", score, "seconds", "params", "top1", "domain")
    rows = [
        (
            str(position),
            model.name,
            f"{model.score:.4g}",
            f"{model.seconds:.1f}",
            format_count(model.params),
            "-" if model.top1 is None else f"{model.top1:.1f}",
            "-" if model.domain is None else model.domain.level,
        )
        for position, model in enumerate(ranking.models, 1)
    ]
    print_table(headers, rows)
    click.echo(
        f"{ranking.items} train and validation items of {ranking.classes} classes scored per model "
        f"(the test split is left unseen); {ranking.seconds:.0f} s in all"
    )
    for model in ranking.models:
        if model.domain is not None and model.domain.level == "warn":
            click.echo(printable(f"domain ({model.name}): {model.domain.message}; {model.domain.fix}"))
    click.echo(printable(f"recommended: {ranking.recommendation}"))


@click.command("rank")
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option("--models", callback=_names, metavar="A,B,C", help="The candidates, comma-separated.")
@click.option("--family", help="Candidates of this family (with --top K if it has many).")
@click.option("--top", type=click.IntRange(min=1), help="The K candidates with the best ImageNet top-1.")
@click.option("--score", type=click.Choice(SCORE_NAMES), default="logme", show_default=True, help="What to rank by.")
@click.option("--budget", type=int, metavar="N", help="At most N items per class (train and validation).")
@click.option("--val-split", default=0.2, show_default=True, help="As zoo finetune: share held out for validation.")
@click.option("--val", type=click.Path(exists=True, path_type=Path), help="As zoo finetune: a validation set.")
@click.option("--test-split", default=0.2, show_default=True, help="As zoo finetune: share held out, never read.")
@click.option("--test", type=click.Path(exists=True, path_type=Path), help="As zoo finetune: a test set (not read).")
@click.option("--seed", default=0, show_default=True, help="As zoo finetune: draws the splits.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--drop-last", default=0, show_default=True, help="Score the features of all stages but the last N.")
@click.option(
    "--threads", default=1, show_default=True, help="CPU threads: zoo finetune's, so that it reuses the features."
)
@click.option("--json", "as_json", is_flag=True, help="Print the ranking as JSON.")
@click.pass_obj
def rank_command(
    state: State,
    /,
    data: Path,
    models: tuple[str, ...],
    family: str | None,
    top: int | None,
    score: str,
    budget: int | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Rank candidate backbones for DATA (an image folder, or a CSV/JSONL with text and label) without
    fine-tuning: each one's frozen features are scored (LogME by default). Without --models, --family or
    --top, the candidates are the models whose weights are on disk."""
    from zoo_core.ranking import choose_candidates, data_kind, rank
    from zoo_core.training.options import FinetuneOptions

    paths = {key: str(options[key]) if options[key] else None for key in ("val", "test")}
    chosen = FinetuneOptions(**{**options, **paths})
    catalogue = state.catalogue()
    candidates = choose_candidates(catalogue, data_kind(data), models, family, top)
    ranking = rank(data, candidates, score, budget, chosen, catalogue)
    if as_json:
        print_json(ranking.to_dict())
    else:
        _report(ranking)


COMMANDS = (rank_command,)
