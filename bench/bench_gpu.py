"""Training and inference throughput on a CUDA GPU: EfficientNet-Lite0 and ResNet-50, images per second.

Measured, each the median of several timed repeats (the GPU synchronised before and after each), after an
untimed warm-up:

- ``train synthetic``: training steps of zoo's own loop (`train_epochs`: forward, loss, backward, AdamW;
  autocast, and loss scaling for fp16) at batch 64 on 224x224 tensors already on the GPU, at fp32, bf16 and
  fp16 (a timm classifier of 1,000 classes);
- ``train zoo loop``: whole epochs of zoo's own loop (`train_epochs` fed by a `Feeder` with ``--workers 8`` and
  pinned memory) on a generated folder of 256x256 JPEGs, decoded and transformed as ``zoo finetune`` does, at
  fp32 and bf16: the gap to the synthetic row is what loading costs;
- ``inference``: batch 1 and 64, torch eager at fp32, bf16 and fp16 on the GPU, against onnxruntime on
  CUDAExecutionProvider and TensorrtExecutionProvider with zoo's own exports (``zoo export`` of a run of the
  same model: fp32, fp16, int8) read by `zoo_core.runtime.Predictor`, and CPUExecutionProvider (fp32 and int8)
  for contrast. A provider the installed onnxruntime lacks (the CPU build has neither GPU provider) gives a
  row that says "not available" and why.

Any measurement that fails (a missing import such as scikit-learn or matplotlib, the short run to export,
loading it back, a session that will not run, the GPU out of memory) becomes a row that says "not available:"
and why in one line; the others go on. Each row is printed (and the JSON rewritten) as soon as it is measured,
so a run cut short keeps what it measured.

Weights: timm's ``tf_efficientnet_lite0`` and ``resnet50`` with random initialisation (throughput does not
depend on the values), registered as local models for the run; no network is needed. Runs train as zoo trains
them: seeded, ``torch.use_deterministic_algorithms`` on (`seed_everything`), TF32 convolutions as torch
defaults. On a machine without CUDA it says so in one line and exits 0; ``--device cpu --quick`` runs every
measurement, tiny, on the CPU (a smoke test of this script). Sized to finish within 6 minutes on an H100 with
16 cores (the run prints its own wall time).

    python bench/bench_gpu.py --json gpu.json
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODELS = {"efficientnet_lite0": "tf_efficientnet_lite0", "resnet50": "resnet50"}
PROVIDERS = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider", "cpu": "CPUExecutionProvider"}
CPU_PRECISIONS = ("fp32", "int8")  # onnxruntime's CPU kernels run fp16 graphs through casts: no contrast there
HEADER = "| measure | model | runtime | precision | batch | images/s |\n|---|---|---|---|---|---|"


@dataclass(frozen=True)
class Plan:
    """How much is measured: sizes, counts and repeats."""

    batch: int  # training batch, and the large inference batch
    size: int  # input height and width
    steps: int  # training steps per timed repeat (synthetic)
    repeats: int  # timed repeats per figure (the median is reported)
    images: int  # images in the generated training folder (a multiple of `batch`)
    calls: int  # inference calls per timed repeat at batch 1 (a tenth of them, at least 1, at the large batch)
    workers: int  # DataLoader workers of the zoo-loop rows
    export_images: int  # images per class of the folder the exported runs train on


FULL = Plan(batch=64, size=224, steps=10, repeats=5, images=1280, calls=50, workers=8, export_images=100)
QUICK = Plan(batch=4, size=64, steps=1, repeats=1, images=8, calls=1, workers=2, export_images=6)


@dataclass
class Row:
    measure: str  # train synthetic, train zoo loop, inference
    model: str
    runtime: str
    precision: str
    batch: int
    images_per_s: float | None
    note: str = ""  # why there is no figure: "not available: ..."


def _unavailable(error: BaseException) -> str:
    """A failed measurement's note: one line, the error's type and the first line of its message."""
    lines = str(error).strip().splitlines()
    return f"not available: {type(error).__name__}: {lines[0][:200] if lines else 'no message'}"


def _attempt(skip: str | None, measure: Callable[..., float | str], *arguments: Any) -> tuple[float | None, str]:
    """(figure, "") from ``measure(*arguments)``, or (None, why not): where `skip` says why already, where
    `measure` says why (a string), or where it fails."""
    if skip:
        return None, skip
    try:
        result = measure(*arguments)
    except Exception as error:  # any failure of one measurement is that row's note, not the end of the run
        return None, _unavailable(error)
    return (None, result) if isinstance(result, str) else (result, "")


def _synchronised(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(action: Callable[[], object], plan: Plan, device: Any) -> float:
    """The median wall time of `plan.repeats` calls of `action`, after one untimed call."""
    action()
    times = []
    for _ in range(plan.repeats):
        _synchronised(device)
        started = time.perf_counter()
        action()
        _synchronised(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _refusal(device: Any, precision: str) -> str | None:
    """Why zoo refuses `precision` on `device` (fp16 on a CPU), or None."""
    from zoo_core.errors import RunOptionError
    from zoo_core.training.device import resolve_device

    try:
        resolve_device(device.type, precision)
    except RunOptionError as error:
        return f"not available: {error}"
    return None


def _epoch_seconds(model: Any, epoch: Callable[[int], Any], plan: Plan, device: Any, precision: str) -> float:
    """The median wall time of an epoch of zoo's own loop (`train_epochs`: autocast, loss scaling for fp16,
    AdamW) over the batches `epoch` gives, `model` on `device`; the first epoch warms up and is not counted."""
    import torch

    from zoo_core.training.device import fitting_memory, on_device
    from zoo_core.training.loop import train_epochs

    ends: list[float] = []

    def epoch_ended() -> None:
        _synchronised(device)
        ends.append(time.perf_counter())

    with on_device(model, device), fitting_memory(device, plan.batch):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        epochs = plan.repeats + 1
        train_epochs(
            model,
            optimizer,
            None,
            epoch,
            list,  # no validation pass
            epochs,
            epochs + 1,
            before_evaluation=epoch_ended,
            device=device,
            precision=precision,
        )
    return statistics.median(b - a for a, b in itertools.pairwise(ends))


def train_synthetic(arch: str, plan: Plan, device: Any, precision: str) -> float:
    """Images a second through training steps on tensors already on `device`: the loop without the loader."""
    import timm
    import torch

    model = timm.create_model(arch, pretrained=False).train()
    inputs = torch.randn(plan.batch, 3, plan.size, plan.size, device=device)
    labels = torch.randint(0, 1000, (plan.batch,), device=device)
    seconds = _epoch_seconds(model, lambda _: [(inputs, labels)] * plan.steps, plan, device, precision)
    return plan.batch * plan.steps / seconds


def train_zoo_loop(spec: Any, data: Path, plan: Plan, device: Any, precision: str) -> float:
    """Images a second through epochs of zoo's own loop, every backbone stage training (``--strategy full``),
    the images decoded and transformed by `plan.workers` DataLoader workers into pinned memory."""
    import torch

    from zoo_core.loading import load
    from zoo_core.training.data import load_dataset
    from zoo_core.training.features import Feeder, chunks
    from zoo_core.training.model import TransferModel, make_head, run_backbone
    from zoo_core.training.run import usable_transform

    backbone = load(spec)
    run_backbone(backbone, 0)
    backbone.freeze(all_but_last=len(backbone.layer_groups()))
    dataset = load_dataset(data, "image")
    model = TransferModel(backbone, make_head("linear", backbone.feature_dim, len(dataset.classes)))
    feeder = Feeder(dataset, usable_transform(spec, data), workers=plan.workers, pin_memory=device.type == "cuda")

    def epoch(number: int) -> Any:
        order = torch.randperm(len(dataset.items), generator=torch.Generator().manual_seed(number)).tolist()
        return feeder(chunks(order, plan.batch))

    return len(dataset.items) / _epoch_seconds(model, epoch, plan, device, precision)


def write_images(folder: Path, per_class: int, side: int, seed: int) -> Path:
    """Two classes of smooth random JPEGs (photo-like to decode), dark and bright: a head separates them."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label, (low, high) in {"dark": (0, 110), "bright": (145, 255)}.items():
        (folder / label).mkdir(parents=True)
        for index in range(per_class):
            small = rng.integers(low, high, (12, 12, 3), dtype=np.uint8)
            image = Image.fromarray(small).resize((side, side), Image.Resampling.BICUBIC)
            image.save(folder / label / f"{index}.jpg", quality=90)
    return folder


def register(name: str, arch: str, plan: Plan, folder: Path) -> Any:
    """A registry entry for `arch` with random weights saved in `folder`, added to this run's zoo home."""
    import timm
    from safetensors.torch import save_file

    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.hashing import file_digest
    from zoo_core.registry import parse_spec
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    network = timm.create_model(arch, pretrained=False)
    weights = folder / name / "model.safetensors"  # the name the timm plugin reads
    weights.parent.mkdir(parents=True)
    save_file({key: value.contiguous() for key, value in network.state_dict().items()}, str(weights))
    entry = {
        "name": f"bench-gpu.{name}",
        "plugin": "timm",
        "arch": arch,
        "family": name,
        "task": "image-classification",
        "modality": "image",
        "source": {"url": weights.resolve().as_uri()},
        "input": {"channels": 3, "height": plan.size, "width": plan.size, "crop_pct": 0.875},
        "output": {"num_classes": 1000, "feature_dim": network.num_features},
    }
    spec = dataclasses.replace(parse_spec(entry, "bench_gpu"), sha256={weights.name: file_digest(weights)})
    add_to_user_registry(Settings.from_env().home, spec)
    reset_catalogue()
    return spec


def exported(spec: Any, data: Path, folder: Path, device: Any) -> dict[str, Path | str]:
    """zoo's exports (fp32, fp16, int8) of a short features run of `spec` on `data`: each a folder, or why not."""
    from zoo_core.errors import ZooError
    from zoo_core.export import export_onnx
    from zoo_core.training.run import FinetuneOptions, finetune

    run = folder / "run"
    try:
        finetune(spec, data, run, FinetuneOptions(epochs=5, lr=1e-2, device=device.type))
    except Exception as error:  # scikit-learn or matplotlib missing, say: every export's rows say so
        return dict.fromkeys(("fp32", "fp16", "int8"), f"{_unavailable(error)} (in the run to export)")
    found: dict[str, Path | str] = {}
    for precision in ("fp32", "fp16", "int8"):
        try:
            found[precision] = Path(export_onnx(run, folder / precision, precision=precision).path).parent  # type: ignore[arg-type]
        except ZooError as error:
            found[precision] = f"not available: zoo export refused it ({error})"
        except Exception as error:  # onnxruntime's own, from the parity check: a row, not the end of the run
            found[precision] = f"not available: zoo export failed ({type(error).__name__}: {str(error)[:200]})"
    return found


def infer_eager(model: Any, batch: int, plan: Plan, device: Any, precision: str) -> float:
    """Images a second through torch eager inference on `device`, under autocast at `precision`."""
    import torch

    from zoo_core.training.device import autocast

    inputs = torch.randn(batch, 3, plan.size, plan.size, device=device)
    calls = plan.calls if batch == 1 else max(1, plan.calls // 10)

    def run() -> None:
        with torch.inference_mode(), autocast(device, precision):
            for _ in range(calls):
                model(inputs)

    return batch * calls / _median_seconds(run, plan, device)


def infer_onnx(folder: Path, provider: str, batch: int, plan: Plan) -> float | str:
    """Images a second through onnxruntime on `provider` with the export in `folder`, or why not."""
    import numpy as np
    import onnxruntime

    from zoo_core.runtime import Predictor

    built = onnxruntime.get_available_providers()
    if PROVIDERS[provider] not in built:
        return (
            f"not available: onnxruntime {onnxruntime.__version__} here has no {PROVIDERS[provider]} "
            f"(it offers {', '.join(built)}; onnxruntime-gpu has it)"
        )
    session = Predictor(folder, provider).session  # a refusal or a failure is the row's note (`_attempt`)
    feeds = {
        session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(
            (batch, 3, plan.size, plan.size), dtype=np.float32
        )
    }
    calls = plan.calls if batch == 1 else max(1, plan.calls // 10)

    def run() -> None:
        for _ in range(calls):
            session.run(["logits"], feeds)

    import torch

    return batch * calls / _median_seconds(run, plan, torch.device("cpu"))  # session.run returns on the host


def _measure_model(
    name: str, spec: Any, data: Path, export_data: Path, plan: Plan, device: Any, folder: Path
) -> Iterator[Row]:
    """Every row of one model, each as soon as it is measured; a failed measurement is a "not available" row."""
    import torch

    from zoo_core.catalogue_sources import default_catalogue
    from zoo_core.training.saved import load_run

    for precision in ("fp32", "bf16", "fp16"):
        figure, note = _attempt(_refusal(device, precision), train_synthetic, spec.arch, plan, device, precision)
        yield Row("train synthetic", name, "zoo loop, no loader", precision, plan.batch, figure, note)
    for precision in ("fp32", "bf16"):
        figure, note = _attempt(None, train_zoo_loop, spec, data, plan, device, precision)
        yield Row("train zoo loop", name, f"zoo, {plan.workers} workers", precision, plan.batch, figure, note)
    exports = exported(spec, export_data, folder / name, device)
    try:
        model: Any = load_run(folder / name / "run", default_catalogue()).model.eval().to(device)
    except Exception as error:  # no run to load (the short run failed): the eager rows say why
        model = f"{_unavailable(error)} (loading the run)"
    for batch in (1, plan.batch):
        for precision in ("fp32", "bf16", "fp16"):
            skip = _refusal(device, precision) or (model if isinstance(model, str) else None)
            figure, note = _attempt(skip, infer_eager, model, batch, plan, device, precision)
            yield Row("inference", name, "torch eager", precision, batch, figure, note)
        for provider in ("cuda", "tensorrt", "cpu"):
            for precision, export in exports.items():
                if provider == "cpu" and precision not in CPU_PRECISIONS:
                    continue
                runtime = f"onnxruntime {PROVIDERS[provider]}"
                skip = export if isinstance(export, str) else None
                figure, note = _attempt(skip, infer_onnx, export, provider, batch, plan)
                yield Row("inference", name, runtime, precision, batch, figure, note)
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table (a missing figure shows its note)."""
    return "\n".join([HEADER, *map(line, rows)])


def line(row: Row) -> str:
    """One row of the Markdown table (a missing figure shows its note)."""
    figure = f"{row.images_per_s:,.0f}" if row.images_per_s is not None else row.note
    return f"| {row.measure} | {row.model} | {row.runtime} | {row.precision} | {row.batch} | {figure} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (or cuda:N), or cpu for a smoke run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and counts: checks the code, measures nothing")
    parser.add_argument("--json", type=Path, help="also write the rows and the machine here")
    args = parser.parse_args(argv)
    import torch

    if args.device != "cpu" and not torch.cuda.is_available():
        print(
            f"bench_gpu: torch sees no CUDA GPU (torch {torch.__version__}): nothing measured; "
            "--device cpu --quick checks the code"
        )
        return 0
    plan = QUICK if args.quick else FULL
    warnings.simplefilter("ignore")  # deterministic-algorithm notes, TorchScript export notes
    with tempfile.TemporaryDirectory(prefix="zoo-bench-gpu-") as scratch:
        root = Path(scratch)
        os.environ["ZOO_HOME"], os.environ["HF_HOME"] = str(root / "home"), str(root / "hf")
        from zoo_core.training.device import resolve_device
        from zoo_core.training.run import seed_everything

        device = resolve_device(args.device)  # before any CUDA work: sets CUBLAS_WORKSPACE_CONFIG
        seed_everything(0)
        started = time.perf_counter()
        data = write_images(root / "train", plan.images // 2, plan.size * 8 // 7, 0)
        export_data = write_images(root / "export", plan.export_images, plan.size * 8 // 7, 1)
        rows: list[Row] = []
        print(HEADER, flush=True)
        for name, arch in MODELS.items():  # each row printed and saved as soon as measured
            spec = register(name, arch, plan, root)
            for row in _measure_model(name, spec, data, export_data, plan, device, root / "exports"):
                rows.append(row)
                print(line(row), flush=True)
                _report(args.json, device, plan, rows, time.perf_counter() - started)
    print(_report(args.json, device, plan, rows, time.perf_counter() - started))
    print(table(rows))
    return 0


def _report(path: Path | None, device: Any, plan: Plan, rows: list[Row], seconds: float) -> str:
    """The machine's line; with `path`, the rows so far written there as JSON (whole, then renamed)."""
    import onnxruntime
    import torch

    from zoo_core.training.device import device_name

    machine = {
        "device": device_name(device),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "cpus": os.cpu_count(),
        "seconds": round(seconds, 1),
    }
    if path is not None:
        report = {"machine": machine, "plan": dataclasses.asdict(plan), "rows": [dataclasses.asdict(r) for r in rows]}
        partial = path.with_name(path.name + ".tmp")
        partial.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        partial.replace(path)
    return f"{machine['device']}; torch {machine['torch']}, onnxruntime {machine['onnxruntime']}; {seconds:.0f} s"


if __name__ == "__main__":
    sys.exit(main())
