"""Cache archives: moving downloaded models to machines without a network (`zoo cache export/import`).

An archive is a tar file: ``manifest.json`` first (each model's registry entry and its record, sha256s
included), then ``files/<model>/<file>``. Hub models are installed into the hub cache in the hub's own
layout, so `huggingface_hub` and zoo find them offline as if they had been downloaded.

An archive is hostile until checked, and is accepted whole or not at all:

- it is read as a stream, once (a compressed archive is never inflated twice, nor indexed in memory);
  every member must be a regular file the manifest announced, of the size it announced, checked before
  its data is read; the sizes together must fit the free space;
- every manifest value passes `zoo_core.validate`; a model the catalogue knows keeps the catalogue's
  entry, and must come whole (every file its entry names) and at the commit it pins; a new model may not
  take a name or alias the catalogue uses, nor choose the endpoint that receives the user's token;
- bytes must match the manifest's sha256, the hub ETag they are filed under, and the registry's pin.
  A file the registry does not pin is recorded as checked against the *archive's* digest: consistent,
  not verified, until an online download compares it with the hub;
- files are staged, checked, then placed together (`zoo_core.hubcache.Placement`): existing snapshot
  links and refs are never replaced by other content.
"""

from __future__ import annotations

import dataclasses
import errno
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import tarfile
import tempfile
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from zoo_core import validate
from zoo_core._version import __version__
from zoo_core.catalogue import Catalogue
from zoo_core.catalogue_sources import reset_catalogue
from zoo_core.errors import ArchiveError, ChecksumError, ModelNotFoundError, RegistryError, UnsafeValueError
from zoo_core.hashing import file_digest, matches_etag
from zoo_core.hubcache import Placement, check_layout, stage
from zoo_core.records import FileRecord, ModelRecord, read_record, read_records, write_record
from zoo_core.registry import parse_spec
from zoo_core.settings import Settings
from zoo_core.specs import ModelSpec
from zoo_core.urls import model_folder
from zoo_core.user_registry import add_to_user_registry
from zoo_core.verification import VERIFIED, etag_label, is_verified

__all__ = ["export_archive", "import_archive"]

_MANIFEST = "manifest.json"
_MANIFEST_LIMIT = 64 << 20  # a manifest is a few kB per model


# --- writing -------------------------------------------------------------------------------------------


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
    path = Path(file.path)
    validate.inside(_cache_root(settings, record.source), path.parent, f"'{record.model}': the record of {file.name}")
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


# --- reading: every value checked before it is used ----------------------------------------------------


@dataclass(frozen=True)
class _Model:
    """One model of an archive, as zoo will install it."""

    spec: ModelSpec  # the catalogue's entry for a known model, else the archive's (checked)
    record: ModelRecord  # the manifest's record, validated; paths not yet set
    new: bool  # the entry joins the user's registry


def _field(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
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
    if not 0 <= size < 1 << 50:
        raise ArchiveError(f"{where}: field 'size' is {size}, which no model file is")
    sha256 = validate.digest(data.get("sha256"), f"{where}: field 'sha256'")
    etag = validate.etag(data.get("etag"), f"{where}: field 'etag'") if hub else None
    return FileRecord(name, "", size, sha256, None, etag)


def _checked_record(data: object, spec: ModelSpec, where: str) -> ModelRecord:
    """The manifest's record of `spec`, validated field by field against the entry zoo trusts."""
    if not isinstance(data, dict):
        raise ArchiveError(f"{where}: field 'record' is not a table")
    hub = spec.source.hub is not None
    kind = "hub" if hub else "package" if spec.source.package else "url"
    if data.get("model") != spec.name or data.get("source") != kind:
        raise ArchiveError(
            f"{where}: the record is not of {spec.name} from a {'URL' if kind == 'url' else kind} source"
        )
    if hub and data.get("repo") != spec.source.hub:
        raise ArchiveError(f"{where}: the record is of repo {data.get('repo')!r}, the entry names {spec.source.hub}")
    revision = data.get("revision")
    revision = None if revision is None else validate.revision(revision, f"{where}: field 'record.revision'")
    commit = validate.commit(data.get("commit"), f"{where}: field 'record.commit'") if hub else None
    pinned = spec.source.revision
    if commit and pinned and validate.is_commit(pinned) and commit != pinned:
        raise ArchiveError(f"{where}: the record is of commit {commit}, the entry pins {pinned}")
    listed = _field(data, "files", list, where)
    files = [_checked_file(each, spec, hub, f"{where}: record.files[{i}]") for i, each in enumerate(listed)]
    names = [each.name for each in files]
    if not files or len(set(names)) != len(names):
        raise ArchiveError(f"{where}: the record lists no file, or one file twice")
    if spec.source.files and set(names) != set(spec.source.files):
        absent = sorted(set(spec.source.files) - set(names))
        raise ArchiveError(f"{where}: the record lacks {absent[0]}, which the entry needs (a model comes whole)")
    origin = spec.source.hub or spec.source.url or spec.source.package
    return ModelRecord(spec.name, "", data["source"], origin, revision, commit, tuple(files))


def _names_taken(offered: ModelSpec, catalogue: Catalogue) -> str | None:
    """A name or alias of a new entry that the catalogue already uses, if any (lookups ignore case)."""
    return next((name for name in (offered.name, *offered.aliases) if name in catalogue), None)


def _checked_model(entry: object, catalogue: Catalogue, where: str) -> _Model:
    """The entry zoo trusts for an archive's model, and the model's validated record."""
    if not isinstance(entry, dict) or not isinstance(entry.get("spec"), dict) or "record" not in entry:
        raise ArchiveError(f"{where}: expected a table with 'spec' and 'record'")
    offered = parse_spec(entry["spec"], where)
    known = offered.name in catalogue and catalogue.get(offered.name).name == offered.name
    if not known:
        taken = _names_taken(offered, catalogue)
        if taken is not None:
            raise ArchiveError(f"{where}: '{taken}' is taken by the catalogue's {catalogue.get(taken).name}")
        if offered.source.endpoint:
            warnings.warn(
                f"{where}: '{offered.name}' names the endpoint {offered.source.endpoint}; zoo leaves it out (an "
                "archive may not choose where your token goes): add it to your own registry if you trust it",
                stacklevel=2,
            )
            offered = dataclasses.replace(offered, source=dataclasses.replace(offered.source, endpoint=None))
    spec = catalogue.get(offered.name) if known else offered  # a known model keeps the catalogue's entry
    return _Model(spec, _checked_record(entry.get("record"), spec, f"{where}: model '{spec.name}'"), not known)


def _manifest(tar: tarfile.TarFile, member: tarfile.TarInfo | None, archive: Path) -> list[Any]:
    if member is None or member.name != _MANIFEST:
        raise ArchiveError(f"{archive}: {_MANIFEST} is not its first member; not an archive of `zoo cache export`")
    if not member.isreg() or member.size > _MANIFEST_LIMIT:
        raise ArchiveError(f"{archive}: {_MANIFEST} is not a file of a manifest's size")
    try:
        manifest = json.load(tar.extractfile(member) or io.BytesIO())
    except (ValueError, RecursionError) as error:
        raise ArchiveError(f"{archive}: {_MANIFEST} is not JSON zoo can read ({error})") from None
    models = manifest.get("models") if isinstance(manifest, dict) else None
    if not isinstance(models, list):
        raise ArchiveError(f"{archive}: {_MANIFEST} has no 'models' list; not an archive of `zoo cache export`")
    return models


def _models(tar: tarfile.TarFile, archive: Path, catalogue: Catalogue) -> list[_Model]:
    models = []
    for index, entry in enumerate(_manifest(tar, tar.next(), archive)):
        where = f"{archive}: {_MANIFEST} model #{index + 1}"
        try:
            models.append(_checked_model(entry, catalogue, where))
        except (ArchiveError, UnsafeValueError, RegistryError, KeyError, TypeError) as error:
            raise ArchiveError(f"{error}; nothing was installed") from None
    names = [name.lower() for m in models for name in (m.spec.name, *(m.spec.aliases if m.new else ()))]
    twice = next((name for name in names if names.count(name) > 1), None)
    if twice is not None:
        raise ArchiveError(f"{archive}: {_MANIFEST} names '{twice}' twice (names and aliases, in any case)")
    return models


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
        raise ChecksumError(f"{where}: {spec.name}/{file.name} {problem}; nothing was installed")
    stat = staged.stat()
    checked = dataclasses.replace(file, mtime_ns=stat.st_mtime_ns)
    if file.name in spec.sha256:
        return dataclasses.replace(checked, verified_by="registry sha256")
    if file.name in spec.sha1:
        return dataclasses.replace(checked, verified_by="registry sha1", sha1=spec.sha1[file.name])
    assert file.etag is not None
    return dataclasses.replace(checked, verified_by=etag_label("archive", file.etag))


def _plan(settings: Settings, model: _Model, staged: dict[str, Path], placement: Placement) -> ModelRecord:
    """Add a model's files to `placement`; returns the record of where they will be."""
    spec, record = model.spec, model.record
    files = []
    if record.source == "hub" and spec.source.hub and record.commit:
        storage = check_layout(settings.hub_cache, spec.source.hub, placement.where)
        folder = storage / "snapshots" / record.commit
        held = folder.is_dir() and any(path.is_symlink() or path.is_file() for path in folder.rglob("*"))
        for file in record.files:
            assert file.etag is not None
            new_here = not ((folder / file.name).exists() or (folder / file.name).is_symlink())
            if held and new_here and file.verified_by not in VERIFIED:
                raise ArchiveError(
                    f"{placement.where}: '{spec.name}' would add {file.name}, which no registry pins, to commit "
                    f"{record.commit} of {spec.source.hub}, which this machine holds already; nothing was installed"
                )
            blob = storage / "blobs" / file.etag
            placement.file(storage, blob, staged[file.name])
            placement.link(storage, folder / file.name, blob)
            files.append(dataclasses.replace(file, path=str(folder / file.name)))
        if record.revision and record.revision != record.commit:
            placement.text(storage, storage / "refs" / record.revision, record.commit)  # only where none is
    else:
        folder = model_folder(settings, spec)
        for file in record.files:
            placement.file(folder, folder / file.name, staged[file.name])
            files.append(dataclasses.replace(file, path=str(folder / file.name)))
    return dataclasses.replace(record, folder=str(folder), files=tuple(files))


_Staged = dict[str, tuple[Path, str]]  # member name -> staged file and its sha256


def _stage_members(tar: tarfile.TarFile, settings: Settings, models: list[_Model], archive: Path) -> _Staged:
    """Stage every announced member, in archive order."""
    expected = {f"files/{m.spec.name}/{f.name}": (m, f) for m in models for f in m.record.files}
    roots = {name: _cache_root(settings, model.record.source) for name, (model, _) in expected.items()}
    for root in set(roots.values()):
        root.mkdir(parents=True, exist_ok=True)
        needed = sum(file.size for name, (_, file) in expected.items() if roots[name] == root)
        if shutil.disk_usage(root).free < needed:
            raise ArchiveError(f"{archive}: its files need {needed} bytes, more than {root} has free")
    staged: _Staged = {}
    try:
        while (member := tar.next()) is not None:  # the members after the manifest, in order
            if member.name not in expected or member.name in staged:
                raise ArchiveError(f"{archive}: member {member.name} is not announced by {_MANIFEST}, or repeated")
            size = expected[member.name][1].size
            validate.archive_member(member, size, str(archive))
            staged[member.name] = stage(tar.extractfile(member) or io.BytesIO(), roots[member.name], size)
        absent = sorted(set(expected) - set(staged))
        if absent:
            raise ArchiveError(f"{archive}: the archive has no member {absent[0]}; nothing was installed")
    except BaseException:
        for path, _ in staged.values():
            path.unlink(missing_ok=True)
        raise
    return staged


def _contents(record: ModelRecord) -> tuple[str | None, dict[str, str]]:
    return record.commit, {file.name: file.sha256 for file in record.files}


def _keeps_verified_copy(settings: Settings, spec: ModelSpec, record: ModelRecord, archive: Path) -> bool:
    """Whether the model's verified copy here stays as it is (the archive brings the same files, unverified).

    An archive's copy that is not verified never replaces a verified one: other files are refused.
    """
    existing = read_record(settings.home, spec.name)
    if existing is None or not is_verified(existing, spec) or is_verified(record, spec):
        return False
    if (existing.commit, {f.name: f.sha256 for f in existing.files}) == (
        record.commit,
        {f.name: f.sha256 for f in record.files},
    ):
        return True
    raise ArchiveError(
        f"{archive}: '{spec.name}' is cached here and verified; the archive's copy is not, so it does not replace "
        f"it and nothing was installed (to replace it: zoo cache rm {spec.name}, then import again)"
    )


def _install(settings: Settings, models: list[_Model], staged: _Staged, archive: Path) -> None:
    """Check every staged file, then place them all and write the records; on any failure nothing stays."""
    placement = Placement(str(archive))
    installed = []
    for model in models:
        by_name = {file.name: staged[f"files/{model.spec.name}/{file.name}"] for file in model.record.files}
        checked = [_verified_file(model.spec, file, *by_name[file.name], str(archive)) for file in model.record.files]
        record = dataclasses.replace(model.record, files=tuple(checked))
        if _keeps_verified_copy(settings, model.spec, record, archive):
            continue
        paths = {name: path for name, (path, _) in by_name.items()}
        installed.append((model, _plan(settings, dataclasses.replace(model, record=record), paths, placement)))
    placement.commit()
    for model, record in installed:
        write_record(settings.home, record)
        if model.new:
            add_to_user_registry(settings.home, model.spec)
    reset_catalogue()  # the next lookup sees the new entries


def _unreadable(error: BaseException) -> bool:
    """Whether an error means the archive's bytes are not a readable (compressed) tar, not a failing disk."""
    if isinstance(error, OSError) and not isinstance(error, gzip.BadGzipFile):
        return error.errno in (None, errno.EINVAL)  # bz2's "Invalid data stream" has no errno
    return isinstance(error, tarfile.TarError | EOFError | zlib.error | lzma.LZMAError | gzip.BadGzipFile)


def import_archive(settings: Settings, catalogue: Catalogue, archive: Path) -> list[str]:
    """Check an archive whole, then install every model of it; unknown models join the user's registry."""
    staged: _Staged = {}
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            models = _models(tar, archive, catalogue)
            staged = _stage_members(tar, settings, models, archive)
        _install(settings, models, staged, archive)
    except Exception as error:
        if _unreadable(error):
            message = f"{archive}: not a readable tar archive ({error}); make it again with `zoo cache export`"
            raise ArchiveError(message) from None
        raise
    finally:
        for path, _ in staged.values():
            path.unlink(missing_ok=True)
    return [model.spec.name for model in models]
