"""Vision backbones (timm plugin) and the image compatibility check.

Architectures are real timm models with random weights (no pretrained CNN weights exist offline); the
download path serves such weights from the loopback hub, so loading is tested end to end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import zoo_core
from zoo_core.cli import main
from zoo_core.images import resized_size
from zoo_core.testing.hub import HubServer

torch = pytest.importorskip("torch", reason="the dev extra installs torch")
Image = pytest.importorskip("PIL.Image")

CLASSICS = [
    "resnet18.a1_in1k",
    "resnet50.a1_in1k",
    "vgg11.tv_in1k",
    "vgg16_bn.tv_in1k",
    "inception_v3.tv_in1k",
    "inception_v4.tf_in1k",
    "inception_resnet_v2.tf_in1k",
    "mobilenetv2_100.ra_in1k",
    "mobilenetv3_large_100.ra_in1k",
    "alexnet.tv_in1k",
]


def batch(spec: zoo_core.ModelSpec, size: int = 2) -> torch.Tensor:
    image = spec.input
    assert isinstance(image, zoo_core.ImageInput)
    return torch.randn(size, image.channels, image.height, image.width)


@pytest.mark.parametrize("name", CLASSICS)
def test_features_have_the_documented_dimension(name: str) -> None:
    backbone = zoo_core.load(name, pretrained=False).eval()
    image = batch(backbone.spec, size=1)  # one image: the shapes are the point, and big nets are slow
    with torch.no_grad():
        features, logits = backbone.features(image), backbone(image)
    assert features.shape == (1, backbone.spec.output.feature_dim) == (1, backbone.feature_dim)
    assert logits.shape == (1, backbone.spec.output.num_classes)
    names = [group.name for group in backbone.layer_groups()]
    assert names[0] == "stem" and names[-1] == "head" and len(names) >= 5


def test_pretrained_weights_come_from_the_hub_verified(hub: HubServer) -> None:
    from safetensors.torch import save

    source = zoo_core.load("resnet18", pretrained=False)  # random weights stand in for the published ones
    state = {key: value.contiguous() for key, value in source.network.state_dict().items()}
    hub.add_repo("timm/resnet18.a1_in1k", {"model.safetensors": save(state)})
    loaded = zoo_core.load("resnet18")
    for key, value in loaded.network.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert zoo_core.fetch("resnet18", offline=True).files[0].verified_by == "hub sha256"


def test_alexnet_loads_torchvision_weights_from_a_url_source(tmp_path: Path) -> None:
    import dataclasses
    import hashlib

    source = zoo_core.load("alexnet", pretrained=False)  # random weights in torchvision's .pth format
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(source.network.state_dict(), path)
    spec = zoo_core.get("alexnet")
    local = dataclasses.replace(
        spec,
        source=dataclasses.replace(spec.source, url=path.as_uri()),
        sha256={path.name: hashlib.sha256(path.read_bytes()).hexdigest()},
    )
    loaded = zoo_core.load(local)
    for key, value in loaded.network.state_dict().items():
        assert torch.equal(value, source.network.state_dict()[key]), key
    with pytest.raises(zoo_core.DownloadError, match="a URL source needs a sha256"):
        zoo_core.load("alexnet")  # the shipped entry: torchvision's full digest is not pinned yet


def test_alexnet_groups_and_drop_last() -> None:
    backbone = zoo_core.load("alexnet", pretrained=False).eval()
    assert [g.name for g in backbone.layer_groups()] == ["stem", "conv2", "conv3", "conv4", "conv5", "head"]
    backbone.drop_last(2)
    backbone.reset_head(4)
    with torch.no_grad():
        assert backbone.features(batch(backbone.spec)).shape == (2, 384)
        assert backbone(batch(backbone.spec)).shape == (2, 4)


def trainable(backbone: zoo_core.Backbone) -> set[str]:
    return {name.split(".")[0] for name, parameter in backbone.network.named_parameters() if parameter.requires_grad}


def test_freeze_trains_exactly_the_last_groups() -> None:
    backbone = zoo_core.load("resnet18", pretrained=False)
    assert backbone.freeze(all_but_last=2) == ["layer4", "head"]
    assert trainable(backbone) == {"layer4", "fc"}
    backbone.train()
    assert not backbone.network.layer3[0].bn1.training and backbone.network.layer4[0].bn1.training
    assert backbone.freeze(all_but_last=1) == ["head"] and trainable(backbone) == {"fc"}
    assert backbone.freeze(all_but_last=6) == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert trainable(backbone) == {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"}
    with pytest.raises(ValueError, match="between 0 and 6"):
        backbone.freeze(all_but_last=7)


def test_drop_last_reuses_all_stages_but_the_last() -> None:
    backbone = zoo_core.load("resnet18", pretrained=False).eval()
    before = sum(p.numel() for p in backbone.parameters())
    layer4 = sum(p.numel() for p in backbone.network.layer4.parameters())
    backbone.drop_last(1)
    assert [group.name for group in backbone.layer_groups()] == ["stem", "layer1", "layer2", "layer3", "head"]
    assert backbone.feature_dim == 256
    backbone.reset_head(5)
    with torch.no_grad():
        assert backbone.features(batch(backbone.spec)).shape == (2, 256)
        assert backbone(batch(backbone.spec)).shape == (2, 5)
    fc = 512 * 1000 + 1000
    assert sum(p.numel() for p in backbone.parameters()) == before - layer4 - fc + 256 * 5 + 5
    assert backbone.freeze(all_but_last=2) == ["layer3", "head"]
    with pytest.raises(ValueError, match="drop_last takes 1 to 3"):
        backbone.drop_last(4)


def test_vgg_groups_are_its_conv_stages() -> None:
    backbone = zoo_core.load("vgg11.tv_in1k", pretrained=False)
    groups = backbone.layer_groups()
    assert len(groups) == 6 and all(group.parameters() for group in groups)
    backbone.drop_last(1)
    assert backbone.feature_dim == 512


def test_reset_head_keeps_the_features() -> None:
    backbone = zoo_core.load("mobilenetv3_large_100", pretrained=False).eval()
    backbone.reset_head(3)
    with torch.no_grad():
        assert backbone(batch(backbone.spec)).shape == (2, 3)
        assert backbone.features(batch(backbone.spec)).shape == (2, 1280)


def test_transform_produces_the_spec_shape_and_normalisation() -> None:
    spec = zoo_core.get("resnet18")
    transform = zoo_core.check(spec, np.zeros((1, 3, 224, 224), dtype=np.uint8)).transform
    grey = Image.new("L", (320, 240), color=int(0.485 * 255))  # channel 0's mean, as a grey image
    tensor = transform(grey)
    assert tensor.shape == (3, 224, 224)
    assert tensor[0].abs().max() < 0.02  # (value - mean) / std ≈ 0 on the red channel
    assert tensor[2].mean() == pytest.approx((0.485 * 255 // 1 / 255 - 0.406) / 0.225, abs=0.01)
    names = [type(step).__name__ for step in transform.transforms]
    assert names == ["Prepare", "ToTensor", "Normalize"]
    assert repr(transform.transforms[0]) == "Prepare(RGB, 224x224, crop_pct=0.95, crop_mode=center, bicubic)"
    assert resized_size(320, 240, spec.input) == (313, 235)  # short side floor(224 / 0.95), as timm's eval transform


def test_caffe_style_specs_get_bgr_and_0_255() -> None:
    caffe = zoo_core.parse_spec(
        {
            "name": "caffe.net",
            "plugin": "caffe",
            "arch": "x",
            "family": "caffe",
            "task": "t",
            "modality": "image",
            "source": {"hub": "o/r"},
            "input": {
                "mean": [104.0, 117.0, 123.0],
                "std": [1.0, 1.0, 1.0],
                "channel_order": "BGR",
                "value_range": [0, 255],
                "crop_pct": 1.0,
            },
        },
        "test",
    )
    transform = zoo_core.check(caffe, np.zeros((1, 3, 224, 224), dtype=np.uint8)).transform
    red = transform(Image.new("RGB", (224, 224), color=(255, 0, 0)))
    assert red[:, 0, 0].tolist() == pytest.approx([0 - 104.0, 0 - 117.0, 255 - 123.0])


def save(path: Path, image: Image.Image, kind: str = "JPEG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, kind)
    return path


def noise(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "CMYK": 4}[mode]
    pixels = rng.integers(0, 255, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(), mode=mode)


@pytest.fixture
def clean_folder(tmp_path: Path) -> Path:
    root = tmp_path / "clean"
    for label in ("cat", "dog"):
        for index in range(6):
            save(root / label / f"{index}.jpg", noise(320, 256, seed=index + 100 * (label == "dog")))
    return root


def findings(report: zoo_core.CheckReport) -> dict[str, str]:
    return {finding.check: finding.level for finding in report.findings}


def test_a_clean_folder_passes_quietly(clean_folder: Path) -> None:
    report = zoo_core.check("resnet18", clean_folder)
    assert report.usable
    assert findings(report) == {"channels": "ok", "image-size": "ok", "aspect-ratio": "ok", "classes": "ok"}


@pytest.mark.parametrize(
    ("craft", "check", "level", "words"),
    [
        (
            lambda root: save(root / "cat" / "grey.png", noise(320, 256, "L"), "PNG"),
            "channels",
            "warn",
            "1 grayscale, replicated",
        ),
        (
            lambda root: save(root / "cat" / "alpha.png", noise(320, 256, "RGBA"), "PNG"),
            "channels",
            "warn",
            "1 RGBA, alpha channel dropped",
        ),
        (
            lambda root: save(root / "cat" / "print.jpg", noise(320, 256, "CMYK")),
            "channels",
            "warn",
            "1 CMYK, converted to RGB",
        ),
        (
            lambda root: save(root / "dog" / "small.png", noise(16, 16), "PNG"),
            "image-size",
            "warn",
            "1 image(s) are upscaled over 4x (up to 15x: 16 -> 235 px)",
        ),
        (
            lambda root: save(root / "dog" / "tiny.png", noise(4, 4), "PNG"),
            "image-size",
            "error",
            "1 image(s) are under 7 px",
        ),
        (lambda root: (root / "bird").mkdir(), "classes", "error", "class folder(s) with no readable image: bird"),
        (
            lambda root: save(root / "bird" / "0.jpg", noise(320, 256, seed=99)),
            "classes",
            "warn",
            "fewer than 5 images: bird (1)",
        ),
        (
            lambda root: (root / "dog" / "copy.jpg").write_bytes((root / "dog" / "0.jpg").read_bytes()),
            "duplicates",
            "warn",
            "0.jpg = copy.jpg",
        ),
        (
            lambda root: (root / "dog" / "cut.jpg").write_bytes((root / "dog" / "1.jpg").read_bytes()[:3000]),
            "files",
            "warn",
            "cut.jpg (truncated",
        ),
        (
            lambda root: (root / "dog" / "notes.jpg").write_text("not an image"),
            "files",
            "warn",
            "notes.jpg (cannot identify image file",
        ),
        (
            lambda root: [save(root / "dog" / f"w{i}.jpg", noise(1024, 256, seed=i)) for i in range(4)],
            "aspect-ratio",
            "warn",
            "lose over half",
        ),
    ],
)
def test_each_check_fires_on_a_crafted_folder(
    clean_folder: Path, craft: Callable[[Path], object], check: str, level: str, words: str
) -> None:
    craft(clean_folder)
    report = zoo_core.check("resnet18", clean_folder)
    found = [finding for finding in report.findings if finding.check == check]
    assert found and found[0].level == level and words in found[0].message, report.findings
    assert report.usable == (level != "error")


def test_small_images_are_flagged_as_upscaled(tmp_path: Path) -> None:
    for index in range(5):
        save(tmp_path / "digits" / "a" / f"{index}.png", noise(28, 28, seed=index), "PNG")
    report = zoo_core.check("resnet18", tmp_path / "digits")
    size = next(f for f in report.findings if f.check == "image-size")
    assert size.level == "warn" and "5 image(s) are upscaled over 4x (up to 8x: 28 -> 235 px)" in size.message


def test_arrays_report_layout_and_value_range() -> None:
    def levels(batch: object) -> dict[str, tuple[str, str]]:
        return {f.check: (f.level, f.message) for f in zoo_core.check("resnet18", batch).findings}

    assert levels(np.zeros((4, 224, 224, 3), dtype=np.uint8))["values"][0] == "ok"
    assert "NHWC" in levels(np.zeros((4, 224, 224, 3), dtype=np.uint8))["channels"][1]
    normalised = levels(torch.randn(4, 3, 224, 224))["values"]
    assert normalised[0] == "warn" and "already normalised" in normalised[1]
    assert "0-255 floats" in levels(np.full((2, 3, 224, 224), 200.0, dtype=np.float32))["values"][1]
    assert levels(np.zeros((2, 1, 224, 224), dtype=np.float32))["channels"][0] == "warn"
    assert not zoo_core.check("resnet18", np.zeros((5,))).usable


def test_zoo_check_exit_codes_and_json(clean_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["check", "resnet18", str(clean_folder)])
    out = capsys.readouterr().out
    assert exited.value.code == 0 and "usable with resnet18.a1_in1k" in out and "crop_mode=center" in out
    save(clean_folder / "cat" / "tiny.png", noise(4, 4), "PNG")
    with pytest.raises(SystemExit) as exited:
        main(["check", "resnet18", str(clean_folder), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert exited.value.code == 1 and report["usable"] is False
    assert {"check": "image-size", "level": "error"}.items() <= report["findings"][1].items()


def test_a_single_image_can_be_checked(tmp_path: Path) -> None:
    path = save(tmp_path / "one.jpg", noise(640, 480))
    report = zoo_core.check("inception_v3", path)
    assert report.usable and findings(report)["image-size"] == "ok"
