"""`zoo predict`: labels for inputs. For now zero-shot text classification with a text model."""

from __future__ import annotations

import click

from zoo_core.cli import State
from zoo_core.cli.output import print_json, print_table
from zoo_core.zeroshot import zero_shot

__all__ = ["COMMANDS"]


@click.command("predict")
@click.argument("name")
@click.argument("texts", nargs=-1, required=True)
@click.option("--labels", required=True, help="Comma-separated label names to choose from (zero-shot).")
@click.option("--top", default=1, show_default=True, type=click.IntRange(min=1), help="Labels to show per text.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.pass_obj
def predict_command(state: State, /, name: str, texts: tuple[str, ...], labels: str, top: int, as_json: bool) -> None:
    """Classify TEXTS against label names with a text or word-vector model, with no training."""
    names = [label.strip() for label in labels.split(",") if label.strip()]
    ranked = zero_shot(state.catalogue().get(name), texts, names)
    if as_json:
        print_json([{"text": text, "labels": [{"label": label, "score": score} for label, score in found[:top]]}
                    for text, found in zip(texts, ranked, strict=True)])  # fmt: skip
        return
    rows = [(text, ", ".join(f"{label} ({score:.2f})" for label, score in found[:top]))
            for text, found in zip(texts, ranked, strict=True)]  # fmt: skip
    print_table(("text", "labels"), rows)


COMMANDS = (predict_command,)
