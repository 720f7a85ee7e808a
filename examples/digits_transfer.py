"""Transfer pays, on real data offline: scikit-learn's handwritten digits (8x8, 1,797 images).

Source task: digits 0-4, all their images. Target task: digits 5-9 with 10 labelled images per class; the
other target images are the held-out test set. zoo develops a source model (`zoo pretrain`: resnet10t
from scratch on the source task), then fine-tunes it on the target task with frozen features and a
logistic-regression head, next to the same architecture trained from scratch on the 50 target images.

    python examples/digits_transfer.py [--out runs/digits]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def run(out: Path) -> dict[str, object]:
    from zoo_core.training.digits import write_digits
    from zoo_core.training.pretrain import pretrain
    from zoo_core.training.run import FinetuneOptions, finetune

    source, train, test = write_digits(out / "data")
    pretrain("resnet10t", source, out / "source-model", "digits-0-4.resnet10t", size=32, channels=1,
             options=FinetuneOptions(epochs=8, lr=3e-3, batch_size=64), replace=True)  # fmt: skip
    options = FinetuneOptions(strategy="features", head="logreg", val=str(test), baseline="scratch", epochs=10,
                              lr=3e-3, batch_size=16)  # fmt: skip
    return finetune("digits-0-4.resnet10t", train, out / "transfer", options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/digits"))
    metrics = run(parser.parse_args().out)
    transfer, scratch = metrics["transfer"], metrics["scratch"]
    print(json.dumps({"transfer_final": transfer["final"], "scratch_final": scratch["final"],  # type: ignore[index]
                      "scratch_start": scratch["start"], "scratch_slope": scratch["slope"],  # type: ignore[index]
                      "transfer_minus_scratch": metrics["transfer_minus_scratch"]}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
