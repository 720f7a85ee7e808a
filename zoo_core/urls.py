"""Downloading files that are not on a hub (a plain https URL or a local path) into zoo's own cache.

Such a source must give a sha256 (or, where the publisher gives only that, a sha1) for every file in its
registry entry. Files land in
``$ZOO_HOME/files/<model>/``: each is written to ``<name>.incomplete`` under a file lock, resumed from
where it stopped when the download is retried, hashed while it is written, and moved into place only
once its digest matches — so the cache never holds a bad or half-written file. A cached file counts
only if it has the digest the registry names now: when the entry's digest changes, or the file changed
since it was hashed, it is hashed again and fetched again if it no longer matches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from zoo_core import validate
from zoo_core.errors import ChecksumError, DownloadError, NotCachedError
from zoo_core.hashing import file_digest
from zoo_core.network import silent_tqdm, with_retries
from zoo_core.records import FileRecord, ModelRecord
from zoo_core.settings import Settings
from zoo_core.specs import ModelSpec

__all__ = ["fetch_from_url", "model_folder"]


class _HashingWriter:
    """A file wrapper that hashes what is written; any seek makes the digest void."""

    def __init__(self, handle: BinaryIO, digest: Any) -> None:
        self.handle, self.digest, self.void = handle, digest, False

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.handle.write(data)

    def __getattr__(self, name: str) -> Any:  # seek, tell, truncate: the client rewinds on a 200 to a Range
        if name in ("seek", "truncate"):
            self.void = True
        return getattr(self.handle, name)


def model_folder(settings: Settings, spec: ModelSpec) -> Path:
    return settings.home / "files" / validate.path_part(validate.model_name(spec.name, "the model's name"))


def _local_path(url: str) -> Path | None:
    if url.startswith("file://"):
        return Path(unquote(urlsplit(url).path))
    return Path(url) if not urlsplit(url).scheme or len(urlsplit(url).scheme) == 1 else None


def _file_url(spec: ModelSpec, name: str) -> str:
    base = spec.source.url or ""
    return base if not spec.source.files else f"{base.rstrip('/')}/{name}"


def _transfer(url: str, partial: Path, quiet: bool) -> str | None:
    """Append the rest of `url` to `partial`; the sha256 of the whole file when it could be streamed."""
    local = _local_path(url)
    if local is not None:
        if not local.is_file():
            raise DownloadError(f"{local}: no such file (source.url of the registry entry)")
        shutil.copyfile(local, partial)
        return None
    from huggingface_hub.file_download import http_get

    resume = partial.stat().st_size if partial.exists() else 0
    digest = hashlib.sha256()
    with partial.open("ab") as handle:
        if resume:
            with partial.open("rb") as done:
                while chunk := done.read(1 << 24):
                    digest.update(chunk)
        writer = _HashingWriter(handle, digest)
        http_get(url, writer, resume_size=resume, tqdm_class=silent_tqdm() if quiet else None)  # type: ignore[arg-type]
    return None if writer.void else digest.hexdigest()


def _cached(name: str, target: Path, kind: str, expected: str, known: FileRecord | None) -> FileRecord | None:
    """A record of the cached file if it is what the registry names now, else None (then it is fetched again).

    The file is hashed again unless the record of the last check shows the same file (size and modification
    time) verified against the same digest.
    """
    stat = target.stat()
    same_file = known is not None and (known.size, known.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    if known is not None and same_file and (known.sha256 if kind == "sha256" else known.sha1) == expected:
        return dataclasses.replace(known, path=str(target), verified_by=f"registry {kind}")
    return _record(name, target, kind, expected, None) if file_digest(target, kind) == expected else None


def _record(name: str, target: Path, kind: str, expected: str, sha256: str | None) -> FileRecord:
    """The record of a file just verified against the registry's `kind` digest `expected`."""
    stat = target.stat()
    sha256 = expected if kind == "sha256" else sha256 or file_digest(target)  # the cache checks sha256s
    sha1 = expected if kind == "sha1" else None
    return FileRecord(name, str(target), stat.st_size, sha256, f"registry {kind}", None, stat.st_mtime_ns, sha1)


def _fetch_file(
    spec: ModelSpec,
    folder: Path,
    name: str,
    known: FileRecord | None,
    force: bool,
    quiet: bool,
    attempts: int,
    delay: float,
) -> FileRecord:
    from filelock import FileLock

    kind = "sha256" if name in spec.sha256 else "sha1"
    expected = spec.sha256.get(name) or spec.sha1[name]
    target = validate.inside(folder, folder / validate.file_name(name, f"'{spec.name}': source.files"), spec.name)
    partial = target.with_name(target.name + ".incomplete")
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.with_name(target.name + ".lock")):
        cached = _cached(name, target, kind, expected, known) if target.exists() and not force else None
        if cached is not None:
            return cached
        for retry in (False, True):  # a wrong digest: start once more from nothing; the old copy stays till then
            streamed = _download_with_retries(_file_url(spec, name), partial, quiet, attempts, delay)
            actual = (streamed if kind == "sha256" else None) or file_digest(partial, kind)
            if actual == expected:
                partial.replace(target)
                return _record(name, target, kind, expected, streamed)
            partial.unlink()
            if retry:
                raise ChecksumError(
                    f"'{spec.name}': {name} from {_file_url(spec, name)} has {kind} {actual}, not the registry's "
                    f"{expected}, twice; nothing was kept. Check the URL, or the {kind} in the registry entry"
                )
        raise AssertionError("unreachable")


def _download_with_retries(url: str, partial: Path, quiet: bool, attempts: int, delay: float) -> str | None:
    """`_transfer` retried on transient faults; the partial file stays, so each try resumes it."""
    try:
        return with_retries(lambda: _transfer(url, partial, quiet), attempts, delay)
    except DownloadError:
        raise
    except Exception as error:
        raise DownloadError(f"downloading {url} failed: {error}") from error


def fetch_from_url(
    spec: ModelSpec,
    settings: Settings,
    *,
    offline: bool = False,
    force: bool = False,
    quiet: bool = False,
    known: ModelRecord | None = None,
    attempts: int = 4,
    delay: float = 0.5,
) -> ModelRecord:
    """Fetch and verify every file of a URL or local-path model into zoo's cache.

    `known` is the model's last record, to skip re-hashing files that have not changed; with `force` every
    file is fetched again, and a cached copy is replaced only once the new one is verified.
    """
    url = spec.source.url or ""
    names = list(spec.source.files) or [Path(urlsplit(url).path).name]
    missing = [name for name in names if name not in spec.sha256 and name not in spec.sha1]
    if missing:
        raise DownloadError(
            f'\'{spec.name}\': a URL source needs a sha256 for every file; add sha256 = {{ "{missing[0]}" = "…" }} '
            "to its registry entry"
        )
    folder = model_folder(settings, spec)
    # offline forbids the network, not a local copy: a local path is fetched all the same
    absent = [name for name in names if not (folder / name).exists() and _local_path(_file_url(spec, name)) is None]
    if offline and absent:
        raise NotCachedError(
            f"'{spec.name}' ({absent[0]}) is not in zoo's cache {folder} and zoo is offline; run "
            f"`zoo download {spec.name}` with network, or bring it with `zoo cache export`/`zoo cache import`"
        )
    recorded = {each.name: each for each in known.files} if known else {}
    files = tuple(_fetch_file(spec, folder, name, recorded.get(name), force, quiet, attempts, delay) for name in names)
    return ModelRecord(spec.name, str(folder), "url", url, None, None, files)
