"""`AdaptOptions`: every choice a `zoo adapt` run makes, checked when it is made.

Its own module, importing no torch, so that the command line builds and checks the options before anything
heavy loads. Epochs, learning rate and threshold left out (None) take the method's default
(`METHOD_DEFAULTS`); one given to a method that does not use it is refused, as it would change nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from zoo_core.errors import RunOptionError
from zoo_core.training.options import FinetuneOptions

__all__ = ["METHODS", "METHOD_DEFAULTS", "AdaptOptions"]

METHODS = ("adabn", "tent", "pseudo")
# tent: one pass at Adam's 1e-3, as the reference code's CIFAR-10-C example; pseudo: a few epochs (3) at a
# rate ten times lower, as it trains every weight, not only the normalisation layers; adabn trains nothing
METHOD_DEFAULTS: dict[str, dict[str, float | int | None]] = {
    "adabn": {"epochs": None, "lr": None, "threshold": None},
    "tent": {"epochs": 1, "lr": 1e-3, "threshold": None},
    "pseudo": {"epochs": 3, "lr": 1e-4, "threshold": 0.9},
}


@dataclass(frozen=True)
class AdaptOptions:
    """How a run is adapted to its target data; all of it goes into the adapted run's manifest.json."""

    epochs: int | None = None  # tent, pseudo: passes over the target (None: the method's default)
    lr: float | None = None  # tent, pseudo: Adam's learning rate (None: the method's default)
    threshold: float | None = None  # pseudo: the least confidence a prediction needs to become a label
    batch_size: int = 32
    seed: int = 0  # the order of the target's batches, dropout
    threads: int = 1  # torch CPU threads: the same number gives the same bits on any machine
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | bf16 | fp16 (CUDA only)
    workers: int = 0  # image-decoding processes feeding the device

    def __post_init__(self) -> None:
        # the options a fine-tuning run shares are checked by its own rules, with its messages
        shared = ("batch_size", "seed", "threads", "device", "precision", "workers")
        given = {name: value for name in ("epochs", "lr") if (value := getattr(self, name)) is not None}
        FinetuneOptions(**given, **{name: getattr(self, name) for name in shared})
        if self.batch_size < 2:
            raise RunOptionError(f"--batch-size {self.batch_size}: must be at least 2 (BatchNorm needs two items)")
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise RunOptionError(f"--threshold {self.threshold}: must be between 0 and 1, e.g. 0.9")

    def for_method(self, method: str) -> AdaptOptions:
        """These options with `method`'s defaults filled in; an option the method does not use is refused."""
        if method not in METHODS:
            raise RunOptionError(f"--method {method}: not one of {', '.join(METHODS)}")
        defaults = METHOD_DEFAULTS[method]
        chosen = {name: getattr(self, name) for name in defaults}
        unused = [name for name, value in chosen.items() if value is not None and defaults[name] is None]
        if unused:
            users = [name for name in METHODS if METHOD_DEFAULTS[name][unused[0]] is not None]
            raise RunOptionError(
                f"--{unused[0]} is not used by --method {method} (only by {' and '.join(users)}); leave it out"
            )
        filled = {name: defaults[name] if value is None else value for name, value in chosen.items()}
        return dataclasses.replace(self, **filled)  # type: ignore[arg-type]
