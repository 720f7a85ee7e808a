"""`zoo list`, `zoo search` and `zoo info`: finding models in the catalogue.

These are the CLI's fast paths: they read the catalogue only and never import torch, timm,
transformers or onnxruntime.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import click

from zoo_core.catalogue import SORTS, Catalogue, Filters, parse_count
from zoo_core.cli import State
from zoo_core.cli.output import format_count, print_json, print_table, printable
from zoo_core.plugins import not_loaded
from zoo_core.specs import Figures, ModelSpec

__all__ = ["COMMANDS"]

_HEADERS = ("name", "family", "task", "params", "top1", "gmacs", "license")


def _count(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    try:
        return None if value is None else parse_count(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a count; use e.g. 25000000, 25M or 1.5B") from None


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """click's FloatRange lets 'nan' through (it compares false with every bound)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    return value


def _filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--family", help="Only this family (resnet, vgg, bert, …)."),
        click.option("--task", help="Only this task (image-classification, …)."),
        click.option("--modality", type=click.Choice(["image", "text", "embedding"]), help="Only this input kind."),
        click.option("--plugin", help="Only models this plugin builds."),
        click.option("--license", "licenses", multiple=True, help="Only these licenses, comma-separated."),
        click.option("--max-params", metavar="N", callback=_count, help="At most N parameters (25M, 1.5B, …)."),
        click.option(
            "--min-top1",
            metavar="P",
            type=click.FloatRange(0, 100),
            callback=_finite,
            help="ImageNet top-1 of at least P percent; models without the figure are left out.",
        ),
        click.option(
            "--max-gmacs",
            metavar="G",
            type=click.FloatRange(min=0),
            callback=_finite,
            help="At most G GMACs per image; models without the figure are left out.",
        ),
        click.option(
            "--sort",
            type=click.Choice(list(SORTS)),
            help="Order by ImageNet top-1 or CPU speed (highest first), params or GMACs (lowest first); "
            "models without the figure last.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _filters(
    family: str | None,
    task: str | None,
    modality: str | None,
    plugin: str | None,
    licenses: tuple[str, ...],
    max_params: int | None,
    min_top1: float | None,
    max_gmacs: float | None,
) -> Filters:
    wanted = tuple(part.strip() for value in licenses for part in value.split(",") if part.strip())
    return Filters(family, task, modality, plugin, wanted, max_params, min_top1, max_gmacs)


def _hidden_note(hidden: list[ModelSpec]) -> str:
    counts: dict[str, int] = {}
    for spec in hidden:
        counts[spec.plugin] = counts.get(spec.plugin, 0) + 1
    plugins = ", ".join(f"{name} ({count})" for name, count in sorted(counts.items()))
    models = "model" if len(hidden) == 1 else "models"
    return f"{len(hidden)} {models} hidden: their plugins are not loaded: {plugins}; see `zoo plugins`"


_Find = Callable[[Filters, int | None], list[ModelSpec]]  # the models passing filters, at most a number of them


def _usable_and_hidden(
    catalogue: Catalogue, chosen: Filters, find: _Find, limit: int | None
) -> tuple[list[ModelSpec], list[ModelSpec]]:
    """What `find` gives among the models zoo can use, and every matching model it leaves out because its
    plugin is not loaded (asked for only when some plugin is not)."""
    unloaded = not_loaded(catalogue)
    found = find(dataclasses.replace(chosen, hidden_plugins=unloaded), limit)
    hidden = [spec for spec in find(chosen, None) if spec.plugin in unloaded] if unloaded else []
    return found, hidden


def _show(specs: list[ModelSpec], hidden: list[ModelSpec], as_json: bool, empty: Callable[[], str]) -> None:
    """The models found, then one line on stderr for the matching models hidden because of their plugin."""
    if as_json:
        print_json([spec.to_dict() for spec in specs])
    elif specs:
        print_table(_HEADERS, [_row(spec) for spec in specs])
    elif not hidden:
        click.echo(printable(empty()), err=True)
    if hidden:
        click.echo(printable(_hidden_note(hidden)), err=True)


def _row(spec: ModelSpec) -> tuple[str, ...]:
    top1, gmacs = spec.figures.top1, spec.figures.gmacs
    return (
        spec.name,
        spec.family,
        spec.task,
        format_count(spec.params),
        "-" if top1 is None else f"{top1:.1f}",
        "-" if gmacs is None else f"{gmacs:.2f}",
        spec.license or "-",
    )


@click.command("list")
@_filter_options
@click.pass_obj
def list_command(state: State, /, as_json: bool, licenses: tuple[str, ...], sort: str | None, **filters: Any) -> None:
    """List the models in the catalogue, sorted by name (or by --sort)."""
    catalogue, chosen = state.catalogue(), _filters(licenses=licenses, **filters)
    found, hidden = _usable_and_hidden(catalogue, chosen, lambda wanted, _: catalogue.select(wanted, sort), None)
    _show(found, hidden, as_json, lambda: catalogue.why_empty(chosen))


@click.command("search")
@click.argument("query", nargs=-1, required=True)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="At most N results.")
@_filter_options
@click.pass_obj
def search_command(
    state: State,
    /,
    query: tuple[str, ...],
    limit: int,
    as_json: bool,
    licenses: tuple[str, ...],
    sort: str | None,
    **filters: Any,
) -> None:
    """Find models by name, alias, family, tag or description; best matches first, or the first --limit of
    all matches in --sort order."""
    catalogue, chosen, text = state.catalogue(), _filters(licenses=licenses, **filters), " ".join(query)
    found, hidden = _usable_and_hidden(
        catalogue, chosen, lambda wanted, most: catalogue.search(text, wanted, most, sort), limit
    )
    _show(found, hidden, as_json, lambda: catalogue.why_empty(chosen, text))


def _describe_figures(figures: Figures) -> str:
    """The figures as one readable line: "ImageNet-1k top-1 80.382%, top-5 94.598%; 4.11 GMACs; …"."""
    shown = (("top-1", figures.top1), ("top-5", figures.top5))
    accuracy = [f"{name} {value:g}%" for name, value in shown if value is not None]
    parts = [f"ImageNet-1k {', '.join(accuracy)}"] if accuracy else []
    if figures.gmacs is not None:
        parts.append(f"{figures.gmacs:g} GMACs")
    if figures.images_per_second is not None:
        parts.append(f"{figures.images_per_second:g} images/s on CPU at batch size 1")
    if figures.pretrained_on is not None:
        parts.append(f"pretrained on {figures.pretrained_on}")
    if figures.measured_by is not None:
        parts.append(f"from {figures.measured_by}")
    return "; ".join(parts) or "-"


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        parts = [f"{key}={_describe(item)}" for key, item in value.items() if item not in (None, (), [], {})]
        return ", ".join(parts) or "-"
    if isinstance(value, list | tuple):
        return " ".join(str(item) for item in value) if value else "-"
    return "-" if value in (None, "") else str(value)


@click.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
@click.pass_obj
def info_command(state: State, /, name: str, as_json: bool) -> None:
    """Show everything the catalogue knows about one model."""
    catalogue = state.catalogue()
    spec = catalogue.get(name)
    if spec.plugin in not_loaded(catalogue):
        click.echo(
            f"note: plugin '{spec.plugin}' is not loaded, so '{spec.name}' cannot be used; see `zoo plugins`", err=True
        )
    data = spec.to_dict()
    if as_json:
        print_json(data)
        return
    data["params"], data["figures"] = format_count(spec.params), _describe_figures(spec.figures)
    width = max(len(key) for key in data)
    for key, value in data.items():
        click.echo(f"{key.ljust(width)}  {printable(_describe(value))}")


COMMANDS = (list_command, search_command, info_command)
