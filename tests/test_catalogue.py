"""Lookup, filters and ranked search over a catalogue."""

from __future__ import annotations

from typing import Any

import pytest

from zoo_core import Catalogue, Filters, ModelNotFoundError, parse_spec
from zoo_core.specs import ModelSpec


def spec(name: str, **fields: Any) -> ModelSpec:
    entry = {
        "name": name,
        "plugin": "timm",
        "arch": name.split(".")[0],
        "family": "resnet",
        "task": "image-classification",
        "modality": "image",
        "source": {"hub": f"timm/{name}"},
        "input": {},
        **fields,
    }
    return parse_spec(entry, "test")


@pytest.fixture
def catalogue() -> Catalogue:
    return Catalogue.from_specs(
        [
            spec("resnet101.a1h_in1k", aliases=["resnet101"], params=44_500_000, license="apache-2.0"),
            spec("resnet18.a1_in1k", aliases=["resnet18"], params=11_700_000, license="apache-2.0"),
            spec("resnet18.tv_in1k", params=11_700_000, license="bsd-3-clause"),
            spec("seresnet50.ra2_in1k", aliases=["seresnet50"], family="resnet", params=28_000_000, license="MIT"),
            spec("resnet", description="a model literally named resnet", params=1),
            spec("net.resnet-alias", aliases=["resnet-classic"], family="other"),
            spec("vgg16_bn.tv_in1k", family="vgg", tags=["batchnorm", "imagenet-1k"], license="cc-by-nc-4.0"),
            spec(
                "bert-base",
                plugin="transformers",
                arch="bert",
                family="bert",
                task="feature-extraction",
                modality="text",
                input={"tokenizer": "bert"},
                description="BERT for resnet-free text",
            ),
        ]
    )


def names(specs: list[ModelSpec]) -> list[str]:
    return [each.name for each in specs]


def test_get_by_name_alias_and_any_case(catalogue: Catalogue) -> None:
    assert catalogue.get("resnet18.a1_in1k").name == "resnet18.a1_in1k"
    assert catalogue.get("resnet18").name == "resnet18.a1_in1k"
    assert catalogue.get("ResNet18").name == "resnet18.a1_in1k"
    assert catalogue.get("RESNET18.TV_IN1K").name == "resnet18.tv_in1k"
    assert "resnet101" in catalogue and "nothing" not in catalogue and len(catalogue) == 8


def test_unknown_name_suggests_close_ones(catalogue: Catalogue) -> None:
    with pytest.raises(ModelNotFoundError) as raised:
        catalogue.get("resnet19")
    assert isinstance(raised.value, KeyError)
    assert str(raised.value).startswith("no model named 'resnet19' in the catalogue; did you mean 'resnet18.a1_in1k'")
    with pytest.raises(ModelNotFoundError, match="try `zoo search zzzz`"):
        catalogue.get("zzzz")


def test_a_name_beats_another_models_alias() -> None:
    catalogue = Catalogue.from_specs([spec("a.x", aliases=["b.y"]), spec("b.y")])
    assert catalogue.get("b.y").name == "b.y"


def test_search_ranks_exact_alias_prefix_words_then_text(catalogue: Catalogue) -> None:
    assert names(catalogue.search("resnet", limit=None)) == [
        "resnet",  # exact name
        "net.resnet-alias",  # prefix (of its alias "resnet-classic"); default tags first, in natural order
        "resnet18.a1_in1k",
        "resnet101.a1h_in1k",
        "resnet18.tv_in1k",
        "seresnet50.ra2_in1k",  # word inside the name
        "bert-base",  # word in the description only
    ]
    assert names(catalogue.search("resnet18", limit=None))[:2] == ["resnet18.a1_in1k", "resnet18.tv_in1k"]
    assert names(catalogue.search("resnet-classic")) == ["net.resnet-alias"]


def test_search_words_match_in_any_order_across_fields(catalogue: Catalogue) -> None:
    assert names(catalogue.search("bn vgg")) == ["vgg16_bn.tv_in1k"]
    assert names(catalogue.search("batchnorm vgg")) == ["vgg16_bn.tv_in1k"]
    assert catalogue.search("   ") == []


def test_search_falls_back_to_close_spellings(catalogue: Catalogue) -> None:
    assert names(catalogue.search("resnt"))[:3] == ["resnet18.a1_in1k", "resnet101.a1h_in1k", "resnet"]
    assert names(catalogue.search("vgj")) == []  # too short and too far: no guess


def test_search_limit_and_filters(catalogue: Catalogue) -> None:
    assert len(catalogue.search("resnet", limit=2)) == 2
    found = catalogue.search("resnet", Filters(licenses=("Apache-2.0", "mit")), limit=None)
    assert names(found) == ["resnet18.a1_in1k", "resnet101.a1h_in1k", "seresnet50.ra2_in1k"]
    found = catalogue.search("resnet", Filters(max_params=20_000_000), limit=None)
    assert names(found) == ["resnet", "resnet18.a1_in1k", "resnet18.tv_in1k"]  # unknown counts excluded


def test_select_filters_each_field(catalogue: Catalogue) -> None:
    assert names(catalogue.select(Filters(family="vgg"))) == ["vgg16_bn.tv_in1k"]
    assert names(catalogue.select(Filters(modality="text"))) == ["bert-base"]
    assert names(catalogue.select(Filters(task="feature-extraction"))) == ["bert-base"]
    assert names(catalogue.select(Filters(plugin="transformers"))) == ["bert-base"]
    assert names(catalogue.select(Filters(licenses=("cc-by-nc-4.0",)))) == ["vgg16_bn.tv_in1k"]
    assert names(catalogue.select())[:3] == ["bert-base", "net.resnet-alias", "resnet"]


def test_families_counts_per_plugin(catalogue: Catalogue) -> None:
    assert catalogue.families("timm") == {"resnet": 5, "other": 1, "vgg": 1}
    assert catalogue.families("transformers") == {"bert": 1}


def test_specs_survive_the_index_unchanged(catalogue: Catalogue) -> None:
    original = spec("resnet101.a1h_in1k", aliases=["resnet101"], params=44_500_000, license="apache-2.0")
    assert catalogue.get("resnet101") == original


def test_filters_ignore_case(catalogue: Catalogue) -> None:
    assert names(catalogue.select(Filters(family="VGG"))) == ["vgg16_bn.tv_in1k"]
    assert names(catalogue.select(Filters(modality="TEXT", plugin="Transformers"))) == ["bert-base"]


def test_an_empty_result_says_which_filter_removed_everything(catalogue: Catalogue) -> None:
    assert catalogue.why_empty(Filters(family="vgg16")) == "No model has family 'vgg16'; did you mean 'vgg'?"
    assert catalogue.why_empty(Filters(licenses=("apache",))) == (
        "No model has license 'apache'; did you mean 'apache-2.0'?"
    )
    assert catalogue.why_empty(Filters(max_params=30), "resnet18") == (
        "2 model(s) match 'resnet18', but none passes the filters (--max-params 30 means 30 parameters: 25M, 1.5B?)."
    )
    assert catalogue.why_empty(Filters(), "qqqq") == "No model matches 'qqqq'."


def test_the_api_takes_counts_as_the_cli_does() -> None:
    import zoo_core

    small = zoo_core.list_models(max_params="12M", family="resnet")
    assert small and all(spec.params is not None and spec.params <= 12_000_000 for spec in small)
    assert small == zoo_core.list_models(max_params=12_000_000, family="resnet")
    with pytest.raises(ValueError, match="max_params='many' is not a count"):
        zoo_core.list_models(max_params="many")
    with pytest.raises(TypeError, match="max_params must be a whole number"):
        zoo_core.list_models(max_params=1.5)  # type: ignore[arg-type]
