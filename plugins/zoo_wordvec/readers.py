"""Reading word-vector files: GloVe text, word2vec text (and fastText .vec) and Google's word2vec binary.

Each reader takes a binary stream and returns the words and a float32 matrix. A malformed file raises
`WeightsFormatError` naming the file and the line (text) or byte offset (binary).
"""

from __future__ import annotations

from typing import IO

import numpy as np

from zoo_core.errors import WeightsFormatError

__all__ = ["read_vectors"]


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise WeightsFormatError(f"{where}: not UTF-8 ({error.reason} at byte {error.start} of the line)") from None


def _read_text(stream: IO[bytes], name: str, header: bool) -> tuple[list[str], np.ndarray]:
    """Lines of ``word v1 … vd``; with `header`, a first line ``count dim`` (word2vec, fastText .vec)."""
    lines = stream.read().split(b"\n")
    first = 0
    expected_count = None
    if header:
        fields = lines[0].split()
        if len(fields) != 2 or not all(field.isdigit() for field in fields):
            raise WeightsFormatError(f"{name}:1: expected a header 'count dim', got {lines[0][:60]!r}")
        expected_count, dim = int(fields[0]), int(fields[1])
        first = 1
    else:
        dim = len(lines[0].rstrip().split(b" ")) - 1
    words: list[str] = []
    numbers: list[bytes] = []
    for number, raw in enumerate(lines[first:], start=first + 1):
        line = raw.rstrip(b"\r\n ")
        if not line:
            continue
        parts = line.split(b" ")
        if len(parts) < dim + 1:
            raise WeightsFormatError(
                f"{name}:{number}: expected a word and {dim} numbers, got {len(parts) - 1} numbers"
            )
        words.append(_decode(b" ".join(parts[:-dim]), f"{name}:{number}"))  # GloVe 840B has words with spaces
        numbers.append(b" ".join(parts[-dim:]))
    try:
        matrix = np.array(b" ".join(numbers).split(), dtype=np.float32).reshape(len(words), dim)
    except ValueError as error:
        raise WeightsFormatError(f"{name}: a vector holds something that is not a number ({error})") from None
    if expected_count is not None and expected_count != len(words):
        raise WeightsFormatError(f"{name}: the header promises {expected_count} words, the file has {len(words)}")
    return words, matrix


def _read_binary(stream: IO[bytes], name: str) -> tuple[list[str], np.ndarray]:
    """Google's format: a text header ``count dim``, then per word ``word<space>`` and dim float32s."""
    data = stream.read()
    end = data.find(b"\n")
    fields = data[:end].split()
    if end < 0 or len(fields) != 2 or not all(field.isdigit() for field in fields):
        raise WeightsFormatError(f"{name}: byte 0: expected a header 'count dim'")
    count, dim = int(fields[0]), int(fields[1])
    matrix = np.empty((count, dim), dtype=np.float32)
    words: list[str] = []
    offset, width = end + 1, 4 * dim
    for row in range(count):
        space = data.find(b" ", offset)
        if space < 0 or space + 1 + width > len(data):
            raise WeightsFormatError(f"{name}: byte {offset}: truncated at word {row + 1} of {count}")
        words.append(_decode(data[offset:space].lstrip(b"\n"), f"{name}: byte {offset}"))
        matrix[row] = np.frombuffer(data, dtype="<f4", count=dim, offset=space + 1)
        offset = space + 1 + width
    return words, matrix


def read_vectors(stream: IO[bytes], name: str, format: str) -> tuple[list[str], np.ndarray]:
    """Words and their vectors from a file in `format` ("glove", "word2vec", "word2vec-binary")."""
    if format == "word2vec-binary":
        return _read_binary(stream, name)
    return _read_text(stream, name, header=format == "word2vec")
