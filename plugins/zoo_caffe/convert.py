"""``zoo convert caffe``: a Caffe model (net definition + .caffemodel) as safetensors and a registered spec.

The folder written holds ``model.safetensors``, the ``deploy.prototxt`` the backbone is built from (the
deploy net zoo derived, when the definition given was a train_val one) and ``spec.json``; the spec carries
Caffe's input conventions (BGR, 0-255, the mean subtracted, the crop of a 256-pixel resize), so `zoo check`,
fine-tuning and export preprocess as Caffe did.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

from safetensors.torch import save_file

from zoo_caffe.deploy_net import deploy_text
from zoo_caffe.layers import InnerProduct
from zoo_caffe.network import CaffeNetwork
from zoo_caffe.reader import read_mean, read_net, read_weights
from zoo_core import validate
from zoo_core.errors import WeightsFormatError
from zoo_core.hashing import file_digest
from zoo_core.registry import parse_spec
from zoo_core.specs import ModelSpec

__all__ = ["DEPLOY", "IMAGENET_BGR_MEAN", "convert_caffe", "converted_folder"]

DEPLOY = Path(__file__).parent / "deploy"  # the definitions of the registry's Caffe Model Zoo entries

IMAGENET_BGR_MEAN = (104.0, 117.0, 123.0)  # the per-channel ImageNet mean, as Caffe's examples give it
RESIZE = 256  # ImageNet-sized Caffe nets (inputs of 192-256 pixels) were trained on crops of 256-pixel resizes
FILES = ("deploy.prototxt", "model.safetensors", "spec.json")  # in the order they are moved in: the spec last


def convert_caffe(
    prototxt: Path,
    caffemodel: Path,
    out: Path,
    name: str | None = None,
    mean: Path | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> ModelSpec:
    """Convert, write the folder (each file whole, the spec last), and return the spec (not yet registered).

    `prototxt` is a deploy or a train_val definition; `input_shape` (C, H, W) gives or overrides its input's.
    """
    network = CaffeNetwork(read_net(prototxt), input_shape)
    network.load_blobs(read_weights(caffemodel), str(caffemodel))
    channels, height, width = network.input_shape[1:]
    channel_mean, std = _normalisation(network, mean)
    folder_name = prototxt.parent.name  # the model's name when the net has none
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".convert-"))
    try:
        state = {key: value.contiguous() for key, value in network.state_dict().items()}
        save_file(state, str(staging / "model.safetensors"))
        (staging / "deploy.prototxt").write_text(deploy_text(network.net), encoding="utf-8")
        entry = {
            "name": name or re.sub(r"[^A-Za-z0-9_.-]+", "-", network.net.name or folder_name).strip("-").lower(),
            "plugin": "caffe",
            "arch": "caffe",
            "family": "caffe",
            "task": "image-classification",
            "modality": "image",
            "tags": ["caffe", "converted"],
            "description": f"converted by zoo from {caffemodel.name} and {prototxt.name}",
            "source": {"url": out.resolve().as_uri(), "files": ["deploy.prototxt", "model.safetensors"]},
            "sha256": {name: file_digest(staging / name) for name in ("deploy.prototxt", "model.safetensors")},
            "input": {
                "channels": channels,
                "height": height,
                "width": width,
                "mean": channel_mean,
                "std": std,
                "interpolation": "bilinear",
                "crop_pct": height / RESIZE if 0.75 * RESIZE <= height <= RESIZE else 1.0,
                "channel_order": "BGR",
                "value_range": [0, 255],
            },
            "output": {"num_classes": network.output_shape[1], **_classifier_inputs(network)},
            "params": sum(parameter.numel() for parameter in network.parameters()),
        }
        spec = parse_spec(entry, str(out / "spec.json"))
        (staging / "spec.json").write_text(json.dumps(spec.to_entry(), indent=2), encoding="utf-8")
        for file in FILES:
            (staging / file).replace(out / file)
        return spec
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _normalisation(network: CaffeNetwork, mean: Path | None) -> tuple[list[float], list[float]]:
    """The per-channel mean and std of the spec: `mean`'s channel averages, else a train_val's
    ``transform_param`` mean values, else (for BVLC's 3-channel nets) the ImageNet BGR mean; Caffe multiplies
    by ``transform_param.scale`` after subtracting it, which is dividing by a std of 1 / scale."""
    channels, transform = network.input_shape[1], network.net.transform
    if mean:
        values = [float(v) for v in read_mean(mean).mean(axis=(1, 2))]
    elif transform is not None and transform.mean_value:
        values = [float(v) for v in transform.mean_value]
        values = values * channels if len(values) == 1 else values
    else:  # BVLC's nets were trained on ImageNet images less this mean; other inputs get none
        values = list(IMAGENET_BGR_MEAN) if channels == 3 else [0.0] * channels
    if len(values) != channels:
        raise WeightsFormatError(f"{mean or network.net.source}: {len(values)} mean values for {channels} channels")
    scale = transform.scale if transform is not None else 1.0
    if not scale > 0:
        raise WeightsFormatError(f"{network.net.source}: transform_param.scale is {scale}, must be positive")
    return values, [1.0 / scale] * channels


def _classifier_inputs(network: CaffeNetwork) -> dict[str, int]:
    """`feature_dim`: what the last InnerProduct reads, the features a new head gets (none without one)."""
    widths = [module.in_features for module in network.layers.values() if isinstance(module, InnerProduct)]
    return {"feature_dim": widths[-1]} if widths else {}


def converted_folder(spec: ModelSpec, downloads: Path) -> Path:
    """The safetensors of a Caffe Model Zoo entry, converted once from its downloaded .caffemodel into
    ``$ZOO_HOME/converted/<model>/<digest>/`` (a new download with another digest converts again)."""
    from zoo_core.errors import PluginError
    from zoo_core.settings import Settings

    deploy = DEPLOY / f"{spec.arch}.prototxt"
    if not deploy.is_file():
        raise PluginError(
            f"'{spec.name}': zoo's Caffe plugin has no deploy definition '{spec.arch}' (arch); "
            f"known: {sorted(path.stem for path in DEPLOY.glob('*.prototxt'))}"
        )
    models = sorted(downloads.glob("*.caffemodel"))
    if len(models) != 1:
        raise PluginError(f"'{spec.name}': expected one .caffemodel in {downloads}, found {[p.name for p in models]}")
    digest = (dict(spec.sha1) | dict(spec.sha256)).get(models[0].name, "local")[:16]
    folder = Settings.from_env().home / "converted" / validate.path_part(spec.name) / digest
    if not (folder / FILES[-1]).exists():  # the spec is written last: without it, the conversion was cut short
        convert_caffe(deploy, models[0], folder, spec.name)
    return folder
