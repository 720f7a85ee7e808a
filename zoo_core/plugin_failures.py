"""Plugin failures remembered across commands, so `zoo plugins` names a hook that failed in an earlier one.

One JSON file, ``$ZOO_HOME/plugins/failures.json``, keyed by plugin and hook::

    {"failures": {"broken": {"build_backbone": {"version": "1.0", "error": "raised ValueError: boom",
                                                "time": "2026-11-26T13:05:12+00:00"}}}}

An entry is added when a plugin's hook raises (or answers what the hook cannot use) and removed when a later
call of the same hook by the same plugin gives a usable answer (not None); ``version`` is the plugin's
distribution version then, so a new version is not blamed for an old one's failure. Anything may have
written the file, so it is read as hostile input: a missing, oversized or malformed file reads as no
failures, an entry of the wrong shape (or a time without a timezone, or outside the years 2000-2999 UTC) is
dropped, and texts are capped. It is written whole or not at all; a home that cannot be written only costs
the memory of failures, never the command.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["PluginFailure", "clear_failure", "failures_path", "read_failures", "record_failure"]

MAX_FILE_BYTES = 256 * 1024  # a larger file is not read: a few hundred entries take a few tens of KiB
MAX_ENTRIES = 200  # the oldest go first
MAX_TEXT = 300  # characters kept of an error line, a name or a version
# the times an entry may have (UTC): failures are recorded now, and any local time of these is a valid datetime
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)

Key = tuple[str, str]  # (plugin, hook)


@dataclass(frozen=True, slots=True)
class PluginFailure:
    """One hook of one plugin that failed, and when."""

    plugin: str
    hook: str
    version: str | None  # the plugin's distribution version when it failed; None for an in-memory plugin
    error: str  # what it did, one line: "raised ValueError: boom" or "returned a str, not a list of Finding"
    time: datetime  # when, in UTC

    def describe(self) -> str:
        """``build_backbone raised ValueError: boom (2026-11-26 13:05)``, in local time."""
        return f"{self.hook} {self.error} ({self.time.astimezone().strftime('%Y-%m-%d %H:%M')})"


def failures_path(home: Path) -> Path:
    return home / "plugins" / "failures.json"


def read_failures(home: Path) -> dict[Key, PluginFailure]:
    """Every well-formed entry of the file, by (plugin, hook); nothing when the file is missing or unreadable."""
    path = failures_path(home)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return {}
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    plugins = document.get("failures") if isinstance(document, dict) else None
    found: dict[Key, PluginFailure] = {}
    for plugin, hooks in plugins.items() if isinstance(plugins, dict) else ():
        for hook, entry in hooks.items() if isinstance(hooks, dict) else ():
            failure = _parse(plugin, hook, entry)
            if failure is not None:
                found[plugin, hook] = failure
    return dict(sorted(found.items(), key=lambda item: item[1].time)[-MAX_ENTRIES:])


def _parse(plugin: str, hook: str, entry: object) -> PluginFailure | None:
    if not isinstance(entry, dict):
        return None
    version, error, time = entry.get("version"), entry.get("error"), entry.get("time")
    if not isinstance(version, str | None) or not isinstance(error, str) or not isinstance(time, str):
        return None
    try:
        when = datetime.fromisoformat(time)
        if when.tzinfo is None:
            return None
        when = when.astimezone(UTC)  # a year 1 or 9999 time with a large offset overflows here
    except (ValueError, OverflowError):
        return None
    if not EARLIEST <= when < LATEST or max(len(plugin), len(hook), len(version or ""), len(error)) > MAX_TEXT:
        return None
    return PluginFailure(plugin, hook, version, error, when)


def record_failure(home: Path, plugin: str, hook: str, version: str | None, error: str) -> PluginFailure:
    """Remember that `plugin`'s `hook` failed with `error` (one line, capped), now; returns the entry."""
    line = " ".join(error.split())
    failure = PluginFailure(
        plugin[:MAX_TEXT], hook[:MAX_TEXT], version and version[:MAX_TEXT], line[:MAX_TEXT], datetime.now(UTC)
    )
    failures = read_failures(home)
    failures[failure.plugin, failure.hook] = failure
    _write(home, failures)
    return failure


def clear_failure(home: Path, plugin: str, hook: str) -> None:
    """Forget `plugin`'s failure in `hook`, after a call of it succeeded."""
    failures = read_failures(home)
    if failures.pop((plugin, hook), None) is not None:
        _write(home, failures)


def _write(home: Path, failures: dict[Key, PluginFailure]) -> None:
    document: dict[str, dict[str, dict[str, Any]]] = {}
    for failure in sorted(failures.values(), key=lambda each: each.time)[-MAX_ENTRIES:]:
        entry = {"version": failure.version, "error": failure.error, "time": failure.time.isoformat()}
        document.setdefault(failure.plugin, {})[failure.hook] = entry
    path = failures_path(home)
    with contextlib.suppress(OSError):  # a read-only or full home loses the memory of failures, not the command
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".failures.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump({"failures": document}, out, indent=2)
            Path(temporary).replace(path)
        finally:
            Path(temporary).unlink(missing_ok=True)
