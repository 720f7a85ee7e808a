"""The class-name lists zoo ships, so a catalogue classifier says "tabby, tabby cat" rather than "281".

A registry entry names one in its ``labels`` field; each is ``zoo_core/labels/<name>.json`` holding
``labels`` (one name per output, in output order) and ``about`` (where the names come from).
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from zoo_core.specs import ModelSpec

__all__ = ["class_names", "label_sets"]


@functools.cache
def _read(name: str) -> tuple[str, ...]:
    text = resources.files("zoo_core").joinpath("labels", f"{name}.json").read_text(encoding="utf-8")
    return tuple(json.loads(text)["labels"])


@functools.cache
def label_sets() -> dict[str, int]:
    """Each shipped label set's name, with its number of classes."""
    folder = resources.files("zoo_core").joinpath("labels")
    names = sorted(entry.name.removesuffix(".json") for entry in folder.iterdir() if entry.name.endswith(".json"))
    return {name: len(_read(name)) for name in names}


def class_names(spec: ModelSpec) -> list[str]:
    """The names of the spec's classifier outputs: its label set, or the output indices ("0", "1", …)."""
    if spec.labels is not None:
        return list(_read(spec.labels))
    return [str(index) for index in range(spec.output.num_classes or 0)]
