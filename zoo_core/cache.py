"""Managing what is downloaded: list, verify, remove and prune the cached models zoo has records of.

What "verified" means is decided here, once, for `zoo cache list` (from the records, without reading the
files) and `zoo cache verify` (which hashes them): a file is verified only against the digest that vouches
for it *now* — the sha256 (or sha1) the registry pins today, else the hub ETag it is stored under, which
is a content digest. A record checked against a digest the registry no longer names is *stale*.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

from zoo_core import validate
from zoo_core.catalogue import Catalogue
from zoo_core.errors import ModelNotFoundError
from zoo_core.hashing import digest_kind, file_digest, matches_etag
from zoo_core.records import FileRecord, ModelRecord, read_records, record_path, remove_record, write_record
from zoo_core.settings import Settings
from zoo_core.specs import ModelSpec

__all__ = ["BAD_STATES", "FileCheck", "file_state", "model_state", "prune", "remove", "verify"]

_HUB_CHECKS = ("hub sha256", "hub git sha1")
BAD_STATES = ("corrupt", "missing", "stale")  # `zoo cache verify` exits 1 on these


@dataclass(frozen=True, slots=True)
class FileCheck:
    """The result of checking one cached file."""

    model: str
    name: str
    path: str
    state: str  # "ok", "corrupt", "missing", "stale" (the registry names another digest) or "unverified"


def _spec(catalogue: Catalogue, model: str) -> ModelSpec | None:
    return catalogue.get(model) if model in catalogue else None


def file_state(file: FileRecord, spec: ModelSpec | None) -> str:
    """What a file's record vouches for today, without reading the file: "ok", "stale" or "unverified"."""
    if spec is not None and file.name in spec.sha256:
        return "ok" if file.sha256 == spec.sha256[file.name] else "stale"
    if spec is not None and file.name in spec.sha1:
        return "ok" if file.sha1 == spec.sha1[file.name] else "stale"
    kind = digest_kind(file.etag or "")
    if file.verified_by in _HUB_CHECKS and (kind == "git-sha1" or (kind == "sha256" and file.sha256 == file.etag)):
        return "ok"
    return "unverified"


def _changed(file: FileRecord) -> bool:
    """Whether the file is gone, or its size or modification time differ from when it was hashed."""
    try:
        stat = Path(file.path).stat()
    except OSError:
        return True
    return (stat.st_size, stat.st_mtime_ns) != (file.size, file.mtime_ns)


def model_state(record: ModelRecord, spec: ModelSpec | None) -> str:
    """`zoo cache list`'s verdict on a model: "yes", "stale", "changed" (run verify) or "no"."""
    states = [file_state(file, spec) for file in record.files]
    if "stale" in states:
        return "stale"
    if any(_changed(file) for file in record.files):
        return "changed"
    return "yes" if all(state == "ok" for state in states) else "no"


def _recorded(settings: Settings, names: tuple[str, ...]) -> list[ModelRecord]:
    records = read_records(settings.home)
    unknown = [name for name in names if name not in records]
    if unknown:
        raise ModelNotFoundError(f"'{unknown[0]}' is not in the cache; see `zoo cache list`")
    return [records[name] for name in names] if names else list(records.values())


def _check(file: FileRecord, spec: ModelSpec | None) -> tuple[str, FileRecord]:
    """Hash one file: its state, and its record with the modification time of this check."""
    path = Path(file.path)
    if not path.is_file():
        return "missing", file
    sha256 = file_digest(path)
    if sha256 != file.sha256 or (file.etag is not None and not matches_etag(path, file.etag, sha256)):
        return "corrupt", file
    return file_state(file, spec), dataclasses.replace(file, mtime_ns=path.stat().st_mtime_ns)


def verify(settings: Settings, catalogue: Catalogue, names: tuple[str, ...] = ()) -> list[FileCheck]:
    """Re-hash every file of the named (default: all) cached models against the digest that vouches for it.

    A file whose bytes are unchanged has its record's modification time refreshed, so `zoo cache list`
    agrees with what was just checked.
    """
    checks = []
    for record in _recorded(settings, names):
        spec = _spec(catalogue, record.model)
        results = [_check(file, spec) for file in record.files]
        checks += [FileCheck(record.model, file.name, file.path, state) for state, file in results]
        refreshed = dataclasses.replace(record, files=tuple(file for _, file in results))
        if refreshed != record:
            write_record(settings.home, refreshed)
    return checks


def _delete_hub_files(settings: Settings, record: ModelRecord, others: list[ModelRecord]) -> None:
    """Delete the model's snapshot links, and each blob no other recorded model uses."""
    kept = {file.etag for other in others for file in other.files}
    for file in record.files:
        path = Path(file.path)
        where = f"the record of '{record.model}'"
        blob = validate.inside(settings.hub_cache, path, where) if path.is_symlink() else None
        validate.inside(settings.hub_cache, path.parent, where)
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
        folder = validate.inside(settings.home / "files", Path(record.folder), f"the record of '{name}'")
        if folder != (settings.home / "files").resolve():
            shutil.rmtree(folder, ignore_errors=True)
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
