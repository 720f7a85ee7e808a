"""The tasks of a multi-task run, as the command line and files name them: checked before they become ONNX
output names, file keys and manifest entries.

``--task NAME=DATA`` names a task and its labelled data; ``--task-weight NAME=W`` weighs its loss (default 1).
A name is a lowercase identifier (``digit``, ``odd_even``): it names an ONNX output, a key of
``labels.json`` and ``splits.json``, and a folder under ``evaluation/``, so it must be safe as all of them.
This module imports neither torch nor the training code: the CLI checks options here before a run starts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from zoo_core.errors import RunOptionError

__all__ = ["TASKS_FOLDER", "TASK_NAME", "check_task_name", "checked_weights", "parse_tasks", "parse_weights"]

TASKS_FOLDER = "tasks"  # a multi-task run folder's tasks/<task>/splits.json
TASK_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
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
        raise RunOptionError(
            "--task: a multi-task run needs two or more tasks; for one task give NAME DATA without --task"
        )
    return tasks


def parse_weights(given: Iterable[str], tasks: Iterable[str]) -> dict[str, float]:
    """``--task-weight NAME=W`` options as {name: weight} for every task (1 where not given); a weight for
    no task, or one that is not a positive finite number, is refused."""
    names = list(tasks)
    weights = dict.fromkeys(names, 1.0)
    for name, text in _pairs(given, "--task-weight"):
        if name not in weights:
            raise RunOptionError(f"--task-weight {name}={text}: no --task {name}; the tasks are {', '.join(names)}")
        try:
            weight = float(text)
        except ValueError:
            weight = math.nan
        if not (math.isfinite(weight) and weight > 0):
            raise RunOptionError(f"--task-weight {name}={text}: a task weight must be a positive number, e.g. 0.5")
        weights[name] = weight
    return weights


def checked_weights(weights: Mapping[str, float], tasks: Iterable[str]) -> dict[str, float]:
    """`finetune_tasks`'s `weights` checked as the command line's are: every key a task, every value > 0."""
    return parse_weights([f"{name}={weight!r}" for name, weight in weights.items()], tasks)
