"""Run folders written whole: one writer at a time, staged beside the folder, moved into place at the end.

For ``--out runs/photos``::

    runs/
      photos/             the finished run: what `zoo export` and ``--from-manifest`` read
      .photos.lock        held (filelock) while a process writes photos/; the empty file stays
      .photos.holder      who holds the lock: pid, host, start time and command, for a second run's error
      .photos.partial/    the run being written, with last.pt after every epoch; a crash or Ctrl-C leaves
                          it for ``--resume``, and a run without ``--resume`` starts it afresh
      .photos.replaced/   the previous run, only between the two renames that swap in the new one

A second run into the same folder fails at once, naming the holder. A finished run replaces the old one
by two renames; a process that dies between them leaves the old run in ``.photos.replaced``, and the next
run into the folder puts it back before anything else. A folder that holds files but no run is never
replaced: it may be the user's.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zoo_core.errors import CheckpointError, RunFolderBusyError, RunOptionError

__all__ = ["CHECKPOINT", "staged_run", "write_json"]

CHECKPOINT = "last.pt"  # the last finished epoch: written after each one, read by --resume
RUN_MARKERS = ("manifest.json", "spec.json", CHECKPOINT)  # a folder holding one of these is a run zoo wrote


def write_json(path: Path, data: Any) -> None:
    """`data` as indented, strict JSON (no NaN) at `path`, written whole (beside it, then renamed)."""
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(data, indent=2, default=str, allow_nan=False), encoding="utf-8")
    partial.replace(path)


def _beside(out: Path, suffix: str) -> Path:
    return out.with_name(f".{out.name}.{suffix}")


def _holder(out: Path) -> str:
    """Who holds `out`'s lock, as its holder file says, for the error a second run shows."""
    try:
        held = json.loads(_beside(out, "holder").read_text(encoding="utf-8"))
        return f"pid {held['pid']} on {held['host']} since {held['since']}: {held['command']}"
    except (OSError, ValueError, KeyError, TypeError):  # the holder is between taking the lock and writing this
        return "a process that has just started"


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    from filelock import FileLock, Timeout

    out.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(_beside(out, "lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunFolderBusyError(
            f"{out} is being written by another run ({_holder(out)}); wait for it to finish, or choose another --out"
        ) from None
    holder = _beside(out, "holder")
    try:
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        command = " ".join(["zoo" if sys.argv[0].endswith("__main__.py") else Path(sys.argv[0]).name, *sys.argv[1:]])
        who = {"pid": os.getpid(), "host": socket.gethostname(), "since": since, "command": command}
        holder.write_text(json.dumps(who), encoding="utf-8")
        yield
    finally:
        holder.unlink(missing_ok=True)
        lock.release()


def _restore_or_drop_replaced(out: Path) -> None:
    """Finish a swap a dead process left half done: the old run goes back, or is dropped if the new one is in."""
    replaced = _beside(out, "replaced")
    if replaced.exists() and out.exists():
        shutil.rmtree(replaced)
    elif replaced.exists():
        replaced.rename(out)


def _check_replaceable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise RunOptionError(f"--out {out} is a file; give a folder for the run")
    if out.is_dir() and any(out.iterdir()) and not any((out / name).exists() for name in RUN_MARKERS):
        raise RunOptionError(
            f"--out {out} holds files but no run ({', '.join(RUN_MARKERS)}); a run replaces its folder whole, "
            "so choose a new or empty folder"
        )


def _prepare(staging: Path, out: Path, resume: bool) -> None:
    """An empty staging folder, or, with `resume`, one holding the checkpoint to go on from."""
    if resume and (staging / CHECKPOINT).is_file():
        return  # an interrupted run: go on where it stopped
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    if resume:
        if not (out / CHECKPOINT).is_file():  # a finished run can be extended with more epochs
            raise CheckpointError(
                f"--resume: nothing to resume, no {CHECKPOINT} in {staging} or {out}; run without --resume"
            )
        shutil.copy2(out / CHECKPOINT, staging / CHECKPOINT)


def _publish(staging: Path, out: Path) -> None:
    replaced = _beside(out, "replaced")
    if out.exists():
        out.rename(replaced)
    staging.rename(out)
    shutil.rmtree(replaced, ignore_errors=True)


@contextmanager
def staged_run(out: Path, *, resume: bool = False) -> Iterator[Path]:
    """Lock `out` and yield the folder to write the run into; when the block ends without an error, that
    folder replaces `out` whole. On an error `out` is untouched and the staging folder stays for ``--resume``.
    """
    out = out.absolute()  # `--out .` names the folder by its own name
    with _locked(out):
        _restore_or_drop_replaced(out)
        _check_replaceable(out)
        staging = _beside(out, "partial")
        _prepare(staging, out, resume)
        yield staging
        _publish(staging, out)
