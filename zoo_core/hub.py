"""Downloading a model's files from a Hugging Face hub (or mirror) into the hub cache, verified.

Files go through `huggingface_hub.hf_hub_download`, so the standard cache, `HF_TOKEN` and the hub's file
locks behave as hub users expect. zoo adds what the client does not do:

- the server's metadata is checked before the client writes anything (`zoo_core.hubclient`): an ETag or
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
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from zoo_core import validate
from zoo_core._version import __version__
from zoo_core.errors import (
    ChecksumError,
    DownloadError,
    NotCachedError,
    UnreachableHubError,
    UnsafeValueError,
    UntrustedServerError,
    ZooError,
)
from zoo_core.hashing import GrowingFileHasher, file_digest, matches_etag
from zoo_core.hubcache import check_layout, linked_blob, set_aside, write_ref
from zoo_core.hubclient import guarded, refused
from zoo_core.network import silent_tqdm, with_retries
from zoo_core.records import FileRecord, ModelRecord, read_records
from zoo_core.settings import Settings
from zoo_core.specs import ModelSpec
from zoo_core.verification import HUB_CHECKS, VERIFIED, etag_label, file_state, same_file

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

    def __init__(
        self,
        spec: ModelSpec,
        settings: Settings,
        revision: str | None,
        offline: bool,
        force: bool,
        quiet: bool,
        known: ModelRecord | None,
        attempts: int,
        delay: float,
    ) -> None:
        assert spec.source.hub is not None
        self.spec, self.settings = spec, settings
        self.repo = validate.repo_id(spec.source.hub, f"'{spec.name}': source.hub")
        default = validate.endpoint(settings.endpoint, "HF_ENDPOINT")  # the client reads it too, at import
        mirror = spec.source.endpoint
        self.endpoint = validate.endpoint(mirror, f"'{spec.name}': source.endpoint") if mirror else default
        self.asked = validate.revision(revision or spec.source.revision or "main", f"'{spec.name}': the revision")
        self.revision = self.asked
        if offline and known is not None and known.commit and known.revision == self.asked:
            self.revision = known.commit  # offline, the commit zoo recorded, not whatever a ref says now
        self.offline, self.force = offline, force
        self.tqdm_class = silent_tqdm() if quiet else None
        self.previous = {each.name: each for each in known.files} if known else {}
        self.previous_commit = known.commit if known and known.revision == self.asked else None
        self.known = self.previous if not force else {}
        self.attempts, self.delay = attempts, delay
        self.storage = check_layout(settings.hub_cache, self.repo, f"'{spec.name}': the hub cache")

    def _download(self, filename: str, force: bool) -> tuple[Path, str | None]:
        """The file's snapshot path, and the ETag the hub sent for it (None when the cache answered alone)."""
        from huggingface_hub import hf_hub_download

        def call() -> str:
            return hf_hub_download(
                self.repo,
                filename,
                revision=self.revision,
                endpoint=self.endpoint,
                cache_dir=self.settings.hub_cache,
                local_files_only=self.offline,
                force_download=force,
                library_name="zoo",
                library_version=__version__,
                tqdm_class=self.tqdm_class,
            )

        with self._explained(filename), guarded(self.spec.name) as guard:
            return Path(with_retries(call, self.attempts, self.delay)), guard.etag

    def _served_etag(self, filename: str) -> str:
        """Ask the hub which ETag it serves for the file at the pinned commit (a HEAD request)."""
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        url = hf_hub_url(self.repo, filename, revision=self.revision, endpoint=self.endpoint)
        with self._explained(filename), guarded(self.spec.name) as guard:
            with_retries(
                lambda: get_hf_file_metadata(url, library_name="zoo", library_version=__version__),
                self.attempts,
                self.delay,
            )
        if guard.etag is None:
            raise UntrustedServerError(f"'{self.spec.name}': the server {self.endpoint} sent no ETag for {filename}")
        return guard.etag

    @contextmanager
    def _explained(self, filename: str) -> Iterator[None]:
        """Turn the client's errors into zoo's one-line errors."""
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            yield
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

    def _located(self, path: Path, filename: str, etag: str | None) -> tuple[Path, str | None]:
        """Where the file's bytes are and its ETag, once its commit, place and link are checked.

        A snapshot file links to ``blobs/<etag>`` (which may itself link into huggingface_hub's shared
        store); in a cache without links it is the file itself, and `etag` (the hub's, or the record's) is used.
        """
        where = f"'{self.spec.name}': the hub cache's {path}"
        snapshot = path.parents[len(PurePosixPath(filename).parts) - 1]
        self.revision = validate.commit(snapshot.name, f"{where}: snapshot folder")  # pins the rest of the files
        validate.inside(self.storage / "snapshots", path.parent, where)
        if not path.is_symlink():
            return path, etag
        blob = Path(os.path.normpath(path.parent / path.readlink()))
        if blob.parent != Path(os.path.normpath(self.storage / "blobs")):
            raise UnsafeValueError(f"{where}: links to {blob}, which is not a blob of {self.repo}")
        validate.etag(blob.name, f"{where}: blob name")
        if not blob.resolve().is_relative_to(self.settings.hub_cache.resolve()):
            raise UnsafeValueError(f"{where}: {blob} leads outside the hub cache {self.settings.hub_cache}")
        return blob, blob.name

    def _forget(self, path: Path, content: Path, etag: str | None, reason: str) -> None:
        """Remove a snapshot file that is not what it should be, and its blob unless another snapshot links to it.

        A file another record verified (against its registry pin or the hub) is kept when its bytes still
        match their ETag: then two sources disagree about one commit, and zoo stops rather than choose.
        """
        records = read_records(self.settings.home).values()
        users = [r.model for r in records if any(f.path == str(path) and f.verified_by in VERIFIED for f in r.files)]
        if users and reason and etag is not None and matches_etag(content, etag, file_digest(content)):
            raise ChecksumError(
                f"'{self.spec.name}': {path.name} of {self.repo}@{self.revision}: {reason}, but the hub cache holds "
                f"a copy with ETag {etag} that '{users[0]}' verified; zoo keeps it (two sources disagree about one "
                f"commit: check this entry's source.endpoint and sha256)"
            )
        path.unlink(missing_ok=True)
        if content != path:
            snapshots = content.parent.parent / "snapshots"
            if not any(linked_blob(other) == content for other in snapshots.rglob("*")):
                content.unlink(missing_ok=True)

    def file(self, filename: str) -> FileRecord:
        """Download (or find) one file, verify it, and pin the commit it came from.

        With `force`, a copy cached before stays until the new one is verified, and comes back if it fails.
        """
        before = self.previous.get(filename)
        if not self.force or before is None or not Path(before.path).exists():
            return self._fetch(filename)
        with set_aside(Path(before.path)) as restore:
            try:
                return self._fetch(filename)
            except ChecksumError as error:
                restore()
                raise ChecksumError(f"{error}; the copy verified before was kept") from None

    def _fetch(self, filename: str) -> FileRecord:
        expected = self.spec.sha256.get(filename)
        known = self.known.get(filename)
        for attempt in (1, 2):
            hasher = None if self.offline else GrowingFileHasher(self.storage / "blobs")
            path, served = self._download(filename, force=self.force or attempt == 2)
            content, etag = self._located(path, filename, served or (known.etag if known else None))
            streamed = hasher.finish(content) if hasher else None
            from_hub = known is not None and known.etag == etag and known.verified_by in HUB_CHECKS
            if served is None and expected is None and not (self.offline or from_hub):
                served = self._served_etag(filename)  # the cache answered alone: is it what the hub serves?
            if served is not None and served != etag:
                self._forget(path, content, etag, f"{self.endpoint} serves ETag {served} for it")
                continue  # it held another file than the hub's for this commit (an archive's, say)
            if attempt == 1 and _reusable(known, etag, content, self.spec):
                assert known is not None
                if served is not None and etag is not None and expected is None:  # the hub vouches for it now
                    known = dataclasses.replace(known, verified_by=etag_label("hub", etag))
                return dataclasses.replace(known, path=str(path))
            source = "hub" if served is not None or from_hub else "cache"
            record = _verify(filename, path, content, etag, expected, streamed, source)
            if record is not None:
                return record
            if self.offline:
                raise ChecksumError(
                    f"'{self.spec.name}': the cached {filename} ({content}) does not match its "
                    f"{'registry sha256' if expected else 'hub digest'}; download it again with network: "
                    f"zoo download {self.spec.name}"
                )
            sha256 = file_digest(content)
            if expected is not None and served is not None and etag is not None and matches_etag(content, etag, sha256):
                self._forget(path, content, etag, "it is not the file the registry pins")
                raise self._moved(filename, expected, sha256)  # a sound file, only not the pinned one
            self._forget(path, content, etag, "it does not match the registry's sha256" if expected else "")
        raise ChecksumError(
            f"'{self.spec.name}': {filename} from {self.repo}@{self.revision} does not match its "
            f"{'registry sha256 ' + expected if expected else 'hub digest'} twice; the file was "
            f"deleted from the cache. The server or a proxy on the way sends other bytes: check {self.endpoint}"
        )

    def _moved(self, filename: str, expected: str, sha256: str) -> ChecksumError:
        """The error for a revision that now holds other weights than the registry pins; the branch's ref
        goes back to the commit verified before, so that copy stays usable offline."""
        earlier, kept = self.previous_commit, ""
        where = f"{filename} of {self.repo}@{self.revision}"
        if earlier and earlier != self.revision and (self.storage / "snapshots" / earlier).is_dir():
            write_ref(self.storage, self.asked, earlier)
            where = f"{self.asked} is now commit {self.revision}, whose {filename}"
            kept = f"; the copy verified at commit {earlier} stays in the cache and works offline"
        return ChecksumError(
            f"'{self.spec.name}': {where} has sha256 {sha256}, not the one the registry pins ({expected}){kept}. "
            "Pin the entry's source.revision to a commit that has it, or update its sha256"
        )


def _reusable(known: FileRecord | None, etag: str | None, content: Path, spec: ModelSpec) -> bool:
    """Whether the record of an earlier look at this very file (same ETag, size and modification time) still
    holds, without hashing it again: not if the registry now pins another digest."""
    if known is None or known.etag != etag or not same_file(known, content.stat()):
        return False
    return file_state(known, spec) in ("ok", "unverified")


def _verify(
    filename: str,
    path: Path,
    content: Path,
    etag: str | None,
    expected: str | None,
    streamed: str | None,
    source: str,
) -> FileRecord | None:
    """A record of the file if its bytes are those its ETag names and, if given, the registry's sha256; else None.

    `source` says where the ETag comes from: "hub" (a server's answer, now or at a recorded download) or
    "cache" (only the blob's name in the local cache): the label tells them apart.
    """
    stat = content.stat()  # before hashing: a write during the hash shows as a changed file later
    sha256 = streamed or file_digest(content)
    if streamed and etag is not None and not matches_etag(content, etag, sha256):
        sha256 = file_digest(content)  # the streamed digest may have read another write: look again
    if (etag is not None and not matches_etag(content, etag, sha256)) or expected not in (None, sha256):
        return None
    label = "registry sha256" if expected else etag_label(source, etag) if etag else None
    return FileRecord(filename, str(path), stat.st_size, sha256, label, etag, stat.st_mtime_ns)


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
    try:
        with _hub_client_offline(offline):
            names = list(spec.source.files) or _all_files(fetch)
            files = tuple(fetch.file(name) for name in names)
    except UnreachableHubError as error:
        if offline or known is None or force:
            raise
        warnings.warn(f"{error}; using the copy of '{spec.name}' in the cache", stacklevel=2)
        return fetch_from_hub(spec, settings, revision=revision, offline=True, quiet=quiet, known=known)
    first = Path(files[0].path)
    folder = first.parents[len(PurePosixPath(files[0].name).parts) - 1]
    return ModelRecord(spec.name, str(folder), "hub", fetch.repo, fetch.asked, folder.name, files)


def _all_files(fetch: _HubFetch) -> list[str]:
    """A spec that names no files takes the whole repo: list it (online) or the cached snapshot (offline)."""
    from huggingface_hub import HfApi

    if fetch.offline:
        return _cached_files(fetch)
    api = HfApi(endpoint=fetch.endpoint, library_name="zoo", library_version=__version__)
    with fetch._explained("(file list)"), guarded(fetch.spec.name):
        listed = with_retries(
            lambda: api.list_repo_files(fetch.repo, revision=fetch.revision), fetch.attempts, fetch.delay
        )
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
