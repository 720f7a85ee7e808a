"""Downloading a model's files from a Hugging Face hub (or mirror) into the hub cache, verified.

Files go through `huggingface_hub.hf_hub_download`, so the standard cache, `HF_TOKEN` and the hub's file
locks behave as hub users expect. zoo adds what the client does not do:

- the server's metadata is checked before the client writes anything (`zoo_core.hubheaders`): an ETag or
  commit that is not a digest, or a listed file name that would leave the repo's folder, ends the download;
- every file is checked against the hub's own digest (the ETag: sha256 for LFS files, git's blob sha1 for
  the others) and against the registry's sha256 when the entry pins one — the client accepts a body whose
  bytes do not match its ETag. A mismatching file is deleted (blob and snapshot link) and fetched once
  more, then `ChecksumError`;
- a file cached earlier is taken without hashing only if its blob is unchanged (ETag, size, modification
  time) and its record's sha256 is the digest the registry names now;
- the first file pins the commit, so every file of a model comes from the same commit;
- transient failures (5xx, 429, dropped connections, timeouts) are retried with backoff;
- offline (`HF_HUB_OFFLINE` or ``offline=True``) makes no network call at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from zoo_core import validate
from zoo_core._version import __version__
from zoo_core.errors import ChecksumError, DownloadError, NotCachedError, UnsafeValueError, ZooError
from zoo_core.hashing import GrowingFileHasher, digest_kind, file_digest, matches_etag
from zoo_core.hubheaders import guarded, refused
from zoo_core.network import silent_tqdm, with_retries
from zoo_core.records import FileRecord, ModelRecord
from zoo_core.settings import Settings
from zoo_core.specs import ModelSpec

__all__ = ["fetch_from_hub"]


def _explain(error: BaseException, spec: ModelSpec, filename: str, revision: str, endpoint: str) -> DownloadError:
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    repo = spec.source.hub
    if isinstance(error, RevisionNotFoundError):
        return DownloadError(f"'{spec.name}': revision '{revision}' does not exist in {repo} on {endpoint}")
    if isinstance(error, EntryNotFoundError):
        return DownloadError(
            f"'{spec.name}': file '{filename}' is not in {repo}@{revision} on {endpoint}; "
            "fix source.files in the model's registry entry"
        )
    if isinstance(error, RepositoryNotFoundError):
        return DownloadError(
            f"'{spec.name}': repo {repo} not found on {endpoint} (or it is private or gated: set HF_TOKEN)"
        )
    return DownloadError(f"'{spec.name}': downloading {filename} from {endpoint} failed: {error}")


class _HubFetch:
    """One model's download: the options, and the commit once the first file has pinned it."""

    def __init__(self, spec: ModelSpec, settings: Settings, revision: str | None, offline: bool, force: bool,
                 quiet: bool, known: ModelRecord | None, attempts: int, delay: float) -> None:  # fmt: skip
        assert spec.source.hub is not None
        self.spec, self.settings = spec, settings
        self.repo = validate.repo_id(spec.source.hub, f"'{spec.name}': source.hub")
        self.endpoint = validate.endpoint(spec.source.endpoint or settings.endpoint, f"'{spec.name}': the endpoint")
        self.asked = validate.revision(revision or spec.source.revision or "main", f"'{spec.name}': the revision")
        self.revision = self.asked
        self.offline, self.force = offline, force
        self.tqdm_class = silent_tqdm() if quiet else None
        self.known = {each.name: each for each in known.files} if known and not force else {}
        self.attempts, self.delay = attempts, delay
        self.storage = settings.hub_cache / f"models--{self.repo.replace('/', '--')}"

    def _download(self, filename: str, force: bool) -> Path:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        def call() -> str:
            return hf_hub_download(
                self.repo, filename, revision=self.revision, endpoint=self.endpoint,
                cache_dir=self.settings.hub_cache, local_files_only=self.offline, force_download=force,
                library_name="zoo", library_version=__version__, tqdm_class=self.tqdm_class,
            )  # fmt: skip

        try:
            with guarded(self.spec.name):
                return Path(with_retries(call, self.attempts, self.delay))
        except LocalEntryNotFoundError as error:
            if self.offline:
                raise NotCachedError(
                    f"'{self.spec.name}' ({filename}) is not in the hub cache {self.settings.hub_cache} and zoo is "
                    f"offline; on a machine with network run `zoo download {self.spec.name}` and bring it here with "
                    "`zoo cache export`/`zoo cache import`, or go online (unset HF_HUB_OFFLINE, drop --offline)"
                ) from error
            raise _explain(error.__cause__ or error, self.spec, filename, self.revision, self.endpoint) from error
        except ZooError:
            raise
        except Exception as error:
            raise _explain(error, self.spec, filename, self.revision, self.endpoint) from error

    def _blob(self, path: Path, filename: str) -> Path:
        """The blob behind a snapshot file, once its commit, its place and its name (the ETag) are checked."""
        where = f"'{self.spec.name}': the hub cache's {path}"
        snapshot = path.parents[len(PurePosixPath(filename).parts) - 1]
        self.revision = validate.commit(snapshot.name, f"{where}: snapshot folder")  # pins the rest of the files
        validate.inside(self.storage / "snapshots", path.parent, where)
        blob = validate.inside(self.storage / "blobs", path, where)
        validate.etag(blob.name, f"{where}: blob name")
        return blob

    def file(self, filename: str) -> FileRecord:
        """Download (or find) one file, verify it, and pin the commit it came from."""
        expected = self.spec.sha256.get(filename)
        for attempt in (1, 2):
            hasher = None if self.offline else GrowingFileHasher(self.storage / "blobs")
            path = self._download(filename, force=self.force or attempt == 2)
            blob = self._blob(path, filename)
            streamed = hasher.finish(blob) if hasher else None
            known = self.known.get(filename)
            if attempt == 1 and known is not None and _still_verified(known, blob, expected):
                return dataclasses.replace(known, path=str(path), verified_by=_verified_by(blob.name, expected))
            record = _verify(filename, path, blob, expected, streamed)
            if record is not None:
                return record
            path.unlink(missing_ok=True)
            blob.unlink(missing_ok=True)
            if self.offline:
                raise ChecksumError(
                    f"'{self.spec.name}': the cached {filename} ({blob}) no longer matches its "
                    f"{'registry sha256' if expected else 'hub digest'}, so it was deleted; download it again "
                    f"with network: zoo download {self.spec.name}"
                )
        raise ChecksumError(
            f"'{self.spec.name}': {filename} from {self.repo}@{self.revision} does not match its "
            f"{'registry sha256 ' + expected if expected else 'hub digest ' + blob.name} twice; the file was "
            f"deleted from the cache. The server or a proxy on the way sends other bytes: check {self.endpoint}"
        )


def _verified_by(etag: str, expected: str | None) -> str:
    return "registry sha256" if expected else f"hub {'sha256' if digest_kind(etag) == 'sha256' else 'git sha1'}"


def _still_verified(known: FileRecord, blob: Path, expected: str | None) -> bool:
    """Whether the record of an earlier download still vouches for the file, without hashing it again.

    Only if the blob is the one recorded (same ETag, size and modification time) and the record's sha256 is
    the digest the registry names now (or, for a file the registry does not pin, was checked against the ETag).
    """
    stat = blob.stat()
    same_file = (known.etag, known.size, known.mtime_ns) == (blob.name, stat.st_size, stat.st_mtime_ns)
    checked = known.sha256 == expected if expected else known.verified_by in ("hub sha256", "hub git sha1")
    return same_file and checked


def _verify(filename: str, path: Path, blob: Path, expected: str | None, streamed: str | None) -> FileRecord | None:
    """A record of the file if its bytes are those its ETag names and, if given, the registry's sha256; else None."""
    stat = blob.stat()
    sha256 = streamed or file_digest(blob)
    if streamed and not matches_etag(blob, blob.name, sha256):
        sha256 = file_digest(blob)  # the streamed digest may have read another write: look again
    if not matches_etag(blob, blob.name, sha256) or expected not in (None, sha256):
        return None
    verified_by = _verified_by(blob.name, expected)
    return FileRecord(filename, str(path), stat.st_size, sha256, verified_by, blob.name, stat.st_mtime_ns)


@contextmanager
def _hub_client_offline(offline: bool) -> Iterator[None]:
    """Tell huggingface_hub it is offline, for calls it makes on its own (it reads HF_HUB_OFFLINE once, at
    import; without this it fetches its agent-harness list from the endpoint even when zoo is offline)."""
    if not offline:
        yield
        return
    from huggingface_hub import constants

    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def fetch_from_hub(
    spec: ModelSpec,
    settings: Settings,
    *,
    revision: str | None = None,
    offline: bool = False,
    force: bool = False,
    quiet: bool = False,
    known: ModelRecord | None = None,
    attempts: int = 4,
    delay: float = 0.5,
) -> ModelRecord:
    """Fetch and verify every file of a hub model; `known` is its last record, to skip re-hashing."""
    fetch = _HubFetch(spec, settings, revision, offline, force, quiet, known, attempts, delay)
    with _hub_client_offline(offline):
        names = list(spec.source.files) or _all_files(fetch)
        files = tuple(fetch.file(name) for name in names)
    first = Path(files[0].path)
    folder = first.parents[len(PurePosixPath(files[0].name).parts) - 1]
    return ModelRecord(spec.name, str(folder), "hub", fetch.repo, fetch.asked, folder.name, files)


def _all_files(fetch: _HubFetch) -> list[str]:
    """A spec that names no files takes the whole repo: list it (online) or the cached snapshot (offline)."""
    from huggingface_hub import HfApi

    if fetch.offline:
        return _cached_files(fetch)
    api = HfApi(endpoint=fetch.endpoint, library_name="zoo", library_version=__version__)
    try:
        with guarded(fetch.spec.name):
            listed = with_retries(
                lambda: api.list_repo_files(fetch.repo, revision=fetch.revision), fetch.attempts, fetch.delay
            )
    except ZooError:
        raise
    except Exception as error:
        raise _explain(error, fetch.spec, "(file list)", fetch.revision, fetch.endpoint) from error
    try:
        where = f"'{fetch.spec.name}': the server {fetch.endpoint} listed a file"
        return sorted(validate.file_name(name, where) for name in listed)
    except UnsafeValueError as error:
        raise refused(error) from None


def _cached_files(fetch: _HubFetch) -> list[str]:
    ref = fetch.storage / "refs" / fetch.revision
    commit = ref.read_text().strip() if ref.is_file() else fetch.revision
    snapshot = fetch.storage / "snapshots" / validate.commit(commit, f"'{fetch.spec.name}': the hub cache's {ref}")
    if not snapshot.is_dir():
        raise NotCachedError(f"'{fetch.spec.name}' is not in the hub cache and zoo is offline")
    return sorted(str(path.relative_to(snapshot).as_posix()) for path in snapshot.rglob("*") if not path.is_dir())
