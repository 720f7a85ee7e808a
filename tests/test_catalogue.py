"""Lookup, filters and ranked search over a catalogue."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import Run

from zoo_core import Catalogue, Filters, ModelNotFoundError, parse_spec
from zoo_core.specs import ModelSpec

TEXT_MODEL: dict[str, Any] = {
    "plugin": "transformers",
    "arch": "bert",
    "family": "bert",
    "task": "feature-extraction",
    "modality": "text",
    "input": {"tokenizer": "bert"},
}


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
            spec("bert-base", **TEXT_MODEL, description="BERT for resnet-free text"),
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
    bounded = zoo_core.list_models(min_top1=80, max_gmacs=5)  # whole numbers are figures too
    assert bounded and bounded == zoo_core.list_models(min_top1=80.0, max_gmacs=5.0)
    assert all(spec.figures.top1 >= 80 and spec.figures.gmacs <= 5 for spec in bounded)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("filters", "error", "message"),
    [  # as `zoo list --min-top1 nan` and `--max-gmacs -5` refuse them: a NaN bound once matched nothing, silently
        ({"min_top1": float("nan")}, ValueError, "min_top1=nan is not a finite number"),
        ({"max_gmacs": -5}, ValueError, "max_gmacs=-5 is not in the range x>=0"),
        ({"min_top1": 100.5}, ValueError, "min_top1=100.5 is not in the range 0<=x<=100"),
        ({"min_top1": float("-inf")}, ValueError, "min_top1=-inf is not in the range 0<=x<=100"),
        ({"max_gmacs": float("inf")}, ValueError, "max_gmacs=inf is not a finite number"),
        ({"max_gmacs": float("nan")}, ValueError, "max_gmacs=nan is not a finite number"),
        ({"min_top1": "80"}, TypeError, "min_top1 must be a number, not '80'"),
        ({"max_gmacs": True}, TypeError, "max_gmacs must be a number, not True"),
    ],
)
def test_the_api_refuses_figure_bounds_as_the_cli_does(
    filters: dict[str, Any], error: type[Exception], message: str, zoo: Run
) -> None:
    import zoo_core

    with pytest.raises(error) as raised:
        zoo_core.list_models(**filters)
    assert str(raised.value) == message
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        zoo_core.search("resnet", **filters)
    if error is ValueError:  # the CLI's wording, with the option's value where the API names its argument
        option, value = message.split(" ", 1)[0].split("=")
        code, _, err = zoo("list", f"--{option.replace('_', '-')}", value)
        assert code == 2 and message.split(" ", 1)[1] in err


def test_an_unknown_sort_is_a_value_error_naming_the_argument_and_the_choices() -> None:
    import zoo_core

    for find in (lambda: zoo_core.list_models(sort="accuracy"), lambda: zoo_core.search(" ", sort="accuracy")):
        with pytest.raises(ValueError, match=r"^sort='accuracy' is not one of top1, params, gmacs, speed$"):
            find()


@pytest.fixture
def measured() -> Catalogue:
    """Four models with figures in every combination, one with none, and a text model."""
    return Catalogue.from_specs(
        [
            spec("resnet18.a1_in1k", params=11_700_000, figures={"top1": 71.5, "gmacs": 1.82, "images_per_second": 90}),
            spec("resnet50.a1_in1k", params=25_600_000, figures={"top1": 80.4, "gmacs": 4.11, "images_per_second": 30}),
            spec("resnet101.a1h_in1k", params=44_500_000, figures={"top1": 82.8, "gmacs": 7.83}),
            spec("resnet26.bt_in1k", figures={"gmacs": 2.36, "images_per_second": 60}),
            spec("resnet34.unmeasured"),
            spec("bert-base", **TEXT_MODEL, params=110_000_000),
        ]
    )


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("top1", ["resnet101.a1h_in1k", "resnet50.a1_in1k", "resnet18.a1_in1k", "bert-base", "resnet26.bt_in1k"]),
        ("speed", ["resnet18.a1_in1k", "resnet26.bt_in1k", "resnet50.a1_in1k", "bert-base", "resnet34.unmeasured"]),
        ("params", ["resnet18.a1_in1k", "resnet50.a1_in1k", "resnet101.a1h_in1k", "bert-base", "resnet26.bt_in1k"]),
        ("gmacs", ["resnet18.a1_in1k", "resnet26.bt_in1k", "resnet50.a1_in1k", "resnet101.a1h_in1k", "bert-base"]),
    ],
)
def test_select_sorts_by_a_figure_with_unknowns_last_by_name(measured: Catalogue, sort: str, order: list[str]) -> None:
    assert names(measured.select(sort=sort))[:5] == order
    assert len(measured.select(sort=sort)) == 6


def test_search_sorts_all_matches_then_limits(measured: Catalogue) -> None:
    assert names(measured.search("resnet", limit=2)) == ["resnet18.a1_in1k", "resnet26.bt_in1k"]  # relevance
    assert names(measured.search("resnet", limit=2, sort="top1")) == ["resnet101.a1h_in1k", "resnet50.a1_in1k"]
    assert names(measured.search("resnet", limit=None, sort="gmacs"))[-1] == "resnet34.unmeasured"
    assert names(measured.search("resnt", limit=2, sort="speed")) == ["resnet18.a1_in1k", "resnet26.bt_in1k"]
    assert names(measured.search("resnt", limit=None, sort="top1"))[:3] == [
        "resnet101.a1h_in1k",
        "resnet50.a1_in1k",
        "resnet18.a1_in1k",
    ]


def test_an_unknown_sort_key_is_a_value_error(measured: Catalogue) -> None:
    with pytest.raises(ValueError, match="sort='accuracy' is not one of top1, params, gmacs, speed"):
        measured.select(sort="accuracy")
    with pytest.raises(ValueError, match="sort='x' is not one of"):
        measured.search("resnet", sort="x")


def test_figure_filters_leave_out_models_without_the_figure(measured: Catalogue) -> None:
    assert names(measured.select(Filters(min_top1=80))) == ["resnet50.a1_in1k", "resnet101.a1h_in1k"]
    assert names(measured.select(Filters(max_gmacs=4.11))) == [
        "resnet18.a1_in1k",
        "resnet26.bt_in1k",
        "resnet50.a1_in1k",
    ]
    assert names(measured.select(Filters(min_top1=70, max_gmacs=2))) == ["resnet18.a1_in1k"]
    assert names(measured.select(Filters(min_top1=0))) == ["resnet18.a1_in1k", "resnet50.a1_in1k", "resnet101.a1h_in1k"]
    assert names(measured.search("resnet", Filters(max_gmacs=3), sort="top1")) == [
        "resnet18.a1_in1k",
        "resnet26.bt_in1k",
    ]


def test_an_empty_result_says_what_the_figure_filters_removed(measured: Catalogue) -> None:
    assert measured.why_empty(Filters(min_top1=90)) == (
        "6 model(s) pass the other filters, but none passes --min-top1 90: their highest top-1 is 82.8, "
        "and 3 without a top-1 figure never pass."
    )
    assert measured.why_empty(Filters(family="resnet", max_gmacs=1)) == (
        "5 model(s) pass the other filters, but none passes --max-gmacs 1: their lowest GMACs is 1.82, "
        "and 1 without a GMACs figure never pass."
    )
    assert measured.why_empty(Filters(min_top1=85, max_gmacs=0.5), "resnet1") == (
        "2 model(s) match 'resnet1' and pass the other filters, but none passes --min-top1 85 --max-gmacs 0.5: "
        "their highest top-1 is 82.8; their lowest GMACs is 1.82."
    )
    assert measured.why_empty(Filters(min_top1=50), "bert") == (
        "1 model(s) match 'bert' and pass the other filters, but none passes --min-top1 50: "
        "none of them has a top-1 figure, and a model without one never passes."
    )
    assert measured.why_empty(Filters(family="bert", min_top1=50), "resnet") == (
        "5 model(s) match 'resnet', but none passes the filters."  # the family removed them, not the figure
    )


def test_filters_that_remove_every_match_give_no_close_spellings(measured: Catalogue) -> None:
    """'bert' matches bert-base: with --min-top1 nothing passes, and 'resnet' models spelled nothing alike
    must not stand in for it; a query that matches no model at all still gets its close spellings."""
    assert measured.search("bert", Filters(min_top1=50)) == []
    assert names(measured.search("resnt", Filters(min_top1=80))) == ["resnet50.a1_in1k", "resnet101.a1h_in1k"]


def test_the_python_api_sorts_and_filters_by_figures() -> None:
    import zoo_core

    best = zoo_core.list_models(family="efficientnet", min_top1=80, max_gmacs=5, sort="top1")
    top1 = [spec.figures.top1 or 0.0 for spec in best]
    assert best and top1 == sorted(top1, reverse=True) and min(top1) >= 80
    assert all((spec.figures.gmacs or 99.0) <= 5 for spec in best)
    fastest = zoo_core.search("efficientnet", limit=3, sort="speed")
    speeds = [spec.figures.images_per_second or 0.0 for spec in fastest]
    assert len(fastest) == 3 and speeds == sorted(speeds, reverse=True)
    with pytest.raises(ValueError, match="sort='size' is not one of top1, params, gmacs, speed"):
        zoo_core.list_models(sort="size")
