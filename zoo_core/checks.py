"""The result of checking a user's data against a model's input spec.

zoo's own check (`zoo_core.input_check`) makes a `CheckReport`; plugins add `Finding`s to it through the
`check_input` hook; `zoo check` prints it and exits 1 when any finding is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["CheckReport", "Finding", "Level"]

Level = Literal["ok", "warn", "error"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a check looked at, and what it found."""

    check: str  # short id, e.g. "channels" or "image-size"
    level: Level
    message: str  # what was found, in a sentence
    fix: str | None = None  # what the user can do about it (or what zoo will do for them)


@dataclass(frozen=True, slots=True)
class CheckReport:
    """All findings for one model and one dataset, plus the preprocessing the model needs."""

    model: str
    findings: tuple[Finding, ...] = ()
    transform: Any = field(default=None, compare=False)  # the preprocessing to apply, built from the spec

    @property
    def usable(self) -> bool:
        """True when nothing is an error: the data can be used as it is, warnings allowed."""
        return all(finding.level != "error" for finding in self.findings)
