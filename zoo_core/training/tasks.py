"""The tasks of a multi-task run, as the command line and files name them: checked before they become ONNX
output names, file keys and manifest entries.

``--task NAME=DATA`` names a task and its labelled data; ``--task-weight NAME=W`` weighs its loss (default 1).
A name is a lowercase identifier (``digit``, ``odd_even``): it names an ONNX output, a key of
``labels.json`` and ``splits.json``, and a folder under ``evaluation/``, so it must be safe as all of them.
This module imports neither torch nor the training code: the CLI checks options here before a run starts.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from zoo_core.errors import RunOptionError

__all__ = [
    "MAX_WEIGHT",
    "ONE_TASK",
    "TASKS_FOLDER",
    "TASK_NAME",
    "check_task_name",
    "check_weight",
    "checked_weights",
    "is_multitask_manifest",
    "parse_tasks",
    "parse_weights",
    "records_tasks",
]

TASKS_FOLDER = "tasks"  # a multi-task run folder's tasks/<task>/splits.json
TASK_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
ONE_TASK = "--task: a multi-task run needs two or more tasks; for one task give NAME DATA without --task"
MAX_WEIGHT = 1000.0  # a task weight above this drowns the others and invites a non-finite loss
RESERVED = ("input", "input_ids", "attention_mask", "logits")  # the graph's input names, and a single task's output


def check_task_name(name: str, where: str) -> str:
    """`name` when it can be a task's name; else a one-line `RunOptionError` that says so at `where`."""
    if not TASK_NAME.fullmatch(name):
        raise RunOptionError(
            f"{where}: task name {name!r} is not a lowercase identifier (a letter, then up to 31 letters, digits "
            "or _): it becomes an ONNX output name and a file key; rename it, e.g. digit or odd_even"
        )
    if name in RESERVED:
        raise RunOptionError(f"{where}: task name {name!r} is taken by the exported graph; choose another name")
    return name


def _pairs(given: Iterable[str], option: str) -> list[tuple[str, str]]:
    found = []
    for text in given:
        name, equals, value = text.partition("=")
        if not equals or not value:
            raise RunOptionError(f"{option} {text!r}: give NAME=VALUE, e.g. {option} digit=data/digits")
        found.append((check_task_name(name, f"{option} {text}"), value))
    return found


def parse_tasks(given: Iterable[str]) -> dict[str, Path]:
    """``--task NAME=DATA`` options as {name: data}, in the order given: two or more, each name once."""
    tasks: dict[str, Path] = {}
    for name, data in _pairs(given, "--task"):
        if name in tasks:
            raise RunOptionError(f"--task {name}: given twice; each task needs its own name")
        tasks[name] = Path(data)
    if len(tasks) < 2:
        raise RunOptionError(ONE_TASK)
    return tasks


def check_weight(weight: object, where: str) -> float:
    """`weight` as a float when it is a finite number above 0 and at most `MAX_WEIGHT` (a Python or numpy
    number, not a string or a bool); else a one-line `RunOptionError` that says so at `where`."""
    number = float(weight) if isinstance(weight, numbers.Real) and not isinstance(weight, bool) else math.nan
    if not (math.isfinite(number) and 0 < number <= MAX_WEIGHT):
        raise RunOptionError(
            f"{where}: a task weight must be a number above 0 and at most {MAX_WEIGHT:g}, e.g. 0.5 (got {weight!r})"
        )
    return number


def parse_weights(given: Iterable[str], tasks: Iterable[str]) -> dict[str, float]:
    """``--task-weight NAME=W`` options as {name: weight} for every task (1 where not given); a weight for
    no task, a task weighed twice, or a weight `check_weight` refuses, is refused."""
    names = list(tasks)
    weights = dict.fromkeys(names, 1.0)
    seen: set[str] = set()
    for name, text in _pairs(given, "--task-weight"):
        if name not in weights:
            raise RunOptionError(f"--task-weight {name}={text}: no --task {name}; the tasks are {', '.join(names)}")
        if name in seen:
            raise RunOptionError(f"--task-weight {name}: given twice; give each task's weight once")
        seen.add(name)
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        weights[name] = check_weight(number, f"--task-weight {name}={text}")
    return weights


def checked_weights(weights: Mapping[str, object], tasks: Iterable[str]) -> dict[str, float]:
    """`finetune_tasks`'s `weights` checked as the command line's are: every key a task, every value a number
    `check_weight` accepts; 1 for a task not named."""
    names = list(tasks)
    chosen = dict.fromkeys(names, 1.0)
    for name, weight in weights.items():
        if name not in chosen:
            raise RunOptionError(f"weights: {name!r} is no task's name; the tasks are {', '.join(names)}")
        chosen[name] = check_weight(weight, f"weights[{name!r}]")
    return chosen


def records_tasks(manifest: object) -> bool:
    """Whether a run's manifest (manifest.json as read) is a multi-task run's: the one test every reader uses."""
    return isinstance(manifest, dict) and "tasks" in manifest


def is_multitask_manifest(manifest: Path) -> bool:
    """`records_tasks` of the manifest.json at `manifest`; False when it cannot be read (the single-task
    reader then says what is wrong with it)."""
    try:
        return records_tasks(json.loads(manifest.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return False
