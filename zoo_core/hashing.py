"""Content digests for verifying downloads: sha256, and git's blob sha1 (the hub's ETag for small files).

`GrowingFileHasher` hashes a download while it is being written, on the other core, so that verifying a
large file costs almost nothing after the download ends.
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path

__all__ = ["GrowingFileHasher", "digest_kind", "file_digest", "git_blob_sha1", "matches_etag"]

_CHUNK = 1 << 24
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def git_blob_sha1(path: Path) -> str:
    """The id git gives the file's content: ``sha1("blob <size>\\0" + content)``."""
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size, usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def digest_kind(etag: str) -> str | None:
    """What a hub ETag is: "sha256" (LFS files), "git-sha1" (files in git), or None (unknown)."""
    if _SHA256.match(etag):
        return "sha256"
    if _SHA1.match(etag):
        return "git-sha1"
    return None


def matches_etag(path: Path, etag: str, sha256: str) -> bool:
    """Whether a file (whose sha256 is given) has the content a hub ETag names: its sha256 or git blob sha1.

    An ETag that is neither digest names no content, so nothing matches it.
    """
    kind = digest_kind(etag)
    if kind == "sha256":
        return sha256 == etag
    return kind == "git-sha1" and git_blob_sha1(path) == etag


class GrowingFileHasher:
    """sha256 of the first ``*.incomplete`` file that appears in `folder`, read as it grows.

    Start it before a download begins and call `finish(final_path)` once the download has finished.
    It answers None whenever it cannot vouch for the result (no file appeared, the file was rewound or
    replaced, another download wrote there): the caller then hashes the final file itself.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._before = set(folder.glob("*.incomplete")) if folder.is_dir() else set()
        self._done = threading.Event()
        self._digest = hashlib.sha256()
        self._read = 0
        self._valid = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _find(self) -> Path | None:
        while not self._done.is_set():
            found = set(self._folder.glob("*.incomplete")) - self._before if self._folder.is_dir() else set()
            if len(found) == 1:
                return found.pop()
            if len(found) > 1:
                return None  # two downloads at once: cannot tell which is ours
            self._done.wait(0.005)
        return None

    def _run(self) -> None:
        path = self._find()
        if path is None:
            self._valid = False
            return
        try:
            with path.open("rb") as handle:
                while True:
                    finished = self._done.is_set()  # read once more after the writer has finished
                    chunk = handle.read(_CHUNK)
                    if chunk:
                        self._digest.update(chunk)
                        self._read += len(chunk)
                    elif finished:
                        break
                    else:
                        self._done.wait(0.005)
        except OSError:
            self._valid = False

    def finish(self, final_path: Path) -> str | None:
        """The sha256 of `final_path` if it is the file that was read, else None."""
        self._done.set()
        self._thread.join()
        try:
            complete = final_path.stat().st_size == self._read
        except OSError:
            complete = False
        return self._digest.hexdigest() if self._valid and complete and self._read else None
