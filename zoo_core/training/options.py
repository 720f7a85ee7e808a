"""`FinetuneOptions`: every choice a fine-tuning run makes, checked when it is made.

Its own module so that the training strategies and the run that drives them both read it, neither
importing the other.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from zoo_core.errors import RunOptionError

__all__ = ["BASELINES", "DEVICE_PATTERN", "HEADS", "PRECISIONS", "STRATEGIES", "FinetuneOptions"]

STRATEGIES = ("features", "finetune", "full")
HEADS = ("linear", "mlp", "logreg")
BASELINES = ("scratch", "pixels", "knn")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d{1,3})?")


def _refuse(option: str, value: object, rule: str) -> RunOptionError:
    return RunOptionError(f"--{option} {value}: {rule}")


@dataclass(frozen=True)
class FinetuneOptions:
    """Every choice a run makes; all of it goes into manifest.json. Impossible values raise `RunOptionError`."""

    strategy: str = "features"  # features (frozen backbone) | finetune (last N groups) | full
    head: str = "linear"  # linear | mlp | logreg (features only)
    unfreeze: int = 1  # finetune: backbone stages trained under the head
    drop_last: int = 0  # reuse all stages but the last N
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 32
    val_split: float = 0.2  # share of each class held out for validation, when --val gives no set
    val: str | None = None  # a separate validation folder or file instead of a split
    test_split: float = 0.2  # share of each class held out for the test, when --test gives no set
    test: str | None = None  # a separate test folder or file instead of a split
    seed: int = 0
    patience: int = 3  # epochs without a better validation loss before stopping
    baseline: tuple[str, ...] = ()  # among scratch, pixels, knn: trained beside transfer on the same splits
    repeats: int = 1  # seeds seed, seed+1, ...: every figure becomes mean ± std
    threads: int = 1  # torch CPU threads while training: the same number gives the same bits on any machine
    device: str = "auto"  # auto (CUDA when torch sees one) | cpu | cuda | cuda:N; under torchrun, LOCAL_RANK's GPU
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 with loss scaling, CUDA only)
    workers: int = 0  # image-decoding processes feeding the device (0: decoded in the training process)

    def __post_init__(self) -> None:
        # a manifest's JSON gives a list; an older zoo wrote one name or None
        named = [self.baseline] if isinstance(self.baseline, str) else list(self.baseline or ())
        object.__setattr__(self, "baseline", tuple(dict.fromkeys(named)))
        if self.strategy not in STRATEGIES:
            raise _refuse("strategy", self.strategy, f"not one of {', '.join(STRATEGIES)}")
        if self.head not in HEADS:
            raise _refuse("head", self.head, f"not one of {', '.join(HEADS)}")
        if self.head == "logreg" and self.strategy != "features":
            raise RunOptionError(
                f"--head logreg cannot go with --strategy {self.strategy}: scikit-learn fits it on frozen features; "
                "use --strategy features, or --head linear or mlp"
            )
        counts = {"epochs": self.epochs, "batch-size": self.batch_size, "patience": self.patience}
        for option, value in {**counts, "threads": self.threads, "repeats": self.repeats}.items():
            if value < 1:
                raise _refuse(option, value, "must be at least 1")
        for option, value in (("unfreeze", self.unfreeze), ("drop-last", self.drop_last)):
            if value < 0:
                raise _refuse(option, value, "must be 0 or more")
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise _refuse("device", self.device, "not auto, cpu, cuda or cuda:N")
        if self.precision not in PRECISIONS:
            raise _refuse("precision", self.precision, f"not one of {', '.join(PRECISIONS)}")
        if self.workers < 0:
            raise _refuse("workers", self.workers, "must be 0 or more")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise _refuse("lr", self.lr, "must be a positive number, e.g. 1e-3")
        for option, share in (("val-split", self.val_split), ("test-split", self.test_split)):
            if not 0 < share < 1:
                raise _refuse(option, share, "must be between 0 and 1: the share of each class held out, e.g. 0.2")
        for name in self.baseline:
            if name not in BASELINES:
                raise _refuse("baseline", name, f"not one of {', '.join(BASELINES)}")
