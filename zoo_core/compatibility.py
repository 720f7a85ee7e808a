"""`zoo_core.check`: does the user's data fit a model? zoo's own check for the modality, then the plugins'."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from zoo_core.catalogue_sources import default_catalogue
from zoo_core.checks import CheckReport, Finding
from zoo_core.plugins import each_result
from zoo_core.specs import ModelSpec

__all__ = ["check"]


def check(model: str | ModelSpec, data: object, *, domain: bool = False) -> CheckReport:
    """Findings (ok / warn / error, each with its fix) for `data` against the model's input, and the
    preprocessing transform built from the spec. `data` is a path (file or folder) or an in-memory batch.

    zoo's findings come first (`zoo_core.input_check`), then those each plugin's `check_input` adds, in call
    order. A plugin that fails is an error for its own models and skipped for others' (`each_result`).
    With `domain`, last comes how far the data is from the model's source data (`zoo_core.domain`), measured
    when the weights are on disk; `zoo check` asks for it, while training, which checks its data for the
    transform, does not pay for running the model twice.
    """
    from zoo_core.input_check import check_data  # the checks load when data is checked, not on `import zoo_core`

    spec = model if isinstance(model, ModelSpec) else default_catalogue().get(model)
    if isinstance(data, Iterator):  # read once here, so the plugins after zoo's check see the same texts
        data = list(data)
    report = check_data(spec, data)
    answers = each_result(
        "check_input", owner=spec.plugin, check=_findings_problem, spec=spec, data=data, report=report
    )
    added = [finding for _, findings in answers for finding in findings]
    report = dataclasses.replace(report, findings=(*report.findings, *added))
    if domain:
        from zoo_core.domain import data_similarity  # it loads the model: only when asked

        report = dataclasses.replace(report, findings=(*report.findings, data_similarity(spec, data, report)))
    return report


def _findings_problem(answer: object) -> str | None:
    """What is wrong with a `check_input` answer, or None: it must be a list of `Finding`."""
    strays = [each for each in answer if not isinstance(each, Finding)] if isinstance(answer, list) else [answer]
    if not strays:
        return None
    held = "a list holding " if isinstance(answer, list) else ""
    fix = "; return list(report.findings)" if isinstance(answer, CheckReport) else ""  # the hook's old answer
    return f"returned {held}a {type(strays[0]).__name__}, not a list of Finding{fix}"
