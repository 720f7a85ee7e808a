"""Downloading a model's files from a Hugging Face hub (or mirror) into the hub cache, verified.

Files go through `huggingface_hub.hf_hub_download`, so the standard cache, `HF_TOKEN` and the hub's file
locks behave as hub users expect. zoo adds what the client does not do:

- every file is checked against the registry's sha256, else against the hub's own digest (the ETag:
  sha256 for LFS files, git's blob sha1 for the others) — the client accepts a body whose bytes do not
  match its ETag. A mismatching file is deleted (blob and snapshot link) and fetched once more, then
  `ChecksumError`;
- the first file pins the commit, so every file of a model comes from the same commit;
- transient failures (5xx, 429, dropped connections, timeouts) are retried with backoff;
- offline (`HF_HUB_OFFLINE` or ``offline=True``) makes no network call at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from zoo_core._version import __version__
from zoo_core.errors import ChecksumError, DownloadError, NotCachedError
from zoo_core.hashing import GrowingFileHasher, digest_kind, file_digest, git_blob_sha1
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
        self.spec, self.repo, self.settings = spec, spec.source.hub, settings
        self.endpoint = (spec.source.endpoint or settings.endpoint).rstrip("/")
        self.asked = revision or spec.source.revision or "main"
        self.revision = self.asked
        self.offline, self.force = offline, force
        self.tqdm_class = silent_tqdm() if quiet else None
        self.known = {each.name: each for each in known.files} if known and not force else {}
        self.attempts, self.delay = attempts, delay
        self.blobs = settings.hub_cache / f"models--{self.repo.replace('/', '--')}" / "blobs"

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
            return Path(with_retries(call, self.attempts, self.delay))
        except LocalEntryNotFoundError as error:
            if self.offline:
                raise NotCachedError(
                    f"'{self.spec.name}' ({filename}) is not in the hub cache {self.settings.hub_cache} and zoo is "
                    f"offline; on a machine with network run `zoo download {self.spec.name}` and bring it here with "
                    "`zoo cache export`/`zoo cache import`, or go online (unset HF_HUB_OFFLINE, drop --offline)"
                ) from error
            raise _explain(error.__cause__ or error, self.spec, filename, self.revision, self.endpoint) from error
        except Exception as error:
            if isinstance(error, DownloadError):
                raise
            raise _explain(error, self.spec, filename, self.revision, self.endpoint) from error

    def file(self, filename: str) -> FileRecord:
        """Download (or find) one file, verify it, and pin the commit it came from."""
        expected = self.spec.sha256.get(filename)
        for attempt in (1, 2):
            hasher = None if self.offline else GrowingFileHasher(self.blobs)
            path = self._download(filename, force=self.force or attempt == 2)
            blob = path.resolve()
            streamed = hasher.finish(blob) if hasher else None
            self.revision = path.parents[len(PurePosixPath(filename).parts) - 1].name  # the snapshot's commit
            known = self.known.get(filename)
            unchanged = known and known.etag == blob.name and known.size == blob.stat().st_size
            if attempt == 1 and known and unchanged and expected in (None, known.sha256):
                return FileRecord(filename, str(path), known.size, known.sha256, known.verified_by, known.etag)
            record = _verify(filename, path, blob, expected, streamed)
            if record is not None:
                return record
            path.unlink(missing_ok=True)
            blob.unlink(missing_ok=True)
        raise ChecksumError(
            f"'{self.spec.name}': {filename} from {self.repo}@{self.revision} does not match its "
            f"{'registry sha256 ' + expected if expected else 'hub digest ' + blob.name} twice; the file was "
            f"deleted from the cache. The server or a proxy on the way sends other bytes: check {self.endpoint}"
        )


def _verify(filename: str, path: Path, blob: Path, expected: str | None, streamed: str | None) -> FileRecord | None:
    """A record of the file if it matches what was promised, else None."""
    size = blob.stat().st_size
    sha256 = streamed or file_digest(blob)
    if expected is None and digest_kind(blob.name) == "sha256":
        expected = blob.name
        verified_by: str | None = "hub sha256"
    else:
        verified_by = "registry sha256" if expected else None
    if expected is not None:
        if sha256 != expected and streamed:
            sha256 = file_digest(blob)  # the streamed digest may have read another write: look again
        return FileRecord(filename, str(path), size, sha256, verified_by, blob.name) if sha256 == expected else None
    if digest_kind(blob.name) == "git-sha1":
        if git_blob_sha1(blob) != blob.name:
            return None
        verified_by = "hub git sha1"
    return FileRecord(filename, str(path), size, sha256, verified_by, blob.name)


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
        return sorted(with_retries(lambda: api.list_repo_files(fetch.repo, revision=fetch.revision),
                                    fetch.attempts, fetch.delay))  # fmt: skip
    except Exception as error:
        raise _explain(error, fetch.spec, "(file list)", fetch.revision, fetch.endpoint) from error


def _cached_files(fetch: _HubFetch) -> list[str]:
    storage = fetch.settings.hub_cache / f"models--{fetch.repo.replace('/', '--')}"
    ref = storage / "refs" / fetch.revision
    commit = ref.read_text().strip() if ref.is_file() else fetch.revision
    snapshot = storage / "snapshots" / commit
    if not snapshot.is_dir():
        raise NotCachedError(f"'{fetch.spec.name}' is not in the hub cache and zoo is offline")
    return sorted(str(path.relative_to(snapshot).as_posix()) for path in snapshot.rglob("*") if not path.is_dir())
