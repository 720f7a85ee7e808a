"""`zoo_core.check`: does the user's data fit a model? Answered by the plugin for the data's modality."""

from __future__ import annotations

from zoo_core.checks import CheckReport
from zoo_core.plugins import check_input
from zoo_core.sources import default_catalogue
from zoo_core.specs import ModelSpec

__all__ = ["check"]


def check(model: str | ModelSpec, data: object) -> CheckReport:
    """Findings (ok / warn / error, each with its fix) for `data` against the model's input, and the
    preprocessing transform built from the spec. `data` is a path (file or folder) or an in-memory batch."""
    spec = model if isinstance(model, ModelSpec) else default_catalogue().get(model)
    return check_input(spec, data)
