"""Reading checkpoint tensors without running code from the file, and fitting them to a network.

safetensors files are read as they are. Other torch checkpoints go through torch's weights-only
unpickler, which builds tensors and plain containers and nothing else; a checkpoint that needs more
(arbitrary classes: full pickle, which can execute code) is refused unless a Python caller opts in.
A file that cannot be read, or whose tensors do not fit the network, is a one-line `WeightsFormatError`
naming the file and the first few keys at fault.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from zoo_core.errors import UnsafeWeightsError, WeightsFormatError

__all__ = ["apply_state_dict", "load_state_dict"]

_SHOWN = 3  # keys named in an error


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


def _listed(keys: list[str]) -> str:
    return ", ".join(keys[:_SHOWN]) + (f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def apply_state_dict(network: Any, state: dict[str, Any], path: Path) -> None:
    """Load `state` into `network`, or say in one line which keys are missing, unexpected or misshapen."""
    expected = network.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    misshapen = [
        f"{key} {tuple(state[key].shape)} vs {tuple(expected[key].shape)}"
        for key in expected
        if key in state and tuple(state[key].shape) != tuple(expected[key].shape)
    ]
    problems = [
        f"{len(keys)} {what} ({_listed(keys)})"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", misshapen))
        if keys
    ]
    if problems:
        raise WeightsFormatError(
            f"{path}: its tensors do not fit the network: {'; '.join(problems)}; check the entry's arch and files"
        )
    network.load_state_dict(state)
