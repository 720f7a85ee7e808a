"""``zoo convert caffe``: a Caffe model (deploy.prototxt + .caffemodel) as safetensors and a registered spec.

The folder written holds ``model.safetensors``, the ``deploy.prototxt`` the backbone is built from, and
``spec.json``; the spec carries Caffe's input conventions (BGR, 0-255, the mean subtracted, the crop of a
256-pixel resize), so `zoo check`, fine-tuning and export preprocess as Caffe did.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from zoo_caffe.layers import InnerProduct
from zoo_caffe.network import CaffeNetwork
from zoo_caffe.reader import read_mean, read_net, read_weights
from zoo_core import validate
from zoo_core.hashing import file_digest
from zoo_core.registry import parse_spec
from zoo_core.specs import ModelSpec

__all__ = ["DEPLOY", "IMAGENET_BGR_MEAN", "convert_caffe", "converted_folder"]

DEPLOY = Path(__file__).parent / "deploy"  # the definitions of the registry's Caffe Model Zoo entries

IMAGENET_BGR_MEAN = (104.0, 117.0, 123.0)  # the per-channel ImageNet mean, as Caffe's examples give it
RESIZE = 256  # ImageNet-sized Caffe nets (inputs of 192-256 pixels) were trained on crops of 256-pixel resizes


def convert_caffe(prototxt: Path, caffemodel: Path, out: Path, name: str | None = None,
                  mean: Path | None = None) -> ModelSpec:  # fmt: skip
    """Convert, write the folder (all files or none), and return the spec (not yet registered)."""
    net = read_net(prototxt)
    network = CaffeNetwork(net)
    network.load_blobs(read_weights(caffemodel), caffemodel.name)
    channels = network.input_shape[1]
    if mean:
        channel_mean = [float(v) for v in read_mean(mean).mean(axis=(1, 2))]
    else:  # BVLC's nets were trained on ImageNet images less this mean; other inputs get none
        channel_mean = list(IMAGENET_BGR_MEAN) if channels == 3 else [0.0] * channels
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".convert-"))
    try:
        save_file({key: value.contiguous() for key, value in network.state_dict().items()},
                  str(staging / "model.safetensors"))  # fmt: skip
        shutil.copyfile(prototxt, staging / "deploy.prototxt")
        _, _, height, width = network.input_shape
        with torch.no_grad():
            outputs = network.eval()(torch.zeros(network.input_shape)).shape[-1]
        entry = {
            "name": name or re.sub(r"[^A-Za-z0-9_.-]+", "-", net.name or prototxt.parent.name).strip("-").lower(),
            "plugin": "caffe", "arch": "caffe", "family": "caffe", "task": "image-classification",
            "modality": "image", "tags": ["caffe", "converted"],
            "description": f"converted by zoo from {caffemodel.name} and {prototxt.name}",
            "source": {"url": out.resolve().as_uri(), "files": ["deploy.prototxt", "model.safetensors"]},
            "sha256": {name: file_digest(staging / name) for name in ("deploy.prototxt", "model.safetensors")},
            "input": {"channels": channels, "height": height, "width": width, "mean": channel_mean,
                      "std": [1.0] * channels, "interpolation": "bilinear",
                      "crop_pct": height / RESIZE if 0.75 * RESIZE <= height <= RESIZE else 1.0,
                      "channel_order": "BGR", "value_range": [0, 255]},
            "output": {"num_classes": int(outputs), **_classifier_inputs(network)},
            "params": sum(parameter.numel() for parameter in network.parameters()),
        }  # fmt: skip
        spec = parse_spec(entry, str(out / "spec.json"))
        (staging / "spec.json").write_text(json.dumps(spec.to_entry(), indent=2), encoding="utf-8")
        for item in staging.iterdir():
            item.replace(out / item.name)
        return spec
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
        raise PluginError(f"'{spec.name}': zoo's Caffe plugin has no deploy definition '{spec.arch}' (arch); "
                          f"known: {sorted(path.stem for path in DEPLOY.glob('*.prototxt'))}")  # fmt: skip
    models = sorted(downloads.glob("*.caffemodel"))
    if len(models) != 1:
        raise PluginError(f"'{spec.name}': expected one .caffemodel in {downloads}, found {[p.name for p in models]}")
    digest = (dict(spec.sha1) | dict(spec.sha256)).get(models[0].name, "local")[:16]
    folder = Settings.from_env().home / "converted" / validate.path_part(spec.name) / digest
    if not (folder / "model.safetensors").exists():
        convert_caffe(deploy, models[0], folder, spec.name)
    return folder
