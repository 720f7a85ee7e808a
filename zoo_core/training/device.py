"""Where training runs and at what precision: ``--device auto|cpu|cuda[:N]`` and ``--precision fp32|bf16|fp16``.

``auto`` is CUDA when torch sees a GPU, else the CPU. Under torchrun (``WORLD_SIZE`` above 1) each process
takes the GPU its ``LOCAL_RANK`` names, whatever ``cuda`` or ``auto`` says, so one command line serves every
process; outside it a stray ``LOCAL_RANK`` is ignored, so an explicit ``cuda:N`` wins (`gpu_index`). The chosen
GPU becomes torch's current one, so pinned-memory threads and unplaced allocations land on it, not on GPU 0. Mixed
precision is torch's autocast: bf16 needs no loss scaling; fp16 does (`grad_scaler`) and only runs on CUDA.

Choosing a GPU also sets ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` when it is unset, before any CUDA work: with
`torch.use_deterministic_algorithms` on (`seed_everything`), cuBLAS is deterministic only with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from zoo_core.errors import RunOptionError
from zoo_core.training.options import DEVICE_PATTERN

__all__ = [
    "CPU",
    "autocast",
    "device_name",
    "fitting_memory",
    "gpu_index",
    "grad_scaler",
    "kernels",
    "module_device",
    "on_device",
    "replayable",
    "resolve_device",
    "to_device",
]

CPU = torch.device("cpu")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str, precision: str = "fp32") -> torch.device:
    """The torch device ``--device name`` means here, checked against the GPUs torch sees; with `precision`,
    refused in one line where it cannot run (fp16 on a CPU)."""
    if not DEVICE_PATTERN.fullmatch(name):
        raise RunOptionError(f"--device {name}: not auto, cpu, cuda or cuda:N")
    available = torch.cuda.is_available()
    if name == "cpu" or (name == "auto" and not available):
        device = torch.device("cpu")
    else:
        if not available:
            raise RunOptionError(
                f"--device {name}: torch sees no CUDA GPU here (torch {torch.__version__}); use --device cpu or auto"
            )
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before cuBLAS starts
        index = gpu_index(name, os.environ, torch.cuda.current_device())
        if index >= torch.cuda.device_count():
            raise RunOptionError(
                f"--device {name}: GPU {index} does not exist; torch sees {torch.cuda.device_count()} (cuda:0 on)"
            )
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)  # else the pin-memory thread and unplaced tensors open a context on GPU 0
    if precision == "fp16" and device.type != "cuda":
        raise RunOptionError("--precision fp16 needs a CUDA device (it needs loss scaling); on a CPU use bf16 or fp32")
    return device


def replayable(manifest: Path, name: str, precision: str) -> None:
    """Refuse, in one line naming the fix, a manifest's run (at ``--device name``, ``--precision precision``)
    that cannot train here: a CUDA run on a machine without that GPU is replayed with ``--device cpu`` given
    beside ``--from-manifest`` (where, not what); an fp16 run only on a CUDA GPU (precision is what it computes)."""
    try:
        resolve_device(name, precision)
    except RunOptionError as error:
        if precision == "fp16" and (name == "cpu" or not torch.cuda.is_available()):
            reason = "the run trained at --precision fp16, which runs on a CUDA GPU only"
            raise RunOptionError(f"--from-manifest {manifest}: {reason}; replay it on a machine with one") from None
        raise RunOptionError(
            f"--from-manifest {manifest}: the run asks for --device {name}, which is not here ({error}); "
            "give --device cpu beside --from-manifest to train it on the CPU"
        ) from None


def gpu_index(name: str, environ: Mapping[str, str], current: int) -> int:
    """The GPU ``--device name`` (cuda, cuda:N or auto) picks: under torchrun (``WORLD_SIZE`` above 1) the
    process's ``LOCAL_RANK``, else N, else `current` (torch's current GPU). Apart from `resolve_device` so the
    choice is testable without a GPU."""
    if int(environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in environ:
        return int(environ["LOCAL_RANK"])
    number = name.partition(":")[2]
    return int(number) if number else current


def device_name(device: torch.device) -> str:
    """`device` as a manifest records it: "cpu", or "cuda:0 (NVIDIA H100 80GB HBM3)"."""
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)


def kernels(device: torch.device) -> str:
    """Which kernels compute on `device`, as a features cache key records it: the device type, and for CUDA
    the GPU's name and the CUDA torch was built with (another GPU model or CUDA release orders its sums
    otherwise); not the GPU's index, since two GPUs of one model give the same bits."""
    if device.type != "cuda":
        return device.type
    return f"cuda ({torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda})"


def autocast(device: torch.device, precision: str) -> Any:
    """torch's autocast at `precision` on `device`; nothing at fp32."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A loss scaler where the precision needs one (fp16: its small range underflows gradients), else None."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


@contextmanager
def on_device(module: Any, device: torch.device) -> Iterator[Any]:
    """`module` moved to `device` for the block and back to the CPU after it, where runs save and export;
    anything that is not a torch module (word vectors: numpy on the CPU) stays as it is."""
    if not isinstance(module, torch.nn.Module):
        yield module
        return
    module.to(device)
    try:
        yield module
    finally:
        module.to("cpu")


@contextmanager
def fitting_memory(device: torch.device, batch_size: int) -> Iterator[None]:
    """The block, with the GPU running out of memory turned into a one-line `RunOptionError` saying what to
    lower (torch's own message is a paragraph on allocator settings)."""
    try:
        yield
    except torch.OutOfMemoryError:
        raise RunOptionError(
            f"--device {device}: out of GPU memory at --batch-size {batch_size}; use a smaller --batch-size, "
            "--precision bf16, or another GPU (--device cuda:N)"
        ) from None


def module_device(module: torch.nn.Module) -> torch.device:
    """The device `module`'s parameters are on (the CPU for a module without any)."""
    return next((parameter.device for parameter in module.parameters()), torch.device("cpu"))


def to_device(inputs: Any, device: torch.device) -> Any:
    """A batch's inputs on `device`: tensors moved (asynchronously from pinned memory); texts, which the
    backbone tokenises onto its own device, as they are."""
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device, non_blocking=True)
    if isinstance(inputs, dict):
        return {key: to_device(value, device) for key, value in inputs.items()}
    return inputs
