"""The `zoo` command line: tables, JSON, filters, exit codes and one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Run, image_entry

from zoo_core.cli import main
from zoo_core.testing import FakePlugin


def test_search_prints_a_ranked_table(zoo: Run) -> None:
    code, out, err = zoo("search", "resnet50", "--limit", "3")
    lines = out.splitlines()
    assert code == 0 and err == ""
    assert lines[0].split() == ["NAME", "FAMILY", "TASK", "PARAMS", "TOP1", "GMACS", "LICENSE"]
    assert lines[1].split() == [
        "resnet50.a1_in1k",
        "resnet",
        "image-classification",
        "25.6M",
        "80.4",
        "4.11",
        "apache-2.0",
    ]
    assert len(lines) == 4


def test_search_json_is_only_a_json_array(zoo: Run) -> None:
    code, out, _ = zoo("search", "vgg16", "--json", "--license", "bsd-3-clause")
    found = json.loads(out)
    assert code == 0 and [entry["name"] for entry in found] == ["vgg16.tv_in1k", "vgg16_bn.tv_in1k"]
    assert found[0]["input"]["height"] == 224 and found[0]["source"]["hub"] == "timm/vgg16.tv_in1k"


def test_search_with_no_match_says_so(zoo: Run) -> None:
    assert zoo("search", "qqqqzzzz") == (0, "", "No model matches 'qqqqzzzz'.\n")
    assert zoo("search", "qqqqzzzz", "--json") == (0, "[]\n", "")
    code, _, err = zoo("search", "resnet", "--max-params", "30")
    assert code == 0 and "match 'resnet', but none passes the filters (--max-params 30 means 30 parameters" in err
    assert zoo("list", "--family", "vgg16")[2] == "No model has family 'vgg16'; did you mean 'vgg'?\n"
    assert zoo("list", "--license", "apache")[2] == "No model has license 'apache'; did you mean 'apache-2.0'?\n"
    assert "vgg16.tv_in1k" in zoo("list", "--family", "VGG")[1]


def test_registry_files_of_a_command_are_its_whole_catalogue(zoo: Run, write_registry: Callable[..., Path]) -> None:
    """`--registry` reaches every part of the command (through the default catalogue), and only that command."""
    import zoo_core
    from zoo_core.catalogue_sources import default_catalogue, use_registry_files

    path = write_registry(image_entry("mine.v1"))
    assert zoo("--registry", str(path), "info", "mine.v1")[0] == 0
    assert "mine.v1" in default_catalogue()  # what the command's deeper layers asked for by name
    assert zoo("info", "mine.v1")[0] == 1  # the next command, without --registry
    use_registry_files(())
    with pytest.raises(zoo_core.ModelNotFoundError):
        zoo_core.get("mine.v1")


def test_list_filters(zoo: Run) -> None:
    code, out, _ = zoo("list", "--modality", "text", "--json")
    assert code == 0 and {entry["family"] for entry in json.loads(out)} == {"bert"}
    code, out, _ = zoo(
        "list", "--license", "cc-by-nc-4.0", "--license", "mit,bsd-3-clause", "--max-params", "5M", "--json"
    )
    found = json.loads(out)
    assert code == 0 and found
    assert all(e["license"] in {"cc-by-nc-4.0", "mit", "bsd-3-clause"} and e["params"] <= 5e6 for e in found)
    _, out, _ = zoo("list", "--family", "inception", "--json")
    assert {"inception_v3.tv_in1k", "inception_v4.tf_in1k", "inception_resnet_v2.tf_in1k"} <= {
        entry["name"] for entry in json.loads(out)
    }


def test_info_shows_every_field(zoo: Run) -> None:
    code, out, _ = zoo("info", "resnet18")
    assert code == 0
    fields = dict(line.split(None, 1) for line in out.splitlines())
    assert fields["name"] == "resnet18.a1_in1k" and fields["params"] == "11.7M"
    assert "interpolation=bicubic" in fields["input"] and "hub=timm/resnet18.a1_in1k" in fields["source"]
    _, out, _ = zoo("info", "minilm", "--json")
    assert json.loads(out)["input"] == {
        "tokenizer": "sentence-transformers/all-MiniLM-L6-v2",
        "max_length": 256,
        "lowercase": True,
        "pooling": "mean",
    }


def test_unknown_model_is_a_one_line_user_error(zoo: Run) -> None:
    code, out, err = zoo("info", "resnet5O")
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("Error: no model named 'resnet5O' in the catalogue; did you mean 'resnet50.")


def test_debug_shows_the_traceback() -> None:
    from zoo_core import ModelNotFoundError

    with pytest.raises(ModelNotFoundError):
        main(["--debug", "info", "resnet5O"])


def test_usage_errors_exit_2(zoo: Run) -> None:
    assert zoo("search")[0] == 2
    assert zoo("frobnicate")[0] == 2
    code, _, err = zoo("list", "--max-params", "lots")
    assert code == 2 and "'lots' is not a count; use e.g. 25000000, 25M or 1.5B" in err
    assert zoo("--registry", "/no/such/file.toml", "list")[0] == 2


def test_registry_option_overrides_and_reports_bad_entries(zoo: Run, write_registry: Callable[..., Path]) -> None:
    path = write_registry(image_entry("mine.v1") + image_entry("mine.v2").replace("modality =", "modalty ="))
    code, out, err = zoo("--registry", str(path), "info", "mine.v1", "--json")
    assert code == 0 and json.loads(out)["origin"] == str(path)
    assert (
        err == f"zoo: warning: {path}:13: model 'mine.v2': field 'modalty': unknown field; did you mean 'modality'?\n"
    )


def test_plugins_lists_state_models_and_families(zoo: Run, fake_plugin: FakePlugin) -> None:
    code, out, _ = zoo("plugins", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert code == 0
    assert rows["fake"]["state"] == "ok" and rows["fake"]["models"] == 3 and rows["fake"]["families"] == {"fakenet": 3}
    assert rows["timm"]["distribution"] == "zoo-tl" and rows["timm"]["models"] > 1500
    assert {"resnet", "vgg", "inception", "mobilenet"} <= set(rows["timm"]["families"])
    code, out, _ = zoo("plugins")
    assert out.splitlines()[0].split() == ["NAME", "DISTRIBUTION", "VERSION", "STATUS", "MODELS", "FAMILIES"]
    assert any(line.split()[:4] == ["transformers", "zoo-tl", "0.1.0", "ok"] for line in out.splitlines())


def test_plugins_shows_why_a_plugin_is_unavailable(zoo: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    # Simulate a machine without timm installed: only the lookup of that one module changes.
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "timm" else real_find_spec(name, *a)
    )
    code, out, _ = zoo("plugins")
    assert code == 0
    assert "timm: unavailable: missing timm — fix: pip install 'zoo-tl[vision]'" in out.splitlines()


def test_version(zoo: Run) -> None:
    assert zoo("--version") == (0, "zoo, version 0.1.0\n", "")


def test_models_of_plugins_not_loaded_are_hidden_and_counted(zoo: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in registry names the transformers, wordvec, caffe… plugins: without them loaded (as `zoo
    plugins` shows), their entries are not offered as usable models; one line says how many are left out."""
    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.plugins import reset_plugin_manager

    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", "transformers")
    reset_plugin_manager(), reset_catalogue()
    code, out, err = zoo("search", "bert", "--json")
    assert code == 0 and "transformers" not in {spec["plugin"] for spec in json.loads(out)}
    hidden = "5 models hidden: their plugins are not loaded: transformers (5); see `zoo plugins`\n"
    assert err == hidden
    code, out, err = zoo("list", "--family", "resnet", "--json")
    assert len(json.loads(out)) > 50 and err == ""
    assert zoo("info", "bert-base")[2].startswith("note: plugin 'transformers' is not loaded")

    monkeypatch.delenv("ZOO_DISABLE_PLUGINS"), monkeypatch.setenv("ZOO_DISABLE_PLUGIN_AUTOLOAD", "1")
    reset_plugin_manager(), reset_catalogue()
    code, out, err = zoo("list")
    assert (code, out) == (0, "") and err.startswith("20 models hidden: their plugins are not loaded: caffe (3),")
    rows = {row["name"]: row for row in json.loads(zoo("plugins", "--json")[1])}
    assert rows["transformers"]["state"] == "not loaded" and rows["transformers"]["models"] == 5
    assert rows["wordvec"]["reason"] == "ZOO_DISABLE_PLUGIN_AUTOLOAD is set"


def test_list_and_search_show_figures_and_dashes_where_unknown(zoo: Run) -> None:
    code, out, _ = zoo("search", "bert-base-uncased", "--limit", "1")
    assert code == 0 and out.splitlines()[1].split()[3:] == ["109.5M", "-", "-", "apache-2.0"]  # no top1, gmacs
    code, out, _ = zoo("list", "--family", "vgg", "--sort", "top1")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert code == 0 and rows[0][:1] + rows[0][4:6] == ["vgg19_bn.tv_in1k", "74.2", "19.66"]
    assert [float(row[4]) for row in rows] == sorted((float(row[4]) for row in rows), reverse=True)


@pytest.mark.parametrize(
    ("sort", "figure", "best_first"),
    [("top1", "top1", True), ("speed", "images_per_second", True), ("gmacs", "gmacs", False)],
)
def test_sort_orders_by_the_figure_with_unknowns_last(zoo: Run, sort: str, figure: str, best_first: bool) -> None:
    code, out, _ = zoo("list", "--family", "efficientnet", "--sort", sort, "--json")
    values = [entry["figures"].get(figure) for entry in json.loads(out)]
    known = [value for value in values if value is not None]
    assert code == 0 and len(known) > 20 and None in values
    assert values == sorted(known, reverse=best_first) + [None] * (len(values) - len(known))


def test_search_sort_takes_the_limit_from_all_matches(zoo: Run) -> None:
    _, out, _ = zoo("search", "resnet", "--sort", "params", "--limit", "3", "--json")
    _, every, _ = zoo("search", "resnet", "--limit", "2000", "--json")
    counts = sorted(entry["params"] for entry in json.loads(every) if entry.get("params"))
    assert [entry["params"] for entry in json.loads(out)] == counts[:3]


def test_figure_filters_and_why_nothing_passes(zoo: Run) -> None:
    code, out, _ = zoo("search", "resnet", "--min-top1", "80", "--max-gmacs", "5", "--json")
    found = json.loads(out)
    assert code == 0 and found
    assert all(entry["figures"]["top1"] >= 80 and entry["figures"]["gmacs"] <= 5 for entry in found)
    assert zoo("list", "--family", "vgg", "--max-gmacs", "1") == (
        0,
        "",
        "8 model(s) pass the other filters, but none passes --max-gmacs 1: their lowest GMACs is 7.61.\n",
    )
    code, out, err = zoo("search", "bert", "--min-top1", "80")
    assert (code, out) == (0, "") and err == (
        "5 model(s) match 'bert' and pass the other filters, but none passes --min-top1 80: "
        "none of them has a top-1 figure, and a model without one never passes.\n"
    )


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--min-top1", "101", "101.0 is not in the range 0<=x<=100"),
        ("--min-top1", "nan", "nan is not a finite number"),
        ("--max-gmacs", "-1", "-1.0 is not in the range x>=0"),
        ("--max-gmacs", "inf", "inf is not a finite number"),
        ("--sort", "accuracy", "'accuracy' is not one of 'top1', 'params', 'gmacs', 'speed'"),
    ],
)
def test_bad_figure_options_are_usage_errors(zoo: Run, option: str, value: str, problem: str) -> None:
    code, out, err = zoo("list", option, value)
    assert (code, out) == (2, "") and problem in err


def test_info_shows_the_figures_in_words_and_json(zoo: Run) -> None:
    _, out, _ = zoo("info", "efficientnet_lite0")
    fields = dict(line.split(None, 1) for line in out.splitlines())
    assert fields["figures"] == (
        "ImageNet-1k top-1 74.846%, top-5 92.18%; 0.4 GMACs; 97.3 images/s on CPU at batch size 1; "
        "pretrained on in1k; from timm results aa4b585 for tf_efficientnet_lite0.in1k (top-1/5 at 224x224; "
        "CPU i7-12700H, fp32, batch 1, torch 2.4; model_metadata-in1k.csv)"
    )
    assert json.loads(zoo("info", "resnet50", "--json")[1])["figures"] == {
        "top1": 80.382,
        "top5": 94.598,
        "gmacs": 4.11,
        "images_per_second": 30.48,
        "pretrained_on": None,
        "measured_by": "timm results aa4b585 (top-1/5 at 224x224; CPU i7-12700H, fp32, batch 1, torch 2.4)",
    }
    _, out, _ = zoo("info", "bert-base-uncased")
    assert dict(line.split(None, 1) for line in out.splitlines())["figures"] == "-"
