"""Writing into the caches without trusting them: staging streams, and placing verified files all or nothing.

The hub cache keeps each repo in huggingface_hub's layout::

    models--org--name/
        blobs/<etag>                  the content, named by its digest
        snapshots/<commit>/<file>     a relative link to ../../blobs/<etag>
        refs/<branch>                 the commit the branch pointed at

zoo writes there (and into ``$ZOO_HOME/files/<model>/``) only through `Placement`: every target is
checked with `validate.inside` (no link on the way) before the first file moves, existing snapshot links
and refs are never replaced by other content, files move by atomic rename, and a failure halfway takes
back what was placed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from zoo_core import validate
from zoo_core.errors import UnsafeValueError

__all__ = ["Placement", "check_layout", "linked_blob", "repo_folder", "set_aside", "stage", "write_ref"]

_CHUNK = 1 << 24


def repo_folder(hub_cache: Path, repo: str) -> Path:
    """The folder of a (validated) hub repo in the hub cache."""
    return hub_cache / f"models--{repo.replace('/', '--')}"


def check_layout(hub_cache: Path, repo: str, where: str) -> Path:
    """The repo's folder, once none of its folders is a link planted to lead writes elsewhere."""
    folder = repo_folder(hub_cache, repo)
    for part in (folder, folder / "blobs", folder / "snapshots", folder / "refs"):
        if part.exists() or part.is_symlink():
            validate.inside(hub_cache, part, where)
    return folder


def linked_blob(snapshot_file: Path) -> Path | None:
    """The blob a snapshot file links to, read from the link itself (not resolved), or None if it is no link.

    The blob may in turn link into huggingface_hub's shared store; the snapshot link's own target is what
    names the ETag.
    """
    if not snapshot_file.is_symlink():
        return None
    return Path(os.path.normpath(snapshot_file.parent / snapshot_file.readlink()))


@contextmanager
def set_aside(snapshot_file: Path) -> Iterator[Callable[[], None]]:
    """Keep a hard link to a cached file's content while it is fetched again; yields `restore`, which puts
    the old content (and the snapshot link) back. The spare link is removed when the block ends."""
    blob = linked_blob(snapshot_file)
    content = blob if blob is not None else snapshot_file
    link_text = snapshot_file.readlink() if blob is not None else None
    spare = content.with_name(f".zoo-kept-{content.name}-{os.getpid()}")
    os.link(content, spare, follow_symlinks=False)

    def restore() -> None:
        spare.replace(content)
        if link_text is not None and not snapshot_file.is_symlink():
            snapshot_file.parent.mkdir(parents=True, exist_ok=True)
            snapshot_file.unlink(missing_ok=True)
            snapshot_file.symlink_to(link_text)

    try:
        yield restore
    finally:
        spare.unlink(missing_ok=True)


def write_ref(storage: Path, revision: str, commit: str) -> None:
    """Point branch or tag `revision` of a repo's cache at `commit` (an atomic rename under refs/)."""
    ref = storage / "refs" / revision
    validate.inside(storage / "refs", ref.parent, f"recording {revision} in {storage}")
    ref.parent.mkdir(parents=True, exist_ok=True)
    _write_new(ref, commit)


def stage(stream: IO[bytes], folder: Path, size: int | None = None) -> tuple[Path, str]:
    """Copy `stream` (at most `size` bytes) into a new hidden file in `folder`; returns it and its sha256.

    The caller moves the file into place or deletes it; `zoo cache prune` removes one left by a crash.
    """
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".zoo-staged-", suffix=".incomplete")
    digest, left = hashlib.sha256(), size
    try:
        with os.fdopen(handle, "wb") as out:
            while left != 0 and (chunk := stream.read(_CHUNK if left is None else min(_CHUNK, left))):
                digest.update(chunk)
                out.write(chunk)
                left = None if left is None else left - len(chunk)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Path(temporary), digest.hexdigest()


@dataclass
class Placement:
    """Files and snapshot links to put in place together: all are checked first, then all are placed."""

    where: str  # who asked, for errors: "archive.tar: model 'x'"
    _steps: list[tuple[Path, Callable[[Path], None]]] = field(default_factory=list)
    _targets: set[Path] = field(default_factory=set)
    _files: set[Path] = field(default_factory=set)
    _folders: set[Path] = field(default_factory=set)  # every folder above a target

    def _target(self, root: Path, target: Path) -> Path:
        checked = validate.inside(root, target.parent, self.where) / target.name
        if checked in self._targets or any(parent in self._targets for parent in checked.parents):
            raise UnsafeValueError(f"{self.where}: {target} is placed twice, or inside another placed file")
        if checked in self._folders:
            raise UnsafeValueError(f"{self.where}: {target} would hold another placed file")
        self._targets.add(checked)
        self._folders.update(checked.parents)
        return checked

    def file(self, root: Path, target: Path, staged: Path) -> None:
        """Move `staged` to `target` (under `root`), replacing what is there: use for content-named files.

        A target already planned is left as planned: two files of one content share one blob.
        """
        if validate.inside(root, target.parent, self.where) / target.name in self._files:
            return
        checked = self._target(root, target)
        self._files.add(checked)
        self._steps.append((checked, lambda path: _move(staged, path)))

    def link(self, root: Path, target: Path, blob: Path) -> None:
        """A relative link at `target` to `blob`; an existing link elsewhere (or a file) is refused."""
        checked = self._target(root, target)
        relative = os.path.relpath(blob, checked.parent)
        if checked.is_symlink() and str(checked.readlink()) == relative:
            self._targets.discard(checked)  # already in place
            return
        if checked.exists() or checked.is_symlink():
            raise UnsafeValueError(f"{self.where}: {target} already holds another file; nothing was installed")
        self._steps.append((checked, lambda path: path.symlink_to(relative)))

    def text(self, root: Path, target: Path, content: str) -> None:
        """A small file such as a ref, written only where none exists yet."""
        checked = self._target(root, target)
        if checked.exists() or checked.is_symlink():
            self._targets.discard(checked)
            return
        self._steps.append((checked, lambda path: _write_new(path, content)))

    def commit(self) -> None:
        """Place everything, or, if one step fails, remove what this placement created and re-raise."""
        created: list[Path] = []
        try:
            for target, place in self._steps:
                existed = target.exists() or target.is_symlink()
                target.parent.mkdir(parents=True, exist_ok=True)
                place(target)
                if not existed:
                    created.append(target)
        except BaseException:
            for path in reversed(created):
                path.unlink(missing_ok=True)
            raise


def _move(staged: Path, target: Path) -> None:
    staged.replace(target)


def _write_new(path: Path, content: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".zoo-staged-", suffix=".incomplete")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(content)
    Path(temporary).replace(path)
