"""Reading checkpoint tensors without running code from the file.

safetensors files are read as they are. Other torch checkpoints go through torch's weights-only
unpickler, which builds tensors and plain containers and nothing else; a checkpoint that needs more
(arbitrary classes: full pickle, which can execute code) is refused unless the caller opts in.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from zoo_core.errors import UnsafeWeightsError

__all__ = ["load_state_dict"]


def load_state_dict(path: Path, *, allow_pickle: bool = False) -> dict[str, Any]:
    """The tensors of a checkpoint, by name, on the CPU."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if not allow_pickle:
            reason = str(error).strip().splitlines()[0]
            raise UnsafeWeightsError(
                f"{path}: refused: this checkpoint can only be read by full unpickling, which can run code hidden "
                f"in the file ({reason}). If you trust its source, pass allow_pickle=True (--allow-pickle on the "
                "command line), or convert it to safetensors"
            ) from None
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(loaded, dict):
        raise UnsafeWeightsError(f"{path}: holds a {type(loaded).__name__}, not a dict of tensors (a state dict)")
    return loaded
