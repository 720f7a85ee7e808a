"""Does `zoo rank` pick the backbone that fine-tunes best? Every score against fine-tuning every candidate.

Ground truth: on each target (bench/rank_targets.py: digits 5-9, the same digits inverted, photo textures,
AFINN word sentiment, topic sentences) every candidate is adapted by `zoo_core.training.run.finetune` on the
target's training set, picks its epoch on the validation set, and is measured once on the test set; its test
accuracy, as the mean over seeds (each seed draws the labelled items again), is what a score should predict.

- Image CNNs: ``--strategy finetune --unfreeze 1`` (the last stage and the head), AdamW lr 1e-2 (the
  backbone at a tenth), batch 16, `EPOCHS` epochs (``--epochs``), patience 3. Ten images a class cannot
  train a whole network; the last stage is where transfer learning adapts a backbone to new data. The
  quickstart trains 15 epochs at 3e-3; 8 at 1e-2 take half the time, and EfficientNet-Lite2 alone takes a
  tenth of a second an image on one CPU thread: the ground truth is the accuracy this budget buys, the same
  budget for every candidate.
- Word vectors: ``--strategy features --head logreg``, the only strategy they have.
- MiniLM: ``--strategy finetune --unfreeze 1`` like the CNNs (its last layer and the head): on these short
  texts it takes seconds, so the stronger adaptation is affordable.

Then `zoo_core.ranking.rank` scores every candidate on the same splits (training and validation sets, never
the test set), once per seed. Per target it prints each candidate's ground truth and every score (mean over
seeds), then for each score in `zoo_core.transferability.SCORES` and for two dataset-agnostic heuristics —
"largest ImageNet top-1" (the catalogue's figure; a model without one counts as lowest) and "largest model"
(parameters) — Kendall's tau against the ground truth and the top-1 hit (1 when the method's first choice
is the best candidate; shared between ties), then the average tau and hit per method over the targets, and
the wall time of ranking (`zoo rank` as a user runs it: its default score, LogME) against fine-tuning every
candidate. Both are timed from a cold features cache, after every candidate has been loaded once (so neither
pays for a first import or a first parse of GloVe); torch's threads are zoo's default (1).

    python bench/bench_rank.py [--seeds 3] [--epochs 8] [--targets digits,afinn] [--quick] [--json PATH]

``--quick``: one seed, two targets (digits, topics): a smoke run of every step. Everything is written under
a temporary folder (ZOO_HOME and HF_HOME point into it) and deleted at the end; ``--json`` is written whole
or not at all. A candidate that `rank` cannot score stops the benchmark with one line naming it and why (the
figures would compare other candidate sets); any other failure is zoo's own error, with its traceback.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rank_targets import CANDIDATES, TARGETS, Target, weights_parameters

EPOCHS = 8  # of the CNNs' and MiniLM's fine-tuning, unless --epochs says otherwise
QUICK_TARGETS = ("digits", "topics")
TOP1, LARGEST = "largest ImageNet top-1", "largest model"
PACKAGES = ("torch", "timm", "transformers", "numpy", "scipy", "scikit-learn", "zoo-tl")


@dataclass
class Candidate:
    """One candidate on one target: ground truth and scores per seed, and what the heuristics read."""

    accuracy: list[float] = field(default_factory=list)  # test accuracy of fine-tuning, per seed
    scores: dict[str, list[float]] = field(default_factory=dict)  # score name -> value per seed
    rank_seconds: list[float] = field(default_factory=list)  # its share of rank's time, per seed
    finetune_seconds: list[float] = field(default_factory=list)  # its ground truth's, per seed
    params: int | None = None
    top1: float | None = None


@dataclass
class Measured:
    """Everything measured on one target."""

    name: str
    modality: str
    candidates: dict[str, Candidate]
    strategies: dict[str, str]  # candidate -> how its ground truth was trained
    sizes: dict[str, int]  # items per split (the last seed's)
    rank_seconds: list[float] = field(default_factory=list)  # per seed
    finetune_seconds: list[float] = field(default_factory=list)  # per seed, every candidate together
    recommendation: str = ""  # zoo rank's, on the first seed


def kendall(values: Sequence[float], truth: Sequence[float]) -> float | None:
    """Kendall's tau-b of `values` against `truth`; None when either orders nothing (all equal)."""
    from scipy.stats import kendalltau

    if len(set(values)) < 2 or len(set(truth)) < 2:
        return None
    return float(kendalltau(values, truth).statistic)


def top1_hit(values: Sequence[float], truth: Sequence[float]) -> float:
    """The chance that the method's first choice (drawn among its ties) is a best candidate by `truth`."""
    chosen = [index for index, value in enumerate(values) if value == max(values)]
    best = {index for index, value in enumerate(truth) if value == max(truth)}
    return sum(index in best for index in chosen) / len(chosen)


def method_values(candidates: Mapping[str, Candidate], scores: Iterable[str]) -> dict[str, list[float]]:
    """Each method's value per candidate (in `candidates`' order): every score's mean over seeds, then the two
    heuristics; a model without an ImageNet top-1 or a parameter count counts as lowest."""
    values = {score: [statistics.fmean(each.scores[score]) for each in candidates.values()] for score in scores}
    values[TOP1] = [-math.inf if each.top1 is None else each.top1 for each in candidates.values()]
    values[LARGEST] = [-math.inf if each.params is None else float(each.params) for each in candidates.values()]
    return values


def agreement(candidates: Mapping[str, Candidate], scores: Iterable[str]) -> dict[str, dict[str, float | None]]:
    """Per method: Kendall's tau and top-1 hit against the mean ground truth."""
    truth = [statistics.fmean(each.accuracy) for each in candidates.values()]
    return {
        method: {"tau": kendall(values, truth), "hit": top1_hit(values, truth)}
        for method, values in method_values(candidates, scores).items()
    }


def averages(per_target: Sequence[Mapping[str, Mapping[str, float | None]]]) -> dict[str, dict[str, float]]:
    """Per method: mean tau (a method that orders nothing counts 0, a random guess's expectation) and mean hit."""
    return {
        method: {
            statistic: statistics.fmean(target[method][statistic] or 0.0 for target in per_target)
            for statistic in ("tau", "hit")
        }
        for method in per_target[0]
    }


def verdicts(means: Mapping[str, Mapping[str, float]], scores: Iterable[str]) -> list[str]:
    """One plain line per score: does it beat both heuristics on average tau?"""
    lines = []
    for score in scores:
        tau = means[score]["tau"]
        lost = [h for h in (TOP1, LARGEST) if means[h]["tau"] >= tau]
        against = ", ".join(f"{h} {means[h]['tau']:+.2f}" for h in (TOP1, LARGEST))
        if lost:
            lines.append(f"{score} does NOT beat {' or '.join(lost)} on average tau ({tau:+.2f}; {against})")
        else:
            lines.append(f"{score} beats both heuristics on average tau ({tau:+.2f}; {against})")
    return lines


def ground_truth_options(spec: Any, target: Target, seed: int, epochs: int) -> tuple[Any, str]:
    """The `finetune` options for `spec` on `target` and a short description of them."""
    from zoo_core.training.run import FinetuneOptions

    given = FinetuneOptions(val=str(target.val), test=str(target.test), seed=seed)
    if spec.modality == "embedding":  # word vectors: frozen features are all they have
        return replace(given, head="logreg"), "features, logreg head"
    tuned = replace(given, strategy="finetune", unfreeze=1, lr=1e-2, batch_size=16, epochs=epochs, patience=3)
    return tuned, f"finetune --unfreeze 1, {epochs} epochs"


def _cold_cache() -> None:
    """Empty the features cache (under the bench's own ZOO_HOME), so the next call computes its features."""
    from zoo_core.training.features import features_cache

    shutil.rmtree(features_cache(), ignore_errors=True)


def _rank_seed(target: Target, seed: int, measured: Measured) -> None:
    """`zoo rank` of every candidate on `target`'s splits for `seed`: timed as a user runs it (its default
    score, from a cold features cache), then again for every score (the features then come from the cache)."""
    from zoo_core.ranking import rank
    from zoo_core.training.run import FinetuneOptions
    from zoo_core.transferability import SCORES

    options = FinetuneOptions(val=str(target.val), test=str(target.test), seed=seed)
    _cold_cache()
    started = time.perf_counter()
    timed = rank(target.train, list(measured.candidates), options=options)
    measured.rank_seconds.append(time.perf_counter() - started)
    every = rank(target.train, list(measured.candidates), options=options, also=list(SCORES))
    for ranking in (timed, every):
        if ranking.failed:  # a benchmark with a candidate missing would compare other things
            raise SystemExit(f"{measured.name}: not ranked: {ranking.failed}")
    measured.recommendation = measured.recommendation or timed.recommendation
    for ranked in timed.models:
        measured.candidates[ranked.name].rank_seconds.append(ranked.seconds)
    for ranked in every.models:
        candidate = measured.candidates[ranked.name]
        for score, value in ranked.scores.items():
            candidate.scores.setdefault(score, []).append(value)
        candidate.top1 = ranked.top1
        candidate.params = ranked.params if ranked.params is not None else weights_parameters(ranked.name)


def _finetune_seed(target: Target, seed: int, epochs: int, runs: Path, measured: Measured) -> None:
    """The ground truth: every candidate fine-tuned on `target`'s splits for `seed`, each from a cold cache."""
    from zoo_core.catalogue_sources import default_catalogue
    from zoo_core.training.run import finetune

    for index, (name, candidate) in enumerate(measured.candidates.items()):
        tuned, measured.strategies[name] = ground_truth_options(default_catalogue().get(name), target, seed, epochs)
        _cold_cache()
        started = time.perf_counter()
        metrics = finetune(name, target.train, runs / f"seed{seed}-{index}", tuned)
        candidate.finetune_seconds.append(time.perf_counter() - started)
        candidate.accuracy.append(metrics["transfer"]["test"]["accuracy"]["mean"])
        measured.sizes = metrics["sizes"]
    measured.finetune_seconds.append(sum(each.finetune_seconds[-1] for each in measured.candidates.values()))


def measure(name: str, seeds: range, epochs: int, root: Path, models: Sequence[str]) -> Measured:
    """Rank and fine-tune every candidate on target `name`, once per seed."""
    measured = Measured(name, TARGETS[name].modality, {model: Candidate() for model in models}, {}, {})
    for seed in seeds:
        target = TARGETS[name].write(root / "data" / name / f"seed{seed}", seed)
        _rank_seed(target, seed, measured)
        _finetune_seed(target, seed, epochs, root / "runs" / name, measured)
        line = ", ".join(f"{model} {each.accuracy[-1]:.1%}" for model, each in measured.candidates.items())
        spent = f"rank {measured.rank_seconds[-1]:.0f} s, fine-tuning {measured.finetune_seconds[-1]:.0f} s"
        print(f"  {name} seed {seed}: {spent}; test accuracy {line}", flush=True)
    return measured


def _percent(values: Sequence[float]) -> str:
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):6.1%} ± {100 * deviation:4.1f}"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def report_target(measured: Measured, seeds: int) -> dict[str, dict[str, float | None]]:
    """Print one target's table; returns its tau and hit per method."""
    candidates = measured.candidates
    scores = list(next(iter(candidates.values())).scores)
    sizes = "/".join(str(measured.sizes[split]) for split in ("train", "val", "test"))
    print(f"\n{measured.name} ({measured.modality}): train/val/test {sizes} items, {seeds} seed(s)")
    width = max(map(len, candidates)) + 2
    header = f"{'candidate':{width}} {'ground truth':>14} " + " ".join(f"{score:>10}" for score in scores)
    print(header + f" {'params':>7} {'top-1':>6} {'rank s':>6} {'tune s':>6}  ground truth by")
    for name, each in candidates.items():
        row = " ".join(f"{statistics.fmean(each.scores[score]):10.4g}" for score in scores)
        params = "-" if each.params is None else f"{each.params / 1e6:.1f}M"
        top1 = "-" if each.top1 is None else f"{each.top1:.1f}"
        seconds = f"{statistics.fmean(each.rank_seconds):6.1f} {statistics.fmean(each.finetune_seconds):6.1f}"
        print(
            f"{name:{width}} {_percent(each.accuracy):>14} {row} {params:>7} {top1:>6} {seconds}  "
            f"{measured.strategies[name]}"
        )
    found = agreement(candidates, scores)
    print(f"{'method':24} {'tau':>6} {'top-1 hit':>10}")
    for method, figures in found.items():
        print(f"{method:24} {_number(figures['tau']):>6} {figures['hit']:10.2f}")
    rank_time, tune_time = statistics.fmean(measured.rank_seconds), statistics.fmean(measured.finetune_seconds)
    print(f"zoo rank recommends (seed 0): {measured.recommendation}")
    print(
        f"time per seed: rank {rank_time:.0f} s, fine-tuning every candidate {tune_time:.0f} s "
        f"(ratio {rank_time / tune_time:.3f})"
    )
    return found


def machine() -> str:
    """The machine and the versions that produced the figures."""
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    cpuinfo = Path("/proc/cpuinfo")  # Linux names the CPU model; elsewhere platform's word must do
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    cpu = names[0] if names else platform.processor() or platform.machine()
    return (
        f"machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}; torch threads: 1 (zoo's default --threads, for rank and finetune alike)\n"
        f"versions: {', '.join(versions)}"
    )


def warm_up(models: Iterable[str]) -> None:
    """Load every candidate once: first imports and GloVe's first parse are then paid by neither side."""
    import zoo_core

    for name in models:
        zoo_core.load(name)


def run(targets: Sequence[str], seeds: range, epochs: int, root: Path) -> dict[str, Any]:
    """Prepare the candidates, measure every target, print the tables and the summary; returns it all."""
    from zoo_core.transferability import SCORES

    print(machine())
    print(f"targets: {', '.join(targets)}; {len(seeds)} seed(s); CNNs and MiniLM fine-tuned {epochs} epochs")
    started = time.perf_counter()
    models = {
        modality: CANDIDATES[modality](root / "candidates") for modality in {TARGETS[t].modality for t in targets}
    }
    warm_up(name for names in models.values() for name in names)
    print(f"candidates ready in {time.perf_counter() - started:.0f} s (source model, random weights, GloVe files)")
    results, per_target = [], []
    for name in targets:
        measured = measure(name, seeds, epochs, root, models[TARGETS[name].modality])
        per_target.append(report_target(measured, len(seeds)))
        results.append(measured)
    means = averages(per_target)
    print(f"\naverage over {len(targets)} targets ({', '.join(targets)}); a method that orders nothing counts tau 0")
    print(f"{'method':24} {'tau':>6} {'top-1 hit':>10}")
    for method, figures in means.items():
        print(f"{method:24} {figures['tau']:+6.2f} {figures['hit']:10.2f}")
    for line in verdicts(means, SCORES):
        print(line)
    rank_total = sum(sum(each.rank_seconds) for each in results)
    tune_total = sum(sum(each.finetune_seconds) for each in results)
    ratio = rank_total / tune_total
    cheap = "under" if ratio < 0.1 else "NOT under"
    print(
        f"time: rank {rank_total:.0f} s, fine-tuning every candidate {tune_total:.0f} s: ratio {ratio:.3f} "
        f"({cheap} the goal of 0.1)"
    )
    return {
        "machine": machine(),
        "seeds": len(seeds),
        "epochs": epochs,
        "targets": [
            {
                "name": each.name,
                "modality": each.modality,
                "sizes": each.sizes,
                "candidates": {name: vars(candidate) for name, candidate in each.candidates.items()},
                "ground_truth_by": each.strategies,
                "agreement": found,
                "rank_seconds": each.rank_seconds,
                "finetune_seconds": each.finetune_seconds,
                "recommendation": each.recommendation,
            }
            for each, found in zip(results, per_target, strict=True)
        ],
        "average": means,
        "time": {"rank_seconds": rank_total, "finetune_seconds": tune_total, "ratio": ratio},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1, each its own labelled items (default 3)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"of each fine-tuning (default {EPOCHS})")
    parser.add_argument("--quick", action="store_true", help=f"one seed, targets {' and '.join(QUICK_TARGETS)}")
    parser.add_argument("--targets", help=f"comma-separated, among {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results here, as JSON")
    arguments = parser.parse_args()
    for option in ("seeds", "epochs"):
        if getattr(arguments, option) < 1:
            parser.error(f"--{option} {getattr(arguments, option)}: must be at least 1")
    targets = tuple(arguments.targets.split(",")) if arguments.targets else tuple(TARGETS)
    unknown = [name for name in targets if name not in TARGETS]
    if unknown:
        parser.error(f"--targets {arguments.targets}: {', '.join(unknown)} not among {', '.join(TARGETS)}")
    seeds = range(1 if arguments.quick else arguments.seeds)
    targets = QUICK_TARGETS if arguments.quick else targets
    with tempfile.TemporaryDirectory(prefix="zoo-bench-rank-") as folder:
        root = Path(folder)
        # zoo's home and the hub cache in here: the candidates' registry entries and files go nowhere else
        os.environ.update(ZOO_HOME=str(root / "home"), HF_HOME=str(root / "hf"), HF_HUB_OFFLINE="1")
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # transformers' bar for loading MiniLM, in a log file
        results = run(targets, seeds, arguments.epochs, root)
    if arguments.json:  # written beside, then moved into place: never a half-written file
        partial = arguments.json.with_name(f".{arguments.json.name}.partial")
        partial.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        partial.replace(arguments.json)
        print(f"results: {arguments.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
