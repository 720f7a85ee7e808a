"""A 500 MB file over loopback: `zoo download` (with verification) against a bare `hf_hub_download`.

Both run as fresh processes against the same hub-protocol server (zoo_core.testing.hub), each into an
empty cache, alternating, and the medians are compared. Target (issue 3): zoo ≤ 1.15x the bare client.

    python bench/bench_download.py [--size-mb 500] [--rounds 3]
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

from zoo_core.testing.hub import running_hub

REGISTRY = """
[[model]]
name = "bench.big"
plugin = "timm"
arch = "big"
family = "bench"
task = "image-classification"
modality = "image"
source = {{ hub = "bench/big", files = ["model.safetensors"] }}
input = {{}}
"""
BARE = (
    "import sys; from huggingface_hub import hf_hub_download; "
    "hf_hub_download('bench/big', 'model.safetensors', endpoint=sys.argv[1], cache_dir=sys.argv[2])"
)


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    block = os.urandom(1 << 20)
    data = block * options.size_mb
    zoo = [str(Path(sys.executable).with_name("zoo")), "download", "bench.big", "--quiet"]
    bare_times, zoo_times = [], []
    with running_hub() as hub, tempfile.TemporaryDirectory(prefix="zoo-bench-") as folder:
        hub.add_repo("bench/big", {"model.safetensors": data})
        registry = Path(folder) / "bench.toml"
        registry.write_text(REGISTRY.format())
        for _ in range(options.rounds):
            for kind in ("bare", "zoo"):
                home = Path(folder) / kind
                env = {
                    **os.environ,
                    "HF_ENDPOINT": hub.url,
                    "HF_HOME": str(home / "hf"),
                    "ZOO_HOME": str(home / "zoo"),
                    "ZOO_REGISTRY": str(registry),
                    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                }
                if kind == "bare":
                    bare_times.append(timed([sys.executable, "-c", BARE, hub.url, str(home / "hf" / "hub")], env))
                else:
                    zoo_times.append(timed(zoo, env))
                shutil.rmtree(home)
    bare, ours = statistics.median(bare_times), statistics.median(zoo_times)
    print(f"{options.size_mb} MB over loopback, median of {options.rounds} fresh processes each")
    print(f"bare hf_hub_download:            {bare:.2f} s  ({options.size_mb / bare:.0f} MB/s)")
    print(f"zoo download (verified sha256):  {ours:.2f} s  ({options.size_mb / ours:.0f} MB/s)")
    print(f"ratio zoo / bare: {ours / bare:.2f}x  (target ≤ 1.15x)")


if __name__ == "__main__":
    main()
