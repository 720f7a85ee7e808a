"""The trust boundary: every value from outside zoo passes here before it becomes a path, a name or a claim.

Registry fields, hub response headers, cache-archive manifests and file names are hostile until checked.
Each kind has one function that returns the value when it is well-formed and raises `UnsafeValueError`
otherwise; `where` says who supplied the value and in which field ("archive.tar: model 'x': field
'record.commit'"), so the one-line error names the culprit. `inside` is the last step before a write:
the path, resolved, must stay under its root.

| kind       | accepted                                                                   |
|------------|----------------------------------------------------------------------------|
| model name | letters, digits and ``. _ - / +``; each ``/`` part starts with a letter or digit, no ``--`` |
| repo id    | ``name`` or ``org/name`` as the hub allows (no ``--``, no ``..``, 96 chars)  |
| revision   | a 40-hex commit, or a branch or tag under git's ref-name rules              |
| commit     | 40 lowercase hex digits                                                    |
| etag       | 40 (git blob sha1) or 64 (sha256) lowercase hex digits                     |
| digest     | a sha256 (64) or sha1 (40) in hex                                          |
| file name  | a relative POSIX path: no ``..``, ``.``, empty or over-long parts, no ``\\``, no control characters |
| endpoint   | an ``http(s)://host[:port][/path]`` URL                                    |
| distribution | a pip distribution name (PEP 508: letters, digits, ``. _ -``, alphanumeric at both ends) |
| package file | a file the installed distribution lists (its RECORD), inside its folder, no link on the way |
| archive member | a regular file (no link, folder or device) of the size the manifest gives |
"""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Collection
from pathlib import Path
from urllib.parse import urlsplit

from zoo_core.errors import UnsafeValueError

__all__ = [
    "MAX_NAME_LENGTH",
    "archive_member",
    "commit",
    "digest",
    "distribution_name",
    "endpoint",
    "etag",
    "file_name",
    "inside",
    "is_commit",
    "model_name",
    "package_file",
    "path_part",
    "repo_id",
    "revision",
]

MAX_NAME_LENGTH = 200  # a model name becomes a file name ("<name>.json") and folder names with suffixes
_MAX_PART_BYTES = 255  # the longest file name common file systems allow
_MAX_PATH_LENGTH = 1024
_NAME_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._+-]*[A-Za-z0-9_+])?")
_REPO_ID = re.compile(r"(?:[\w.-]+/)?[\w.-]+", re.ASCII)
_COMMIT = re.compile(r"[0-9a-f]{40}")
_ETAG = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_DIGEST_LENGTH = {"sha256": 64, "sha1": 40}
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_DRIVE = re.compile(r"[A-Za-z]:")
_DISTRIBUTION = re.compile(r"[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]")  # PEP 508's name


def _refuse(where: str, value: object, problem: str) -> UnsafeValueError:
    return UnsafeValueError(f"{where}: {_shown(value)} {problem}")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _text(value: object, where: str, what: str) -> str:
    if not isinstance(value, str):
        raise _refuse(where, value, f"is not {what}")
    return value


def model_name(value: object, where: str) -> str:
    """A catalogue name or alias: it names records, folders and archive members."""
    name = _text(value, where, "a model name")
    if len(name) > MAX_NAME_LENGTH:
        raise _refuse(where, name, f"is longer than {MAX_NAME_LENGTH} characters; choose a shorter name")
    # each part starts with a letter or digit and does not end in - or ., and no "--": then the folder
    # name that `path_part` makes ("/" -> "--") belongs to this one name
    if "--" in name or not all(_NAME_PART.fullmatch(part) for part in name.split("/")):
        problem = "is not a model name: use letters, digits and . _ - + between '/'s, each part starting with a"
        raise _refuse(where, name, f"{problem} letter or digit, not ending in - or ., and no '--'")
    return name


def repo_id(value: object, where: str) -> str:
    """A hub repo id, by the hub's own rules: it becomes the cache folder ``models--org--name``."""
    repo = _text(value, where, "a repo id")
    if len(repo) > 96 or not _REPO_ID.fullmatch(repo) or "--" in repo or ".." in repo:
        raise _refuse(where, repo, "is not a hub repo id: use 'name' or 'org/name' (letters, digits, - _ .)")
    if any(part.startswith(("-", ".")) or part.endswith(("-", ".")) for part in repo.split("/")):
        raise _refuse(where, repo, "is not a hub repo id: a part may not start or end with - or .")
    return repo


def _matching(value: object, where: str, pattern: re.Pattern[str], what: str, expected: str) -> str:
    text = _text(value, where, what)
    if not pattern.fullmatch(text):
        raise _refuse(where, text, f"is not {what}: expected {expected}")
    return text


def commit(value: object, where: str) -> str:
    """A git commit id: it names a snapshot folder."""
    return _matching(value, where, _COMMIT, "a commit", "40 lowercase hex digits")


def is_commit(value: str) -> bool:
    """Whether a (validated) revision is a commit id rather than a branch or tag."""
    return bool(_COMMIT.fullmatch(value))


def revision(value: object, where: str) -> str:
    """A commit, branch or tag (git's check-ref-format rules): it names a file under ``refs/``."""
    text = _text(value, where, "a revision")
    problem = None
    if not text or len(text) > _MAX_PART_BYTES:
        problem = f"must have 1 to {_MAX_PART_BYTES} characters"
    elif _REF_FORBIDDEN.search(text):
        problem = "holds a space, a control character or one of ~ ^ : ? * [ \\"
    elif ".." in text or "@{" in text or text == "@" or text.endswith("."):
        problem = "holds '..' or '@{', is '@', or ends with '.'"
    elif any(not part or part.startswith(".") or part.endswith(".lock") for part in text.split("/")):
        problem = "has an empty part, a part starting with '.' or ending with '.lock'"
    if problem:
        raise _refuse(where, text, f"is not a revision ({problem}); use a branch, a tag or a 40-hex commit")
    return text


def etag(value: object, where: str) -> str:
    """A hub ETag: the file's sha256 (LFS) or git blob sha1; it names the blob in the hub cache."""
    return _matching(value, where, _ETAG, "a hub ETag", "40 or 64 lowercase hex digits (a content digest)")


def digest(value: object, where: str, kind: str = "sha256") -> str:
    """A sha256 or sha1 in hex, lower-cased."""
    length = _DIGEST_LENGTH[kind]
    pattern = re.compile(f"[0-9a-fA-F]{{{length}}}")
    return _matching(value, where, pattern, f"a {kind}", f"{length} hexadecimal characters").lower()


def file_name(value: object, where: str) -> str:
    """A file of a model, relative to the model's folder; it must stay inside that folder."""
    name = _text(value, where, "a file name")
    parts = name.split("/")
    if (
        not name
        or len(name) > _MAX_PATH_LENGTH
        or name.startswith("/")
        or "\\" in name
        or _DRIVE.match(name)
        or not name.isprintable()
        or any(part in ("", ".", "..") or len(part.encode()) > _MAX_PART_BYTES for part in parts)
    ):
        problem = "is not a safe file name: give a path relative to the model's folder, without '..', '.', "
        raise _refuse(where, name, problem + "empty parts, backslashes or control characters")
    return name


def endpoint(value: object, where: str) -> str:
    """A hub or mirror URL, without its trailing slash."""
    text = _text(value, where, "a URL")
    if not text.isascii() or not text.isprintable() or " " in text:
        raise _refuse(where, text, "is not a hub URL: it holds spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(text)
        valid = parts.scheme in ("http", "https") and parts.hostname and not (parts.query or parts.fragment)
        parts.port  # noqa: B018  (raises for a port out of range)
    except ValueError:
        valid = False
    if valid and (parts.username or parts.password):
        raise _refuse(
            where,
            "<a URL with credentials>",
            "is not a hub URL zoo accepts: it holds a user or password (use HF_TOKEN)",
        )
    if not valid:
        raise _refuse(where, text, "is not a hub URL: expected http(s)://host[:port][/path]")
    return text.rstrip("/")


def distribution_name(value: object, where: str) -> str:
    """A pip distribution's name (PEP 508), as given: `importlib.metadata` compares names PEP 503-normalised."""
    name = _text(value, where, "a distribution name")
    if len(name) > _MAX_PART_BYTES or not _DISTRIBUTION.fullmatch(name):
        problem = "is not a pip distribution name: use letters, digits and . _ -, starting and ending with a"
        raise _refuse(where, name, f"{problem} letter or digit (the name you would give to pip install)")
    return name


def package_file(listed: Collection[str], root: Path, name: str, where: str) -> Path:
    """File `name` of an installed distribution, resolved: one its RECORD lists (`listed`), under `root`
    (where its files are installed), with no symbolic link on the way — a link out of it is refused."""
    file_name(name, where)
    if name not in listed:
        raise UnsafeValueError(f"{where}: {name} is not a file of the installed distribution (not in its RECORD)")
    return inside(root, root / name, where)


def archive_member(member: tarfile.TarInfo, size: int, where: str) -> tarfile.TarInfo:
    """A tar member to be copied: a regular file of exactly `size` bytes (checked before a byte is read).

    Links and devices are refused rather than followed; the size check stops a compression bomb early.
    """
    if not member.isreg():
        raise UnsafeValueError(f"{where}: member {member.name} is a link or a folder, not a file")
    if member.size != size:
        raise UnsafeValueError(f"{where}: member {member.name} is {member.size} bytes, the manifest says {size}")
    return member


def path_part(name: str) -> str:
    """A (validated) model name as one folder or file name: ``/`` becomes ``--``."""
    return name.replace("/", "--")


def inside(root: Path, path: Path, where: str) -> Path:
    """`path`, resolved, if it is under `root` with no symbolic link on the way; the check before a write.

    `root` itself may be a link (a cache moved to another disk); a link between `root` and `path` — a
    folder planted in the cache, or `path` itself — is refused, so a write cannot be redirected.
    Write to the result with an atomic rename: a rename replaces a link rather than following it.
    """
    relative = Path(os.path.relpath(path, root))  # lexical: links are not followed here
    expected = root.resolve() / relative
    if relative.parts[:1] == ("..",) or path.resolve() != expected:
        raise UnsafeValueError(f"{where}: {path} leads outside {root} or through a symbolic link; refused")
    return expected
