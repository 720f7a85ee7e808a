"""`zoo download` and `zoo import`: getting a model's files onto this machine."""

from __future__ import annotations

from pathlib import Path

import click

from zoo_core.cli import State
from zoo_core.cli.output import format_count, print_json, printable
from zoo_core.download import fetch
from zoo_core.folder_import import import_folder
from zoo_core.records import ModelRecord
from zoo_core.settings import Settings
from zoo_core.specs import ModelSpec
from zoo_core.verification import is_verified

__all__ = ["COMMANDS"]


def _summary(record: ModelRecord, spec: ModelSpec) -> str:
    where = f"{record.repo} @ {record.commit}" if record.commit else str(record.repo)
    checked = "verified" if is_verified(record, spec) else f"not verified ({_unverified(record)})"
    count = f"{len(record.files)} file{'s' if len(record.files) != 1 else ''}"
    return printable(f"{record.model}: {where}, {count}, {format_count(record.size)}B, {checked}")


@click.command("download")
@click.argument("name")
@click.option("--revision", help="Branch, tag or commit to fetch (hub models); default: the entry's, else main.")
@click.option("--offline", is_flag=True, help="Use the cache only; make no network call (also HF_HUB_OFFLINE=1).")
@click.option("--force", is_flag=True, help="Download again even if the files are cached.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars (also when stderr is not a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the download record as JSON.")
@click.pass_obj
def download_command(
    state: State, /, name: str, revision: str | None, offline: bool, force: bool, quiet: bool, as_json: bool
) -> None:
    """Download a model's files, verify them, and print the local folder."""
    spec = state.catalogue().get(name)
    record = fetch(spec, revision=revision, offline=offline or None, force=force, quiet=quiet or None)
    if as_json:
        print_json(record.to_dict())
        return
    click.echo(_summary(record, spec), err=True)
    click.echo(record.folder)


def _unverified(record: ModelRecord) -> str:
    labels = {str(file.verified_by).split()[0] for file in record.files}
    if "archive" in labels:
        return "checked only against the digests of the archive it came from; pin a sha256, or download online"
    if "cache" in labels:
        return "checked only against the names of its blobs in the hub cache; download online to verify"
    return "no digest to check against"


@click.command("import")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, help="The model the folder holds (or a new name, with --like).")
@click.option("--like", help="For a new name: the catalogue model whose entry (plugin, arch, input) it copies.")
@click.pass_obj
def import_command(state: State, /, folder: Path, name: str, like: str | None) -> None:
    """Add a local folder of model files (a repo's layout) to the cache, for machines with no network."""
    record = import_folder(Settings.from_env(), state.catalogue(), folder, name, like)
    click.echo(_summary(record, state.catalogue().get(record.model)), err=True)
    click.echo(record.folder)


COMMANDS = (download_command, import_command)
