"""Reading a user's text dataset: a .txt file (one text per line), a CSV, or JSON lines.

CSV and JSONL take the text from a column named ``text`` (else ``sentence``, ``content``, or the first
column) and labels from ``label`` (else ``labels``, ``class``, ``category``) when there is one. A reader that
names a label column (a multi-task run names each task's: its own name) gets that column where the file has it,
case aside. A blank label is read as "": training leaves such a row out, `dataset_findings` counts them.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from zoo_core.checks import Finding
from zoo_core.errors import DataError

__all__ = ["TextData", "as_text_data", "dataset_findings", "read_texts"]

TEXT_COLUMNS = ("text", "sentence", "content")
LABEL_COLUMNS = ("label", "labels", "class", "category")


@dataclass(frozen=True, slots=True)
class TextData:
    texts: list[str]
    labels: list[str] | None  # None when the file has no label column
    columns: list[str]  # the file's columns, in order (none for a plain text file)
    text_column: str | None = None  # the column the texts came from
    label_column: str | None = None  # the column the labels came from

    def other_columns(self) -> list[str]:
        """The columns that could be labels: all but the texts' (what a refusal lists for the user to pick)."""
        return [name for name in self.columns if name != self.text_column]


def _pick(columns: list[str], preferred: tuple[str, ...], default_first: bool) -> str | None:
    for name in preferred:
        if name in columns:
            return name
    if default_first and columns:
        return columns[0]
    return None


def _label(columns: list[str], text: str | None, label_column: str | None) -> str | None:
    """The column the labels come from: `label_column` where the file has it, case aside (a task is named in
    lower case, a header may be "Topic"), unless it holds the texts; else the usual label column."""
    named = [column for column in columns if label_column and column.casefold() == label_column.casefold()]
    chosen = label_column if label_column in named else named[0] if named else None
    if chosen is not None and chosen != text:
        return chosen
    return _pick(columns, LABEL_COLUMNS, default_first=False)


def read_texts(path: Path, label_column: str | None = None) -> TextData:
    """The texts (and labels) of a dataset file, the labels from `label_column` where the file has a column of
    that name, case aside (`_label`); `DataError` names the file, and the line, of anything malformed."""
    try:
        content = path.read_text(encoding="utf-8-sig")  # a spreadsheet's CSV may start with a byte-order mark
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 (byte {error.start}); re-save the file as UTF-8") from None
    except IsADirectoryError:
        raise DataError(f"{path}: a folder; a text model reads one file of texts (.txt, .csv or .jsonl)") from None
    if path.suffix == ".csv":
        reader = csv.DictReader(io.StringIO(content, newline=""))  # a quoted cell may hold a line break
        rows = list(reader)
        columns = list(reader.fieldnames or [])
        twice = next((name for position, name in enumerate(columns) if name and name in columns[:position]), None)
        if twice is not None:
            raise DataError(f"{path}: the header names column {twice!r} twice; rename one")
        text = _pick(columns, TEXT_COLUMNS, default_first=True)
        label = _label(columns, text, label_column)
        if text is None:
            raise DataError(f"{path}: no columns; the first line must name them (text,label)")
        labels = [row[label] or "" for row in rows] if label else None
        return TextData([row[text] or "" for row in rows], labels, columns, text, label)
    if path.suffix in (".jsonl", ".ndjson"):
        records = []
        for number, line in enumerate(content.split("\n"), 1):  # a JSON string may hold U+2028
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DataError(f"{path}:{number}: not JSON ({error.msg}); one object per line") from None
                if not isinstance(record, dict):
                    raise DataError(
                        f"{path}:{number}: a JSON {type(record).__name__}, not an object; one object per line"
                    )
                records.append(record)
        columns = list(dict.fromkeys(key for record in records for key in record))  # a row may lack a label
        text = _pick(columns, TEXT_COLUMNS, default_first=True)
        label = _label(columns, text, label_column)
        return TextData(
            [str(record.get(text, "") or "") for record in records],
            ["" if record.get(label) is None else str(record[label]) for record in records] if label else None,
            columns,
            text,
            label,
        )
    return TextData(content.splitlines(), None, [])


def as_text_data(data: object) -> TextData:
    """What a text check receives: a dataset file's path, or texts in memory (unlabelled)."""
    if isinstance(data, str | Path):
        return read_texts(Path(data))
    return TextData([str(text) for text in data], None, [])  # type: ignore[attr-defined]


def dataset_findings(data: TextData) -> list[Finding]:
    """What every text check reports: empty rows, and the balance of labels when there are labels."""
    empty = sum(1 for text in data.texts if not text.strip())
    if empty == len(data.texts):
        findings = [Finding("rows", "error", "every row is empty", "point at the text column")]
    elif empty:
        findings = [Finding("rows", "warn", f"{empty} of {len(data.texts)} rows are empty", "drop them")]
    else:
        findings = [Finding("rows", "ok", f"{len(data.texts)} texts")]
    if not data.labels:
        return findings
    counts = Counter(label for label in data.labels if label.strip())
    blank = len(data.labels) - sum(counts.values())
    if blank:
        findings.append(Finding("labels", "warn", f"{blank} rows have no label", "training leaves them out"))
    if not counts:
        findings.append(Finding("labels", "error", "no row has a label", "label the rows a classifier learns from"))
        return findings
    low, high = min(counts.values()), max(counts.values())
    summary = f"{len(counts)} labels, {low}-{high} texts each"
    if len(counts) < 2:
        findings.append(Finding("labels", "error", f"only one label ({next(iter(counts))})", "a classifier needs two"))
    elif high > 10 * low:
        findings.append(Finding("labels", "warn", f"{summary}: imbalanced", "use class weights or resample"))
    else:
        findings.append(Finding("labels", "ok", summary))
    return findings
