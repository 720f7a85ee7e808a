"""Reading word-vector files: GloVe text, word2vec text (and fastText .vec) and Google's word2vec binary.

Each reader takes a file's bytes and the dimension the spec promises, and returns the words and a float32
matrix, bit-identical to gensim's ``load_word2vec_format`` on well-formed files. A malformed file raises
`WeightsFormatError` naming the file and the line (text) or byte offset (binary); every row must hold exactly
`dim` numbers, and a header's ``count`` must match the rows that follow it. A word seen twice keeps its first
vector, with a warning, as gensim does.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Literal, NoReturn

import numpy as np

from zoo_core.errors import WeightsFormatError

__all__ = ["Format", "read_vectors"]

Format = Literal["glove", "word2vec", "word2vec-binary"]

# A field as vector files write numbers; a word with spaces must not end in one (the row would be ragged).
_NUMBER = re.compile(rb"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf(?:inity)?)", re.IGNORECASE)


def read_vectors(data: bytes, name: str, format: Format, dim: int) -> tuple[list[str], np.ndarray]:
    """Words and their `dim`-long vectors from the bytes of a file in `format`; `name` is shown in errors."""
    if format == "word2vec-binary":
        return _read_binary(data, name, dim)
    return _read_text(data, name, dim, header=format == "word2vec")


def _read_text(data: bytes, name: str, dim: int, header: bool) -> tuple[list[str], np.ndarray]:
    """Lines of ``word v1 … vd``; with `header`, a first line ``count dim`` (word2vec, fastText .vec).

    Most lines take the fast path (one space after the word, `dim` - 1 between the numbers) and all numbers
    are parsed in one call; the rest, and any failure, go through `_split_row` and `_bad_numbers`, which
    say what is wrong on which line. numpy reads any whitespace as a separator, so when the file holds
    whitespace other than spaces and newlines, each row's numbers are also counted that way: a tab must not
    turn one row's field into two numbers and shift every later row.
    """
    other_spaces = any(space in data for space in (b"\t", b"\r", b"\x0b", b"\x0c"))
    lines = data.split(b"\n")
    promised = _header(lines[0], f"{name}:1", dim) if header else None
    words: list[bytes] = []
    numbers: list[bytes] = []
    line_of: list[int] = []  # each row's line number, for messages
    for number, raw in enumerate(lines[1:] if header else lines, start=2 if header else 1):
        line = raw.rstrip()
        if not line:
            continue
        word, _, rest = line.partition(b" ")
        if (
            not word
            or not rest
            or rest.count(b" ") != dim - 1
            or b"  " in rest
            or (other_spaces and len(rest.split()) != dim)
        ):
            word, rest = _split_row(line, name, number, dim, spaces_in_words=not header)
        words.append(word)
        numbers.append(rest)
        line_of.append(number)
        if promised is not None and len(words) > promised:
            raise WeightsFormatError(f"{name}:{number}: word {len(words)} is one more than the header's count")
    if not words:
        raise WeightsFormatError(f"{name}: no word vectors in the file")
    if promised is not None and len(words) != promised:
        raise WeightsFormatError(
            f"{name}:{line_of[-1]}: the file ends at word {len(words)}, short of the header's count of {promised}"
        )
    try:
        matrix = np.fromstring(b" ".join(numbers), dtype=np.float32, sep=" ")
    except ValueError:
        matrix = np.empty(0, dtype=np.float32)
    if matrix.size != len(words) * dim:
        _bad_numbers(numbers, line_of, name, dim)
    texts = _decode_words(words, line_of, name)
    return _first_of_each(texts, matrix.reshape(len(words), dim), lambda row: f"{name}:{line_of[row]}")


def _split_row(line: bytes, name: str, number: int, dim: int, spaces_in_words: bool) -> tuple[bytes, bytes]:
    """The word and the numbers of a line the fast path could not take, or the error that says why.

    A GloVe word may contain single spaces (GloVe 840B has ``. . .``) when `dim` numbers follow it and its
    last part is not a number; otherwise the row holds more or fewer than `dim` numbers and is refused.
    """
    where = f"{name}:{number}"
    if line.startswith(b" "):
        raise WeightsFormatError(f"{where}: the line starts with a space; it must start with its word")
    if b"  " in line:
        column = line.find(b"  ") + 1
        raise WeightsFormatError(f"{where}: two spaces in a row at column {column}; fields are one space apart")
    parts = line.split(b" ")
    found = len(parts) - 1  # the numbers after the word
    if spaces_in_words:  # the word ends at the last field that is not a number (the first field at least)
        found = next((back for back in range(found) if not _NUMBER.fullmatch(parts[-1 - back])), found)
    if found == dim:
        return b" ".join(parts[:-dim]), b" ".join(parts[-dim:])
    word = b" ".join(parts[: len(parts) - found]).decode("utf-8", "replace")
    hint = "; fields are separated by tabs, the format needs single spaces" if b"\t" in line else ""
    if number == 1 and spaces_in_words and len(parts) == 2 and all(part.isdigit() for part in parts):
        hint = '; it looks like a header \'count dim\': the format is "word2vec", not "glove"'
    raise WeightsFormatError(f"{where}: expected a word and {dim} numbers, got {found} after {word[:40]!r}{hint}")


def _bad_numbers(numbers: list[bytes], line_of: list[int], name: str, dim: int) -> NoReturn:
    """Raise the error for the first row whose numbers do not parse (the fast path only counted spaces)."""
    for row, text in enumerate(numbers):
        if _parsed(text) == dim:
            continue
        for part in text.split(b" "):
            if _parsed(part) != 1:
                shown = part[:40].decode("utf-8", "replace")
                raise WeightsFormatError(f"{name}:{line_of[row]}: {shown!r} is not a number")
    raise WeightsFormatError(f"{name}: the numbers do not parse as {len(numbers)} rows of {dim}")


def _parsed(text: bytes) -> int:
    """How many numbers numpy reads from `text` (0 when any field is not one)."""
    try:
        return int(np.fromstring(text, dtype=np.float32, sep=" ").size)
    except ValueError:
        return 0


def _decode_words(words: list[bytes], line_of: list[int], name: str) -> list[str]:
    """The words as text, decoded in one call (a text row holds no newline), or the first bad one's line."""
    try:
        return b"\n".join(words).decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return [_decode(word, f"{name}:{line}") for word, line in zip(words, line_of, strict=True)]


def _read_binary(data: bytes, name: str, dim: int) -> tuple[list[str], np.ndarray]:
    """Google's format: a text header ``count dim``, then per word ``word<space>`` and dim float32s.

    The header's claim is checked against the file's size before the matrix is allocated. Like gensim, a
    newline before a word (the C tool writes one after each vector) is not part of it.
    """
    end = data.find(b"\n")
    count = _header(data[: max(end, 0)], f"{name}: byte 0", dim)
    width = 4 * dim
    room, needed = len(data) - end - 1, count * (width + 2)  # at least a one-byte word and its space
    if needed > room:
        raise WeightsFormatError(
            f"{name}: byte 0: the header's count of {count} words of {dim} float32s needs at least {needed} bytes, "
            f"the file has {max(room, 0)} after the header; it is truncated or not word2vec binary"
        )
    matrix = np.empty((count, dim), dtype=np.float32)
    words: list[str] = []
    starts: list[int] = []  # each row's byte offset, for messages
    offset = end + 1
    for row in range(count):
        space = data.find(b" ", offset)
        if space < 0 or space + 1 + width > len(data):
            raise WeightsFormatError(f"{name}: byte {offset}: truncated at word {row + 1} of {count}")
        word = data[offset:space].lstrip(b"\n")
        start = space - len(word)
        if not word:
            raise WeightsFormatError(f"{name}: byte {start}: word {row + 1} of {count} is empty")
        words.append(_decode(word, f"{name}: byte {start}"))
        starts.append(start)
        matrix[row] = np.frombuffer(data, dtype="<f4", count=dim, offset=space + 1)
        offset = space + 1 + width
    if rest := data[offset:].lstrip():
        start = len(data) - len(rest)
        raise WeightsFormatError(f"{name}: byte {start}: more data after word {count}, the header's count")
    return _first_of_each(words, matrix, lambda row: f"{name}: byte {starts[row]}")


def _header(line: bytes, where: str, dim: int) -> int:
    """The word count of a ``count dim`` header line, whose dim must be the spec's."""
    fields = line.split()
    if len(fields) != 2 or not all(field.isdigit() for field in fields):
        raise WeightsFormatError(f"{where}: expected a header 'count dim', got {line[:60]!r}")
    if int(fields[1]) != dim:
        raise WeightsFormatError(f"{where}: the header says {int(fields[1])} dimensions, the spec says {dim}")
    return int(fields[0])


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise WeightsFormatError(f"{where}: not UTF-8 ({error.reason} at byte {error.start} of the word)") from None


def _first_of_each(words: list[str], matrix: np.ndarray, place: Callable[[int], str]) -> tuple[list[str], np.ndarray]:
    """Each word once with its first vector (gensim's rule), warning at the first repeat; `place` names a row."""
    if len(set(words)) == len(words):
        return words, matrix
    first: dict[str, int] = {}
    repeats = [row for row, word in enumerate(words) if first.setdefault(word, row) != row]
    row = repeats[0]
    more = f"; {len(repeats) - 1} more repeated words ignored too" if len(repeats) > 1 else ""
    warnings.warn(
        f"{place(row)}: the word {words[row]!r} was already at {place(first[words[row]])}; "
        f"keeping its first vector{more}",
        stacklevel=2,
    )
    keep = sorted(first.values())
    return [words[row] for row in keep], matrix[keep]
