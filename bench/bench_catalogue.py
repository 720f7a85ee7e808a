"""A synthetic 50,000-entry registry file: first load, cached load and search times, side by side.

The first load parses and validates the TOML and writes the SQLite index; later loads open the index.
The parse of the same file by tomllib alone is printed next to them for scale.
Targets (issue 2): a load ≤ 1 s, a search ≤ 50 ms.

    python bench/bench_catalogue.py [--entries 50000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import tomllib
from pathlib import Path

from timing import median_seconds

FAMILIES = ["resnet", "vgg", "inception", "mobilenet", "efficientnet", "convnext", "vit", "bert", "regnet", "dla"]
TAGS = ["in1k", "in21k", "a1", "tv", "ra2", "augmix", "distilled", "fb_ssl", "clip", "laion"]

ENTRY = """[[model]]
name = "{family}{depth}_{variant}.{tag}_{index}"
aliases = [{aliases}]
plugin = "synthetic"
arch = "{family}{depth}_{variant}"
family = "{family}"
task = "image-classification"
modality = "image"
license = "{license}"
tags = ["{tag}", "synthetic"]
description = "Synthetic {family} number {index} with {depth} layers, variant {variant}"
params = {params}
source = {{ hub = "synthetic/{family}{depth}_{variant}.{tag}_{index}", files = ["model.safetensors"] }}
input = {{ channels = 3, height = 224, width = 224, interpolation = "bicubic", crop_pct = 0.95 }}
output = {{ num_classes = 1000, feature_dim = 512 }}
"""


def synthetic_registry(path: Path, entries: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for index in range(entries):
            family = FAMILIES[index % len(FAMILIES)]
            depth = [18, 34, 50, 101, 152][index % 5]
            out.write(
                ENTRY.format(
                    family=family,
                    depth=depth,
                    variant=index % 97,
                    tag=TAGS[index % len(TAGS)],
                    index=index,
                    aliases=f'"{family}{depth}_{index}"' if index % 4 == 0 else "",
                    license=["apache-2.0", "mit", "cc-by-nc-4.0"][index % 3],
                    params=1_000_000 + index * 997,
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=50_000)
    entries = parser.parse_args().entries
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as folder:
        os.environ["ZOO_HOME"] = str(Path(folder) / "home")
        os.environ["ZOO_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only the synthetic file and the built-in registry
        from zoo_core import load_catalogue

        registry = Path(folder) / "synthetic.toml"
        synthetic_registry(registry, entries)
        print(f"{entries} entries, {registry.stat().st_size / 1e6:.1f} MB of TOML")

        start = time.perf_counter()
        catalogue = load_catalogue([registry])
        first = time.perf_counter() - start
        assert len(catalogue) >= entries
        parse = median_seconds(lambda: tomllib.loads(registry.read_text(encoding="utf-8")), 1)
        cached = median_seconds(lambda: load_catalogue([registry]), 10)
        print(f"first load (parse, validate, write index): {first:.2f} s")
        print(f"tomllib parse of the same file alone:      {parse:.2f} s")
        print(f"cached load, median of 10:                 {cached * 1000:.1f} ms  (target ≤ 1000 ms)")
        print(f"ratio tomllib parse / cached load:         {parse / cached:.0f}x")

        catalogue = load_catalogue([registry])
        queries = {
            "exact name": "inception50_2.a1_2",
            "alias": "efficientnet152_4",
            "prefix": "resnet",
            "words": "vgg in21k",
            "description words": "synthetic number 4242",
            "fuzzy": "mobilnet",
            "no match": "qqqzzz",
        }
        for kind, query in queries.items():
            seconds = median_seconds(lambda query=query: catalogue.search(query, limit=20), 20)
            found = catalogue.search(query, limit=20)
            top = found[0].name if found else "-"
            print(f"search {kind:<18} {query!r:<26} {seconds * 1000:6.1f} ms  (target ≤ 50 ms)  top: {top}")


if __name__ == "__main__":
    main()
