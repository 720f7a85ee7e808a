"""Checkpoints load through safetensors or torch's weights-only unpickler; full pickle needs consent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from zoo_core import UnsafeWeightsError
from zoo_core.weights import load_state_dict

torch = pytest.importorskip("torch", reason="the dev extra installs torch")


@dataclass
class TrainingNote:
    """A class of the checkpoint's author: the weights-only unpickler will not build it."""

    text: str


def test_safetensors_and_plain_state_dicts_load(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {"weight": torch.arange(6.0).reshape(2, 3), "bias": torch.ones(2)}
    save_file(tensors, tmp_path / "model.safetensors")
    torch.save(tensors, tmp_path / "model.pth")
    for name in ("model.safetensors", "model.pth"):
        loaded = load_state_dict(tmp_path / name)
        assert torch.equal(loaded["weight"], tensors["weight"]) and torch.equal(loaded["bias"], tensors["bias"])


def test_a_pickle_only_checkpoint_is_refused_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    # An arbitrary class inside the checkpoint: only full unpickling (which can run code) can read it.
    torch.save({"weight": torch.ones(2), "note": TrainingNote("epoch 3")}, path)
    with pytest.raises(UnsafeWeightsError, match=r"refused: .*full unpickling, which can run code.*allow_pickle=True"):
        load_state_dict(path)
    assert load_state_dict(path, allow_pickle=True)["note"] == TrainingNote("epoch 3")
