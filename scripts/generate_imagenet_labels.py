"""Write zoo_core/labels/imagenet-1k.json: the ILSVRC-2012 class names, in the classifiers' output order.

The source is the WordNet data timm ships (``timm/data/_info/imagenet_synsets.txt`` gives the 1,000
synsets in class-index order, ``imagenet_synset_to_lemma.txt`` their lemmas), so index 281 is
n02123045, "tabby, tabby cat". Run it again after upgrading timm; the file changes only if timm's did.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import timm

OUT = Path(__file__).resolve().parent.parent / "zoo_core" / "labels" / "imagenet-1k.json"


def main() -> None:
    info = resources.files("timm") / "data" / "_info"
    synsets = (info / "imagenet_synsets.txt").read_text(encoding="utf-8").split()
    lemmas = dict(
        line.split("\t", 1) for line in (info / "imagenet_synset_to_lemma.txt").read_text(encoding="utf-8").splitlines()
    )
    document = {
        "about": "ILSVRC-2012 classes: WordNet lemmas of each synset, in class-index order; from timm "
        f"{timm.__version__} (timm/data/_info/imagenet_synsets.txt, imagenet_synset_to_lemma.txt; Apache-2.0)",
        "synsets": synsets,
        "labels": [lemmas[synset].strip() for synset in synsets],
    }
    partial = OUT.with_suffix(".tmp")
    partial.write_text(json.dumps(document, indent=0, ensure_ascii=False) + "\n", encoding="utf-8")
    partial.replace(OUT)
    print(f"wrote {len(synsets)} classes to {OUT}")


if __name__ == "__main__":
    main()
