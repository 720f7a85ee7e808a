"""Training on a GPU: --device, --precision and --workers (docs/gpu.md).

Everything the GPU path shares with the CPU runs here with ``--device cpu``: the DataLoader workers, bf16
autocast, the refusals, the features cache key, the checkpoint's identity, the benchmark's measuring code.
The tests marked ``cuda`` need a GPU and are skipped, with the reason, where torch sees none; on a GPU
machine ``pytest -m cuda tests/test_gpu.py`` runs them in well under a minute.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import zoo_core
from zoo_core.errors import CheckpointError, RunOptionError

pytest.importorskip("sklearn", reason="the dev extra installs scikit-learn")
torch = pytest.importorskip("torch")

Source = tuple[zoo_core.ModelSpec, Path, Path, Path]
ROOT = Path(__file__).resolve().parent.parent
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="torch sees no CUDA GPU on this machine")
needs_no_cuda = pytest.mark.skipif(CUDA, reason="this machine has a GPU: --device cuda is not refused here")


def _options(source: Source, **chosen: Any) -> Any:
    """A short fine-tuning of the digits source model on its own validation and test folders."""
    from zoo_core.training.run import FinetuneOptions

    _, _, val, test = source
    settings = {"strategy": "finetune", "epochs": 2, "batch_size": 16, "val": str(val), "test": str(test)}
    return FinetuneOptions(**{**settings, **chosen})


def _without_seconds(value: Any) -> Any:
    """Metrics less their wall times, the one thing two equal runs do not share."""
    if isinstance(value, dict):
        return {key: _without_seconds(item) for key, item in value.items() if key != "seconds"}
    if isinstance(value, list):
        return [_without_seconds(item) for item in value]
    return value


def _digits(source: Source) -> tuple[Any, Any]:
    """The target's training set and the source model's preprocessing."""
    from zoo_core.training.data import load_dataset
    from zoo_core.training.run import usable_transform

    spec, train, _, _ = source
    return load_dataset(train, "image"), usable_transform(spec, train)


# --- data loading -------------------------------------------------------------------------------------


def test_workers_feed_the_same_items_labels_and_tensors_in_the_order_asked(source: Source) -> None:
    from zoo_core.training.features import Feeder, batches, chunks

    dataset, transform = _digits(source)
    order = list(np.random.default_rng(0).permutation(len(dataset.items)))
    here = list(batches(dataset, transform, 8, order))
    fed = list(batches(dataset, transform, 8, order, workers=2))
    assert [len(labels) for _, labels in fed] == [8] * 6 + [2]
    for (inputs, labels), (fed_inputs, fed_labels) in zip(here, fed, strict=True):
        assert torch.equal(inputs, fed_inputs) and torch.equal(labels, fed_labels)
    feeder = Feeder(dataset, transform, workers=2)  # one set of processes serves pass after pass
    first = [labels.tolist() for _, labels in feeder(chunks(order, 5))]
    again = [labels.tolist() for _, labels in feeder(chunks(order[::-1], 5))]
    assert first == [[dataset.labels[i] for i in chunk] for chunk in chunks(order, 5)]
    assert again == [[dataset.labels[i] for i in chunk] for chunk in chunks(order[::-1], 5)]


def test_a_file_a_worker_cannot_decode_is_one_error_naming_it(source: Source, tmp_path: Path) -> None:
    from zoo_core.training.data import Dataset
    from zoo_core.training.features import batches

    dataset, transform = _digits(source)
    broken = tmp_path / "broken.png"
    broken.write_bytes(Path(dataset.items[0]).read_bytes()[:60] + bytes(200))  # a PNG header, no pixels
    spoilt = Dataset("image", [*dataset.items[:5], str(broken)], [*dataset.labels[:5], 0], dataset.classes)
    with pytest.raises(zoo_core.DataError) as raised:
        list(batches(spoilt, transform, 4, workers=2))
    assert str(raised.value).startswith(f"{broken}: not a readable image (")
    assert "\n" not in str(raised.value) and "Traceback" not in str(raised.value)


def test_a_run_with_two_workers_gives_the_same_metrics_as_none(source: Source, tmp_path: Path) -> None:
    from zoo_core.training.run import finetune

    spec, train, _, _ = source
    alone = finetune(spec, train, tmp_path / "alone", _options(source, workers=0, device="cpu"))
    fed = finetune(spec, train, tmp_path / "fed", _options(source, workers=2, device="cpu"))
    assert _without_seconds(fed) == _without_seconds(alone)
    assert alone["transfer"]["test"]["accuracy"]["mean"] > 0.3  # chance: 0.2


# --- precision ----------------------------------------------------------------------------------------


def test_bf16_on_the_cpu_trains_and_the_manifest_says_so(source: Source, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from zoo_core.training.run import finetune

    spec, train, _, _ = source
    options = _options(source, strategy="full", precision="bf16", device="cpu", epochs=5)
    metrics = finetune(spec, train, tmp_path / "run", options)
    assert metrics["transfer"]["test"]["accuracy"]["mean"] > 0.6  # chance: 0.2; fp32 gives 0.76 here
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert (manifest["options"]["precision"], manifest["options"]["device"], manifest["device"]) == (
        "bf16",
        "cpu",
        "cpu",
    )
    weights = load_file(tmp_path / "run" / "model.safetensors")
    assert {str(tensor.device) for tensor in weights.values()} == {"cpu"}
    assert {tensor.dtype for tensor in weights.values() if tensor.is_floating_point()} == {torch.float32}


def test_features_are_keyed_by_precision_and_device_type_where_they_change_the_bits() -> None:
    from zoo_core.training.run import FinetuneOptions
    from zoo_core.training.strategies import features_key

    spec = zoo_core.get("resnet18")
    cpu, gpu, second_gpu = torch.device("cpu"), torch.device("cuda", 0), torch.device("cuda", 1)
    plain = features_key(spec, "w", FinetuneOptions(), cpu)
    assert plain == ["resnet18.a1_in1k", "w", "drop_last=0", "threads=1"]  # as before GPUs: old caches hold
    assert features_key(spec, "w", FinetuneOptions(workers=4, device="cpu"), cpu) == plain
    bf16 = features_key(spec, "w", FinetuneOptions(precision="bf16"), cpu)
    on_gpu = features_key(spec, "w", FinetuneOptions(), gpu)
    assert len({tuple(plain), tuple(bf16), tuple(on_gpu)}) == 3
    assert features_key(spec, "w", FinetuneOptions(), second_gpu) == on_gpu


# --- refusals: one line, exit 1, nothing written ---------------------------------------------------------


def _refused(zoo: Any, source: Source, tmp_path: Path, *options: str) -> str:
    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    spec, train, _, _ = source
    add_to_user_registry(Settings.from_env().home, spec)
    reset_catalogue()
    code, _, err = zoo("finetune", spec.name, str(train), "--out", str(tmp_path / "run"), *options)
    assert code == 1 and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run*"))
    return err.strip()


def test_fp16_on_a_cpu_is_refused_in_one_line(zoo: Any, source: Source, tmp_path: Path) -> None:
    err = _refused(zoo, source, tmp_path, "--device", "cpu", "--precision", "fp16")
    assert err == "Error: --precision fp16 needs a CUDA device (it needs loss scaling); on a CPU use bf16 or fp32"


@needs_no_cuda
def test_cuda_where_torch_sees_no_gpu_is_refused_naming_the_fix(zoo: Any, source: Source, tmp_path: Path) -> None:
    err = _refused(zoo, source, tmp_path, "--device", "cuda")
    assert err.startswith("Error: --device cuda: torch sees no CUDA GPU here (torch ")
    assert err.endswith("use --device cpu or auto")


def test_a_device_that_is_no_device_is_refused_by_the_options_check(zoo: Any, source: Source, tmp_path: Path) -> None:
    assert (
        _refused(zoo, source, tmp_path, "--device", "cuda:x") == "Error: --device cuda:x: not auto, cpu, cuda or cuda:N"
    )


def test_pretrain_refuses_before_writing(zoo: Any, source: Source, tmp_path: Path) -> None:
    _, train, _, _ = source
    out = tmp_path / "src"
    arguments = ["--out", str(out), "--name", "mine", "--size", "32", "--channels", "1"]
    code, _, err = zoo("pretrain", "resnet10t", str(train), *arguments, "--device", "cpu", "--precision", "fp16")
    assert code == 1 and err.startswith("Error: --precision fp16 needs a CUDA device") and err.count("\n") == 1
    assert not out.exists()


def test_rank_resolves_the_device_before_any_candidate(source: Source) -> None:
    from zoo_core.ranking import rank
    from zoo_core.training.run import FinetuneOptions

    spec, train, _, _ = source
    with pytest.raises(RunOptionError, match=r"^--precision fp16 needs a CUDA device"):
        rank(train, [spec], options=FinetuneOptions(device="cpu", precision="fp16"))


def test_running_out_of_gpu_memory_is_one_line_saying_what_to_lower() -> None:
    from zoo_core.training.device import fitting_memory

    with pytest.raises(RunOptionError) as raised, fitting_memory(torch.device("cuda", 0), 64):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.\nSee documentation")
    assert str(raised.value) == (
        "--device cuda:0: out of GPU memory at --batch-size 64; use a smaller --batch-size, --precision bf16, "
        "or another GPU (--device cuda:N)"
    )


# --- resuming elsewhere ---------------------------------------------------------------------------------


def test_a_run_resumes_on_another_device_and_workers_but_not_another_precision(source: Source, tmp_path: Path) -> None:
    from zoo_core.training.run import finetune

    spec, train, _, _ = source
    out = tmp_path / "run"
    finetune(spec, train, out, _options(source, device="auto", workers=0, epochs=1, patience=5))
    resumed = finetune(spec, train, out, _options(source, device="cpu", workers=2, epochs=2, patience=5), resume=True)
    assert [epoch["epoch"] for epoch in resumed["transfer"]["runs"][0]["curve"]] == [1, 2]
    with pytest.raises(CheckpointError, match=r"belongs to another run \(--precision fp32 there, bf16 now\)"):
        finetune(spec, train, out, _options(source, device="cpu", precision="bf16", epochs=3, patience=5), resume=True)


# --- the benchmark --------------------------------------------------------------------------------------


def _bench(*arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(ROOT / "bench" / "bench_gpu.py"), *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


@needs_no_cuda
def test_the_benchmark_says_in_one_line_that_there_is_no_gpu_and_exits_0() -> None:
    done = _bench()
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and done.stdout.startswith("bench_gpu: torch sees no CUDA GPU")


@pytest.mark.slow
def test_the_benchmark_measures_every_row_on_the_cpu_in_quick_mode(tmp_path: Path) -> None:
    """`--device cpu --quick`: every measurement, tiny, so a GPU run does not die of a typo."""
    done = _bench("--device", "cpu", "--quick", "--json", str(tmp_path / "gpu.json"))
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "gpu.json").read_text())["rows"]
    kinds = {(row["measure"], row["model"]) for row in rows}
    assert {measure for measure, _ in kinds} == {"train synthetic", "train zoo loop", "inference"}
    assert {model for _, model in kinds} == {"efficientnet_lite0", "resnet50"}
    measured = [row for row in rows if row["images_per_s"] is not None]
    assert measured and all(row["images_per_s"] > 0 for row in measured)
    missing = [row for row in rows if row["images_per_s"] is None]
    assert all(row["note"].startswith("not available: ") for row in missing)
    assert any(row["runtime"] == "onnxruntime CPUExecutionProvider" for row in measured)
    assert "images/s" in done.stdout


# --- on a GPU -------------------------------------------------------------------------------------------


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_a_run_trains_on_the_gpu_and_saves_from_the_cpu(source: Source, tmp_path: Path, precision: str) -> None:
    from safetensors.torch import load_file

    from zoo_core.training.run import finetune

    spec, train, _, _ = source
    options = _options(source, strategy="full", device="cuda", precision=precision, epochs=5)
    metrics = finetune(spec, train, tmp_path / "run", options)
    assert metrics["transfer"]["test"]["accuracy"]["mean"] > 0.6  # chance: 0.2; 0.76 on a CPU
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["device"].startswith("cuda:0 (") and manifest["options"]["precision"] == precision
    assert {str(tensor.device) for tensor in load_file(tmp_path / "run" / "model.safetensors").values()} == {"cpu"}
    checkpoint = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=True)
    assert bool(checkpoint["scaler"]) == (precision == "fp16")  # loss scaling, and its state kept, for fp16 only


@pytest.mark.cuda
@needs_cuda
def test_workers_pin_memory_for_the_gpu_and_a_run_with_them_trains(source: Source, tmp_path: Path) -> None:
    from zoo_core.training.features import Feeder, chunks
    from zoo_core.training.run import finetune

    dataset, transform = _digits(source)
    inputs, labels = next(Feeder(dataset, transform, workers=2, pin_memory=True)(chunks([0, 1, 2, 3], 4)))
    assert inputs.is_pinned() and labels.is_pinned()
    spec, train, _, _ = source
    metrics = finetune(
        spec, train, tmp_path / "run", _options(source, strategy="full", device="cuda", workers=2, epochs=5)
    )
    assert metrics["transfer"]["test"]["accuracy"]["mean"] > 0.6


@pytest.mark.cuda
@needs_cuda
@pytest.mark.skipif(CUDA and torch.cuda.device_count() < 2, reason="torchrun over NCCL needs 2 GPUs")
def test_torchrun_on_two_gpus_trains_over_nccl(source: Source, tmp_path: Path) -> None:
    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    spec, train, val, test = source
    add_to_user_registry(Settings.from_env().home, spec)
    reset_catalogue()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", f"--master-port={port}"]
    command += ["-m", "zoo_core", "finetune", spec.name, str(train), "--out", str(tmp_path / "two")]
    command += ["--strategy", "full", "--epochs", "3", "--batch-size", "16", "--val", str(val), "--test", str(test)]
    command += ["--device", "cuda"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["device"].startswith("cuda:0 (")  # process 0 writes the run folder, from GPU 0
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["transfer"]["test"]["accuracy"]["mean"] > 0.3
