"""How well a text dataset fits a BERT-family model: truncation, [UNK] tokens, casing and script."""

from __future__ import annotations

import unicodedata

from zoo_core.checks import CheckReport, Finding, Level
from zoo_core.download import download
from zoo_core.specs import ModelSpec, TextInput
from zoo_core.textdata import as_text_data, dataset_findings

__all__ = ["check_texts"]

TRUNCATED_WARN = 0.05  # share of samples cut at max_length
UNK_WARN = 0.01  # share of tokens the vocabulary cannot represent
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
    return [Finding("script", level, f"{share:.0%} of letters are not Latin (e.g. {script}) for an English vocabulary",
                    "use a multilingual model for this text")]  # fmt: skip


def _casing_findings(spec: TextInput, texts: list[str]) -> list[Finding]:
    words = [word for text in texts for word in text.split() if word[:1].isalpha()]
    if not words:
        return []
    capitalised = sum(1 for word in words if word[0].isupper()) / len(words)
    if spec.lowercase and capitalised > 0.3:
        return [Finding("casing", "warn", f"{capitalised:.0%} of words are capitalised, the model is uncased: "
                        "case is lost", "use a cased model if case matters (names, entities)")]  # fmt: skip
    if not spec.lowercase and capitalised == 0:
        return [Finding("casing", "warn", "all text is lower-case, the model is cased",
                        "use an uncased model, or keep the original casing")]  # fmt: skip
    return [Finding("casing", "ok", f"{capitalised:.0%} of words capitalised; the model is "
                    + ("uncased" if spec.lowercase else "cased"))]  # fmt: skip


def check_texts(spec: ModelSpec, data: object) -> CheckReport:
    from transformers import AutoTokenizer

    assert isinstance(spec.input, TextInput)
    dataset = as_text_data(data)
    findings = dataset_findings(dataset)
    texts = [text for text in dataset.texts if text.strip()]
    if texts:
        tokenizer = AutoTokenizer.from_pretrained(download(spec), trust_remote_code=False)
        encoded = tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
        cut = sum(1 for ids in encoded if len(ids) > spec.input.max_length) / len(encoded)
        lengths = sorted(len(ids) for ids in encoded)
        message = (f"{cut:.1%} of samples are longer than {spec.input.max_length} tokens and will be truncated "
                   f"(median {lengths[len(lengths) // 2]}, longest {lengths[-1]})")  # fmt: skip
        fix = "split long texts into passages, or use a longer max_length"
        findings.append(Finding("length", "warn" if cut > TRUNCATED_WARN else "ok", message, fix if cut else None))
        tokens = [token for ids in encoded for token in ids]
        unknown = sum(1 for token in tokens if token == tokenizer.unk_token_id) / max(len(tokens), 1)
        findings.append(Finding("unk", "warn" if unknown > UNK_WARN else "ok",
                                f"{unknown:.2%} of tokens are [UNK]", "check the language and characters"))  # fmt: skip
        findings += _casing_findings(spec.input, texts) + _script_findings(spec, texts)
    return CheckReport(spec.name, tuple(findings))
