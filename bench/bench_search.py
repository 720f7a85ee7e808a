"""Cold start of `zoo search resnet` against `import timm; timm.list_models('*resnet*')`, side by side.

Each run is a new process, as a user's command is. zoo's runs use a warm catalogue index (the state after
the first command on a machine); the first run, which builds the index, is reported on its own.
Targets (issue 2): median ≤ 0.3 s, and ≥ 10x faster than the timm one-liner.

    python bench/bench_search.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    script = Path(sys.executable).with_name("zoo")
    zoo = [str(script)] if script.exists() else [sys.executable, "-m", "zoo_core"]
    timm = [sys.executable, "-c", "import timm; timm.list_models('*resnet*')"]
    home = tempfile.mkdtemp(prefix="zoo-bench-")
    env = {**os.environ, "ZOO_HOME": home}
    try:
        first = timed([*zoo, "search", "resnet"], env)
        zoo_times, timm_times = [], []
        for run in range(runs):  # interleaved, so both see the same machine state
            zoo_times.append(timed([*zoo, "search", "resnet"], env))
            if run % 3 == 0:
                timm_times.append(timed(timm, env))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    zoo_median, timm_median = statistics.median(zoo_times), statistics.median(timm_times)
    print(f"zoo search resnet, first run (builds the index): {first:.3f} s")
    print(f"zoo search resnet, median of {len(zoo_times)}:          {zoo_median:.3f} s  (target ≤ 0.300 s)")
    print(f"import timm; list_models, median of {len(timm_times)}:     {timm_median:.3f} s")
    print(f"ratio timm / zoo: {timm_median / zoo_median:.1f}x  (target ≥ 10x)")


if __name__ == "__main__":
    main()
