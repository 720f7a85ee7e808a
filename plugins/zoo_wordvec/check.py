"""How well a text dataset fits a word-vector vocabulary: out-of-vocabulary rates and the words missing.

The dataset's own findings (rows, labels) are zoo's (`zoo_core.text_check`); this one needs the vectors,
so it is this plugin's, appended after zoo's. It warns where zoo's `domain` finding calls the text far
(coverage under `zoo_core.domain.COVERAGE_NEAR`, from the same rounded count), so the two always agree.
"""

from __future__ import annotations

from zoo_core.checks import Finding, Level
from zoo_core.domain import COVERAGE_NEAR, token_coverage
from zoo_core.textdata import as_text_data
from zoo_wordvec.vectors import WordVectors

__all__ = ["vocabulary_findings"]

OOV_ERROR = 0.5  # share of tokens out of vocabulary from which the texts are mostly zero vectors: unusable


def vocabulary_findings(vectors: WordVectors, data: object) -> list[Finding]:
    """The ``oov`` finding for the tokens of `data` (none when it has no token)."""
    tokens, unknown = vectors.unknown_words(as_text_data(data).texts)
    if not tokens:
        return []
    coverage = token_coverage(tokens, unknown)
    token_rate = round(1 - coverage, 3)  # the complement of the domain finding's figure, as printed
    type_rate = len(unknown) / len(set(tokens))
    worst = ", ".join(f"{word} ({count})" for word, count in unknown.most_common(10))
    message = f"{token_rate:.1%} of tokens and {type_rate:.1%} of distinct words are out of the vocabulary"
    if worst:
        message += f"; most frequent unknown: {worst}"
    level: Level = "error" if token_rate >= OOV_ERROR else "warn" if coverage < COVERAGE_NEAR else "ok"
    fix = "unknown words get zero vectors: fix spelling or tokenisation, or pick a larger vocabulary"
    return [Finding("oov", level, message, fix if level != "ok" else None)]
