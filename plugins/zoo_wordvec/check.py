"""How well a text dataset fits a word-vector vocabulary: out-of-vocabulary rates and the words missing."""

from __future__ import annotations

import re
from collections import Counter

from zoo_core.checks import CheckReport, Finding, Level
from zoo_core.specs import ModelSpec
from zoo_core.textdata import as_text_data, dataset_findings
from zoo_wordvec.vectors import WordVectors

__all__ = ["check_texts", "tokenize"]

_TOKEN = re.compile(r"\w+(?:['\u2019-]\w+)*|[^\w\s]")  # keeps don't, o'clock, well-known whole
OOV_WARN, OOV_ERROR = 0.05, 0.5  # share of tokens out of vocabulary


def tokenize(text: str) -> list[str]:
    """Words and punctuation, the way GloVe and word2vec vocabularies were built (roughly)."""
    return _TOKEN.findall(text)


def check_texts(spec: ModelSpec, vectors: WordVectors, data: object) -> CheckReport:
    dataset = as_text_data(data)
    findings = dataset_findings(dataset)
    tokens = [token for text in dataset.texts for token in tokenize(text)]
    unknown = Counter(token for token in tokens if token not in vectors)
    if tokens:
        token_rate = sum(unknown.values()) / len(tokens)
        type_rate = len(unknown) / len(set(tokens))
        worst = ", ".join(f"{word} ({count})" for word, count in unknown.most_common(10))
        message = f"{token_rate:.1%} of tokens and {type_rate:.1%} of distinct words are out of the vocabulary"
        if worst:
            message += f"; most frequent unknown: {worst}"
        level: Level = "error" if token_rate >= OOV_ERROR else "warn" if token_rate >= OOV_WARN else "ok"
        fix = "unknown words get zero vectors: fix spelling or tokenisation, or pick a larger vocabulary"
        findings.append(Finding("oov", level, message, fix if level != "ok" else None))
    return CheckReport(spec.name, tuple(findings))
