"""Parsing and validating registry files: good entries become specs, bad ones one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import image_entry

from zoo_core import EmbeddingInput, ImageInput, RegistryError, TextInput, parse_spec
from zoo_core.registry import read_registry_file

FULL = """
endpoint = "https://mirror.example/hf"

[[model]]
name = "resnet18.a1_in1k"
aliases = ["resnet18"]
plugin = "timm"
arch = "resnet18"
family = "resnet"
task = "image-classification"
modality = "image"
license = "apache-2.0"
tags = ["imagenet-1k"]
description = "ResNet-18"
paper = "arXiv:1512.03385"
params = 11689512
source = { hub = "timm/resnet18.a1_in1k", revision = "main", files = ["model.safetensors"] }
sha256 = { "model.safetensors" = "AB" }
input = { channels = 3, height = 224, width = 224, mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225], interpolation = "bicubic", crop_pct = 0.95 }
output = { num_classes = 1000, feature_dim = 512 }

[[model]]
name = "bert-base-uncased"
plugin = "transformers"
arch = "bert"
family = "bert"
task = "feature-extraction"
modality = "text"
source = { hub = "google-bert/bert-base-uncased", files = ["config.json"] }
input = { tokenizer = "google-bert/bert-base-uncased", max_length = 512, lowercase = true }

[[model]]
name = "glove-6B-50d"
plugin = "wordvec"
arch = "glove"
family = "glove"
task = "word-embedding"
modality = "embedding"
source = { url = "https://example.org/glove.6B.zip", files = ["glove.6B.50d.txt"] }
input = { dim = 50, vocab_size = 400000, lowercase = true }
"""


def _one_error(path: Path) -> str:
    _, errors = read_registry_file(path)
    assert len(errors) == 1, errors
    return str(errors[0])


def test_each_modality_parses_into_typed_specs(write_registry: Callable[..., Path]) -> None:
    path = write_registry(FULL.replace('"AB"', '"' + "ab" * 32 + '"'))
    specs, errors = read_registry_file(path)
    assert errors == []
    image, text, embedding = specs
    assert image.input == ImageInput(3, 224, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bicubic", 0.95)
    assert image.aliases == ("resnet18",) and image.params == 11689512
    assert image.output.num_classes == 1000 and image.output.feature_dim == 512
    assert image.sha256 == {"model.safetensors": "ab" * 32}
    assert image.source.revision == "main" and image.source.endpoint == "https://mirror.example/hf"
    assert text.input == TextInput("google-bert/bert-base-uncased", 512, True)
    assert embedding.input == EmbeddingInput(dim=50, vocab_size=400000, lowercase=True)
    assert embedding.source.url == "https://example.org/glove.6B.zip" and embedding.source.hub is None
    assert image.origin == str(path)


def test_image_defaults_fill_what_an_entry_leaves_out(write_registry: Callable[..., Path]) -> None:
    (spec,), _ = read_registry_file(write_registry(image_entry("a.b")))
    assert spec.input.mean == (0.485, 0.456, 0.406)  # type: ignore[union-attr]
    assert spec.input.channel_order == "RGB" and spec.input.value_range == (0.0, 1.0)  # type: ignore[union-attr]


def test_toml_syntax_error_names_file_and_line(write_registry: Callable[..., Path]) -> None:
    path = write_registry('[[model]]\nname = "a"\nplugin = timm\n')
    message = _one_error(path)
    assert message.startswith(f"{path}:3: invalid TOML")


def test_missing_field_names_file_line_entry_and_field(write_registry: Callable[..., Path]) -> None:
    path = write_registry(image_entry("good.one") + image_entry("bad.one").replace('plugin = "timm"\n', ""))
    specs, errors = read_registry_file(path)
    assert [spec.name for spec in specs] == ["good.one"]  # the rest of the file still loads
    assert str(errors[0]).startswith(f"{path}:13: model 'bad.one': field 'plugin': missing")


def test_wrong_type_names_the_nested_field(write_registry: Callable[..., Path]) -> None:
    path = write_registry(image_entry("a.b").replace("width = 224 }", 'width = 224, mean = "0.5" }'))
    assert "model 'a.b': field 'input.mean': expected a list of numbers, got '0.5'" in _one_error(path)


def test_mean_must_match_channels(write_registry: Callable[..., Path]) -> None:
    path = write_registry(image_entry("a.b").replace("width = 224 }", "width = 224, mean = [0.5] }"))
    assert "field 'input.mean': expected 3 numbers, got 1" in _one_error(path)


def test_unknown_field_suggests_the_close_one(write_registry: Callable[..., Path]) -> None:
    path = write_registry(image_entry("a.b").replace("license =", "lisence ="))
    assert "field 'lisence': unknown field; did you mean 'license'?" in _one_error(path)


def test_boolean_is_not_a_number(write_registry: Callable[..., Path]) -> None:
    path = write_registry(image_entry("a.b").replace("channels = 3", "channels = true"))
    assert "field 'input.channels': expected a whole number, got True" in _one_error(path)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "weights/../../x", "C:/x", "a\\\\b"])
def test_file_names_cannot_leave_the_model_folder(write_registry: Callable[..., Path], name: str) -> None:
    path = write_registry(image_entry("a.b").replace('"model.safetensors"', f'"{name}"'))
    assert "field 'source.files'" in _one_error(path) and "is not a safe file name" in _one_error(path)


def test_sha256_must_be_hex_and_name_a_listed_file(write_registry: Callable[..., Path]) -> None:
    bad_hex = write_registry(image_entry("a.b") + 'sha256 = { "model.safetensors" = "xyz" }\n')
    assert "field 'sha256.model.safetensors': 'xyz' is not a sha256: expected 64 hexadecimal characters" in _one_error(
        bad_hex
    )
    short_sha1 = write_registry(image_entry("a.b") + 'sha1 = { "model.safetensors" = "abc" }\n', "sha1.toml")
    assert "field 'sha1.model.safetensors': 'abc' is not a sha1: expected 40 hexadecimal characters" in _one_error(
        short_sha1
    )
    other = write_registry(image_entry("a.b") + f'sha256 = {{ "other.bin" = "{"0" * 64}" }}\n', "b.toml")
    assert "names a file that is not in source.files" in _one_error(other)


def test_source_needs_exactly_one_of_hub_and_url(write_registry: Callable[..., Path]) -> None:
    path = write_registry(image_entry("a.b").replace('hub = "timm/a.b"', 'hub = "x/y", url = "https://x"'))
    assert "field 'source': give exactly one of hub" in _one_error(path)


def test_crop_pct_above_one_is_valid_but_zero_is_not(write_registry: Callable[..., Path]) -> None:
    (spec,), _ = read_registry_file(
        write_registry(image_entry("a.b").replace("width = 224", "width = 224, crop_pct = 1.15"))
    )
    assert spec.input.crop_pct == 1.15  # type: ignore[union-attr]
    path = write_registry(image_entry("a.b").replace("width = 224", "width = 224, crop_pct = 0"), "z.toml")
    assert "field 'input.crop_pct': must be above 0" in _one_error(path)


def test_unknown_top_level_key_and_unreadable_file(write_registry: Callable[..., Path], tmp_path: Path) -> None:
    assert "unknown top-level key 'models'" in _one_error(write_registry("[[models]]\nname = 'x'\n"))
    assert "cannot read registry file" in _one_error(tmp_path / "absent.toml")
    (tmp_path / "latin.toml").write_bytes(b"# caf\xe9\n")
    assert "not UTF-8 text" in _one_error(tmp_path / "latin.toml")


JSON_ENTRY = {
    "name": "x.y",
    "plugin": "p",
    "arch": "x",
    "family": "f",
    "task": "t",
    "modality": "embedding",
    "source": {"hub": "o/r"},
    "input": {"dim": 8},
}


def test_json_registry_has_the_same_shape(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"about": {"generated_by": "test"}, "model": [JSON_ENTRY, {**JSON_ENTRY, "name": 3}]}))
    specs, errors = read_registry_file(path)
    assert [spec.input for spec in specs] == [EmbeddingInput(dim=8)]
    assert "field 'name': expected a string, got 3" in str(errors[0])
    (tmp_path / "broken.json").write_text('{"model": [\n}')
    assert _one_error(tmp_path / "broken.json").startswith(f"{tmp_path / 'broken.json'}:2: invalid JSON")


def test_parse_spec_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="plugin 'x': model 'a': field 'modality': 'video' is not one of"):
        parse_spec({**JSON_ENTRY, "name": "a", "modality": "video", "input": {}}, "plugin 'x'")
    with pytest.raises(RegistryError, match="here: model 'a': field 'aliases': 'bad name' is not a model name"):
        parse_spec({**JSON_ENTRY, "name": "a", "aliases": ["bad name"]}, "here")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.toml", "x = " + "[" * 5000 + "]" * 5000),
        ("deep.json", '{"model": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ],
)
def test_a_deeply_nested_file_is_one_error_naming_it(write_registry: Callable[..., Path], name: str, text: str) -> None:
    path = write_registry(text, name)
    assert _one_error(path) == f"{path}: nested too deeply to read; a registry file is a flat list of [[model]] tables"


def test_a_name_too_long_for_a_file_system_is_refused(write_registry: Callable[..., Path]) -> None:
    path = write_registry(image_entry("a" * 250 + ".v1"))
    assert "field 'name'" in _one_error(path) and "is longer than 200 characters" in _one_error(path)


def test_figures_parse_and_survive_every_round_trip(write_registry: Callable[..., Path]) -> None:
    from zoo_core.registry import check_spec
    from zoo_core.specs import Figures, ModelSpec

    line = 'figures = { top1 = 80.382, top5 = 95, gmacs = 4.11, images_per_second = 0, pretrained_on = "in1k", measured_by = "me" }\n'
    (spec,), errors = read_registry_file(write_registry(image_entry("a.b") + line))
    assert errors == []
    assert spec.figures == Figures(
        top1=80.382, top5=95.0, gmacs=4.11, images_per_second=0.0, pretrained_on="in1k", measured_by="me"
    )
    assert spec.to_dict()["figures"]["top5"] == 95.0 and spec.to_entry()["figures"]["pretrained_on"] == "in1k"
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert check_spec(spec, spec.origin) == spec
    (bare,), _ = read_registry_file(write_registry(image_entry("a.b"), "bare.toml"))
    assert bare.figures == Figures() and "figures" not in bare.to_entry()  # an empty table is not written
    assert ModelSpec.from_dict(bare.to_dict()) == bare


@pytest.mark.parametrize(
    ("figures", "problem"),
    [
        ("top1 = 100.5", "field 'figures.top1': must be a percentage from 0 to 100, got 100.5"),
        ("top5 = -1", "field 'figures.top5': must be a percentage from 0 to 100, got -1.0"),
        ("top1 = nan", "field 'figures.top1': must be a percentage from 0 to 100, got nan"),
        ("gmacs = inf", "field 'figures.gmacs': must be a finite number, 0 or above, got inf"),
        ("gmacs = -0.5", "field 'figures.gmacs': must be a finite number, 0 or above, got -0.5"),
        ("images_per_second = -inf", "field 'figures.images_per_second': must be a finite number, 0 or above"),
        ('top1 = "80"', "field 'figures.top1': expected a number, got '80'"),
        ("gmacs = true", "field 'figures.gmacs': expected a number, got True"),
        ("pretrained_on = 1", "field 'figures.pretrained_on': expected a string, got 1"),
        ('measured_by = " "', "field 'figures.measured_by': must not be empty"),
        ("top_1 = 80", "field 'figures.top_1': unknown field; did you mean 'top1'?"),
        ("params = 5", "field 'figures.params': unknown field; known fields: top1, top5, gmacs"),
        (
            "top1 = 80.0, top5 = 70.0",
            "field 'figures.top5': must be at least top1 (80), got 70: every top-1 hit is a top-5 hit; check both",
        ),
        ("top5 = 79.9, top1 = 80", "field 'figures.top5': must be at least top1 (80), got 79.9"),
    ],
)
def test_hostile_figures_are_one_error_naming_the_field(
    write_registry: Callable[..., Path], figures: str, problem: str
) -> None:
    path = write_registry(image_entry("a.b") + f"figures = {{ {figures} }}\n")
    message = _one_error(path)
    assert message.startswith(f"{path}:2: model 'a.b': ") and problem in message and "\n" not in message


def test_top5_may_equal_top1(write_registry: Callable[..., Path]) -> None:
    (spec,), errors = read_registry_file(write_registry(image_entry("a.b") + "figures = { top1 = 80, top5 = 80 }\n"))
    assert errors == [] and (spec.figures.top1, spec.figures.top5) == (80.0, 80.0)


@pytest.mark.parametrize("modality", ["text", "embedding"])
def test_imagenet_accuracy_on_a_text_or_embedding_entry_is_refused(
    write_registry: Callable[..., Path], modality: str
) -> None:
    """What `--min-top1` and `--sort top1` compare is ImageNet-1k accuracy: a figure no text model can have."""
    entries = FULL.replace('"AB"', '"' + "ab" * 32 + '"').split("[[model]]")
    entry = "[[model]]" + entries[2 if modality == "text" else 3]
    name = "bert-base-uncased" if modality == "text" else "glove-6B-50d"
    for key in ("top1", "top5"):
        path = write_registry(entry + f"figures = {{ {key} = 80.5 }}\n")
        assert _one_error(path) == (
            f"{path}:1: model '{name}': field 'figures.{key}': ImageNet-1k accuracy belongs to image models, "
            f"not to a {modality} model; remove it"
        )
    costs = 'figures = { gmacs = 11.2, images_per_second = 40, pretrained_on = "wiki", measured_by = "me" }\n'
    (spec,), errors = read_registry_file(write_registry(entry + costs))
    assert errors == [] and spec.figures.gmacs == 11.2 and spec.figures.top1 is None  # cost figures are any model's


def test_a_figures_value_that_is_no_table_is_refused(write_registry: Callable[..., Path]) -> None:
    path = write_registry(image_entry("a.b") + "figures = 80\n")
    assert "model 'a.b': field 'figures': expected a table, got 80" in _one_error(path)


def test_json_numbers_too_large_for_a_float_or_to_read_are_one_error(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"model": [{**JSON_ENTRY, "figures": {"gmacs": 10**400}}]}))
    assert _one_error(path) == f"{path}: model 'x.y': field 'figures.gmacs': is too large to be a number"
    path.write_text('{"model": [{"figures": {"top1": ' + "9" * 5000 + "}}]}")
    assert _one_error(path) == f"{path}: invalid JSON: a number too long to read; shorten it"
