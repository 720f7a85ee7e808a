"""What zoo knows about each downloaded model: where its files are, which commit, and their sha256.

One JSON file per model under ``$ZOO_HOME/records/``, written atomically after the files were verified.
`zoo cache list/verify/rm/export` read them; the files themselves live in the hub cache (hub models) or
under ``$ZOO_HOME/files/`` (URL, local and pip-distribution sources).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from zoo_core import validate

__all__ = ["FileRecord", "ModelRecord", "read_record", "read_records", "record_path", "remove_record", "write_record"]


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One verified file of a model."""

    name: str  # path relative to the model's folder, as in the spec
    path: str  # where it is on this machine
    size: int
    sha256: str
    verified_by: str | None  # "registry sha256"/"registry sha1", "hub sha256"/"hub git sha1", None: nothing to check
    etag: str | None = None  # the hub's ETag (the blob's name in the hub cache); None for URL sources
    mtime_ns: int | None = None  # the file's modification time when it was hashed: a change means hash again
    sha1: str | None = None  # for a file the registry pins by sha1 only: the sha1 it was verified against


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """A model's files as they were downloaded and verified."""

    model: str
    folder: str  # the snapshot folder (hub) or zoo's folder for the model
    source: str  # "hub", "url" or "package" (a pip distribution's file, copied into zoo's cache)
    repo: str | None  # hub repo id, the URL, or the distribution's name
    revision: str | None  # what was asked for ("main", a tag, or a commit)
    commit: str | None  # the commit actually fetched (hub only)
    files: tuple[FileRecord, ...]

    @property
    def size(self) -> int:
        return sum(each.size for each in self.files)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelRecord:
        """Rebuild a record from `to_dict` output; `TypeError` if a field has the wrong type."""
        record = cls(**{**data, "files": tuple(FileRecord(**each) for each in data["files"])})
        _check_types(record, _RECORD_TYPES)
        for file in record.files:
            _check_types(file, _FILE_TYPES)
        validate.model_name(record.model, "a record")
        return record


_Kind = type | tuple[type, ...]
_TEXT: _Kind = (str, type(None))
_RECORD_TYPES: dict[str, _Kind] = dict(model=str, folder=str, source=str, repo=_TEXT, revision=_TEXT, commit=_TEXT)
_FILE_TYPES: dict[str, _Kind] = dict(
    name=str, path=str, size=int, sha256=str, verified_by=_TEXT, etag=_TEXT, mtime_ns=(int, type(None)), sha1=_TEXT
)


def _check_types(item: object, types: dict[str, _Kind]) -> None:
    for key, kind in types.items():
        if not isinstance(getattr(item, key), kind) or isinstance(getattr(item, key), bool):
            raise TypeError(f"field {key!r} of a record has the wrong type")


def record_path(home: Path, model: str) -> Path:
    return home / "records" / f"{validate.path_part(validate.model_name(model, 'a record'))}.json"


def write_record(home: Path, record: ModelRecord) -> None:
    path = record_path(home, record.model)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(record.to_dict(), out, indent=2)
    Path(temporary).replace(path)


def _read(path: Path) -> ModelRecord | None:
    """The record in `path`, or None when it is unreadable, malformed, or filed under another model's name."""
    try:
        record = ModelRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return None
    return record if path.name == record_path(path.parent.parent, record.model).name else None


def read_record(home: Path, model: str) -> ModelRecord | None:
    """The model's record, or None when it has none (or an unreadable one)."""
    return _read(record_path(home, model))


def read_records(home: Path) -> dict[str, ModelRecord]:
    """Every readable record, by model name; unreadable ones are skipped (`zoo cache prune` removes them)."""
    found = (_read(path) for path in sorted((home / "records").glob("*.json")))
    return {record.model: record for record in found if record is not None}


def remove_record(home: Path, model: str) -> None:
    record_path(home, model).unlink(missing_ok=True)
