"""Moving models between machines without a network: cache archives, and importing a local folder.

An archive is a tar file: ``manifest.json`` (each model's registry entry and its record, sha256s
included) and ``files/<model>/<file>``. Importing streams every file into place while hashing it and
keeps nothing of a model whose file does not match. Hub models are installed into the hub cache in the
hub's own layout (``blobs/<etag>``, ``snapshots/<commit>/<file>``, ``refs/<revision>``), so
`huggingface_hub` and zoo find them offline exactly as if they had been downloaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from zoo_core._version import __version__
from zoo_core.catalogue import Catalogue
from zoo_core.errors import ChecksumError, DownloadError, ModelNotFoundError, RegistryError
from zoo_core.hashing import git_blob_sha1
from zoo_core.records import FileRecord, ModelRecord, read_records, write_record
from zoo_core.registry import is_safe_file_name, parse_spec
from zoo_core.settings import Settings
from zoo_core.specs import ModelSpec, Source
from zoo_core.urls import model_folder
from zoo_core.user_registry import add_to_user_registry

__all__ = ["export_archive", "import_archive", "import_folder"]

_MANIFEST = "manifest.json"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_LFS_SIZE = 10 << 20  # the hub keeps files this large (and weights of any size) in LFS: ETag = sha256
_LFS_SUFFIXES = (".safetensors", ".bin", ".onnx", ".pth", ".pt", ".h5", ".msgpack", ".caffemodel", ".npy")


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
                tar.add(Path(file.path).resolve(), arcname=f"files/{record.model}/{file.name}", recursive=False)
    return [record.model for record in chosen]


def _staged(stream: IO[bytes], folder: Path) -> tuple[Path, str]:
    """Copy `stream` into a temporary file in `folder`; returns it and its sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".incomplete")
    digest = hashlib.sha256()
    with os.fdopen(handle, "wb") as out:
        while chunk := stream.read(1 << 24):
            digest.update(chunk)
            out.write(chunk)
    return Path(temporary), digest.hexdigest()


def _hub_storage(settings: Settings, repo: str) -> Path:
    return settings.hub_cache / f"models--{repo.replace('/', '--')}"


def _install_hub_file(storage: Path, commit: str, name: str, staged: Path, etag: str) -> Path:
    """Put a verified file into the hub cache layout and return its snapshot path."""
    blob = storage / "blobs" / etag
    blob.parent.mkdir(parents=True, exist_ok=True)
    staged.replace(blob)
    link = storage / "snapshots" / commit / name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    return link


def _set_ref(storage: Path, revision: str | None, commit: str) -> None:
    if revision and revision != commit:
        ref = storage / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)


def _install(settings: Settings, spec: ModelSpec, record: ModelRecord, staged: dict[str, Path]) -> ModelRecord:
    """Move staged, verified files into the right cache and return the record of where they now are."""
    files = []
    if record.source == "hub" and spec.source.hub and record.commit:
        storage = _hub_storage(settings, spec.source.hub)
        for file in record.files:
            link = _install_hub_file(storage, record.commit, file.name, staged[file.name], file.etag or file.sha256)
            files.append(dataclasses.replace(file, path=str(link)))
        _set_ref(storage, record.revision, record.commit)
        folder = storage / "snapshots" / record.commit
    else:
        folder = model_folder(settings, spec)
        for file in record.files:
            target = folder / file.name
            target.parent.mkdir(parents=True, exist_ok=True)
            staged[file.name].replace(target)
            files.append(dataclasses.replace(file, path=str(target)))
    return dataclasses.replace(record, folder=str(folder), files=tuple(files))


def import_archive(settings: Settings, catalogue: Catalogue, archive: Path) -> list[str]:
    """Verify and install every model of an archive; unknown models join the user's registry."""
    imported = []
    with tarfile.open(archive, mode="r") as tar:
        try:
            manifest = json.load(tar.extractfile(_MANIFEST) or io.BytesIO(b"{}"))
        except (KeyError, ValueError) as error:
            raise RegistryError(f"{archive}: not a zoo cache archive (no readable {_MANIFEST}: {error})") from None
        for entry in manifest.get("models", []):
            spec = parse_spec(entry["spec"], f"{archive}")
            record = ModelRecord.from_dict(entry["record"])
            allowed = set(spec.source.files)
            staged: dict[str, Path] = {}
            try:
                for file in record.files:
                    if (allowed and file.name not in allowed) or not is_safe_file_name(file.name):
                        raise RegistryError(f"{archive}: '{spec.name}' lists file {file.name!r}, not in its entry")
                    stream = tar.extractfile(f"files/{spec.name}/{file.name}")
                    if stream is None:
                        raise RegistryError(f"{archive}: files/{spec.name}/{file.name} is not a file")
                    target = settings.hub_cache if record.source == "hub" else settings.home / "files"
                    staged[file.name], digest = _staged(stream, target)
                    if digest != file.sha256:
                        raise ChecksumError(
                            f"{archive}: {spec.name}/{file.name} has sha256 {digest}, the archive says "
                            f"{file.sha256}; nothing of '{spec.name}' was installed"
                        )
                installed = _install(settings, spec, record, staged)
            finally:
                for path in staged.values():
                    path.unlink(missing_ok=True)
            write_record(settings.home, installed)
            if spec.name not in catalogue:
                add_to_user_registry(settings.home, spec)
            imported.append(spec.name)
    return imported


def _etag(path: Path, sha256: str) -> str:
    """The ETag the hub would give this file: sha256 for LFS files, git's blob sha1 for the rest."""
    lfs = path.suffix in _LFS_SUFFIXES or path.stat().st_size >= _LFS_SIZE
    return sha256 if lfs else git_blob_sha1(path)


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
    present = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    present = [each for each in present if not any(part.startswith(".") for part in each.split("/"))]
    if name in catalogue:
        spec = catalogue.get(name)
        new = False
    elif like is not None:
        base = catalogue.get(like)
        spec = dataclasses.replace(
            base, name=name, aliases=(), sha256={}, origin="",
            source=Source(hub=f"local/{name}", files=tuple(present)),
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
    staged: dict[str, Path] = {}
    digests: dict[str, str] = {}
    try:
        for each in names:
            with (folder / each).open("rb") as stream:
                staged[each], digests[each] = _staged(stream, storage / "blobs")
            expected = spec.sha256.get(each)
            if expected and expected != digests[each]:
                raise ChecksumError(f"{folder / each}: sha256 {digests[each]} is not the registry's {expected}")
        revision = spec.source.revision or "main"
        listing = "".join(f"{each} {digests[each]}\n" for each in names)
        pseudo_commit = hashlib.sha1(listing.encode(), usedforsecurity=False).hexdigest()  # stable per content
        commit = revision if _COMMIT.match(revision) else pseudo_commit
        files = []
        for each in names:
            etag = _etag(folder / each, digests[each])
            link = _install_hub_file(storage, commit, each, staged[each], etag)
            verified = "registry sha256" if new or spec.sha256.get(each) else None  # a new entry records these
            files.append(FileRecord(each, str(link), link.stat().st_size, digests[each], verified, etag))
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
