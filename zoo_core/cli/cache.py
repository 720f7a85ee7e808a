"""`zoo cache`: list, verify, remove, prune, export and import the models on this machine."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from zoo_core.archive import export_archive, import_archive
from zoo_core.cache import BAD_STATES, model_state, prune, remove, verify
from zoo_core.cli import State
from zoo_core.cli.output import format_count, print_json, print_table
from zoo_core.records import read_records
from zoo_core.settings import Settings

__all__ = ["COMMANDS"]


@click.group("cache")
def cache_group() -> None:
    """Manage downloaded models (the hub cache and zoo's own)."""


@cache_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.pass_obj
def list_command(state: State, /, as_json: bool) -> None:
    """Cached models: revision, size, and whether every file is verified against the digest named now.

    verified: yes; no (nothing to check against); stale (the registry now names another digest: download
    again); changed (a file changed since it was hashed: run `zoo cache verify`); missing (a file is gone).
    """
    catalogue = state.catalogue()
    records = sorted(read_records(Settings.from_env().home).values(), key=lambda record: record.model)
    states = {r.model: model_state(r, catalogue.get(r.model) if r.model in catalogue else None) for r in records}
    if as_json:
        listed = [{**r.to_dict(), "size": r.size, "state": states[r.model]} for r in records]
        print_json([{**row, "verified": row["state"] == "yes"} for row in listed])
        return
    rows = [(r.model, r.source, (r.commit or "-")[:12], f"{format_count(r.size)}B", states[r.model]) for r in records]
    print_table(("model", "source", "revision", "size", "verified"), rows)


@cache_group.command("verify")
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.pass_obj
def verify_command(state: State, /, names: tuple[str, ...], as_json: bool) -> None:
    """Re-hash cached files against the digest that vouches for each; exit 1 if any is corrupt, missing or stale.

    The digest is the one the registry pins now, else the hub ETag (a content digest) the file is stored
    under; "unverified" means neither exists.
    """
    checks = verify(Settings.from_env(), names, state.catalogue())
    if as_json:
        print_json([asdict(check) for check in checks])
    else:
        print_table(("model", "file", "state"), [(c.model, c.name, c.state) for c in checks])
    bad = [check for check in checks if check.state in BAD_STATES]
    if bad:
        if not as_json:
            click.echo(f"{len(bad)} file(s) bad; fix: zoo download {bad[0].model} --force", err=True)
        raise SystemExit(1)


@cache_group.command("rm")
@click.argument("name")
def rm_command(name: str) -> None:
    """Delete a cached model's files and record."""
    record = remove(Settings.from_env(), name)
    click.echo(f"removed {record.model} ({format_count(record.size)}B)")


@cache_group.command("prune")
def prune_command() -> None:
    """Remove records of deleted files, unreadable records and partial downloads."""
    for line in prune(Settings.from_env()):
        click.echo(f"removed {line}")


@cache_group.command("export")
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("names", nargs=-1)
@click.pass_obj
def export_command(state: State, /, archive: Path, names: tuple[str, ...]) -> None:
    """Write cached models (default: all), their registry entries and sha256s into one archive."""
    exported = export_archive(Settings.from_env(), state.catalogue(), archive, names)
    click.echo(f"exported {len(exported)} model(s) to {archive}: {', '.join(exported)}")


@cache_group.command("import")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def import_command(state: State, /, archive: Path) -> None:
    """Verify and install the models of an archive made by `zoo cache export`."""
    imported = import_archive(Settings.from_env(), state.catalogue(), archive)
    click.echo(f"imported {len(imported)} model(s): {', '.join(imported)}")


COMMANDS = (cache_group,)
