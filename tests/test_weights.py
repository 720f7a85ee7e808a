"""Checkpoints load through safetensors or torch's weights-only unpickler; full pickle needs consent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from zoo_core import UnsafeWeightsError, WeightsFormatError
from zoo_core.weights import apply_state_dict, load_state_dict

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


def test_the_pickle_refusal_names_no_flag_that_does_not_exist(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save({"note": TrainingNote("x")}, path)
    with pytest.raises(UnsafeWeightsError) as refused:
        load_state_dict(path)
    assert "--allow-pickle" not in str(refused.value) and "Convert it to safetensors" in str(refused.value)


@pytest.mark.parametrize("name", ["model.safetensors", "model.pth"])
@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_an_unreadable_checkpoint_is_one_line_naming_the_file(tmp_path: Path, name: str, damage: str) -> None:
    from safetensors.torch import save_file

    path = tmp_path / name
    tensors = {"weight": torch.ones(64, 64)}
    save_file(tensors, path) if name.endswith(".safetensors") else torch.save(tensors, path)
    data = path.read_bytes()
    path.write_bytes(
        {"truncated": data[: len(data) // 2], "garbage": b"\x00not a checkpoint" * 10, "empty": b""}[damage]
    )
    with pytest.raises(WeightsFormatError) as raised:
        load_state_dict(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: not a readable checkpoint") and "\n" not in message


def test_tensors_that_do_not_fit_name_the_keys(tmp_path: Path) -> None:
    network = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    state = {key: value.clone() for key, value in network.state_dict().items()}
    state["1.weight"] = torch.zeros(5, 4)
    state["extra.bias"] = state.pop("0.bias")
    with pytest.raises(WeightsFormatError) as raised:
        apply_state_dict(network, state, tmp_path / "w.safetensors")
    message = str(raised.value)
    assert "1 missing (0.bias)" in message and "1 unexpected (extra.bias)" in message
    assert "1 of another shape (1.weight (5, 4) vs (2, 4))" in message
    good = {key: value + 1 for key, value in network.state_dict().items()}
    apply_state_dict(network, good, tmp_path / "w.safetensors")
    assert torch.equal(network.state_dict()["0.bias"], good["0.bias"])
