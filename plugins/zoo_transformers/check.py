"""What a BERT-family model's tokenizer says about a text dataset: samples it truncates, tokens it cannot
represent ([UNK]).

The dataset's own findings (rows, labels, casing, script) are zoo's (`zoo_core.text_check`); these need
the model's tokenizer files, so they are this plugin's, appended after zoo's.
"""

from __future__ import annotations

from zoo_core.checks import Finding, Level
from zoo_core.download import download
from zoo_core.specs import ModelSpec, TextInput
from zoo_core.textdata import as_text_data

__all__ = ["tokenizer_findings"]

TRUNCATED_WARN = 0.05  # share of samples cut at max_length
UNK_WARN = 0.01  # share of tokens the vocabulary cannot represent


def tokenizer_findings(spec: ModelSpec, data: object) -> list[Finding]:
    """The ``length`` and ``unk`` findings for the non-empty texts of `data` (none when every row is empty)."""
    from transformers import AutoTokenizer

    assert isinstance(spec.input, TextInput)
    texts = [text for text in as_text_data(data).texts if text.strip()]
    if not texts:
        return []
    tokenizer = AutoTokenizer.from_pretrained(download(spec), trust_remote_code=False)
    encoded = tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
    cut = sum(1 for ids in encoded if len(ids) > spec.input.max_length) / len(encoded)
    lengths = sorted(len(ids) for ids in encoded)
    message = (
        f"{cut:.1%} of samples are longer than {spec.input.max_length} tokens and will be truncated "
        f"(median {lengths[len(lengths) // 2]}, longest {lengths[-1]})"
    )
    fix = "split long texts into passages, or use a longer max_length"
    length = Finding("length", "warn" if cut > TRUNCATED_WARN else "ok", message, fix if cut else None)
    tokens = [token for ids in encoded for token in ids]
    unknown = sum(1 for token in tokens if token == tokenizer.unk_token_id) / max(len(tokens), 1)
    level: Level = "warn" if unknown > UNK_WARN else "ok"
    unk = Finding("unk", level, f"{unknown:.2%} of tokens are [UNK]", "check the language and characters")
    return [length, unk]
