"""`zoo plugins`: which plugins are installed, whether they work, and what they provide."""

from __future__ import annotations

from dataclasses import asdict

import click

from zoo_core.cli import State
from zoo_core.cli.output import print_json, print_table, printable
from zoo_core.plugins import not_loaded, plugin_statuses
from zoo_core.settings import Settings

__all__ = ["COMMANDS"]


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.pass_obj
def plugins_command(state: State, /, as_json: bool) -> None:
    """List plugins: distribution, version, status, model families and counts.

    A plugin is in error when it failed to import, or when a hook of its version failed in this or an earlier
    command and has not succeeded since; the line under the table says which hook, what it raised and when.
    """
    catalogue = state.catalogue()  # loading it first records plugins that fail in register_models
    rows = []
    for status in plugin_statuses():
        families = catalogue.families(status.name)
        rows.append({**asdict(status), "families": families, "models": sum(families.values())})
    absent = "ZOO_DISABLE_PLUGIN_AUTOLOAD is set" if Settings.from_env().disable_autoload else "not installed"
    for name in (name for name in not_loaded(catalogue) if name not in {row["name"] for row in rows}):
        families = catalogue.families(name)
        where = {"distribution": None, "version": None, "hint": None}
        rows.append(
            {
                "name": name,
                **where,
                "state": "not loaded",
                "reason": absent,
                "families": families,
                "models": sum(families.values()),
            }
        )
    if as_json:
        print_json(rows)
        return
    print_table(
        ("name", "distribution", "version", "status", "models", "families"),
        [
            (
                row["name"],
                row["distribution"] or "-",
                row["version"] or "-",
                row["state"],
                str(row["models"]),
                _families(row["families"]),
            )
            for row in rows
        ],
    )
    for row in rows:
        if row["state"] != "ok":
            fix = f" — fix: {row['hint']}" if row["hint"] else ""
            click.echo(printable(f"{row['name']}: {row['state']}: {row['reason']}{fix}"))  # reasons quote plugins


def _families(counts: dict[str, int], shown: int = 5) -> str:
    """The most common families, then how many more: timm alone has ~90."""
    names = list(counts)
    more = f" +{len(names) - shown} more" if len(names) > shown else ""
    return (", ".join(names[:shown]) or "-") + more


COMMANDS = (plugins_command,)
