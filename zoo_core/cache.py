"""Managing what is downloaded: list, verify, remove and prune the cached models zoo has records of."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from zoo_core.errors import ModelNotFoundError
from zoo_core.hashing import file_digest
from zoo_core.records import ModelRecord, read_records, record_path, remove_record
from zoo_core.settings import Settings

__all__ = ["FileCheck", "prune", "remove", "verify"]


@dataclass(frozen=True, slots=True)
class FileCheck:
    """The result of re-hashing one cached file."""

    model: str
    name: str
    path: str
    state: str  # "ok", "corrupt" or "missing"


def _recorded(settings: Settings, names: tuple[str, ...]) -> list[ModelRecord]:
    records = read_records(settings.home)
    unknown = [name for name in names if name not in records]
    if unknown:
        raise ModelNotFoundError(f"'{unknown[0]}' is not in the cache; see `zoo cache list`")
    return [records[name] for name in names] if names else list(records.values())


def verify(settings: Settings, names: tuple[str, ...] = ()) -> list[FileCheck]:
    """Re-hash every file of the named (default: all) cached models against its recorded sha256."""
    checks = []
    for record in _recorded(settings, names):
        for file in record.files:
            path = Path(file.path)
            state = "missing" if not path.exists() else "ok" if file_digest(path) == file.sha256 else "corrupt"
            checks.append(FileCheck(record.model, file.name, file.path, state))
    return checks


def _delete_hub_files(settings: Settings, record: ModelRecord, others: list[ModelRecord]) -> None:
    """Delete the model's snapshot links, and each blob no other recorded model uses."""
    kept = {file.etag for other in others for file in other.files}
    for file in record.files:
        path = Path(file.path)
        blob = path.resolve() if path.is_symlink() else None
        path.unlink(missing_ok=True)
        if blob is not None and blob.name not in kept and blob.parent.name == "blobs":
            blob.unlink(missing_ok=True)


def remove(settings: Settings, name: str) -> ModelRecord:
    """Delete a cached model's files (those no other cached model shares) and its record."""
    (record,) = _recorded(settings, (name,))
    others = [each for each in read_records(settings.home).values() if each.model != name]
    if record.source == "hub":
        _delete_hub_files(settings, record, others)
    else:
        shutil.rmtree(record.folder, ignore_errors=True)
    remove_record(settings.home, name)
    return record


def prune(settings: Settings) -> list[str]:
    """Remove what no longer serves: records whose files are gone, unreadable records, partial downloads.

    Returns what was removed, one line each.
    """
    removed = []
    records = read_records(settings.home)
    for record in records.values():
        if not all(Path(file.path).exists() for file in record.files):
            remove_record(settings.home, record.model)
            removed.append(f"record of {record.model} (files missing)")
    for path in sorted((settings.home / "records").glob("*.json")):
        if path not in {record_path(settings.home, name) for name in records}:
            path.unlink()
            removed.append(f"unreadable record {path}")
    for pattern in ("*.incomplete", "*.tmp"):  # not *.lock: a running download may hold one
        for path in sorted((settings.home / "files").rglob(pattern)):
            path.unlink(missing_ok=True)
            removed.append(str(path))
    return removed
