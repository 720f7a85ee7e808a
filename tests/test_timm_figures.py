"""scripts/timm_figures.py: timm's published results joined into a tag's `figures`, on small CSV files."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEED = "CPU i7-12700H, fp32, batch 1, torch 2.4"

ACCURACY_CSV = """model,img_size,top1,top1_err,top5,top5_err,param_count,crop_pct,interpolation
big.m30m_ft_in1k,560,89.790,10.210,98.990,1.010,"1,014.45",1.000,bicubic
net.a1_in1k,288,81.240,18.760,95.112,4.888,25.56,1.000,bicubic
net.a1_in1k,224,80.382,19.618,94.598,5.402,25.56,0.950,bicubic
"""
SPEED_CSV = """model,infer_img_size,infer_samples_per_sec,infer_step_time,infer_batch_size,param_count,infer_gmacs,infer_macts
net,288,20.27,49.302,1,25.56,6.8,18.37
net,224,30.48,32.78,1,25.56,4.11,11.11
big,448,1.5,600.0,1,1014.45,900.0,700.0
"""
PRETRAINING_CSV = """model,pretrain
net,in1k
ig_net,ig1b-wsl
solo,in21k
old_a,in1k
old_b,in21k
"""
RENAMED = {"ig_net": "net.fb_wsl_ig1b_ft_in1k", "old_a": "twice.tag", "old_b": "twice.tag"}


@pytest.fixture(scope="module")
def timm_figures() -> ModuleType:
    with pytest.MonkeyPatch.context() as patch:  # the generator's helper lives beside it, not in the package
        patch.syspath_prepend(str(ROOT / "scripts"))
        return importlib.import_module("timm_figures")


@pytest.fixture
def results(timm_figures: ModuleType, tmp_path: Path) -> Any:
    (tmp_path / "results-imagenet.csv").write_text(ACCURACY_CSV)
    (tmp_path / "benchmark-infer-fp32-nchw-pt240-cpu-i7_12700h-dynamo.csv").write_text(SPEED_CSV)
    (tmp_path / "model_metadata-in1k.csv").write_text(PRETRAINING_CSV)
    return timm_figures.TimmResults.read(RENAMED, tmp_path)


def test_accuracy_and_cost_come_from_the_rows_at_the_input_size(results: Any) -> None:
    assert results.figures("net.a1_in1k", 224, 224, set()) == {
        "top1": 80.382,
        "top5": 94.598,
        "gmacs": 4.11,
        "images_per_second": 30.48,
        "measured_by": f"timm results aa4b585 (top-1/5 at 224x224; {SPEED})",
    }
    at_288 = results.figures("net.a1_in1k", 288, 288, set())
    assert (at_288["top1"], at_288["gmacs"], at_288["images_per_second"]) == (81.24, 6.8, 20.27)


def test_no_figure_is_taken_from_another_size(results: Any) -> None:
    assert results.figures("net.a1_in1k", 256, 256, set()) == {}
    assert results.figures("net.a1_in1k", 224, 192, set()) == {}  # timm measured square images only
    big = results.figures("big.m30m_ft_in1k", 560, 560, set())
    assert big == {"top1": 89.79, "top5": 98.99, "measured_by": "timm results aa4b585 (top-1/5 at 560x560)"}


def test_pretraining_joins_only_where_the_row_names_one_tag(results: Any) -> None:
    renamed = results.figures("net.fb_wsl_ig1b_ft_in1k", 224, 224, set())  # its old name: ig_net
    assert renamed["pretrained_on"] == "ig1b-wsl" and "top1" not in renamed  # no accuracy row for this tag
    assert renamed["measured_by"] == f"timm results aa4b585 ({SPEED}; model_metadata-in1k.csv)"
    assert results.figures("solo.in21k", 224, 224, {"solo"}) == {
        "pretrained_on": "in21k",
        "measured_by": "timm results aa4b585 (model_metadata-in1k.csv)",
    }
    assert results.figures("solo.in21k", 224, 224, set()) == {}  # several tags: which one the row means is unknown
    assert "pretrained_on" not in results.figures("net.a1_in1k", 224, 224, {"solo"})
    assert results.figures("twice.tag", 224, 224, {"twice"}) == {}  # two rows disagree


def test_the_copied_files_give_timms_published_figures(timm_figures: ModuleType) -> None:
    results = timm_figures.TimmResults.read({})
    figures = results.figures("resnet50.a1_in1k", 224, 224, set())
    assert (figures["top1"], figures["top5"], figures["gmacs"], figures["images_per_second"]) == (
        80.382,
        94.598,
        4.11,
        30.48,
    )
    readme = (timm_figures.DATA / "README.md").read_text(encoding="utf-8")
    assert "commit\naa4b5850c1543fa488abf260f18390eda46cf85d" in readme and "Apache-2.0" in readme
