"""`zoo adapt` (zoo_core/training/adapt.py, adapt_methods.py) and the shift finding of `zoo check RUN DATA`.

Runs for the module: the session's digits source model fine-tuned on digits 5-9 (`--strategy finetune`), and
the same on frozen features (`--strategy features`); the held-out images cut in two as bench/bench_adapt.py cuts
them, one half the runs' test split, the other shifted, half as the unlabelled target, half as the labelled
set measured on.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
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
    run: Path  # --strategy finetune
    features: Path  # --strategy features
    test: Path  # the runs' own (clean) test folder
    target: dict[str, Path]  # by shift: the unlabelled half
    labelled: dict[str, Path]  # by shift: the labelled half


@pytest.fixture(scope="module")
def shifted(source: Source, tmp_path_factory: pytest.TempPathFactory) -> Shifted:
    from zoo_core.training.run import FinetuneOptions, finetune

    spec, train, val, held_out = source
    root = tmp_path_factory.mktemp("adapt")
    test, fresh = bench_adapt.split_test(held_out, root / "held-out")
    options = FinetuneOptions(strategy="finetune", epochs=6, lr=3e-3, batch_size=16, val=str(val), test=str(test))
    with registered_in_own_home(spec, root):
        finetune(spec.name, train, root / "run", options)
        features = dataclasses.replace(options, strategy="features", epochs=10)
        finetune(spec.name, train, root / "features", features)
    shifts = bench_adapt._shifts()
    halves = {name: bench_adapt.write_shifted(fresh, root / "shifted", name, shifts[name]) for name in shifts}
    targets = {name: pair[0] for name, pair in halves.items()}
    labelled = {name: pair[1] for name, pair in halves.items()}
    return Shifted(spec, root / "run", root / "features", test, targets, labelled)


@pytest.fixture
def run(shifted: Shifted) -> Path:
    """The module's finetune run, its model in this test's registry."""
    add_to_user_registry(Settings.from_env().home, shifted.spec)
    reset_catalogue()
    return shifted.run


@pytest.fixture
def features(run: Path, shifted: Shifted) -> Path:
    """The module's features run, its model in this test's registry."""
    return shifted.features


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
    assert adaptation["options"]["device"] == "cpu" and adaptation["device"] == "cpu" and adaptation["previous"] is None
    assert {"labels.json", "preprocessing.json", "splits.json"} <= {path.name for path in out.iterdir()}
    # the adapted run is a run: zoo evaluate measures what adapt measured
    code, printed, err = zoo("evaluate", str(out), str(labelled))
    assert code == 0, err
    assert f"{after:.1%}" in printed and f"adapted by adabn to {target.resolve()}" in printed


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
    options = AdaptOptions(device="cpu", epochs=1, threshold=0.7)
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
        ((str(shifted.target["noisy"]), "--out", str(run)), "is the run being adapted"),
        ((str(shifted.target["noisy"]), "--out", str(tmp_path / "c"), "--labelled", str(texts)), "subfolder per class"),
    ]
    for args, message in cases:
        code, _, err = zoo("adapt", str(run), *args)
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert not any((tmp_path / name).exists() for name in "abc")


def test_check_of_a_run_warns_of_shifted_data_and_is_quiet_on_clean_held_out_images(
    run: Path, shifted: Shifted, zoo: Run
) -> None:
    from zoo_core.catalogue_sources import default_catalogue
    from zoo_core.domain import run_confidence, spread
    from zoo_core.training.saved import load_run

    code, printed, err = zoo("check", str(run), str(shifted.target["clean"]), "--json")
    assert code == 0, err
    found = {finding["check"]: finding for finding in json.loads(printed)["findings"]}
    assert found["shift"]["level"] == "ok" and "like the data it was trained for" in found["shift"]["message"]
    saved = load_run(run, default_catalogue())  # the reference is the held-out test split, not validation
    assert saved.splits is not None
    own = run_confidence(saved, spread(saved.splits.test.items, 256))
    assert f"against {own:.2f} on its test split" in found["shift"]["message"]
    for shift in ("blurred", "inverted"):  # this short run is surer of both: its answers collapse
        code, printed, err = zoo("check", str(run), str(shifted.target[shift]))
        assert code == 0, err
        assert "shifted from the data it was trained for" in printed, (shift, printed)
        assert f"fix (shift): adapt the run to it without labels: zoo adapt {run} {shifted.target[shift]}" in printed


def test_check_of_a_run_needs_30_items_and_suggests_adapt_only_for_a_folder(
    run: Path, shifted: Shifted, tmp_path: Path, zoo: Run
) -> None:
    one = sorted(shifted.target["blurred"].iterdir())[0]
    few = tmp_path / "few"
    few.mkdir()
    for image in sorted(shifted.target["blurred"].iterdir())[:29]:
        shutil.copy2(image, few / image.name)
    for data, count in ((one, 1), (few, 29)):
        code, printed, err = zoo("check", str(run), str(data), "--json")
        assert code == 0, err
        shift = {finding["check"]: finding for finding in json.loads(printed)["findings"]}["shift"]
        assert shift["level"] == "ok" and shift["message"] == f"not measured: {count} items, at least 30 needed"
    shutil.copy2(sorted(shifted.target["blurred"].iterdir())[29], few / "thirtieth.png")
    code, printed, err = zoo("check", str(run), str(few))
    assert code == 0 and "shifted from the data it was trained for" in printed, printed


def test_check_of_a_features_run_suggests_pseudo(features: Path, shifted: Shifted, zoo: Run) -> None:
    code, printed, err = zoo("check", str(features), str(shifted.target["rotated"]))
    assert code == 0, err
    assert "--out ADAPTED --method pseudo;" in printed, printed


def test_check_passes_on_bugs_and_reports_a_gone_image(run: Path, shifted: Shifted, tmp_path: Path) -> None:
    from zoo_core import domain
    from zoo_core.catalogue_sources import default_catalogue
    from zoo_core.compatibility import check
    from zoo_core.training.saved import load_run

    saved = load_run(run, default_catalogue())
    data = shifted.target["noisy"]
    report = check(saved.spec, data, domain=False)
    assert saved.splits is not None
    gone = dataclasses.replace(saved.splits.test, items=[str(tmp_path / "gone.png")] * 3, labels=[0, 0, 0])
    broken = dataclasses.replace(saved, splits=saved.splits._replace(test=gone))
    finding = domain.run_shift(broken, data, report)
    assert finding.level == "warn" and "not measured: the run's model could not be run" in finding.message
    model = dataclasses.replace(saved, model=None)  # a bug, not a zoo error: it must surface, not be advice
    with pytest.raises((AttributeError, TypeError)):
        domain.run_shift(model, data, report)


def _trained_norms(run: Path) -> set[str]:
    """The names of the normalisation layers `run` trained: those its strategy's freeze leaves training."""
    from torch import nn

    from zoo_core.catalogue_sources import default_catalogue
    from zoo_core.training.saved import load_run
    from zoo_core.training.strategies import freeze_for_strategy

    saved = load_run(run, default_catalogue())
    freeze_for_strategy(saved.model.backbone, saved.options["strategy"], saved.options["unfreeze"])
    saved.model.train()
    norms = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
    return {name for name, layer in saved.model.named_modules() if isinstance(layer, norms) and layer.training}


@pytest.mark.parametrize("method", ["adabn", "tent"])
def test_adapting_to_clean_held_out_data_touches_only_trained_layers_and_costs_little(
    run: Path, shifted: Shifted, tmp_path: Path, method: str
) -> None:
    from zoo_core.training.adapt import adapt
    from zoo_core.training.adapt_options import AdaptOptions

    out = tmp_path / method
    metrics = adapt(run, shifted.target["clean"], out, method, AdaptOptions(device="cpu"), shifted.labelled["clean"])
    labelled = metrics["labelled"]
    assert labelled["accuracy_after"] >= labelled["accuracy_before"] - 0.03, labelled
    trained = _trained_norms(run)
    old, new = _state(run), _state(out)
    changed = {key.rpartition(".")[0] for key in old if not old[key].equal(new[key])}
    assert changed and changed <= trained, sorted(changed - trained)  # the frozen stages keep their statistics


def test_a_features_run_refuses_adabn_and_tent_and_pseudo_trains_only_its_head(
    features: Path, shifted: Shifted, tmp_path: Path, zoo: Run
) -> None:
    from zoo_core.training.adapt import adapt
    from zoo_core.training.adapt_options import AdaptOptions

    assert _trained_norms(features) == set()
    target = str(shifted.target["blurred"])
    for method in ("adabn", "tent"):
        code, _, err = zoo("adapt", str(features), target, "--out", str(tmp_path / method), "--method", method)
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert f"--method {method}: the run trained none of" in err and "(--strategy features:" in err
        assert "use --method pseudo" in err and "--strategy finetune or full" in err
        assert not (tmp_path / method).exists()
    options = AdaptOptions(device="cpu", epochs=1, threshold=0.5)
    adapt(features, shifted.target["blurred"], tmp_path / "pseudo", "pseudo", options)
    old, new = _state(features), _state(tmp_path / "pseudo")
    changed = {key for key in old if not old[key].equal(new[key])}
    assert changed == {"head.weight", "head.bias"}


@pytest.mark.parametrize("where", ["inside RUN", "holding RUN", "holding TARGET"])
def test_an_out_overlapping_run_or_target_is_refused(
    run: Path, shifted: Shifted, tmp_path: Path, zoo: Run, where: str
) -> None:
    work = tmp_path / "work"
    shutil.copytree(run, work / "run")
    shutil.copytree(shifted.target["noisy"], work / "target")
    out = {"inside RUN": work / "run" / "adapted", "holding RUN": work, "holding TARGET": work}[where]
    target = work / "target" if where == "holding TARGET" else shifted.target["noisy"]
    source = run if where == "holding TARGET" else work / "run"
    before = sorted(work.rglob("*"))
    code, _, err = zoo("adapt", str(source), str(target), "--out", str(out))
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    message = {"inside RUN": "is inside the run being adapted", "holding RUN": "holds the run being adapted"}
    assert message.get(where, f"holds TARGET {target}") in err, err
    assert sorted(work.rglob("*")) == before


def test_a_multitask_run_is_refused_and_its_shift_not_measured(
    run: Path, shifted: Shifted, source: Source, tmp_path: Path, zoo: Run
) -> None:
    from test_multitask import _digit_tasks

    from zoo_core.training.multitask import finetune_tasks
    from zoo_core.training.run import FinetuneOptions

    digit, parity = _digit_tasks(source[3], tmp_path / "tasks", per_class=12)
    options = FinetuneOptions(epochs=1, batch_size=16)
    finetune_tasks(shifted.spec.name, {"digit": digit, "parity": parity}, tmp_path / "multi", options, {})
    code, _, err = zoo("adapt", str(tmp_path / "multi"), str(shifted.target["noisy"]), "--out", str(tmp_path / "a"))
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "a multi-task run (digit, parity), which zoo adapt does not adapt" in err
    assert not (tmp_path / "a").exists()
    code, printed, err = zoo("check", str(tmp_path / "multi"), str(shifted.target["noisy"]), "--json")
    assert code == 0, err
    shift = {finding["check"]: finding for finding in json.loads(printed)["findings"]}["shift"]
    assert (
        shift["level"] == "ok" and "is a multi-task run (digit, parity); the shift is measured for" in shift["message"]
    )


@pytest.mark.parametrize(
    ("tampered", "field"),
    [
        (12, "adaptation is 12, not what zoo adapt records"),
        ({"method": "rm -rf"}, "adaptation.method is 'rm -rf', not one of adabn, tent, pseudo"),
        ({"source_model_sha256": "00"}, "adaptation.source_model_sha256 is '00', not a sha256"),
        ({"options": {"lr": "fast"}}, "adaptation.options.lr is 'fast'"),
        ({"previous": {"method": "adabn"}}, "adaptation.previous.options is missing"),
    ],
)
def test_a_tampered_adaptation_record_is_refused_on_loading(
    run: Path, shifted: Shifted, tmp_path: Path, zoo: Run, tampered: Any, field: str
) -> None:
    from zoo_core.training.adapt import adapt
    from zoo_core.training.adapt_options import AdaptOptions

    first = tmp_path / "first"
    adapt(run, shifted.target["noisy"], first, "adabn", AdaptOptions(device="cpu"))
    manifest = _manifest(first)
    if isinstance(tampered, dict):
        recorded = manifest["adaptation"]
        tampered = {**recorded, **tampered}
        if "options" in tampered and tampered["options"].keys() == {"lr"}:
            tampered["options"] = {**recorded["options"], "lr": "fast"}
    (first / "manifest.json").write_text(json.dumps({**manifest, "adaptation": tampered}))
    for args in (
        ("evaluate", str(first), str(shifted.labelled["noisy"])),
        ("adapt", str(first), str(shifted.target["noisy"]), "--out", str(tmp_path / "second")),
    ):
        code, _, err = zoo(*args)
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert f"{first / 'manifest.json'}: {field}" in err and "adapt the source run again" in err, err
    assert not (tmp_path / "second").exists()


def test_help_shows_each_methods_defaults(zoo: Run) -> None:
    code, printed, _ = zoo("adapt", "--help")
    assert code == 0
    flat = " ".join(printed.split())
    assert "[tent: 0.001, pseudo: 0.0001]" in flat and "[tent: 1, pseudo: 3]" in flat and "[pseudo: 0.9]" in flat


def test_predictions_run_at_the_chosen_precision_and_workers(
    run: Path, shifted: Shifted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoo_core.training import evaluate
    from zoo_core.training.adapt import adapt
    from zoo_core.training.adapt_options import AdaptOptions

    calls: list[dict[str, Any]] = []
    real = evaluate.predict_scores

    def recorded(*args: Any, **options: Any) -> Any:
        calls.append(options)
        return real(*args, **options)

    monkeypatch.setattr(evaluate, "predict_scores", recorded)
    options = AdaptOptions(device="cpu", precision="bf16", workers=1, epochs=1, threshold=0.7)
    adapt(run, shifted.target["noisy"], tmp_path / "out", "pseudo", options, shifted.labelled["noisy"])
    assert len(calls) == 3  # before, the pseudo-labels, after
    assert all(call == {"precision": "bf16", "workers": 1} for call in calls), calls


def test_a_labelled_copy_of_a_target_image_under_another_name_is_warned_of(
    run: Path, shifted: Shifted, tmp_path: Path
) -> None:
    from zoo_core.errors import DataWarning
    from zoo_core.training.adapt import adapt
    from zoo_core.training.adapt_options import AdaptOptions

    labelled = tmp_path / "labelled"
    shutil.copytree(shifted.labelled["noisy"], labelled)
    copied = sorted(shifted.target["noisy"].iterdir())[0]
    shutil.copy2(copied, next(path for path in labelled.iterdir() if path.is_dir()) / "renamed.png")
    with pytest.warns(DataWarning, match=r"1 of its \d+ items are in the target too"):
        adapt(run, shifted.target["noisy"], tmp_path / "out", "adabn", AdaptOptions(device="cpu"), labelled)


def test_the_bench_prints_one_seed_without_a_spread() -> None:
    assert bench_adapt._figure([0.5]) == "50.0%"
    assert bench_adapt._figure([0.5, 0.7]) == "60.0% ± 14.1%"
    assert bench_adapt._figure([-0.1], percent=False) == "-0.10"
