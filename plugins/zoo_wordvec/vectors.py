"""`WordVectors`: a word-vector table, parsed once and then memory-mapped.

The first load parses the source file (inside a .zip or .gz if need be) and stores the matrix as
``vectors.npy`` and the words as ``words.json`` under ``$ZOO_HOME/vectors/<model>-<fingerprint>/``; every
later load maps the matrix from disk, so a 400,000 x 300 table opens in a fraction of a second and is shared
by processes through the page cache. The fingerprint covers the downloaded files, how the spec reads them
and the store's layout, so a store written another way is never read as this one.

`tokenize` splits a text into the words looked up: `WordVectors.embed` and the plugin's check
(`zoo_wordvec.check`) share it, so the words the check reports unknown are those `embed` skips.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from zoo_core import validate
from zoo_core.errors import WeightsFormatError
from zoo_core.settings import Settings
from zoo_core.specs import EmbeddingInput, ModelSpec
from zoo_wordvec.readers import read_vectors

__all__ = ["WordVectors", "load_vectors", "tokenize"]

_TOKEN = re.compile(r"\w+(?:['\u2019-]\w+)*|[^\w\s]")  # keeps don't, o'clock, well-known whole


def tokenize(text: str) -> list[str]:
    """Words and punctuation, the way GloVe and word2vec vocabularies were built (roughly)."""
    return _TOKEN.findall(text)


class WordVectors:
    """Words and their vectors, with lookups that forgive case when the vocabulary is lower-case."""

    def __init__(self, words: list[str], matrix: np.ndarray, lowercase: bool = False, name: str = "") -> None:
        self.words, self.matrix, self.lowercase, self.name = words, matrix, lowercase, name
        self.index = {word: row for row, word in enumerate(words)}
        self._unit: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self.row(word) is not None

    def row(self, word: str) -> int | None:
        """The word's row; out of vocabulary, the lower-cased word's; else None."""
        found = self.index.get(word)
        return self.index.get(word.lower()) if found is None else found

    def vector(self, word: str) -> np.ndarray:
        row = self.row(word)
        if row is None:
            raise KeyError(f"'{word}' is not in the vocabulary of {self.name or 'these vectors'}")
        return np.asarray(self.matrix[row])

    def _normalised(self) -> np.ndarray:
        if self._unit is None:
            matrix = np.asarray(self.matrix, dtype=np.float32)
            self._unit = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        return self._unit

    def most_similar(self, query: str | np.ndarray, k: int = 10) -> list[tuple[str, float]]:
        """The `k` nearest words by cosine similarity (a word query is left out of its own answer)."""
        vector = self.vector(query) if isinstance(query, str) else np.asarray(query, dtype=np.float32)
        unit = vector / max(float(np.linalg.norm(vector)), 1e-12)
        scores = self._normalised() @ unit
        skip = {self.row(query)} if isinstance(query, str) else set()
        best = np.argpartition(-scores, min(k + len(skip), len(scores) - 1))[: k + len(skip)]
        ranked = sorted(best, key=lambda row: -scores[row])
        return [(self.words[row], float(scores[row])) for row in ranked if row not in skip][:k]

    def unknown_words(self, texts: Iterable[str]) -> tuple[list[str], Counter[str]]:
        """The tokens of `texts`, split as `embed` splits them, and those out of the vocabulary with their counts:
        what the plugin's oov finding and zoo's source-similarity check (`zoo_core.domain`) both count."""
        tokens = [token for text in texts for token in tokenize(text)]
        return tokens, Counter(token for token in tokens if token not in self)

    def embed(self, texts: Iterable[str]) -> np.ndarray:
        """One vector per text: the mean of its known words' vectors (zeros when none is known)."""
        rows = []
        for text in texts:
            known = [row for token in tokenize(text) if (row := self.row(token)) is not None]
            rows.append(np.asarray(self.matrix[known]).mean(axis=0) if known else np.zeros(self.dim, np.float32))
        return np.stack(rows).astype(np.float32)

    def scratch_copy(self, seed: int = 0) -> WordVectors:
        """The same vocabulary with random vectors of the same scale: the "no pretraining" baseline."""
        rng = np.random.default_rng(seed)
        scale = float(np.asarray(self.matrix[: min(len(self.words), 10_000)]).std())
        random = rng.standard_normal(self.matrix.shape, dtype=np.float32)  # float32 throughout: half the memory
        random *= scale
        return WordVectors(self.words, random, self.lowercase, f"{self.name} (random)")

    def embedding(self, frozen: bool = True) -> Any:
        """A `torch.nn.Embedding` initialised from the vectors, frozen or trainable."""
        import torch

        return torch.nn.Embedding.from_pretrained(torch.tensor(np.asarray(self.matrix)), freeze=frozen)  # type: ignore[no-untyped-call]


def _read_source(folder: Path, spec: ModelSpec) -> tuple[bytes, str]:
    """The vectors file's bytes and its name for messages: a plain file, a .gz, or a member of a .zip."""
    assert isinstance(spec.input, EmbeddingInput)
    wanted = spec.input.file
    candidates = sorted(path for path in folder.rglob("*") if path.is_file())
    direct = [path for path in candidates if wanted is None or path.relative_to(folder).as_posix() == wanted]
    plain = [path for path in direct if path.suffix != ".zip"]
    if plain and plain[0].suffix != ".gz":
        return plain[0].read_bytes(), str(plain[0])
    if plain:
        with gzip.open(plain[0], "rb") as stream:
            return _read_compressed(cast(IO[bytes], stream), str(plain[0]), spec.name), str(plain[0])
    for archive in (path for path in candidates if path.suffix == ".zip"):
        try:
            with zipfile.ZipFile(archive) as bundle:
                members = [name for name in bundle.namelist() if wanted is None or name == wanted]
                if members:
                    name = f"{archive}!{members[0]}"
                    with bundle.open(members[0]) as stream:
                        return _read_compressed(stream, name, spec.name), name
        except zipfile.BadZipFile as error:
            raise WeightsFormatError(f"{archive}: not a readable .zip ({error}); {_damaged(spec.name)}") from None
    raise WeightsFormatError(f"{folder}: no vectors file {wanted or ''} in the downloaded files or their .zip archives")


def _damaged(model: str) -> str:
    """The fix for a damaged download."""
    return f"`zoo cache verify` checks the download, `zoo download {model} --force` fetches it again"


def _read_compressed(stream: IO[bytes], name: str, model: str) -> bytes:
    """All of a .gz or .zip member, or one line naming the uncompressed byte (to 1 MiB) where it went bad."""
    chunks: list[bytes] = []
    done = 0
    try:
        while chunk := stream.read(1 << 20):
            chunks.append(chunk)
            done += len(chunk)
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as error:
        raise WeightsFormatError(
            f"{name}: corrupt data after uncompressed byte {done} ({error}); {_damaged(model)}"
        ) from None
    return b"".join(chunks)


def _store(folder: Path, words: list[str], matrix: np.ndarray) -> None:
    """Write the parsed table whole or not at all; the words as JSON, which no character inside one can break."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    np.save(staging / "vectors.npy", matrix)
    (staging / "words.json").write_bytes(json.dumps(words, ensure_ascii=False).encode("utf-8"))
    try:
        staging.replace(folder)
    except OSError:  # another process stored it first
        for path in staging.iterdir():
            path.unlink()
        staging.rmdir()


def load_vectors(spec: ModelSpec, files: Path, settings: Settings | None = None) -> WordVectors:
    """The spec's vectors: memory-mapped from zoo's store, parsed from `files` the first time."""
    assert isinstance(spec.input, EmbeddingInput)
    settings = settings or Settings.from_env()
    store = settings.home / "vectors" / f"{validate.path_part(spec.name)}-{_fingerprint(files, spec.input)}"
    if not (store / "words.json").exists():
        data, name = _read_source(files, spec)
        words, matrix = read_vectors(data, name, spec.input.format, spec.input.dim)
        del data  # the file's bytes can be as large as the matrix: free them before storing
        _store(store, words, matrix)
    words = json.loads((store / "words.json").read_bytes())
    matrix = np.load(store / "vectors.npy", mmap_mode="r")
    return WordVectors(words, matrix, spec.input.lowercase, spec.name)


_LAYOUT = 2  # the store's layout: 1 kept the words in words.txt, one a line, which a word with a newline broke


def _fingerprint(files: Path, spec: EmbeddingInput) -> str:
    """Changes when the downloaded files, the way they are read, or the store's layout do."""
    stats = sorted(
        (str(p.relative_to(files)), p.stat().st_size, p.stat().st_mtime_ns) for p in files.rglob("*") if p.is_file()
    )
    read_as = (_LAYOUT, spec.format, spec.file, spec.dim)
    return hashlib.sha256(repr((read_as, stats)).encode()).hexdigest()[:12]
