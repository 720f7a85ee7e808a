"""What "verified" means, in one place: the label a file's record carries, and what it vouches for today.

A file is verified only when its bytes were hashed against a digest that is named *now*:

- the sha256 (or sha1) the registry entry pins today (labels ``registry sha256``, ``registry sha1``);
- for a file the registry does not pin, the hub ETag it was served with — a content digest — checked when
  it was downloaded from that hub (``hub sha256``, ``hub git sha1``).

Bytes that only match the digest a cache archive claims (``archive sha256``, ``archive git sha1``) are
consistent, not verified: nothing but the archive vouches for them, until an online download compares
them with the hub. A record checked against a digest the registry no longer names is *stale*.
`zoo download`, `zoo cache list` and `zoo cache verify` all ask `file_state`.
"""

from __future__ import annotations

import os
from pathlib import Path

from zoo_core.records import FileRecord, ModelRecord
from zoo_core.specs import ModelSpec

__all__ = ["HUB_CHECKS", "VERIFIED", "etag_label", "file_state", "is_verified", "same_file", "unchanged"]

HUB_CHECKS = ("hub sha256", "hub git sha1")
VERIFIED = ("registry sha256", "registry sha1", *HUB_CHECKS)  # labels of bytes checked against a digest named now


def etag_label(source: str, etag: str) -> str:
    """The label for bytes that match a content-digest ETag given by `source` ("hub" or "archive")."""
    return f"{source} {'sha256' if len(etag) == 64 else 'git sha1'}"


def file_state(file: FileRecord, spec: ModelSpec | None) -> str:
    """What a file's record vouches for today, without reading the file.

    "ok" (verified against the digest named now), "stale" (the registry pins another digest), "unhashed"
    (the registry pins a digest this record never computed: hash it again) or "unverified".
    """
    if spec is not None and file.name in spec.sha256:
        return "ok" if file.sha256 == spec.sha256[file.name] else "stale"
    if spec is not None and file.name in spec.sha1:
        if file.sha1 is None:
            return "unhashed"
        return "ok" if file.sha1 == spec.sha1[file.name] else "stale"
    return "ok" if file.verified_by in HUB_CHECKS and file.etag else "unverified"


def is_verified(record: ModelRecord, spec: ModelSpec | None) -> bool:
    return all(file_state(file, spec) == "ok" for file in record.files)


def same_file(file: FileRecord, stat: os.stat_result) -> bool:
    """Whether `stat` shows the file as it was when its record was made (size and modification time)."""
    return (file.size, file.mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def unchanged(file: FileRecord, path: Path) -> bool:
    """Whether the file at `path` is there and unchanged since its record was made."""
    try:
        return same_file(file, path.stat())
    except OSError:
        return False
