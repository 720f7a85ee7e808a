"""`zoo check`: whether a dataset suits a model, and what to do about it; given a run folder instead of a
model, also whether the data looks shifted from the data the run was trained for (`zoo_core.domain.run_shift`)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from zoo_core.checks import CheckReport
from zoo_core.cli import State
from zoo_core.cli.output import print_json, print_table
from zoo_core.compatibility import check

__all__ = ["COMMANDS"]


def _run_report(state: State, folder: Path, data: Path, domain: bool) -> CheckReport:
    """The check of DATA against a run's model, as for its name, then the "shift" finding (with `domain`)."""
    import dataclasses

    from zoo_core.domain import run_shift
    from zoo_core.training.saved import load_run

    saved = load_run(folder, state.catalogue(), verify_splits=False)  # its test images are checked when read
    report = check(saved.spec, data, domain=domain)
    if domain:
        report = dataclasses.replace(report, findings=(*report.findings, run_shift(saved, data, report)))
    return report


@click.command("check")
@click.argument("name")
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--no-domain",
    "skip_domain",
    is_flag=True,
    help="Skip the source/target similarity (and, for a run folder, the shift), which run the model.",
)
@click.pass_obj
def check_command(state: State, /, name: str, data: Path, as_json: bool, skip_domain: bool) -> None:
    """Check DATA (an image folder, one class per subfolder or flat, or one image; or a text file) against a
    model, and how far it is from the data the model was pretrained on. NAME may be a run folder: then DATA
    is also held against the run's own (held-out) test split, warning when it looks shifted (see `zoo adapt`).

    Exits 0 when the data is usable as it is (warnings allowed), 1 when it is not.
    """
    if Path(name).is_dir():
        report = _run_report(state, Path(name), data, not skip_domain)
    else:
        report = check(state.catalogue().get(name), data, domain=not skip_domain)
    if as_json:
        print_json(
            {
                "model": report.model,
                "usable": report.usable,
                "findings": [asdict(finding) for finding in report.findings],
                "transform": repr(report.transform),
            }
        )
    else:
        print_table(("level", "check", "finding"), [(f.level, f.check, f.message) for f in report.findings])
        for finding in report.findings:
            if finding.fix and finding.level != "ok":
                click.echo(f"fix ({finding.check}): {finding.fix}")
        click.echo(f"{'usable' if report.usable else 'NOT usable'} with {report.model}; preprocessing:")
        click.echo(f"  {report.transform!r}".replace("\n", "\n  "))
    if not report.usable:
        raise SystemExit(1)


COMMANDS = (check_command,)
