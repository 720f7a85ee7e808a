"""`zoo adapt` (zoo_core/training/adapt.py, adapt_methods.py) and the shift finding of `zoo check RUN DATA`.

One run for the module: the session's digits source model fine-tuned on digits 5-9; its test images shifted
as bench/bench_adapt.py shifts them, half as the unlabelled target, half as the labelled set measured on.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from conftest import Run, registered_in_own_home

import zoo_core
from zoo_core.catalogue_sources import reset_catalogue
from zoo_core.settings import Settings
from zoo_core.user_registry import add_to_user_registry

pytest.importorskip("sklearn", reason="the dev extra installs scikit-learn")
pytest.importorskip("timm")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import bench_adapt

Source = tuple[zoo_core.ModelSpec, Path, Path, Path]


class Shifted(NamedTuple):
    spec: zoo_core.ModelSpec
    run: Path
    test: Path  # the run's own (clean) test folder
    target: dict[str, Path]  # by shift: the unlabelled half
    labelled: dict[str, Path]  # by shift: the labelled half


@pytest.fixture(scope="module")
def shifted(source: Source, tmp_path_factory: pytest.TempPathFactory) -> Shifted:
    from zoo_core.training.run import FinetuneOptions, finetune

    spec, train, val, test = source
    root = tmp_path_factory.mktemp("adapt")
    options = FinetuneOptions(strategy="finetune", epochs=6, lr=3e-3, batch_size=16, val=str(val), test=str(test))
    with registered_in_own_home(spec, root):
        finetune(spec.name, train, root / "run", options)
    shifts = bench_adapt._shifts()
    halves = {name: bench_adapt.write_shifted(test, root / "shifted", name, shifts[name]) for name in shifts}
    targets = {name: pair[0] for name, pair in halves.items()}
    return Shifted(spec, root / "run", test, targets, {name: pair[1] for name, pair in halves.items()})


@pytest.fixture
def run(shifted: Shifted) -> Path:
    """The module's run, its model in this test's registry."""
    add_to_user_registry(Settings.from_env().home, shifted.spec)
    reset_catalogue()
    return shifted.run


def _state(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def _manifest(folder: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    return result


def test_adabn_re_estimates_only_statistics_and_recovers_blurred_digits(
    run: Path, shifted: Shifted, tmp_path: Path, zoo: Run
) -> None:
    from zoo_core.hashing import file_digest

    out = tmp_path / "adapted"
    target, labelled = shifted.target["blurred"], shifted.labelled["blurred"]
    args = ("adapt", str(run), str(target), "--out", str(out), "--labelled", str(labelled), "--device", "cpu")
    code, printed, err = zoo(*args)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    before, after = metrics["labelled"]["accuracy_before"], metrics["labelled"]["accuracy_after"]
    assert after > before + 0.2  # blur costs the run most of its accuracy; its statistics bring it back
    assert f"accuracy {before:.1%} before, {after:.1%} after" in printed
    old, new = _state(run), _state(out)
    changed = {key for key in old if not old[key].equal(new[key])}
    assert changed and all(key.endswith(("running_mean", "running_var", "num_batches_tracked")) for key in changed)
    adaptation = _manifest(out)["adaptation"]
    assert adaptation["method"] == "adabn" and adaptation["target"] == str(target.resolve())
    assert adaptation["target_items"] == metrics["target_items"] == len(list(target.iterdir()))
    assert adaptation["source_model_sha256"] == file_digest(run / "model.safetensors")
    assert adaptation["source_run"] == str(run) and adaptation["zoo"] == zoo_core.__version__
    assert adaptation["options"]["device"] == "cpu" and adaptation["previous"] is None
    assert {"labels.json", "preprocessing.json", "splits.json"} <= {path.name for path in out.iterdir()}
    # the adapted run is a run: zoo evaluate measures what adapt measured
    code, printed, err = zoo("evaluate", str(out), str(labelled))
    assert code == 0, err
    assert f"{after:.1%}" in printed


def test_tent_trains_only_the_normalisation_layers(run: Path, shifted: Shifted, tmp_path: Path) -> None:
    from zoo_core.training.adapt import adapt
    from zoo_core.training.adapt_options import AdaptOptions

    out = tmp_path / "tent"
    metrics = adapt(
        run, shifted.target["rotated"], out, "tent", AdaptOptions(device="cpu"), shifted.labelled["rotated"]
    )
    assert len(metrics["curve"]) == 1
    from torch import nn

    from zoo_core.catalogue_sources import default_catalogue
    from zoo_core.training.saved import load_run

    model = load_run(run, default_catalogue()).model
    norms = {name for name, layer in model.named_modules() if isinstance(layer, nn.modules.batchnorm._BatchNorm)}
    old, new = _state(run), _state(out)
    changed = {key for key in old if not old[key].equal(new[key])}
    assert {key.rpartition(".")[2] for key in changed} == {
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    }
    assert {key.rpartition(".")[0] for key in changed} <= norms, sorted(changed)


def test_pseudo_labels_train_the_same_with_or_without_labelled_data(
    run: Path, shifted: Shifted, tmp_path: Path
) -> None:
    from zoo_core.training.adapt import adapt
    from zoo_core.training.adapt_options import AdaptOptions

    target, labelled = shifted.target["noisy"], shifted.labelled["noisy"]
    options = AdaptOptions(device="cpu", epochs=1)
    measured = adapt(run, target, tmp_path / "with", "pseudo", options, labelled)
    blind = adapt(run, target, tmp_path / "without", "pseudo", options)
    assert (tmp_path / "with" / "model.safetensors").read_bytes() == (
        tmp_path / "without" / "model.safetensors"
    ).read_bytes()
    assert "labelled" not in blind and measured["pseudo_labels"] == blind["pseudo_labels"]
    assert 2 <= measured["pseudo_labels"]["kept"] < measured["target_items"]
    assert _state(tmp_path / "with") != _state(run)


@pytest.mark.slow
def test_an_adapted_run_exports_and_adapts_again(run: Path, shifted: Shifted, tmp_path: Path, zoo: Run) -> None:
    target = shifted.target["rotated"]
    first, second = tmp_path / "first", tmp_path / "second"
    assert zoo("adapt", str(run), str(target), "--out", str(first), "--device", "cpu")[0] == 0
    code, _, err = zoo("adapt", str(first), str(target), "--out", str(second), "--method", "tent", "--device", "cpu")
    assert code == 0, err
    adaptation = _manifest(second)["adaptation"]
    assert adaptation["method"] == "tent" and adaptation["source_run"] == str(first)
    assert adaptation["previous"] == _manifest(first)["adaptation"]
    code, _, err = zoo("export", str(second), "--out", str(tmp_path / "export"))
    assert code == 0, err
    assert (tmp_path / "export" / "model.onnx").is_file()


def test_a_method_that_cannot_apply_is_refused_in_one_line(run: Path) -> None:
    from torch import nn

    from zoo_core.catalogue_sources import default_catalogue
    from zoo_core.errors import RunOptionError
    from zoo_core.training.adapt import _refuse_method
    from zoo_core.training.saved import load_run

    saved = load_run(run, default_catalogue())
    layer_norm = dataclasses.replace(saved, model=nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)))
    with pytest.raises(RunOptionError, match=r"no BatchNorm layer .* LayerNorm .* use --method tent"):
        _refuse_method(layer_norm, "adabn")
    _refuse_method(layer_norm, "tent")  # LayerNorm's scale and shift are what tent trains
    with pytest.raises(RunOptionError, match="no normalisation layer to adapt; use --method pseudo"):
        _refuse_method(dataclasses.replace(saved, model=nn.Linear(4, 4)), "tent")
    vectors = dataclasses.replace(saved, spec=dataclasses.replace(saved.spec, modality="embedding"))
    with pytest.raises(RunOptionError, match=r"word vectors, which have no network to adapt .* zoo finetune"):
        _refuse_method(vectors, "pseudo")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--epochs", "3"), "--epochs is not used by --method adabn (only by tent and pseudo); leave it out"),
        (("--method", "tent", "--threshold", "0.5"), "--threshold is not used by --method tent"),
        (("--method", "pseudo", "--threshold", "0.9999999"), "lower --threshold, or use --method adabn"),
        (("--device", "cuda:7"), "--device cuda:7: "),
        (("--precision", "fp16", "--device", "cpu"), "--precision fp16 needs a CUDA device"),
        (("--batch-size", "1"), "--batch-size 1: must be at least 2"),
    ],
)
def test_impossible_options_are_one_line_and_write_nothing(
    run: Path, shifted: Shifted, tmp_path: Path, zoo: Run, extra: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "adapted"
    code, _, err = zoo("adapt", str(run), str(shifted.target["noisy"]), "--out", str(out), *extra)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not (tmp_path / ".adapted.partial").exists()


def test_wrong_target_or_out_is_one_line(run: Path, shifted: Shifted, tmp_path: Path, zoo: Run) -> None:
    texts = tmp_path / "texts.csv"
    texts.write_text("text\na digit\nanother\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ((str(texts), "--out", str(tmp_path / "a")), "a run on images adapts to an image folder"),
        ((str(empty), "--out", str(tmp_path / "b")), "0 usable item(s); adaptation needs at least 2"),
        ((str(shifted.target["noisy"]), "--out", str(run)), "is the run being adapted; write the adapted run"),
        ((str(shifted.target["noisy"]), "--out", str(tmp_path / "c"), "--labelled", str(texts)), "subfolder per class"),
    ]
    for args, message in cases:
        code, _, err = zoo("adapt", str(run), *args)
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert not any((tmp_path / name).exists() for name in "abc")


def test_check_of_a_run_warns_of_shifted_data_and_is_quiet_on_its_own_test_split(
    run: Path, shifted: Shifted, zoo: Run
) -> None:
    code, printed, err = zoo("check", str(run), str(shifted.test), "--json")
    assert code == 0, err
    found = {finding["check"]: finding for finding in json.loads(printed)["findings"]}
    assert found["shift"]["level"] == "ok" and "like the data it was trained for" in found["shift"]["message"]
    for shift in ("blurred", "inverted"):  # this short run is surer of both: its answers collapse
        code, printed, err = zoo("check", str(run), str(shifted.target[shift]))
        assert code == 0, err
        assert "shifted from the data it was trained for" in printed, (shift, printed)
        assert f"fix (shift): adapt the run to it without labels: zoo adapt {run} {shifted.target[shift]}" in printed
