"""Feature extraction: an epoch of head training on cached features against recomputing the frozen backbone.

resnet18 (random weights: the speed is the same as with pretrained ones) on 256 images of 224x224. The
"recompute" epoch runs the frozen backbone over every image, as a naive loop does each epoch; the cached
epoch trains the same linear head on features computed once. Target (issue 6): cached ≥ 100x faster.

    python bench/bench_features.py [--images 256]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    count = parser.parse_args().images
    import zoo_core

    backbone = zoo_core.load("resnet18", pretrained=False).eval()
    images = torch.randn(count, 3, 224, 224)
    labels = torch.randint(0, 10, (count,))
    head = nn.Linear(backbone.feature_dim, 10)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3)

    def head_epoch(features: torch.Tensor) -> None:
        for start in range(0, count, 32):
            optimizer.zero_grad()
            nn.functional.cross_entropy(head(features[start : start + 32]), labels[start : start + 32]).backward()
            optimizer.step()

    def recompute_epoch() -> None:
        with torch.no_grad():
            features = torch.cat([backbone.features(images[i : i + 32]) for i in range(0, count, 32)])
        head_epoch(features)

    start = time.perf_counter()
    recompute_epoch()
    recompute = time.perf_counter() - start
    with torch.no_grad():
        cached = torch.cat([backbone.features(images[i : i + 32]) for i in range(0, count, 32)])
    timings = []
    for _ in range(20):
        start = time.perf_counter()
        head_epoch(cached)
        timings.append(time.perf_counter() - start)
    epoch = statistics.median(timings)
    print(f"resnet18, {count} images, {torch.get_num_threads()} threads")
    print(f"epoch recomputing the frozen backbone: {recompute:.2f} s")
    print(f"epoch on cached features (median of 20): {epoch * 1000:.2f} ms")
    print(f"ratio: {recompute / epoch:.0f}x  (target ≥ 100x)")


if __name__ == "__main__":
    main()
