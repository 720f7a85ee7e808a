"""How well a text dataset fits a word-vector vocabulary: out-of-vocabulary rates and the words missing."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from zoo_core.checks import CheckReport, Finding, Level
from zoo_core.specs import ModelSpec
from zoo_core.textdata import TextData, read_texts
from zoo_wordvec.vectors import WordVectors

__all__ = ["check_texts", "label_findings", "tokenize"]

_TOKEN = re.compile(r"\w+(?:['\u2019-]\w+)*|[^\w\s]")  # keeps don't, o'clock, well-known whole
OOV_WARN, OOV_ERROR = 0.05, 0.5  # share of tokens out of vocabulary


def tokenize(text: str) -> list[str]:
    """Words and punctuation, the way GloVe and word2vec vocabularies were built (roughly)."""
    return _TOKEN.findall(text)


def label_findings(labels: list[str] | None) -> list[Finding]:
    if not labels:
        return []
    counts = Counter(labels)
    low, high = min(counts.values()), max(counts.values())
    summary = f"{len(counts)} labels, {low}-{high} texts each"
    if len(counts) < 2:
        return [Finding("labels", "error", f"only one label ({next(iter(counts))})", "a classifier needs two or more")]
    if high > 10 * low:
        return [Finding("labels", "warn", f"{summary}: imbalanced", "use class weights or resample")]
    return [Finding("labels", "ok", summary)]


def empty_findings(texts: list[str]) -> list[Finding]:
    empty = sum(1 for text in texts if not text.strip())
    if empty == len(texts):
        return [Finding("rows", "error", "every row is empty", "point at the text column")]
    if empty:
        return [Finding("rows", "warn", f"{empty} of {len(texts)} rows are empty", "drop them")]
    return [Finding("rows", "ok", f"{len(texts)} texts")]


def check_texts(spec: ModelSpec, vectors: WordVectors, data: Path | list[str]) -> CheckReport:
    dataset = read_texts(data) if isinstance(data, Path) else TextData(list(data), None)
    findings = empty_findings(dataset.texts)
    tokens = [token for text in dataset.texts for token in tokenize(text)]
    unknown = Counter(token for token in tokens if token not in vectors)
    if tokens:
        token_rate = sum(unknown.values()) / len(tokens)
        type_rate = len(unknown) / len(set(tokens))
        worst = ", ".join(f"{word} ({count})" for word, count in unknown.most_common(10))
        message = (f"{token_rate:.1%} of tokens and {type_rate:.1%} of distinct words are out of the vocabulary"
                   + (f"; most frequent unknown: {worst}" if worst else ""))  # fmt: skip
        level: Level = "error" if token_rate >= OOV_ERROR else "warn" if token_rate >= OOV_WARN else "ok"
        fix = "unknown words get zero vectors: fix spelling or tokenisation, or pick a larger vocabulary"
        findings.append(Finding("oov", level, message, fix if level != "ok" else None))
    findings += label_findings(dataset.labels)
    return CheckReport(spec.name, tuple(findings))
