"""timm's published results joined into the `figures` of the catalogue's timm entries.

Reads the copies in scripts/data/timm-results/ (their README names the source). The generator passes what
only timm knows (the names timm used before tags, each mapped to its current one, and which architectures
have a single pretrained tag), so this module needs no timm and its join is tested on small files.

The joins, and why:

- top1, top5: results-imagenet.csv by the full ``arch.tag`` name, from the row measured at the tag's
  input size. timm lists some tags a second time at a larger test size, which zoo never feeds.
- images_per_second, gmacs: the CPU benchmark by architecture, from the row at the tag's input size. An
  architecture benchmarked only at other sizes gets neither: a cost at another size would mislead a sort,
  and scaling it would be a guess.
- pretrained_on: model_metadata-in1k.csv names models as timm did before tags (timm 0.9). A row applies to
  the tag its old name became, or to an architecture's only tag; an architecture with several tags gets
  none (the row cannot say which tag it describes), and rows that give one tag different data cancel out.
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DATA", "TimmResults"]

DATA = Path(__file__).resolve().parent / "data" / "timm-results"
ACCURACY = "results-imagenet.csv"
SPEED = "benchmark-infer-fp32-nchw-pt240-cpu-i7_12700h-dynamo.csv"
PRETRAINING = "model_metadata-in1k.csv"
SOURCE = "timm results aa4b585"  # the pytorch-image-models commit the copies come from (see their README)
SPEED_SETUP = "CPU i7-12700H, fp32, batch 1, torch 2.4"  # from the benchmark file's name and timm's README


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


@dataclass(frozen=True)
class TimmResults:
    """The three files, indexed for the join."""

    accuracy: Mapping[tuple[str, int], tuple[float, float]]  # (arch.tag, image size) -> (top1, top5)
    speed: Mapping[tuple[str, int], tuple[float, float]]  # (arch, image size) -> (images/s, GMACs)
    pretraining: Mapping[str, str]  # arch.tag, or arch for a single-tag architecture -> data ("in1k", …)

    @classmethod
    def read(cls, renamed: Mapping[str, str], folder: Path = DATA) -> TimmResults:
        """The files in `folder`; `renamed` maps names timm used before tags to today's ``arch.tag`` or
        ``arch`` (timm's deprecation table)."""
        accuracy = {
            (row["model"], int(row["img_size"])): (float(row["top1"]), float(row["top5"]))
            for row in _rows(folder / ACCURACY)
        }
        speed = {
            (row["model"], int(row["infer_img_size"])): (
                float(row["infer_samples_per_sec"]),
                float(row["infer_gmacs"]),
            )
            for row in _rows(folder / SPEED)
        }
        given: dict[str, set[str]] = {}
        for row in _rows(folder / PRETRAINING):
            given.setdefault(renamed.get(row["model"], row["model"]), set()).add(row["pretrain"])
        pretraining = {name: data.pop() for name, data in given.items() if len(data) == 1}
        return cls(accuracy, speed, pretraining)

    def figures(self, name: str, height: int, width: int, single_tags: Collection[str]) -> dict[str, Any]:
        """The `figures` table of timm tag `name` (``arch.tag``) with this input size, or {} when the files
        know nothing of it. `single_tags`: the architectures that have one pretrained tag only."""
        arch = name.split(".", 1)[0]
        table: dict[str, Any] = {}
        sources = []
        if height == width and (accuracy := self.accuracy.get((name, height))):
            table["top1"], table["top5"] = accuracy
            sources.append(f"top-1/5 at {height}x{width}")
        if height == width and (speed := self.speed.get((arch, height))):
            table["gmacs"], table["images_per_second"] = speed[1], speed[0]
            sources.append(SPEED_SETUP)
        pretrained = self.pretraining.get(name) or (self.pretraining.get(arch) if arch in single_tags else None)
        if pretrained:
            table["pretrained_on"] = pretrained
            sources.append(PRETRAINING)
        if table:
            table["measured_by"] = f"{SOURCE} ({'; '.join(sources)})"
        return table
