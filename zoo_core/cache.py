"""Managing what is downloaded: list, verify, remove and prune the cached models zoo has records of.

`zoo cache list` judges from the records (without reading the files) and `zoo cache verify` hashes the
files; both ask `zoo_core.verification.file_state` what a record vouches for today, so they agree.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from zoo_core import validate
from zoo_core.catalogue import Catalogue
from zoo_core.errors import ModelNotFoundError
from zoo_core.hashing import file_digest, matches_etag
from zoo_core.hubcache import linked_blob
from zoo_core.records import FileRecord, ModelRecord, read_records, record_path, remove_record, write_record
from zoo_core.settings import Settings
from zoo_core.specs import ModelSpec
from zoo_core.verification import file_state, unchanged

__all__ = ["BAD_STATES", "FileCheck", "model_state", "prune", "remove", "verify"]

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


def model_state(record: ModelRecord, spec: ModelSpec | None) -> str:
    """`zoo cache list`'s verdict on a model: "yes", "missing", "stale", "changed" (run verify) or "no"."""
    states = [file_state(file, spec) for file in record.files]
    if not all(Path(file.path).is_file() for file in record.files):
        return "missing"
    if "stale" in states:
        return "stale"
    if "unhashed" in states or not all(unchanged(file, Path(file.path)) for file in record.files):
        return "changed"
    return "yes" if all(state == "ok" for state in states) else "no"


def _recorded(settings: Settings, names: tuple[str, ...]) -> list[ModelRecord]:
    records = read_records(settings.home)
    unknown = [name for name in names if name not in records]
    if unknown:
        raise ModelNotFoundError(f"'{unknown[0]}' is not in the cache; see `zoo cache list`")
    return [records[name] for name in names] if names else list(records.values())


def _check(file: FileRecord, spec: ModelSpec | None) -> tuple[str, FileRecord]:
    """Hash one file: its state, and its record as of this check (when its bytes are the recorded ones)."""
    path = Path(file.path)
    if not path.is_file():
        return "missing", file
    stat = path.stat()  # before hashing: a write during the hash shows as a changed file later
    sha256 = file_digest(path)
    if sha256 != file.sha256 or (file.etag is not None and not matches_etag(path, file.etag, sha256)):
        return "corrupt", file
    sha1 = file_digest(path, "sha1") if spec is not None and file.name in spec.sha1 else file.sha1
    checked = dataclasses.replace(file, mtime_ns=stat.st_mtime_ns, sha1=sha1)
    return file_state(checked, spec), checked


def verify(settings: Settings, names: tuple[str, ...] = (), catalogue: Catalogue | None = None) -> list[FileCheck]:
    """Re-hash every file of the named (default: all) cached models against the digest that vouches for it.

    `catalogue` (default: the environment's) says which digests the registry pins now. A file whose bytes
    are the recorded ones has its record refreshed, so `zoo cache list` agrees with what was just checked.
    """
    if catalogue is None:
        from zoo_core.catalogue_sources import default_catalogue

        catalogue = default_catalogue()
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
    """Delete the model's snapshot links and blobs, except those another recorded model uses."""
    kept = {file.etag for other in others for file in other.files}
    linked = {file.path for other in others for file in other.files}
    where = f"the record of '{record.model}'"
    for file in record.files:
        path = Path(file.path)
        validate.inside(settings.hub_cache, path.parent, where)
        if file.path in linked:
            continue
        blob = linked_blob(path)
        path.unlink(missing_ok=True)
        if blob is not None and blob.name not in kept and blob.parent.name == "blobs":
            validate.inside(settings.hub_cache, blob.parent, where)
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
    """Remove what no longer serves: records whose files are gone, unreadable records, and what interrupted
    downloads, imports and exports left (partial and staged files no running process holds).

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
    for path in _leftovers(settings):
        path.unlink(missing_ok=True)
        removed.append(str(path))
    return removed


_IDLE = 600  # seconds without a write after which zoo's own staged file belongs to no running command


def _leftovers(settings: Settings) -> list[Path]:
    """Partial and staged files that no running process is writing."""
    from filelock import FileLock, Timeout

    found = []
    for path in sorted(settings.hub_cache.glob("models--*/blobs/*.incomplete")):  # huggingface_hub's partials
        lock = settings.hub_cache / ".locks" / path.parent.parent.name / f"{path.name.split('.')[0]}.lock"
        try:
            with FileLock(lock, timeout=0):  # a download in progress holds it
                found.append(path)
        except Timeout:
            continue
    now = time.time()
    for root in (settings.hub_cache, settings.home / "files"):
        if root.is_dir():
            found += [path for path in root.rglob(".zoo-staged-*") if now - path.lstat().st_mtime > _IDLE]
            found += [path for path in root.rglob(".zoo-kept-*") if not _running(path.name.rsplit("-", 1)[-1])]
    for pattern in ("*.incomplete", "*.tmp"):  # zoo's URL downloads; not *.lock: a running download may hold one
        found += sorted((settings.home / "files").rglob(pattern))
    return sorted(set(found))


def _running(pid: str) -> bool:
    """Whether the process `pid` (from a file name zoo made) still runs."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
