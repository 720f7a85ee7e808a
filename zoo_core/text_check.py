"""zoo's own check of a text dataset against a text or word-vector model.

Every such model gets the dataset's findings (empty rows, label balance); a contextual encoder's texts are
also compared with its vocabulary's casing (``input.lowercase``) and, for an English vocabulary (the
``english`` tag), with the Latin script. These need only the spec, so they run whichever plugin builds the
model; what needs the model's own files (a tokenizer's truncation and [UNK] rate, a vocabulary's unknown
words) is its plugin's `check_input`, appended after these.
"""

from __future__ import annotations

import unicodedata

from zoo_core.checks import CheckReport, Finding, Level
from zoo_core.specs import ModelSpec, TextInput
from zoo_core.textdata import as_text_data, dataset_findings

__all__ = ["check_texts"]

FOREIGN_WARN, FOREIGN_ERROR = 0.1, 0.5  # share of letters outside the Latin script, for an English vocabulary


def _script_findings(spec: ModelSpec, texts: list[str]) -> list[Finding]:
    letters = [char for text in texts for char in text if char.isalpha()]
    if not letters:
        return []
    foreign = [char for char in letters if not unicodedata.name(char, "").startswith("LATIN")]
    share = len(foreign) / len(letters)
    if "english" not in spec.tags or share < FOREIGN_WARN:
        return [Finding("script", "ok", f"{1 - share:.0%} of letters are Latin")]
    script = unicodedata.name(foreign[0], "UNKNOWN").split()[0].title()
    level: Level = "error" if share >= FOREIGN_ERROR else "warn"
    message = f"{share:.0%} of letters are not Latin (e.g. {script}) for an English vocabulary"
    return [Finding("script", level, message, "use a multilingual model for this text")]


def _casing_findings(spec: TextInput, texts: list[str]) -> list[Finding]:
    words = [word for text in texts for word in text.split() if word[:1].isalpha()]
    if not words:
        return []
    capitalised = sum(1 for word in words if word[0].isupper()) / len(words)
    if spec.lowercase and capitalised > 0.3:
        message = f"{capitalised:.0%} of words are capitalised, the model is uncased: case is lost"
        return [Finding("casing", "warn", message, "use a cased model if case matters (names, entities)")]
    if not spec.lowercase and capitalised == 0:
        message = "all text is lower-case, the model is cased"
        return [Finding("casing", "warn", message, "use an uncased model, or keep the original casing")]
    cased = "uncased" if spec.lowercase else "cased"
    return [Finding("casing", "ok", f"{capitalised:.0%} of words capitalised; the model is {cased}")]


def check_texts(spec: ModelSpec, data: object) -> CheckReport:
    """Check a dataset file (.txt, .csv, .jsonl) or texts in memory; `DataError` names a malformed line."""
    dataset = as_text_data(data)
    findings = dataset_findings(dataset)
    if isinstance(spec.input, TextInput):
        findings += _casing_findings(spec.input, dataset.texts) + _script_findings(spec, dataset.texts)
    return CheckReport(spec.name, tuple(findings))
