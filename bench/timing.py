"""Timing helpers the benchmarks share (run them from the repository root: python bench/NAME.py)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(action: Callable[[], object], repeat: int, warm_up: bool = False) -> float:
    """The median wall time of `repeat` calls, after one untimed call when `warm_up`."""
    if warm_up:
        action()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
