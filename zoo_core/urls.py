"""Downloading files that are not on a hub (a plain https URL, a local path, or a file of an installed pip
distribution, see `zoo_core.packages`) into zoo's own cache.

Such a source must give a sha256 (or, where the publisher gives only that, a sha1) for every file in its
registry entry. A distribution's file is copied rather than read where pip put it: then the bytes zoo
verified cannot change under it (``pip install -U``), and `zoo cache` lists, verifies, removes, exports
and imports it as any other file it owns, never touching site-packages. Files land in
``$ZOO_HOME/files/<model>/``: each is written to ``<name>.incomplete`` under a file lock, resumed from
where it stopped when the download is retried, hashed while it is written, and moved into place only
once its digest matches — so the cache never holds a bad or half-written file. A cached file counts
only if it has the digest the registry names now: when the entry's digest changes, or the file changed
since it was hashed, it is hashed again and fetched again if it no longer matches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, unquote, urlsplit

from zoo_core import validate
from zoo_core.errors import ChecksumError, DownloadError, NotCachedError, ZooError
from zoo_core.hashing import file_digest
from zoo_core.network import silent_tqdm, with_retries
from zoo_core.records import FileRecord, ModelRecord
from zoo_core.settings import Settings
from zoo_core.specs import ModelSpec
from zoo_core.verification import file_state, same_file

__all__ = ["copied_without_network", "fetch_from_url", "model_folder"]


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
    """Where file `name` (as the registry spells it, unquoted) is fetched from."""
    base = spec.source.url or ""
    if not spec.source.files:
        return base
    remote = urlsplit(base).scheme in ("http", "https", "file")
    return f"{base.rstrip('/')}/{quote(name) if remote else name}"


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


def _cached(spec: ModelSpec, name: str, target: Path, known: FileRecord | None) -> FileRecord | None:
    """A record of the cached file if it is what the registry names now, else None (then it is fetched again).

    The file is hashed again unless the record of the last check shows the same file (size and modification
    time) verified against the digest the registry names now.
    """
    stat = target.stat()  # before hashing: a write during the hash shows as a changed file later
    if known is not None and same_file(known, stat) and file_state(known, spec) == "ok":
        return dataclasses.replace(known, path=str(target))
    kind, expected = _pin(spec, name)
    return _record(name, target, kind, expected, None, stat) if file_digest(target, kind) == expected else None


def _pin(spec: ModelSpec, name: str) -> tuple[str, str]:
    """The digest the registry names for a file: ("sha256", hex), or ("sha1", hex) where that is all there is."""
    return ("sha256", spec.sha256[name]) if name in spec.sha256 else ("sha1", spec.sha1[name])


def _record(name: str, target: Path, kind: str, expected: str, sha256: str | None, stat: os.stat_result) -> FileRecord:
    """The record of a file verified against the registry's `kind` digest `expected`; `stat` from before."""
    sha256 = expected if kind == "sha256" else sha256 or file_digest(target)  # the cache checks sha256s
    sha1 = expected if kind == "sha1" else None
    return FileRecord(name, str(target), stat.st_size, sha256, f"registry {kind}", None, stat.st_mtime_ns, sha1)


def _file_location(spec: ModelSpec, name: str) -> str:
    """Where file `name` is copied from: the URL (or local path) of a URL source, the installed copy of a
    distribution's file (found only when it is needed: a verified cached copy serves without it)."""
    if spec.source.package is None:
        return _file_url(spec, name)
    from zoo_core.packages import package_file

    return str(package_file(spec, name))


def _fetch_file(
    spec: ModelSpec,
    folder: Path,
    name: str,
    known: FileRecord | None,
    options: _Options,
) -> FileRecord:
    from filelock import FileLock

    kind, expected = _pin(spec, name)
    target = validate.inside(folder, folder / validate.file_name(name, f"'{spec.name}': source.files"), spec.name)
    partial = target.with_name(target.name + ".incomplete")
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.with_name(target.name + ".lock")):
        cached = _cached(spec, name, target, known) if target.exists() and not options.force else None
        if cached is not None:
            return cached
        url = _file_location(spec, name)
        if options.offline and _local_path(url) is None:  # offline forbids the network, not a local copy
            state = "does not match the registry's digest" if target.exists() else "is not in zoo's cache"
            raise NotCachedError(
                f"'{spec.name}' ({name}) {state} and zoo is offline; run `zoo download {spec.name}` with network, "
                "or bring it with `zoo cache export`/`zoo cache import`"
            )
        for retry in (False, True):  # a wrong digest: start once more from nothing; the old copy stays till then
            streamed = _download_with_retries(url, partial, options)
            actual = (streamed if kind == "sha256" else None) or file_digest(partial, kind)
            if actual == expected:
                partial.replace(target)
                return _record(name, target, kind, expected, streamed, target.stat())
            partial.unlink()
            if retry:
                package = spec.source.package
                fix = f"Reinstall {package} (pip install --force-reinstall {package})" if package else "Check the URL"
                raise ChecksumError(
                    f"'{spec.name}': {name} from {url} has {kind} {actual}, not the registry's "
                    f"{expected}, twice; nothing was kept. {fix}, or the {kind} in the registry entry"
                )
        raise AssertionError("unreachable")


@dataclass(frozen=True)
class _Options:
    offline: bool
    force: bool
    quiet: bool
    attempts: int
    delay: float


def _download_with_retries(url: str, partial: Path, options: _Options) -> str | None:
    """`_transfer` retried on transient faults; the partial file stays, so each try resumes it."""
    try:
        return with_retries(lambda: _transfer(url, partial, options.quiet), options.attempts, options.delay)
    except DownloadError:
        raise
    except Exception as error:
        raise DownloadError(f"downloading {url} failed: {error}") from error


def _file_names(spec: ModelSpec) -> list[str]:
    """The files of a URL or package source: `source.files`, or the last part of the URL."""
    url = spec.source.url or ""
    return list(spec.source.files) or [unquote(Path(urlsplit(url).path).name)]  # "my%20net.pth" is "my net.pth"


def copied_without_network(spec: ModelSpec) -> bool:
    """Whether every file of a URL or package source is on this machine to be copied into zoo's cache: a local
    path that exists, or a file of an installed distribution. Nothing is read or hashed."""
    try:
        places = [_local_path(_file_location(spec, name)) for name in _file_names(spec)]
    except ZooError:  # a distribution that is not installed, or a file it does not list
        return False
    return all(place is not None and place.is_file() for place in places)


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
    """Fetch and verify every file of a URL, local-path or pip-distribution model into zoo's cache.

    `known` is the model's last record, to skip re-hashing files that have not changed; with `force` every
    file is fetched again, and a cached copy is replaced only once the new one is verified.
    """
    url = spec.source.url or ""
    names = _file_names(spec)
    missing = [name for name in names if name not in spec.sha256 and name not in spec.sha1]
    if missing:
        raise DownloadError(
            f'\'{spec.name}\': a URL source needs a sha256 for every file; add sha256 = {{ "{missing[0]}" = "…" }} '
            "to its registry entry"
        )
    origin, source = (url, "url") if spec.source.package is None else (spec.source.package, "package")
    folder = model_folder(settings, spec)
    options = _Options(offline, force, quiet, attempts, delay)
    recorded = {each.name: each for each in known.files} if known else {}
    files = tuple(_fetch_file(spec, folder, name, recorded.get(name), options) for name in names)
    return ModelRecord(spec.name, str(folder), source, origin, None, None, files)
