"""`AdaptOptions`: every choice a `zoo adapt` run makes, checked when it is made; and `check_adaptation`, the
check of what an adapted run's manifest.json records about it.

Its own module, importing no torch, so that the command line builds and checks the options before anything
heavy loads, and `load_run` checks a manifest's "adaptation" without loading the adaptation code. Epochs,
learning rate and threshold left out (None) take the method's default (`METHOD_DEFAULTS`); one given to a
method that does not use it is refused, as it would change nothing.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass

from zoo_core.errors import RunFolderError, RunOptionError
from zoo_core.training.options import FinetuneOptions

__all__ = ["METHODS", "METHOD_DEFAULTS", "AdaptOptions", "check_adaptation", "method_defaults"]

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


def method_defaults(option: str) -> str:
    """`option`'s default for each method that uses it, as `--help` shows them: "tent: 0.001, pseudo: 0.0001"."""
    return ", ".join(f"{method}: {chosen[option]:g}" for method, chosen in METHOD_DEFAULTS.items() if chosen[option])


AGAIN = "adapt the source run again (zoo adapt RUN TARGET --out FOLDER)"
SHA256 = re.compile(r"[0-9a-f]{64}")
# manifest.json's "adaptation", as `zoo_core.training.adapt` writes it: each field and the values it may hold
ADAPTATION_FIELDS: dict[str, tuple[str, typing.Callable[[object], bool]]] = {
    "method": (f"one of {', '.join(METHODS)}", lambda value: value in METHODS),
    "options": ("the options of zoo adapt", lambda value: isinstance(value, dict)),
    "device": ("the device it ran on", lambda value: isinstance(value, str)),
    "target": ("the target's path", lambda value: isinstance(value, str)),
    "target_items": ("an item count of 2 or more", lambda value: type(value) is int and value >= 2),
    "target_fingerprint": ("a fingerprint", lambda value: isinstance(value, str)),
    "labelled": ("a path or null", lambda value: value is None or isinstance(value, str)),
    "source_run": ("the source run's folder", lambda value: isinstance(value, str)),
    "source_model_sha256": (
        "a sha256 of 64 hex digits",
        lambda value: isinstance(value, str) and bool(SHA256.fullmatch(value)),
    ),
    "zoo": ("a version", lambda value: isinstance(value, str)),
    "previous": ("an earlier adaptation or null", lambda value: value is None or isinstance(value, dict)),
}
OPTIONAL_FIELDS = {"device"}  # zoo 71fb90a's adapted runs did not record it


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _check_options(options: dict[str, object], where: str) -> None:
    """An adaptation's options: each a field of `AdaptOptions` of its type, together options it accepts."""
    hints: dict[str, typing.Any] = typing.get_type_hints(AdaptOptions)
    for name, value in options.items():
        hint = hints.get(name)
        wanted: typing.Any = int | float | None if hint == float | None else hint  # JSON writes 1.0 as 1
        if hint is None or isinstance(value, bool) or not isinstance(value, wanted):
            raise RunFolderError(
                f"{where}.options.{name} is {_shown(value)}, not a value zoo adapt writes there; {AGAIN}"
            )
    try:
        AdaptOptions(**options)  # type: ignore[arg-type]
    except RunOptionError as error:
        raise RunFolderError(f"{where}.options cannot adapt a run ({error}); {AGAIN}") from None


def check_adaptation(adaptation: object, path: str, where: str = "adaptation") -> None:
    """Refuse a manifest.json (`path`) whose "adaptation" (`where`: its place in the file) is not one `zoo adapt`
    writes: each field of its type, the method one of `METHODS`, the options ones it accepts, the source's
    sha256 64 hex digits, and its "previous" (the source run's own adaptation) checked alike. A run that was
    not adapted has none (None). The record is copied into the next adaptation's "previous", so a tampered
    one would otherwise travel on as if zoo had written it; the refusal is one line naming the field."""
    if adaptation is None:
        return
    if not isinstance(adaptation, dict):
        raise RunFolderError(f"{path}: {where} is {_shown(adaptation)}, not what zoo adapt records; {AGAIN}")
    unknown = sorted(adaptation.keys() - ADAPTATION_FIELDS.keys())
    if unknown:
        raise RunFolderError(f"{path}: {where}.{unknown[0]} is not a field zoo adapt records; {AGAIN}")
    for name, (wanted, fits) in ADAPTATION_FIELDS.items():
        if name not in adaptation and name in OPTIONAL_FIELDS:
            continue
        if name not in adaptation:
            raise RunFolderError(f"{path}: {where}.{name} is missing; {AGAIN}")
        if not fits(adaptation[name]):
            raise RunFolderError(f"{path}: {where}.{name} is {_shown(adaptation[name])}, not {wanted}; {AGAIN}")
    _check_options(adaptation["options"], f"{path}: {where}")
    check_adaptation(adaptation["previous"], path, f"{where}.previous")
