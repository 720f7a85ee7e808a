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


def _gpus(monkeypatch: pytest.MonkeyPatch, names: dict[int, str], cuda: str = "12.8") -> None:
    """torch told it sees GPUs of these names (by index), built with this CUDA: the CPU-testable part of
    the GPU path, without one."""
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: names[torch.device(device).index or 0])
    monkeypatch.setattr(torch.version, "cuda", cuda)


def test_features_are_keyed_by_precision_gpu_model_and_cuda_where_they_change_the_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from zoo_core.training.run import FinetuneOptions
    from zoo_core.training.strategies import features_key

    spec = zoo_core.get("resnet18")
    _gpus(monkeypatch, {0: "NVIDIA H100 80GB HBM3", 1: "NVIDIA H100 80GB HBM3", 2: "NVIDIA A100-SXM4-40GB"})
    cpu, gpu, second_gpu, a100 = (torch.device("cpu"), *(torch.device("cuda", index) for index in range(3)))
    plain = features_key(spec, "w", FinetuneOptions(), cpu)
    assert plain == ["resnet18.a1_in1k", "w", "drop_last=0", "threads=1"]  # as before GPUs: old caches hold
    assert features_key(spec, "w", FinetuneOptions(workers=4, device="cpu"), cpu) == plain
    bf16 = features_key(spec, "w", FinetuneOptions(precision="bf16"), cpu)
    assert bf16[-1] == "device=cpu precision=bf16"
    on_gpu = features_key(spec, "w", FinetuneOptions(), gpu)
    assert on_gpu[-1] == "device=cuda (NVIDIA H100 80GB HBM3, CUDA 12.8) precision=fp32"
    assert features_key(spec, "w", FinetuneOptions(), second_gpu) == on_gpu  # another of the same model
    assert features_key(spec, "w", FinetuneOptions(), a100) != on_gpu  # another model sums otherwise
    _gpus(monkeypatch, {0: "NVIDIA H100 80GB HBM3"}, cuda="13.0")
    assert features_key(spec, "w", FinetuneOptions(), gpu) != on_gpu  # so may another CUDA release


# --- which GPU -----------------------------------------------------------------------------------------


def test_local_rank_picks_the_gpu_only_under_torchrun() -> None:
    from zoo_core.training.device import gpu_index

    assert gpu_index("cuda:1", {"LOCAL_RANK": "0"}, 0) == 1  # a stray LOCAL_RANK: the explicit GPU wins
    assert gpu_index("cuda:1", {"LOCAL_RANK": "0", "WORLD_SIZE": "1"}, 0) == 1
    assert gpu_index("cuda", {"LOCAL_RANK": "1", "WORLD_SIZE": "2"}, 0) == 1  # torchrun: each process its own
    assert gpu_index("cuda:0", {"LOCAL_RANK": "1", "WORLD_SIZE": "2"}, 0) == 1
    assert gpu_index("cuda", {}, 3) == 3 and gpu_index("auto", {"LOCAL_RANK": "1"}, 2) == 2  # torch's current


def test_a_chosen_gpu_becomes_torchs_current_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a GPU: torch told it sees two; ``cuda:1`` with a stray LOCAL_RANK=0 is GPU 1, made current."""
    from zoo_core.training.device import resolve_device

    made_current: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", made_current.append)
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert made_current == [torch.device("cuda", 1)]
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert resolve_device("cuda") == torch.device("cuda", 0)  # under torchrun, process 0 takes GPU 0
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(RunOptionError, match=r"^--device cuda:2: GPU 2 does not exist; torch sees 2"):
        resolve_device("cuda:2")


# --- replaying a manifest elsewhere ---------------------------------------------------------------------


def _manifest_asking(run: Path, out: Path, **options: Any) -> Path:
    """`run`'s manifest with these options changed, as a run elsewhere (a GPU run, say) would record it."""
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["options"].update(options)
    out.write_text(json.dumps(manifest))
    return out


@needs_no_cuda
def test_a_gpu_runs_manifest_replays_on_the_cpu_with_device_cpu_beside_it(
    zoo: Any, source: Source, tmp_path: Path
) -> None:
    from zoo_core.training.run import finetune

    spec, train, _, _ = source
    _register(source)
    finetune(spec, train, tmp_path / "first", _options(source, strategy="features", device="cpu"))
    on_gpu = _manifest_asking(tmp_path / "first", tmp_path / "gpu.json", device="cuda")
    code, _, err = zoo("finetune", "--from-manifest", str(on_gpu), "--out", str(tmp_path / "refused"))
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith(f"Error: --from-manifest {on_gpu}: the run asks for --device cuda, which is not here (")
    assert err.strip().endswith("; give --device cpu beside --from-manifest to train it on the CPU")
    assert not (tmp_path / "refused").exists()
    again = tmp_path / "again"
    code, _, err = zoo(
        "finetune", "--from-manifest", str(on_gpu), "--device", "cpu", "--workers", "2", "--out", str(again)
    )
    assert code == 0, err
    first = json.loads((tmp_path / "first" / "metrics.json").read_text())
    assert _without_seconds(json.loads((again / "metrics.json").read_text())) == _without_seconds(first)
    replayed = json.loads((again / "manifest.json").read_text())
    assert (replayed["options"]["device"], replayed["options"]["workers"], replayed["device"]) == ("cpu", 2, "cpu")
    code, _, err = zoo("finetune", "--from-manifest", str(on_gpu), "--device", "cpu", "--seed", "3", "--out", "x")
    assert code == 2 and "drop --seed (only --device, --workers may change)" in err


def test_an_fp16_runs_manifest_is_refused_on_the_cpu_saying_it_needs_a_gpu(
    zoo: Any, source: Source, tmp_path: Path
) -> None:
    from zoo_core.training.run import finetune

    spec, train, _, _ = source
    _register(source)
    finetune(spec, train, tmp_path / "first", _options(source, strategy="features", device="cpu", epochs=1))
    fp16 = _manifest_asking(tmp_path / "first", tmp_path / "fp16.json", device="cuda", precision="fp16")
    code, _, err = zoo("finetune", "--from-manifest", str(fp16), "--device", "cpu", "--out", str(tmp_path / "r"))
    assert code == 1 and err == (
        f"Error: --from-manifest {fp16}: the run trained at --precision fp16, which runs on a CUDA GPU only; "
        "replay it on a machine with one\n"
    )
    assert not (tmp_path / "r").exists()


def test_pretrain_records_the_device_and_precision_it_trained_at(source: Source) -> None:
    """The session's source model, pretrained on the CPU (conftest pins it there)."""
    _, train, _, _ = source
    metrics = json.loads((train.parent.parent / "source-model" / "metrics.json").read_text())
    assert (metrics["device"], metrics["precision"]) == ("cpu", "fp32")


# --- a process group --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wrapped_in_ddp(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The device_ids of every DistributedDataParallel zoo builds from now on (it still builds them)."""
    made: list[Any] = []
    original = torch.nn.parallel.DistributedDataParallel

    class Recorded(original):  # type: ignore[misc, valid-type]
        def __init__(self, *arguments: Any, **named: Any) -> None:
            made.append(named.get("device_ids"))
            super().__init__(*arguments, **named)

    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", Recorded)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    return made


def test_a_run_inside_a_process_group_trains_through_ddp_and_leaves_the_group_to_its_owner(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gloo, one process: the DDP path that NCCL takes under torchrun, on the CPU."""
    import torch.distributed as dist

    from zoo_core.training.run import finetune

    spec, train, _, _ = source
    made = _wrapped_in_ddp(monkeypatch)
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        metrics = finetune(spec, train, tmp_path / "run", _options(source, strategy="full", device="cpu"))
        assert dist.is_initialized()  # the caller set it up: zoo does not take it down
    finally:
        dist.destroy_process_group()
    assert made == [None]  # one network trained, wrapped, on the CPU
    assert metrics["transfer"]["test"]["accuracy"]["mean"] > 0.3  # chance: 0.2


# --- refusals: one line, exit 1, nothing written ---------------------------------------------------------


def _register(source: Source) -> None:
    """The digits source model in the user's registry, so the CLI finds it by name."""
    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    add_to_user_registry(Settings.from_env().home, source[0])
    reset_catalogue()


def _refused(zoo: Any, source: Source, tmp_path: Path, *options: str) -> str:
    spec, train, _, _ = source
    _register(source)
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


def _bench_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    """bench/bench_gpu.py imported (it is a script, not a package), in sys.modules for this test only."""
    import importlib.util

    found = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "bench_gpu.py")
    assert found is not None and found.loader is not None
    module = importlib.util.module_from_spec(found)
    monkeypatch.setitem(sys.modules, "bench_gpu", module)  # its dataclasses look their module up
    found.loader.exec_module(module)
    return module


def test_a_failed_measurement_is_a_row_saying_why_and_rows_print_as_measured(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Training fails on the "GPU", the run to export lacks scikit-learn: every row is still there, each
    failure a one-line "not available", the rows measured before a failure already printed."""
    import types

    import zoo_core.training.run

    bench = _bench_module(monkeypatch)
    printed: list[str] = []

    def broken(*_: Any) -> float:
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nCompile with TORCH_USE_CUDA_DSA")

    def measured(*_: Any) -> float:
        printed.append(capsys.readouterr().out)
        return 123.0

    def no_sklearn(*_: Any, **__: Any) -> None:
        raise ModuleNotFoundError("No module named 'sklearn'")

    monkeypatch.setattr(bench, "MODELS", {"resnet50": "resnet50"})
    monkeypatch.setattr(bench, "register", lambda name, arch, plan, folder: types.SimpleNamespace(arch=arch))
    monkeypatch.setattr(bench, "train_synthetic", broken)
    monkeypatch.setattr(bench, "train_zoo_loop", measured)
    monkeypatch.setattr(zoo_core.training.run, "finetune", no_sklearn)
    for variable in ("ZOO_HOME", "HF_HOME"):  # the bench points them at its scratch folder: restored after
        monkeypatch.setenv(variable, str(tmp_path / variable))
    assert bench.main(["--device", "cpu", "--quick", "--json", str(tmp_path / "gpu.json")]) == 0
    rows = json.loads((tmp_path / "gpu.json").read_text())["rows"]
    assert len(rows) == 3 + 2 + 2 * (3 + 3 + 3 + 2)  # synthetic, zoo loop; per batch: eager, cuda, tensorrt, cpu
    failed = "not available: RuntimeError: CUDA error: an illegal memory access was encountered"
    assert [row["note"] for row in rows[:2]] == [failed, failed]
    assert rows[2]["note"].startswith("not available: --precision fp16 needs a CUDA device")
    assert [row["images_per_s"] for row in rows[3:5]] == [123.0, 123.0]
    inference = rows[5:]
    assert all(row["images_per_s"] is None and "\n" not in row["note"] for row in inference)
    eager = [row for row in inference if row["runtime"] == "torch eager" and row["precision"] != "fp16"]
    assert len(eager) == 4 and all(row["note"].endswith("(loading the run)") for row in eager)
    exports = [row for row in inference if row["runtime"].startswith("onnxruntime")]
    assert {row["note"] for row in exports} == {
        "not available: ModuleNotFoundError: No module named 'sklearn' (in the run to export)"
    }
    assert f"| train synthetic | resnet50 | zoo loop, no loader | fp32 | 4 | {failed} |" in printed[0]


# --- on a GPU -------------------------------------------------------------------------------------------


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_a_run_trains_on_the_gpu_and_saves_from_the_cpu(source: Source, tmp_path: Path, precision: str) -> None:
    from safetensors.torch import load_file

    from zoo_core.training.run import finetune

    spec, train, _, _ = source
    options = _options(source, strategy="full", device="cuda", precision=precision, epochs=5)
    torch.cuda.reset_peak_memory_stats()
    metrics = finetune(spec, train, tmp_path / "run", options)
    assert torch.cuda.max_memory_allocated() > 0  # the work ran there, not only the manifest says so
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
    torch.cuda.reset_peak_memory_stats()
    metrics = finetune(
        spec, train, tmp_path / "run", _options(source, strategy="full", device="cuda", workers=2, epochs=5)
    )
    assert torch.cuda.max_memory_allocated() > 0
    assert metrics["transfer"]["test"]["accuracy"]["mean"] > 0.6


@pytest.mark.cuda
@needs_cuda
@pytest.mark.skipif(CUDA and torch.cuda.device_count() < 2, reason="torchrun over NCCL needs 2 GPUs")
def test_torchrun_on_two_gpus_trains_over_nccl(source: Source, tmp_path: Path) -> None:
    spec, train, val, test = source
    _register(source)
    port = _free_port()
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", f"--master-port={port}"]
    command += ["-m", "zoo_core", "finetune", spec.name, str(train), "--out", str(tmp_path / "two")]
    command += ["--strategy", "full", "--epochs", "3", "--batch-size", "16", "--val", str(val), "--test", str(test)]
    command += ["--device", "cuda"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["device"].startswith("cuda:0 (")  # process 0 writes the run folder, from GPU 0
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["transfer"]["test"]["accuracy"]["mean"] > 0.3


@pytest.mark.cuda
@needs_cuda
def test_the_default_features_strategy_computes_and_caches_features_on_the_gpu(source: Source, tmp_path: Path) -> None:
    from zoo_core.settings import Settings
    from zoo_core.training.run import finetune

    spec, train, _, _ = source
    cache = Settings.from_env().home
    before = set(cache.rglob("*.npy"))
    torch.cuda.reset_peak_memory_stats()
    metrics = finetune(spec, train, tmp_path / "run", _options(source, strategy="features", device="cuda"))
    assert torch.cuda.max_memory_allocated() > 0  # the backbone ran on the GPU
    assert len(set(cache.rglob("*.npy")) - before) == 3  # train, val and test features, keyed for this GPU
    assert metrics["transfer"]["test"]["accuracy"]["mean"] > 0.3  # chance: 0.2
    again = finetune(spec, train, tmp_path / "again", _options(source, strategy="features", device="cuda"))
    assert _without_seconds(again) == _without_seconds(metrics)  # from the cache: the same features


@pytest.mark.cuda
@needs_cuda
def test_the_same_seed_twice_on_the_gpu_gives_the_same_metrics(source: Source, tmp_path: Path) -> None:
    from zoo_core.training.run import finetune

    spec, train, _, _ = source
    options = _options(source, strategy="full", device="cuda", epochs=3)
    first = finetune(spec, train, tmp_path / "first", options)
    second = finetune(spec, train, tmp_path / "second", options)
    assert _without_seconds(second) == _without_seconds(first)


@pytest.mark.cuda
@needs_cuda
def test_a_single_process_nccl_group_trains_through_ddp_on_the_gpu(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NCCL with one process: the DDP path torchrun takes (device_ids, the GPU's own group), on one GPU."""
    import torch.distributed as dist

    from zoo_core.training.run import finetune

    spec, train, _, _ = source
    made = _wrapped_in_ddp(monkeypatch)
    dist.init_process_group("nccl", rank=0, world_size=1, device_id=torch.device("cuda", 0))
    try:
        torch.cuda.reset_peak_memory_stats()
        metrics = finetune(spec, train, tmp_path / "run", _options(source, strategy="full", device="cuda"))
        assert torch.cuda.max_memory_allocated() > 0
    finally:
        dist.destroy_process_group()
    assert made == [[0]]
    assert metrics["transfer"]["test"]["accuracy"]["mean"] > 0.3  # chance: 0.2


@pytest.mark.cuda
@needs_cuda
def test_a_gpu_run_resumes_on_the_cpu(source: Source, tmp_path: Path) -> None:
    from zoo_core.training.run import finetune

    spec, train, _, _ = source
    out = tmp_path / "run"
    finetune(spec, train, out, _options(source, device="cuda", epochs=1, patience=5))
    resumed = finetune(spec, train, out, _options(source, device="cpu", epochs=2, patience=5), resume=True)
    assert [epoch["epoch"] for epoch in resumed["transfer"]["runs"][0]["curve"]] == [1, 2]
