"""Image decoding and preprocessing, the same in `zoo check`, training and `zoo predict` (zoo_core/images.py).

Deep grayscale (16-bit PNGs, 32-bit and float TIFFs) keeps its levels; unreadable, truncated and
decompression-bomb files are skipped by the check and by training alike, each naming the file; timm's
crop modes give timm's own tensors on a real photo; registry input fields that would divide by zero or
spread NaN are refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import image_entry

import zoo_core
from zoo_core.registry import parse_spec, read_registry_file
from zoo_core.runtime import Predictor

torch = pytest.importorskip("torch", reason="the dev extra installs torch")
timm = pytest.importorskip("timm", reason="the dev extra installs timm")
Image = pytest.importorskip("PIL.Image")
skimage_data = pytest.importorskip("skimage.data", reason="the dev extra installs scikit-image")

GRADIENT = np.arange(256, dtype=np.uint16).reshape(16, 16) * 257  # every 8-bit level, spread over 16 bits


def image_spec(**input: Any) -> zoo_core.ModelSpec:
    entry = {
        "name": "test.images",
        "plugin": "timm",
        "arch": "resnet10t",
        "family": "resnet",
        "task": "t",
        "modality": "image",
        "source": {"hub": "o/r"},
        "input": input,
    }
    return parse_spec(entry, "test")


GREY_16 = image_spec(channels=1, height=16, width=16, mean=[0.0], std=[1.0], crop_pct=1.0, interpolation="nearest")


def training_pixels(spec: zoo_core.ModelSpec, path: Path) -> np.ndarray:
    """What training feeds the network: the check's transform on the opened file."""
    with Image.open(path) as image:
        tensor = zoo_core.check(spec, path).transform(image)
    return np.asarray(tensor.numpy())


def predict_pixels(spec: zoo_core.ModelSpec, path: Path) -> np.ndarray:
    """What `zoo predict` feeds the network: Predictor's numpy preprocessing, from the metadata export
    writes (`dataclasses.asdict(spec.input)`), without an ONNX session."""
    predictor = object.__new__(Predictor)
    predictor.input = json.loads(json.dumps(dataclasses.asdict(spec.input)))
    return np.asarray(predictor._image(path))


def test_a_16_bit_png_keeps_all_256_levels_in_training_and_predict(tmp_path: Path) -> None:
    path = tmp_path / "gradient.png"
    Image.fromarray(GRADIENT).save(path)
    with Image.open(path) as image:
        assert image.mode == "I;16"  # a real 16-bit PNG
    expected = np.arange(256, dtype=np.float32).reshape(1, 16, 16) / 255  # 0-65535 onto 0-255, then 0-1
    assert np.array_equal(training_pixels(GREY_16, path), expected)
    assert np.array_equal(predict_pixels(GREY_16, path), expected)
    rgb = zoo_core.get("resnet18")  # grey replicated to 3 channels, all levels still there
    assert len(np.unique(training_pixels(rgb, path)[0])) > 200


def test_16_bit_images_keep_their_brightness(tmp_path: Path) -> None:
    """One scale for every 16-bit image (divide by 257): a dark image is not stretched to full range."""
    path = tmp_path / "dark.png"
    Image.fromarray(GRADIENT // 4).save(path)  # 0-16383: a quarter of the range
    pixels = training_pixels(GREY_16, path) * 255
    assert pixels.min() == 0 and pixels.max() == pytest.approx(64, abs=0.01)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (GRADIENT.astype(np.int32) - 40000, np.arange(256)),  # 32-bit ("I"), negative values included
        (GRADIENT.astype(np.float32) / 65535 * 3 - 1, np.arange(256)),  # float ("F"), -1 to 2
    ],
)
def test_32_bit_and_float_tiffs_are_stretched_over_their_own_range(
    tmp_path: Path, values: np.ndarray, expected: np.ndarray
) -> None:
    path = tmp_path / "deep.tif"
    Image.fromarray(values).save(path)
    with Image.open(path) as image:
        assert image.mode in ("I", "F")
    assert np.array_equal(np.rint(training_pixels(GREY_16, path) * 255).ravel(), expected)
    assert np.array_equal(np.rint(predict_pixels(GREY_16, path) * 255).ravel(), expected)


def test_non_finite_float_pixels_become_the_darkest(tmp_path: Path) -> None:
    values = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    values[0, :3] = [np.nan, np.inf, -np.inf]
    path = tmp_path / "holes.tif"
    Image.fromarray(values).save(path)
    pixels = np.rint(training_pixels(GREY_16, path) * 255).ravel()
    assert pixels[:3].tolist() == [0, 0, 0] and pixels[-1] == 255


def test_the_check_names_the_scaling_the_transform_applies(tmp_path: Path) -> None:
    (tmp_path / "grey").mkdir()
    for index in range(2):
        Image.fromarray(GRADIENT).save(tmp_path / "grey" / f"{index}.png")
    channels = next(f for f in zoo_core.check("resnet18", tmp_path / "grey").findings if f.check == "channels")
    assert channels.message == (
        "the model takes RGB: 2 16-bit grayscale, divided by 257 (0-65535 onto 0-255), replicated to 3 channels"
    )


def png_of_side(path: Path, side: int) -> Path:
    """A real black grayscale PNG, side x side pixels, written row block by row block (zeros compress)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, rows = zlib.compressobj(1), 500
    block = b"\0" * (side + 1) * rows  # each row: filter byte 0, then the pixels
    idat = b"".join(compressor.compress(block) for _ in range(side // rows)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 20000 x 20000 PNG: over Pillow's decompression-bomb limit (2 x 89,478,485 pixels)."""
    return png_of_side(tmp_path_factory.mktemp("bomb") / "huge.png", 20000).read_bytes()


def noise(seed: int, size: int = 40) -> Any:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8))


@pytest.fixture
def damaged(tmp_path: Path, bomb: bytes) -> Path:
    """Classes a and b, four good images each, plus a truncated JPEG (a/cut.jpg) and a bomb (b/huge.png)."""
    root = tmp_path / "damaged"
    for label, seed in (("a", 0), ("b", 10)):
        (root / label).mkdir(parents=True)
        for index in range(4):
            noise(seed + index).save(root / label / f"{index}.jpg")
    whole = (root / "a" / "0.jpg").read_bytes()
    (root / "a" / "cut.jpg").write_bytes(whole[: len(whole) * 3 // 4])
    (root / "b" / "huge.png").write_bytes(bomb)
    return root


def test_the_check_reports_each_damaged_file_and_goes_on(damaged: Path) -> None:
    report = zoo_core.check("resnet18", damaged)
    files = next(f for f in report.findings if f.check == "files")
    assert files.level == "warn" and files.message.startswith(
        f"2 unreadable or truncated file(s), skipped (training skips them too): {damaged / 'a' / 'cut.jpg'} (truncated"
    )
    assert f"{damaged / 'b' / 'huge.png'} (too large to decode safely: Image size (400000000 pixels)" in files.message
    size = next(f for f in report.findings if f.check == "image-size")
    assert "in 8 images" in size.message and report.usable  # the other images were checked


def test_training_skips_the_files_the_check_skipped(damaged: Path) -> None:
    from zoo_core.image_transform import build_transform
    from zoo_core.training.data import load_dataset
    from zoo_core.training.features import batches

    with pytest.warns(UserWarning) as caught:
        dataset = load_dataset(damaged, "image")
    assert [str(w.message) for w in caught] == [
        f"{damaged}: skipped 2 unreadable or truncated image(s), the first {damaged / 'a' / 'cut.jpg'} (truncated: "
        "the file ends before its end marker); `zoo check` lists them: re-download or delete them"
    ]
    assert [Path(item).name for item in dataset.items] == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"] * 2
    transform = build_transform(zoo_core.get("resnet18").input)  # type: ignore[arg-type]
    assert sum(len(labels) for _, labels in batches(dataset, transform, 3)) == 8


def test_images_beside_the_class_folders_are_reported_not_counted(damaged: Path) -> None:
    noise(7).save(damaged / "loose.jpg")  # training reads class folders only, and so does the check
    report = zoo_core.check("resnet18", damaged)
    files = [f.message for f in report.findings if f.check == "files"]
    assert files[1:] == [f"1 image(s) beside the class folders belong to no class, skipped: {damaged / 'loose.jpg'}"]
    assert "in 8 images" in next(f.message for f in report.findings if f.check == "image-size")


def test_an_image_whose_pixels_fail_is_one_error_naming_it(tmp_path: Path) -> None:
    """Header and end marker intact, compressed data broken: `batches` says which file, in one line."""
    from zoo_core.training.data import Dataset
    from zoo_core.training.features import batches

    path = tmp_path / "broken.png"
    noise(1, 64).save(path)
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 4
    data[start + 10 : start + 200] = bytes(190)
    path.write_bytes(bytes(data))
    dataset = Dataset("image", [str(path)], [0], ["a"])
    transform = zoo_core.check("resnet18", np.zeros((1, 3, 224, 224), dtype=np.uint8)).transform
    with pytest.raises(zoo_core.DataError, match=r"broken\.png: not a readable image \(.*\); re-save or delete it"):
        next(batches(dataset, transform, 1))


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> zoo_core.ModelSpec:
    """resnet10t at 32 px with random weights from a file URL, crop_mode squash: cheap to train and export."""
    from safetensors.torch import save_file

    from zoo_core.catalogue_sources import reset_catalogue

    network = timm.create_model("resnet10t", num_classes=3)
    weights = tmp_path / "weights" / "model.safetensors"
    weights.parent.mkdir()
    save_file({key: value.contiguous() for key, value in network.state_dict().items()}, str(weights))
    registry = tmp_path / "tiny.toml"
    registry.write_text(f"""
[[model]]
name = "tiny.squash"
plugin = "timm"
arch = "resnet10t"
family = "resnet"
task = "image-classification"
modality = "image"
source = {{ url = "{weights.as_uri()}" }}
sha256 = {{ "model.safetensors" = "{hashlib.sha256(weights.read_bytes()).hexdigest()}" }}
input = {{ height = 32, width = 32, crop_pct = 1.0, crop_mode = "squash" }}
output = {{ num_classes = 3 }}
""")
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    reset_catalogue()
    return zoo_core.get("tiny.squash")


def test_finetune_trains_on_the_readable_images_and_says_what_it_skipped(
    damaged: Path, tiny: zoo_core.ModelSpec, tmp_path: Path
) -> None:
    from zoo_core.training.run import FinetuneOptions, finetune

    with pytest.warns(UserWarning, match=r"skipped 2 unreadable or truncated image\(s\), the first .*cut\.jpg"):
        metrics = finetune(tiny, damaged, tmp_path / "run", FinetuneOptions(epochs=1, batch_size=4))
    assert sum(metrics["sizes"].values()) == 8
    saved = json.loads((tmp_path / "run" / "preprocessing.json").read_text())
    assert saved["input"]["crop_mode"] == "squash"


def test_export_carries_crop_mode_to_predict(tiny: zoo_core.ModelSpec, tmp_path: Path) -> None:
    import onnx

    from zoo_core.export import export_onnx

    export_onnx("tiny.squash", tmp_path / "export")
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "export" / "model.onnx")).metadata_props}
    assert json.loads(meta["zoo.preprocessing"]) == json.loads(json.dumps(dataclasses.asdict(tiny.input)))
    wide = tmp_path / "wide.png"
    noise(3, 90).resize((90, 30)).save(wide)
    predictor = Predictor(tmp_path / "export")
    assert np.array_equal(predictor._image(wide), training_pixels(tiny, wide))  # squashed, not centre-cropped
    assert len(predictor.predict([str(wide)], top=3)[0]) == 3


# timm tags for each crop mode; volo_d4_448 has crop_pct 1.15 (pads), sapiens2 a 1024x768 input
TIMM_TAGS = [
    "convnext_base.fb_in22k_ft_in1k_384",  # squash
    "deepseek_vit_412m.deepseek_v4_flash_vision_exp",  # border
    "resnet18.a1_in1k",  # center
    "volo_d4_448.sail_in1k",  # center, crop_pct above 1
    "vit_base_patch16_sapiens2.fb",  # squash, not square
]


@pytest.fixture(scope="module")
def chelsea() -> Any:
    return Image.fromarray(skimage_data.chelsea())  # 451 x 300, a real photo


@pytest.mark.parametrize("name", TIMM_TAGS)
def test_zoo_preprocessing_is_timms_eval_transform(name: str, chelsea: Any, tmp_path: Path) -> None:
    from timm.data import create_transform, resolve_data_config

    with torch.device("meta"):  # the config only: no memory for deepseek's 412M parameters
        model = timm.create_model(name, pretrained=False)
    reference = create_transform(**resolve_data_config({}, model=model))
    spec = zoo_core.get(name)
    assert spec.input.crop_mode == model.pretrained_cfg.get("crop_mode", "center")  # type: ignore[union-attr]
    transform = zoo_core.check(spec, np.zeros((1, 3, 32, 32), dtype=np.uint8)).transform
    for photo in (chelsea, chelsea.transpose(Image.Transpose.TRANSPOSE)):  # landscape and portrait
        expected = reference(photo)
        assert torch.equal(transform(photo), expected)
        photo.save(tmp_path / "photo.png")
        assert np.array_equal(predict_pixels(spec, tmp_path / "photo.png"), expected.numpy())


def test_the_catalogue_carries_every_tags_crop_mode() -> None:
    for spec in zoo_core.list_models(plugin="timm"):
        if Path(spec.origin).name != "catalogue.json":  # the built-in registry's, which timm does not tag
            continue
        cfg = timm.models.get_pretrained_cfg(spec.name)
        assert spec.input.crop_mode == (cfg.crop_mode or "center"), spec.name  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        (
            "center",
            "resizing the short side to 32 px and centre-cropping 32x32 (crop_pct 1.0, crop_mode center) keeps 33% "
            "of the image area on average; 1 image(s) lose over half",
        ),
        (
            "squash",
            "squashing to 32x32 px (aspect ratio not kept) and centre-cropping 32x32 (crop_pct 1.0, crop_mode squash) "
            "keeps 100% of the image area on average and stretches shapes up to 3.00x; 1 image(s) are stretched over 2x",
        ),
        (
            "border",
            "resizing the long side to 32 px, padding with the mean colour and centre-cropping 32x32 (crop_pct 1.0, "
            "crop_mode border) keeps 100% of the image area on average; padding fills 66% of the input on average; "
            "1 image(s) are over half padding",
        ),
    ],
)
def test_the_check_describes_each_crop_mode(tmp_path: Path, mode: str, words: str) -> None:
    noise(0, 96).resize((96, 32)).save(tmp_path / "wide.png")
    spec = image_spec(height=32, width=32, crop_pct=1.0, crop_mode=mode)
    aspect = next(f for f in zoo_core.check(spec, tmp_path / "wide.png").findings if f.check == "aspect-ratio")
    assert words in aspect.message
    assert repr(zoo_core.check(spec, tmp_path / "wide.png").transform).count(f"crop_mode={mode}") == 1


def test_crop_mode_is_validated(write_registry: Callable[..., Path]) -> None:
    path = write_registry(image_entry("a.b").replace("width = 224", 'width = 224, crop_mode = "stretch"'))
    _, errors = read_registry_file(path)
    assert [str(e) for e in errors] == [
        f"{path}:2: model 'a.b': field 'input.crop_mode': 'stretch' is not one of: center, squash, border"
    ]


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("crop_pct", "nan", "must be above 0 and finite (the image is resized to size / crop_pct), got nan"),
        ("crop_pct", "inf", "must be above 0 and finite (the image is resized to size / crop_pct), got inf"),
        ("crop_pct", "-inf", "must be above 0 and finite (the image is resized to size / crop_pct), got -inf"),
        ("std", "[0.229, 0, 0.225]", "must be above 0 (every pixel is divided by it), got [0.229, 0.0, 0.225]"),
        ("std", "[0.229, -1, 0.225]", "must be above 0 (every pixel is divided by it), got [0.229, -1.0, 0.225]"),
        ("std", "[0.229, nan, 0.225]", "must be finite numbers, got [0.229, nan, 0.225]"),
        ("mean", "[0.485, nan, 0.406]", "must be finite numbers, got [0.485, nan, 0.406]"),
        ("mean", "[inf, 0.456, 0.406]", "must be finite numbers, got [inf, 0.456, 0.406]"),
        ("value_range", "[0, inf]", "must be finite numbers, got [0.0, inf]"),
        ("value_range", "[255, 0]", "must be [low, high] with low below high, got [255.0, 0.0]"),
    ],
)
def test_numbers_that_would_break_preprocessing_are_refused(
    write_registry: Callable[..., Path], field: str, value: str, problem: str
) -> None:
    path = write_registry(image_entry("a.b").replace("width = 224", f"width = 224, {field} = {value}"))
    specs, errors = read_registry_file(path)
    assert specs == [] and [str(e) for e in errors] == [f"{path}:2: model 'a.b': field 'input.{field}': {problem}"]


def test_a_plugins_spec_with_nan_is_refused_too() -> None:
    """JSON carries NaN as well: a spec a plugin builds goes through the same validation."""
    from zoo_core.registry import check_spec

    spec = dataclasses.replace(GREY_16, input=dataclasses.replace(GREY_16.input, crop_pct=math.nan))
    with pytest.raises(zoo_core.RegistryError, match=r"plugin x: model 'test.images': field 'input.crop_pct'"):
        check_spec(spec, "plugin x")
