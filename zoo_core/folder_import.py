"""Moving models between machines without a network: cache archives, and importing a local folder.

An archive is a tar file: ``manifest.json`` (each model's registry entry and its record, sha256s
included) and ``files/<model>/<file>``. Hub models are installed into the hub cache in the hub's own
layout (``blobs/<etag>``, ``snapshots/<commit>/<file>``, ``refs/<revision>``), so `huggingface_hub` and
zoo find them offline exactly as if they had been downloaded.

An archive is hostile until checked. Every manifest value passes `zoo_core.validate` before it becomes a
path; a member must be a regular file of the size the manifest gives (checked before a byte is written,
and the copy stops there); its bytes must match the hub ETag it is filed under — a content digest,
whatever sha256 the manifest claims — and the registry's digest when the catalogue pins one. For a model
the catalogue knows, the catalogue's entry is used, never the archive's. Files are staged, verified, and
only then moved into place, each path checked to stay under its cache: a model installs whole or not at all.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any

from zoo_core import validate
from zoo_core._version import __version__
from zoo_core.catalogue import Catalogue
from zoo_core.errors import (
    ArchiveError,
    ChecksumError,
    DownloadError,
    ModelNotFoundError,
    RegistryError,
    UnsafeValueError,
)
from zoo_core.hashing import file_digest, git_blob_sha1, matches_etag
from zoo_core.records import FileRecord, ModelRecord, read_records, write_record
from zoo_core.registry import parse_spec
from zoo_core.settings import Settings
from zoo_core.specs import ModelSpec, Source
from zoo_core.urls import model_folder
from zoo_core.user_registry import add_to_user_registry

__all__ = ["export_archive", "import_archive", "import_folder"]

_MANIFEST = "manifest.json"
_MANIFEST_LIMIT = 64 << 20  # a manifest is a few kB per model
_CHUNK = 1 << 24
_LFS_SIZE = 10 << 20  # the hub keeps files this large (and weights of any size) in LFS: ETag = sha256
_LFS_SUFFIXES = (".safetensors", ".bin", ".onnx", ".pth", ".pt", ".h5", ".msgpack", ".caffemodel", ".npy")
_UNREADABLE = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


@contextmanager
def _atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """A file that appears at `path` only if the block finishes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
        Path(temporary).replace(path)
    finally:
        Path(temporary).unlink(missing_ok=True)


class _HashingReader:
    """Reads a file for `tarfile` and hashes what it reads."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.digest = handle, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        return data


def _cache_root(settings: Settings, source: str) -> Path:
    return settings.hub_cache if source == "hub" else settings.home / "files"


def _add_cached_file(tar: tarfile.TarFile, settings: Settings, record: ModelRecord, file: FileRecord) -> None:
    """Add one cached file, hashed as it is read: a file that changed since it was verified stops the export."""
    where = f"'{record.model}': the record of {file.name}"
    path = validate.inside(_cache_root(settings, record.source), Path(file.path), where)
    with path.open("rb") as handle:
        info = tar.gettarinfo(arcname=f"files/{record.model}/{file.name}", fileobj=handle)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        reader = _HashingReader(handle)
        tar.addfile(info, reader)  # tarfile only calls read()
    if info.size != file.size or reader.digest.hexdigest() != file.sha256:
        raise ChecksumError(
            f"{path}: '{record.model}' {file.name} changed since it was verified; no archive was written. "
            f"Fix: zoo download {record.model} --force"
        )


def export_archive(settings: Settings, catalogue: Catalogue, archive: Path, names: Sequence[str] = ()) -> list[str]:
    """Write the named (default: all) cached models into one archive; returns the model names."""
    records = read_records(settings.home)
    missing = [name for name in names if name not in records]
    if missing:
        raise ModelNotFoundError(f"'{missing[0]}' is not in the cache; run `zoo download {missing[0]}` first")
    chosen = [records[name] for name in names] if names else list(records.values())
    manifest = {
        "zoo": __version__,
        "models": [{"spec": catalogue.get(each.model).to_entry(), "record": each.to_dict()} for each in chosen],
    }
    with _atomic_output(archive) as out, tarfile.open(fileobj=out, mode="w") as tar:
        data = json.dumps(manifest, indent=2).encode()
        info = tarfile.TarInfo(_MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for record in chosen:
            for file in record.files:
                _add_cached_file(tar, settings, record, file)
    return [record.model for record in chosen]


# --- reading an archive: everything is checked before it is used --------------------------------------


def _member(tar: tarfile.TarFile, name: str, size: int | None, where: str) -> tarfile.TarInfo:
    """The member `name`, a regular file of `size` bytes (`validate.archive_member`), or a manifest's size."""
    try:
        member = tar.getmember(name)
    except KeyError:
        raise ArchiveError(f"{where}: the archive has no member {name}") from None
    if size is None and member.size > _MANIFEST_LIMIT:
        raise ArchiveError(f"{where}: member {name} is {member.size} bytes, more than a manifest can be")
    return validate.archive_member(member, member.size if size is None else size, where)


def _manifest(tar: tarfile.TarFile, archive: Path) -> list[Any]:
    stream = tar.extractfile(_member(tar, _MANIFEST, None, str(archive)))
    try:
        manifest = json.load(stream or io.BytesIO())
    except (ValueError, UnicodeDecodeError) as error:
        raise ArchiveError(f"{archive}: {_MANIFEST} is not JSON ({error}); not a zoo cache archive") from None
    models = manifest.get("models") if isinstance(manifest, dict) else None
    if not isinstance(models, list):
        raise ArchiveError(f"{archive}: {_MANIFEST} has no 'models' list; not a zoo cache archive")
    return models


def _field(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ArchiveError(f"{where}: field '{key}' is {repr(value)[:80]}, which is not valid")
    return value


def _checked_file(data: object, spec: ModelSpec, hub: bool, where: str) -> FileRecord:
    """One file of a manifest record, every field validated; `path` is left empty (it is not trusted)."""
    if not isinstance(data, dict):
        raise ArchiveError(f"{where}: expected a table")
    name = validate.file_name(data.get("name"), f"{where}: field 'name'")
    if spec.source.files and name not in spec.source.files:
        raise ArchiveError(f"{where}: file {name!r} is not one of the entry's source.files")
    size = _field(data, "size", int, where)
    if size < 0:
        raise ArchiveError(f"{where}: field 'size' is negative")
    sha256 = validate.digest(data.get("sha256"), f"{where}: field 'sha256'")
    etag = validate.etag(data.get("etag"), f"{where}: field 'etag'") if hub else None
    return FileRecord(name, "", size, sha256, None, etag)


def _checked_record(data: object, spec: ModelSpec, where: str) -> ModelRecord:
    """The manifest's record of `spec`, validated field by field against the entry zoo trusts."""
    if not isinstance(data, dict):
        raise ArchiveError(f"{where}: field 'record' is not a table")
    hub = spec.source.hub is not None
    if data.get("model") != spec.name or data.get("source") != ("hub" if hub else "url"):
        raise ArchiveError(f"{where}: the record is not of {spec.name} from a {'hub' if hub else 'URL'} source")
    if hub and data.get("repo") != spec.source.hub:
        raise ArchiveError(f"{where}: the record is of repo {data.get('repo')!r}, the entry names {spec.source.hub}")
    revision = data.get("revision")
    revision = None if revision is None else validate.revision(revision, f"{where}: field 'record.revision'")
    commit = validate.commit(data.get("commit"), f"{where}: field 'record.commit'") if hub else None
    files = _field(data, "files", list, where)
    checked = [_checked_file(each, spec, hub, f"{where}: record.files[{i}]") for i, each in enumerate(files)]
    names = [each.name for each in checked]
    if not checked or len(set(names)) != len(names):
        raise ArchiveError(f"{where}: the record lists no file, or one file twice")
    origin = spec.source.hub or spec.source.url
    return ModelRecord(spec.name, "", data["source"], origin, revision, commit, tuple(checked))


def _checked_entry(entry: object, catalogue: Catalogue, where: str) -> tuple[ModelSpec, ModelRecord, bool]:
    """The spec zoo trusts for an archive entry, its validated record, and whether the model is new."""
    if not isinstance(entry, dict) or not isinstance(entry.get("spec"), dict):
        raise ArchiveError(f"{where}: expected a table with 'spec' and 'record'")
    offered = parse_spec(entry["spec"], where)
    if offered.name not in catalogue:
        return offered, _checked_record(entry.get("record"), offered, f"{where}: model '{offered.name}'"), True
    spec = catalogue.get(offered.name)  # a known model keeps the catalogue's entry, never the archive's
    if spec.name != offered.name:
        raise ArchiveError(f"{where}: '{offered.name}' is the catalogue's {spec.name}; an archive cannot take a name")
    return spec, _checked_record(entry.get("record"), spec, f"{where}: model '{spec.name}'"), False


def _stage(tar: tarfile.TarFile, member: tarfile.TarInfo, folder: Path) -> tuple[Path, str]:
    """Copy a member into a temporary file in `folder`, never past its size; returns it and its sha256."""
    stream = tar.extractfile(member)
    assert stream is not None  # a regular file, checked by _member
    if shutil.disk_usage(folder).free < member.size:
        raise ArchiveError(f"{folder}: not enough free space for {member.name} ({member.size} bytes)")
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".zoo-import-", suffix=".incomplete")
    digest, left = hashlib.sha256(), member.size
    with os.fdopen(handle, "wb") as out:
        while left and (chunk := stream.read(min(_CHUNK, left))):
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return Path(temporary), digest.hexdigest()


def _verified_file(spec: ModelSpec, file: FileRecord, staged: Path, sha256: str, where: str) -> FileRecord:
    """The file's record once its bytes match the manifest, its hub ETag, and the registry's pin."""
    problem = None
    if sha256 != file.sha256:
        problem = f"has sha256 {sha256}, the manifest says {file.sha256}"
    elif file.etag is not None and not matches_etag(staged, file.etag, sha256):
        problem = f"does not have the content its hub ETag {file.etag} names"
    elif spec.sha256.get(file.name) not in (None, sha256):
        problem = f"has sha256 {sha256}, the registry pins {spec.sha256[file.name]}"
    elif file.name in spec.sha1 and file_digest(staged, "sha1") != spec.sha1[file.name]:
        problem = f"does not have the sha1 the registry pins, {spec.sha1[file.name]}"
    elif file.etag is None and file.name not in spec.sha256 and file.name not in spec.sha1:
        problem = "has no digest to be checked against (a URL model's entry must pin a sha256)"
    if problem:
        raise ChecksumError(f"{where}: {spec.name}/{file.name} {problem}; nothing of '{spec.name}' was installed")
    if file.name in spec.sha256:
        return dataclasses.replace(file, verified_by="registry sha256")
    if file.name in spec.sha1:
        return dataclasses.replace(file, verified_by="registry sha1", sha1=spec.sha1[file.name])
    assert file.etag is not None
    return dataclasses.replace(file, verified_by="hub sha256" if len(file.etag) == 64 else "hub git sha1")


def _hub_storage(settings: Settings, repo: str) -> Path:
    return settings.hub_cache / f"models--{repo.replace('/', '--')}"


def _place(staged: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staged.replace(target)


def _install_hub_file(storage: Path, commit: str, name: str, staged: Path, etag: str) -> Path:
    """Put a verified file into the hub cache layout and return its snapshot path."""
    where = f"installing {name} into {storage}"
    blob = validate.inside(storage / "blobs", storage / "blobs" / etag, where)
    link = storage / "snapshots" / commit / name
    validate.inside(storage / "snapshots", link.parent, where)
    _place(staged, blob)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    return link


def _set_ref(storage: Path, revision: str | None, commit: str) -> None:
    if revision and revision != commit:
        ref = validate.inside(storage / "refs", storage / "refs" / revision, f"recording revision {revision}")
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)


def _install(settings: Settings, spec: ModelSpec, record: ModelRecord, staged: dict[str, Path]) -> ModelRecord:
    """Move staged, verified files into the right cache and return the record of where they now are."""
    files = []
    if record.source == "hub" and spec.source.hub and record.commit:
        storage = _hub_storage(settings, spec.source.hub)
        for file in record.files:
            assert file.etag is not None
            link = _install_hub_file(storage, record.commit, file.name, staged[file.name], file.etag)
            files.append(dataclasses.replace(file, path=str(link), mtime_ns=link.stat().st_mtime_ns))
        _set_ref(storage, record.revision, record.commit)
        folder = storage / "snapshots" / record.commit
    else:
        folder = model_folder(settings, spec)
        for file in record.files:
            target = validate.inside(folder, folder / file.name, f"installing '{spec.name}'")
            _place(staged[file.name], target)
            files.append(dataclasses.replace(file, path=str(target), mtime_ns=target.stat().st_mtime_ns))
    return dataclasses.replace(record, folder=str(folder), files=tuple(files))


def _import_model(settings: Settings, tar: tarfile.TarFile, spec: ModelSpec, record: ModelRecord, where: str) -> None:
    """Stage every file of one model, verify it, then install them all; on any failure nothing stays."""
    root = _cache_root(settings, record.source)
    root.mkdir(parents=True, exist_ok=True)
    members = {file.name: _member(tar, f"files/{spec.name}/{file.name}", file.size, where) for file in record.files}
    staged: dict[str, Path] = {}
    try:
        verified = []
        for file in record.files:
            staged[file.name], sha256 = _stage(tar, members[file.name], root)
            verified.append(_verified_file(spec, file, staged[file.name], sha256, where))
        installed = _install(settings, spec, dataclasses.replace(record, files=tuple(verified)), staged)
    finally:
        for path in staged.values():
            path.unlink(missing_ok=True)
    write_record(settings.home, installed)


def import_archive(settings: Settings, catalogue: Catalogue, archive: Path) -> list[str]:
    """Verify and install every model of an archive; unknown models join the user's registry."""
    imported = []
    try:
        with tarfile.open(archive, mode="r") as tar:
            for index, entry in enumerate(_manifest(tar, archive)):
                where = f"{archive}: {_MANIFEST} model #{index + 1}"
                try:
                    spec, record, new = _checked_entry(entry, catalogue, where)
                except (UnsafeValueError, RegistryError) as error:
                    raise ArchiveError(f"{error}; nothing of this model was installed") from None
                _import_model(settings, tar, spec, record, str(archive))
                if new:
                    add_to_user_registry(settings.home, spec)
                imported.append(spec.name)
    except _UNREADABLE as error:
        raise ArchiveError(
            f"{archive}: not a readable tar archive ({error}); make it again with `zoo cache export`"
        ) from None
    return imported


# --- a local folder ------------------------------------------------------------------------------------


def _etag(name: str, staged: Path, sha256: str) -> str:
    """The ETag the hub would give file `name` (staged here): sha256 for LFS files, git's blob sha1 for the rest."""
    lfs = PurePosixPath(name).suffix in _LFS_SUFFIXES or staged.stat().st_size >= _LFS_SIZE
    return sha256 if lfs else git_blob_sha1(staged)


def _folder_files(folder: Path) -> list[str]:
    """The regular files under `folder`, relative to it; hidden files are left out, symbolic links skipped."""
    found, links = [], []
    for top, folders, files in os.walk(folder):
        base = Path(top)
        folders[:] = [each for each in folders if not each.startswith(".")]
        links += [base / each for each in folders if (base / each).is_symlink()]
        for each in files:
            path = base / each
            if path.is_symlink():
                links.append(path)
            elif not each.startswith("."):
                found.append(path.relative_to(folder).as_posix())
    if links:
        warnings.warn(
            f"{folder}: skipped {len(links)} symbolic link(s) ({links[0]}); zoo imports only the folder's own files",
            stacklevel=3,
        )
    return sorted(found)


def _stage_local(folder: Path, name: str, storage: Path) -> tuple[Path, str]:
    """Copy one file of the folder into the hub cache's blobs as a temporary file; returns it and its sha256."""
    path = folder / name
    if path.is_symlink() or not validate.inside(folder, path, f"{folder}: {name}").is_file():
        raise DownloadError(f"{path}: a symbolic link or not a file; zoo imports only the folder's own files")
    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=storage / "blobs", prefix=".zoo-import-", suffix=".incomplete")
    digest = hashlib.sha256()
    with os.fdopen(handle, "wb") as out, path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return Path(temporary), digest.hexdigest()


def import_folder(
    settings: Settings, catalogue: Catalogue, folder: Path, name: str, like: str | None = None
) -> ModelRecord:
    """Add a local folder in hub layout (a repo's files) to the hub cache as model `name`.

    `name` is a catalogue model whose files the folder holds, or a new name: then `like` names the
    catalogue model to copy the entry from (plugin, arch, input), and the new entry joins the user's
    registry with the folder's files and their sha256s. Symbolic links are not followed.
    """
    if not folder.is_dir():
        raise DownloadError(f"{folder}: not a folder")
    present = _folder_files(folder)
    if name in catalogue:
        spec = catalogue.get(name)
        new = False
    elif like is not None:
        name = validate.model_name(name, "--name")
        base = catalogue.get(like)
        repo = validate.repo_id(f"local/{name}", f"--name {name!r} as a repo id")
        spec = dataclasses.replace(
            base, name=name, aliases=(), sha256={}, sha1={}, origin="",
            source=Source(hub=repo, files=tuple(present)),
            description=f"{base.description or base.name}, imported from {folder}",
        )  # fmt: skip
        new = True
    else:
        raise ModelNotFoundError(
            f"no model named '{name}' in the catalogue; name one it knows, or add --like MODEL to make a new "
            "entry from an existing one"
        )
    if spec.source.hub is None:
        raise DownloadError(f"'{name}' comes from a URL, not a hub; `zoo import` fills the hub cache")
    names = list(spec.source.files) or present
    absent = [each for each in names if not (folder / each).is_file()]
    if absent:
        raise DownloadError(f"{folder}: '{name}' needs {absent[0]}, which is not in the folder")
    storage = _hub_storage(settings, spec.source.hub)
    revision = validate.revision(spec.source.revision or "main", f"'{name}': source.revision")
    staged: dict[str, Path] = {}
    digests: dict[str, str] = {}
    try:
        for each in names:
            staged[each], digests[each] = _stage_local(folder, each, storage)
            expected = spec.sha256.get(each)
            if expected and expected != digests[each]:
                raise ChecksumError(f"{folder / each}: sha256 {digests[each]} is not the registry's {expected}")
        listing = "".join(f"{each} {digests[each]}\n" for each in names)
        pseudo_commit = hashlib.sha1(listing.encode(), usedforsecurity=False).hexdigest()  # stable per content
        commit = revision if validate.is_commit(revision) else pseudo_commit
        files = []
        for each in names:
            etag = _etag(each, staged[each], digests[each])
            link = _install_hub_file(storage, commit, each, staged[each], etag)
            verified = "registry sha256" if new or spec.sha256.get(each) else None  # a new entry records these
            stat = link.stat()
            files.append(FileRecord(each, str(link), stat.st_size, digests[each], verified, etag, stat.st_mtime_ns))
        _set_ref(storage, revision, commit)
    finally:
        for path in staged.values():
            path.unlink(missing_ok=True)
    if new:
        spec = dataclasses.replace(spec, sha256=digests)
        add_to_user_registry(settings.home, spec)
    record = ModelRecord(name, str(storage / "snapshots" / commit), "hub", spec.source.hub, revision, commit,
                         tuple(files))  # fmt: skip
    write_record(settings.home, record)
    return record
