"""What `zoo evaluate` leaves in its ``--out`` folder: ``confusion.png`` and ``evaluation.json``.

Each file is written beside its final name and renamed into place, the picture first and the JSON last, so
a folder never holds half a file, and an ``evaluation.json`` is always the report of the picture beside it
(a crash between the two leaves the previous evaluation.json, which names what it measured).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zoo_core.errors import RunOptionError
from zoo_core.training.runfolder import write_json

__all__ = ["EVALUATION_FILES", "check_out", "write_evaluation"]

EVALUATION_FILES = ("evaluation.json", "confusion.png")
ANNOTATED_CLASSES = 30  # up to this many classes, each cell of the picture shows its count


def _plot_confusion(report: dict[str, Any], path: Path) -> None:
    """The confusion matrix as a PNG: rows the true class, columns the predicted one, each cell coloured by
    its share of its row (the recall of the diagonal), so a small class's errors show as clearly as a big
    one's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    classes = report["confusion"]["classes"]
    counts = np.asarray(report["confusion"]["matrix"], dtype=np.int64)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = min(20.0, 3.0 + 0.45 * len(classes))
    figure, axes = plt.subplots(figsize=(side, side), dpi=100)
    axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    ticks = range(len(classes))
    axes.set_xticks(ticks, classes, rotation=90)
    axes.set_yticks(ticks, classes)
    axes.set(xlabel="predicted class", ylabel="true class")
    axes.set_title(f"{report['data']}\naccuracy {report['accuracy']:.1%} on {report['samples']} items", fontsize=9)
    if len(classes) <= ANNOTATED_CLASSES:
        for row, column in np.ndindex(counts.shape):
            colour = "white" if shares[row, column] > 0.5 else "black"
            axes.text(column, row, str(counts[row, column]), ha="center", va="center", color=colour, fontsize=8)
    figure.tight_layout()
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        figure.savefig(partial, format="png")
        partial.replace(path)
    finally:
        plt.close(figure)
        partial.unlink(missing_ok=True)


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that is a file, before any work."""
    if out.exists() and not out.is_dir():
        raise RunOptionError(f"--out {out} is a file; give a folder for {' and '.join(EVALUATION_FILES)}")


def write_evaluation(report: dict[str, Any], out: Path) -> list[Path]:
    """``confusion.png`` and ``evaluation.json`` of `report` (an evaluation, with its "data") in `out`,
    created if needed (`check_out` has refused a file there, before the work); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    _plot_confusion(report, out / "confusion.png")
    write_json(out / "evaluation.json", report)
    return [out / name for name in EVALUATION_FILES]
