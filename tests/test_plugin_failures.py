"""The file of plugin failures under ZOO_HOME: written whole, read as hostile input, versions respected."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import zoo_core
from zoo_core.plugin_failures import (
    MAX_ENTRIES,
    MAX_FILE_BYTES,
    MAX_TEXT,
    PluginFailure,
    clear_failure,
    failures_path,
    read_failures,
    record_failure,
)
from zoo_core.plugins import plugin_statuses, reset_plugin_manager

ENTRY = {"version": "1.0", "error": "raised ValueError: boom", "time": "2026-11-26T13:05:00+00:00"}


def write(home: Path, document: object) -> None:
    path = failures_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")


def test_a_failure_is_recorded_and_cleared(zoo_env: Path) -> None:
    failure = record_failure(zoo_env, "broken", "build_backbone", "1.0", "raised ValueError: line one\n  line two")
    assert failure.error == "raised ValueError: line one line two"  # one line
    assert read_failures(zoo_env) == {("broken", "build_backbone"): failure}
    assert json.loads(failures_path(zoo_env).read_text())["failures"]["broken"]["build_backbone"]["version"] == "1.0"
    assert [each.name for each in failures_path(zoo_env).parent.iterdir()] == ["failures.json"]  # no temporary file
    clear_failure(zoo_env, "broken", "build_backbone")
    assert read_failures(zoo_env) == {}


def test_describe_names_the_hook_and_the_local_time() -> None:
    when = datetime(2026, 11, 26, 13, 5, tzinfo=UTC)
    failure = PluginFailure("broken", "build_backbone", None, "raised ValueError: boom", when)
    local = when.astimezone().strftime("%Y-%m-%d %H:%M")
    assert failure.describe() == f"build_backbone raised ValueError: boom ({local})"


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"failures": []}',
        b'{"failures": {"broken": []}}',
        b"[" * 100_000,
    ],
)
def test_an_unreadable_file_reads_as_no_failures(zoo_env: Path, content: bytes) -> None:
    failures_path(zoo_env).parent.mkdir(parents=True)
    failures_path(zoo_env).write_bytes(content)
    assert read_failures(zoo_env) == {}
    record_failure(zoo_env, "broken", "check_input", None, "raised TypeError: x")  # and is replaced
    assert list(read_failures(zoo_env)) == [("broken", "check_input")]


@pytest.mark.parametrize(
    "entry",
    [
        "raised",
        {**ENTRY, "version": 1},
        {**ENTRY, "error": None},
        {**ENTRY, "time": "yesterday"},
        {**ENTRY, "time": "2026-11-26T13:05:00"},  # no timezone
        {**ENTRY, "time": "0001-01-01T00:00:00+14:00"},  # before year 1 in UTC
        {**ENTRY, "time": "9999-12-31T23:59:00-14:00"},  # after year 9999 in UTC
        {**ENTRY, "time": "9999-12-31T23:59:00+00:00"},  # after year 9999 in a local time east of UTC
        {**ENTRY, "time": "1999-12-31T23:59:59+00:00"},
        {**ENTRY, "time": "3000-01-01T00:00:00+00:00"},
        {**ENTRY, "error": "x" * (MAX_TEXT + 1)},
    ],
)
def test_an_entry_of_the_wrong_shape_is_dropped(zoo_env: Path, entry: object) -> None:
    write(zoo_env, {"failures": {"broken": {"build_backbone": entry, "check_input": ENTRY}}})
    assert list(read_failures(zoo_env)) == [("broken", "check_input")]


def test_times_are_read_in_utc_and_shown_in_local_time(zoo_env: Path) -> None:
    edges = {
        "early": "2000-01-01T00:00:00+00:00",
        "late": "2999-12-31T09:59:00-14:00",
        "east": "2026-11-26T15:05+02:00",
    }
    write(zoo_env, {"failures": {plugin: {"check_input": {**ENTRY, "time": time}} for plugin, time in edges.items()}})
    failures = {plugin: failure for (plugin, _), failure in read_failures(zoo_env).items()}
    assert {plugin: failure.time for plugin, failure in failures.items()} == {
        "early": datetime(2000, 1, 1, tzinfo=UTC),
        "east": datetime(2026, 11, 26, 13, 5, tzinfo=UTC),
        "late": datetime(2999, 12, 31, 23, 59, tzinfo=UTC),
    }
    assert all(failure.time.tzinfo is UTC for failure in failures.values())


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("Etc/GMT-14", ["2000-01-01 14:00", "3000-01-01 13:59"]),
        ("Etc/GMT+12", ["1999-12-31 12:00", "2999-12-31 11:59"]),
    ],
)
def test_the_earliest_and_latest_times_show_in_any_local_time(
    zoo_env: Path, monkeypatch: pytest.MonkeyPatch, zone: str, shown: list[str]
) -> None:
    edges = ["2000-01-01T00:00:00+00:00", "2999-12-31T23:59:00+00:00"]
    write(zoo_env, {"failures": {"edge": {f"hook{index}": {**ENTRY, "time": edges[index]} for index in (0, 1)}}})
    try:
        with monkeypatch.context() as local:
            local.setenv("TZ", zone)  # UTC+14 and UTC-12: the farthest local times from UTC
            time.tzset()
            described = [failure.describe() for failure in read_failures(zoo_env).values()]
    finally:
        time.tzset()  # the TZ of before, for the tests after this one
    assert described == [f"hook{index} raised ValueError: boom ({shown[index]})" for index in (0, 1)]


def test_an_oversized_file_is_not_read(zoo_env: Path) -> None:
    write(zoo_env, {"failures": {"broken": {"check_input": ENTRY}}, "padding": "x" * MAX_FILE_BYTES})
    assert read_failures(zoo_env) == {}


def test_only_the_newest_entries_are_kept(zoo_env: Path) -> None:
    plugins = {
        f"p{index:04d}": {"check_input": {**ENTRY, "time": f"2026-01-01T00:{index // 60:02d}:{index % 60:02d}+00:00"}}
        for index in range(MAX_ENTRIES + 50)
    }
    write(zoo_env, {"failures": plugins})
    kept = read_failures(zoo_env)
    assert len(kept) == MAX_ENTRIES and ("p0000", "check_input") not in kept and ("p0249", "check_input") in kept
    record_failure(zoo_env, "newest", "check_input", None, "raised X: y")
    assert len(json.loads(failures_path(zoo_env).read_text())["failures"]) == MAX_ENTRIES


def test_a_home_that_cannot_be_written_loses_only_the_memory(zoo_env: Path) -> None:
    zoo_env.mkdir()
    (zoo_env / "plugins").write_text("a file where the folder should be")
    failure = record_failure(zoo_env, "broken", "check_input", None, "raised X: y")
    assert failure.plugin == "broken" and read_failures(zoo_env) == {}


def test_a_failure_counts_for_the_version_that_had_it(zoo_env: Path) -> None:
    version = zoo_core.__version__  # wordvec ships in zoo-tl
    write(zoo_env, {"failures": {"wordvec": {"build_backbone": {**ENTRY, "version": "0.0.1"}}}})
    assert {status.name: status.state for status in plugin_statuses()}["wordvec"] == "ok"  # an older version's
    write(zoo_env, {"failures": {"wordvec": {"build_backbone": {**ENTRY, "version": version}}}})
    reset_plugin_manager()  # as a new command would, reading the file again
    status = {status.name: status for status in plugin_statuses()}["wordvec"]
    assert status.state == "error" and status.reason is not None
    assert status.reason.startswith("build_backbone raised ValueError: boom (2026-11-2")


def test_zoo_plugins_survives_times_at_the_ends_of_the_calendar(zoo_env: Path) -> None:
    version = zoo_core.__version__
    times = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:00-14:00"]
    hooks = {hook: {**ENTRY, "version": version, "time": time} for hook, time in zip(["a", "b"], times, strict=True)}
    write(zoo_env, {"failures": {"wordvec": hooks}})
    assert {status.name: status.state for status in plugin_statuses()}["wordvec"] == "ok"  # both entries dropped
