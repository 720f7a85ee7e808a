"""`zoo import DIR`: a local folder of model files (a repo's layout) into the hub cache, for offline use.

Only the folder's own regular files are imported: symbolic links are skipped (saying so), and a file the
entry names that is a link, a pipe or leads out of the folder is refused. Files are staged, hashed, and
placed together (`zoo_core.hubcache.Placement`). The snapshot gets a commit id made from the files'
digests; no branch ref is written, so what ``main`` means in the shared hub cache is left to the hub —
zoo finds the files through its record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from pathlib import Path, PurePosixPath

from zoo_core import validate
from zoo_core.catalogue import Catalogue
from zoo_core.catalogue_sources import reset_catalogue
from zoo_core.errors import ChecksumError, DownloadError, ModelNotFoundError, UnsafeValueError
from zoo_core.hashing import git_blob_sha1
from zoo_core.hubcache import Placement, check_layout, stage
from zoo_core.records import FileRecord, ModelRecord, write_record
from zoo_core.settings import Settings
from zoo_core.specs import ModelSpec, Source
from zoo_core.user_registry import add_to_user_registry

__all__ = ["import_folder"]

_LFS_SIZE = 10 << 20  # the hub keeps files this large (and weights of any size) in LFS: ETag = sha256
_LFS_SUFFIXES = (".safetensors", ".bin", ".onnx", ".pth", ".pt", ".h5", ".msgpack", ".caffemodel", ".npy")


def _etag(name: str, staged: Path, sha256: str) -> str:
    """The ETag the hub would give file `name` (staged here): sha256 for LFS files, git's blob sha1 for the rest."""
    lfs = PurePosixPath(name).suffix in _LFS_SUFFIXES or staged.stat().st_size >= _LFS_SIZE
    return sha256 if lfs else git_blob_sha1(staged)


def _folder_files(folder: Path) -> list[str]:
    """The regular files under `folder`, relative to it; hidden ones are left out, links and others skipped."""
    found, skipped = [], []
    for top, folders, files in os.walk(folder):
        base = Path(top)
        folders[:] = [each for each in folders if not each.startswith(".")]
        skipped += [base / each for each in folders if (base / each).is_symlink()]
        for each in files:
            path = base / each
            name = path.relative_to(folder).as_posix()
            if path.is_symlink() or not path.is_file() or not name.isprintable():
                skipped.append(path)
            elif not each.startswith("."):
                found.append(name)
    if skipped:
        first = repr(str(skipped[0]))
        warnings.warn(
            f"{folder}: skipped {len(skipped)} symbolic link(s), special or unprintably named file(s) ({first}); "
            "zoo imports only the folder's own regular files",
            stacklevel=3,
        )
    return sorted(found)


def _entry(
    catalogue: Catalogue, folder: Path, name: str, like: str | None, present: list[str]
) -> tuple[ModelSpec, bool]:
    """The catalogue's entry for `name`, or a new one copied from `like`; and whether it is new."""
    if name in catalogue:
        return catalogue.get(name), False
    if like is None:
        raise ModelNotFoundError(
            f"no model named '{name}' in the catalogue; name one it knows, or add --like MODEL to make a new "
            "entry from an existing one"
        )
    name = validate.model_name(name, "--name")
    base = catalogue.get(like)
    repo = validate.repo_id(f"local/{name}", f"--name {name!r} as a repo id")
    source = Source(hub=repo, files=tuple(present))
    description = f"{base.description or base.name}, imported from {folder}"
    new = dataclasses.replace(base, name=name, aliases=(), sha256={}, sha1={}, origin="", source=source)
    return dataclasses.replace(new, description=description), True


def _staged(folder: Path, name: str, blobs: Path) -> tuple[Path, str]:
    """A copy of one file of the folder, staged in the hub cache; refused if it is not the folder's own file."""
    path = folder / name
    try:
        validate.inside(folder, path, f"{folder}: {name}")
    except UnsafeValueError:
        raise DownloadError(
            f"{path}: a symbolic link, or it leads out of the folder; import its target instead"
        ) from None
    if not path.is_file():
        raise DownloadError(f"{path}: not a regular file; zoo imports only the folder's own regular files")
    with path.open("rb") as stream:
        return stage(stream, blobs)


def import_folder(
    settings: Settings, catalogue: Catalogue, folder: Path, name: str, like: str | None = None
) -> ModelRecord:
    """Add a local folder in hub layout (a repo's files) to the hub cache as model `name`.

    `name` is a catalogue model whose files the folder holds, or a new name: then `like` names the
    catalogue model to copy the entry from (plugin, arch, input), and the new entry joins the user's
    registry with the folder's files and their sha256s.
    """
    if not folder.is_dir():
        raise DownloadError(f"{folder}: not a folder")
    present = _folder_files(folder)
    spec, new = _entry(catalogue, folder, name, like, present)
    name = spec.name  # the catalogue's spelling, not the one typed
    if spec.source.hub is None:
        raise DownloadError(f"'{name}' comes from a URL, not a hub; `zoo import` fills the hub cache")
    names = [validate.file_name(each, f"'{name}': source.files") for each in spec.source.files or present]
    absent = [each for each in names if not (folder / each).exists() and not (folder / each).is_symlink()]
    if absent:
        raise DownloadError(f"{folder}: '{name}' needs {absent[0]}, which is not in the folder")
    storage = check_layout(settings.hub_cache, spec.source.hub, f"'{name}': the hub cache")
    revision = validate.revision(spec.source.revision or "main", f"'{name}': source.revision")
    staged: dict[str, tuple[Path, str]] = {}
    try:
        for each in names:
            staged[each] = _staged(folder, each, storage / "blobs")
            expected = spec.sha256.get(each)
            if expected and expected != staged[each][1]:
                raise ChecksumError(f"{folder / each}: sha256 {staged[each][1]} is not the registry's {expected}")
        listing = "".join(f"{each} {staged[each][1]}\n" for each in names)
        pseudo_commit = hashlib.sha1(listing.encode(), usedforsecurity=False).hexdigest()  # stable per content
        commit = revision if validate.is_commit(revision) else pseudo_commit
        snapshot = storage / "snapshots" / commit
        placement = Placement(f"importing {folder} as '{name}'")
        files = []
        for each in names:
            path, sha256 = staged[each]
            etag = _etag(each, path, sha256)
            stat = path.stat()
            placement.file(storage, storage / "blobs" / etag, path)
            placement.link(storage, snapshot / each, storage / "blobs" / etag)
            verified = "registry sha256" if new or spec.sha256.get(each) else None  # a new entry records these
            files.append(FileRecord(each, str(snapshot / each), stat.st_size, sha256, verified, etag, stat.st_mtime_ns))
        placement.commit()
    finally:
        for path, _ in staged.values():
            path.unlink(missing_ok=True)
    if new:
        add_to_user_registry(settings.home, dataclasses.replace(spec, sha256={e: staged[e][1] for e in names}))
        reset_catalogue()  # the next lookup sees the new entry
    record = ModelRecord(name, str(snapshot), "hub", spec.source.hub, revision, commit, tuple(files))
    write_record(settings.home, record)
    return record
