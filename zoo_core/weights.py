"""Reading checkpoint tensors without running code from the file, and fitting them to a network.

safetensors files are read as they are. Other torch checkpoints go through torch's weights-only
unpickler, which builds tensors and plain containers and nothing else; a checkpoint that needs more
(arbitrary classes: full pickle, which can execute code) is refused unless a Python caller opts in.
A file that cannot be read, or whose tensors do not fit the network, is a one-line `WeightsFormatError`
naming the file and the first few keys at fault — except a classifier that does not fit, which is dropped
with a warning so that the backbone still loads (a checkpoint for 1,000 classes under a 10-class head).
The dropped keys are returned, so that nothing later presents that freshly initialised classifier's
outputs as the checkpoint's answers.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo_core.errors import UnsafeWeightsError, WeightsFormatError

__all__ = ["ClassifierDroppedWarning", "apply_state_dict", "load_state_dict", "name_a_few"]

_SHOWN = 3  # keys named in an error


class ClassifierDroppedWarning(UserWarning):
    """A checkpoint's classifier did not fit the network and was dropped; the rest of it was loaded."""


def _unreadable(path: Path, error: BaseException) -> WeightsFormatError:
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    return WeightsFormatError(
        f"{path}: not a readable checkpoint ({reason}); it may be truncated or another format: download it "
        "again (zoo download NAME --force)"
    )


def _load_torch(path: Path, allow_pickle: bool) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" not in str(error):
            raise  # a broken file, rather than a checkpoint that needs more than tensors
        if not allow_pickle:
            reason = str(error).strip().splitlines()[0]
            raise UnsafeWeightsError(
                f"{path}: refused: this checkpoint can only be read by full unpickling, which can run code hidden "
                f"in the file ({reason}). Convert it to safetensors; or, if you trust its source, load it from "
                "Python with allow_pickle=True"
            ) from None
    return torch.load(path, map_location="cpu", weights_only=False)


def load_state_dict(path: Path, *, allow_pickle: bool = False) -> dict[str, Any]:
    """The tensors of a checkpoint, by name, on the CPU."""
    from safetensors import SafetensorError

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded: Any = load_file(path)
        else:
            loaded = _load_torch(path, allow_pickle)
    except UnsafeWeightsError:
        raise
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError, SafetensorError) as error:
        raise _unreadable(path, error) from None
    if not isinstance(loaded, dict):
        raise UnsafeWeightsError(f"{path}: holds a {type(loaded).__name__}, not a dict of tensors (a state dict)")
    return loaded


def name_a_few(keys: list[str]) -> str:
    """The first few keys, and how many more: what a one-line error about a checkpoint names."""
    return ", ".join(keys[:_SHOWN]) + (f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def _classifier_dropped(state: dict[str, Any], expected: dict[str, Any], classifier: Sequence[str]) -> list[str]:
    """The checkpoint's classifier keys that the network has no place for, or a place of another shape."""
    return [
        key
        for key in state
        if any(key.startswith(f"{name}.") for name in classifier)
        and (key not in expected or tuple(state[key].shape) != tuple(expected[key].shape))
    ]


def apply_state_dict(network: Any, state: dict[str, Any], path: Path, classifier: Sequence[str] = ()) -> list[str]:
    """Load `state` into `network`, or say in one line which keys are missing, unexpected or misshapen.

    As timm does, a checkpoint's classifier (the modules named in `classifier`) that does not fit — another
    class count, or a network built without a classifier — is dropped with a warning and the rest loaded;
    the network keeps its own freshly initialised classifier, if it has one. Returns the dropped keys (none
    when everything fitted): a caller records them so that the untrained classifier is never run as an answer.
    """
    expected = network.state_dict()
    dropped = _classifier_dropped(state, expected, classifier)
    kept = {key: value for key, value in state.items() if key not in dropped}
    missing = [key for key in expected if key not in kept and key not in dropped]
    unexpected = [key for key in kept if key not in expected]
    misshapen = [
        f"{key} {tuple(kept[key].shape)} vs {tuple(expected[key].shape)}"
        for key in expected
        if key in kept and tuple(kept[key].shape) != tuple(expected[key].shape)
    ]
    problems = [
        f"{len(keys)} {what} ({name_a_few(keys)})"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", misshapen))
        if keys
    ]
    if problems:
        raise WeightsFormatError(
            f"{path}: its tensors do not fit the network: {'; '.join(problems)}; check the entry's arch and files"
        )
    if dropped:
        weight = next((state[key] for key in dropped if key.endswith(".weight")), state[dropped[0]])
        warnings.warn(
            f"{path}: the checkpoint's classifier ({weight.shape[0]} classes) does not fit the network's "
            f"({name_a_few(dropped)}); it was dropped and the backbone loaded",
            ClassifierDroppedWarning,
            stacklevel=2,
        )
    network.load_state_dict(kept, strict=not dropped)  # strict=False: only the dropped classifier is missing
    return dropped
