"""An export folder on disk: built in a staging folder, moved into place whole, its files' sha256s recorded.

``zoo export`` writes every file into a staging folder inside the output folder and moves the files into
place only once the export has passed its parity check, ``export.json`` last; that record lists the sha256
of every file it installed, and `verify_export` checks them all before ``zoo predict`` lets onnxruntime read
one (a changed ``model.onnx`` or ``model.onnx.data`` is refused, not run)::

    OUT/
      model.onnx            the graph (and its weights, up to protobuf's 2 GB)
      model.onnx.data       weights beyond 2 GB, when there are any
      tokenizer.json, …     text models: the tokenizer files
      export.json           the parity report and {"files": {name: sha256}}
      .zoo-export-HOST-PID-XXXXXXXX/   staging, while an export runs

A staging folder's name says which host and process made it, so one left behind by a killed export is
recognisable: the next export into the same folder removes those older than `STALE_SECONDS`, and those of
this host whose process is gone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo_core.errors import ExportError
from zoo_core.hashing import file_digest

__all__ = [
    "MODEL_FILES",
    "RECORD",
    "STAGING_PREFIX",
    "STALE_SECONDS",
    "TOKENIZER_FILES",
    "install_export",
    "remove_stale_staging",
    "staging_folder",
    "verify_export",
]

MODEL_FILES = ("model.onnx", "model.onnx.data")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
RECORD = "export.json"
STAGING_PREFIX = ".zoo-export-"
STALE_SECONDS = 6 * 3600  # no export takes this long, so a staging folder this old was left behind
_STAGING = re.compile(rf"{re.escape(STAGING_PREFIX)}(?P<host>[A-Za-z0-9.]*)-(?P<pid>\d+)-[A-Za-z0-9_]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _host() -> str:
    """This machine's name, as it can appear in a folder name (letters, digits and dots)."""
    return re.sub(r"[^A-Za-z0-9.]", "", socket.gethostname())[:64]


def _running(pid: int) -> bool:
    """Whether a process with this id exists here (on Windows, where signal 0 is not a probe: assume so)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, run by another user
        return True
    return True


def remove_stale_staging(folder: Path, now: float | None = None) -> list[Path]:
    """Remove the staging folders in `folder` that no running export owns; returns what was removed."""
    now = time.time() if now is None else now
    removed = []
    for path in folder.glob(f"{STAGING_PREFIX}*"):
        match = _STAGING.fullmatch(path.name)
        if match is None or not path.is_dir() or path.is_symlink():
            continue
        try:
            age = now - path.stat().st_mtime
        except OSError:
            continue
        gone = match["host"] == _host() and not _running(int(match["pid"]))
        if age > STALE_SECONDS or gone:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def staging_folder(out: Path) -> Path:
    """A new, empty staging folder in `out` (created if needed), after removing stale ones left there."""
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    return Path(tempfile.mkdtemp(dir=out, prefix=f"{STAGING_PREFIX}{_host()}-{os.getpid()}-"))


def install_export(staging: Path, out: Path, report: Mapping[str, Any]) -> dict[str, str]:
    """Move the files built in `staging` into `out`, with ``export.json`` (`report` and their sha256s) last.

    The earlier export's record goes first and the files it had that this one lacks go too, so a folder
    caught halfway by a kill is never taken for a valid export: `verify_export` refuses it.
    """
    files = {path.name: file_digest(path) for path in sorted(staging.iterdir()) if path.is_file()}
    (staging / RECORD).write_text(json.dumps({**report, "files": files}, indent=2), encoding="utf-8")
    (out / RECORD).unlink(missing_ok=True)
    for name in (*MODEL_FILES, *TOKENIZER_FILES):
        if name not in files:
            (out / name).unlink(missing_ok=True)
    for name in files:
        (staging / name).replace(out / name)
    (staging / RECORD).replace(out / RECORD)
    return files


def verify_export(folder: Path) -> None:
    """Check every file ``export.json`` lists against its recorded sha256; ExportError names the first that
    is missing or differs. Run before onnxruntime opens the model, which reads ``model.onnx.data`` as well."""
    again = f"export it again: zoo export RUN_DIR --out {folder}"
    record = folder / RECORD
    try:
        files = json.loads(record.read_text(encoding="utf-8")).get("files")
    except FileNotFoundError:
        raise ExportError(f"{folder}: no {RECORD}, so nothing vouches for model.onnx; {again}") from None
    except (OSError, ValueError, AttributeError) as error:
        raise ExportError(f"{record}: unreadable ({error}); {again}") from None
    if not isinstance(files, dict) or "model.onnx" not in files:
        raise ExportError(f"{record}: records no sha256 of model.onnx (an export by an older zoo?); {again}")
    for name, expected in files.items():
        if (
            name not in (*MODEL_FILES, *TOKENIZER_FILES)
            or not isinstance(expected, str)
            or not _SHA256.fullmatch(expected)
        ):
            raise ExportError(
                f"{record}: 'files' holds {name!r}: {expected!r}, not a file of an export and its sha256; {again}"
            )
        path = folder / name
        if not path.is_file():
            raise ExportError(f"{path}: missing, though {RECORD} lists it; {again}")
        if file_digest(path) != expected:
            raise ExportError(
                f"{path}: changed since it was exported (its sha256 is not the one {RECORD} records); {again}"
            )
