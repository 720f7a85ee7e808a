"""The epoch loop every strategy shares: train, validate, stop early, checkpoint, resume.

After each epoch the module's state, the optimiser's and the learning curve so far go to ``last.pt``
(written whole, then renamed), so an interrupted run keeps its last good epoch and ``--resume`` goes on
from there. The checkpoint also records what it belongs to (model, data, options: the caller's
`identity`); resuming refuses a checkpoint of another run, or one that cannot be read, with one line
naming the file. The best epoch by validation loss is kept in memory and returned.

What is minimised is an `Objective` (cross-entropy on one label per item by default; a multi-task run gives
its own). The module is expected on `device` already; each batch is moved there, and the forward pass and
loss run under autocast at `precision` (`zoo_core.training.device`), with loss scaling for fp16.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm  # type: ignore[import-untyped]

from zoo_core.errors import CheckpointError
from zoo_core.training.device import autocast, grad_scaler, to_device

__all__ = ["CLASSIFICATION", "Epoch", "Objective", "train_epochs"]

Batches = Callable[[int], Iterable[tuple[Any, Any]]]
Epoch = dict[str, float]


def _cross_entropy(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(outputs.float(), labels)


def _hits(outputs: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    return int((outputs.argmax(dim=1) == labels).sum()), len(labels)


@dataclass(frozen=True)
class Objective:
    """What training minimises and validation reports, from a module's outputs and a batch's labels:
    `loss` (mean over the batch), `hits` (correct answers, answers counted) for the validation accuracy.

    The validation loss is `loss` averaged by items unless `totals` is given: then each batch's `totals`
    (any fixed-shape sums, e.g. each task's summed loss and item count) are added up over the epoch and
    `summarise` turns them into the one validation loss, so a loss that is not a mean over items (a weighted
    sum of per-task means) does not depend on how the validation items fall into batches."""

    loss: Callable[[Any, Any], torch.Tensor] = _cross_entropy
    hits: Callable[[Any, Any], tuple[int, int]] = _hits
    totals: Callable[[Any, Any], torch.Tensor] | None = None
    summarise: Callable[[torch.Tensor], float] | None = None

    def __post_init__(self) -> None:
        if (self.totals is None) != (self.summarise is None):
            raise ValueError("Objective: give totals and summarise together, or neither")


CLASSIFICATION = Objective()


def _evaluate(
    module: nn.Module, batches: Iterable[tuple[Any, Any]], objective: Objective, device: torch.device, precision: str
) -> tuple[float, float]:
    """(mean validation loss per item, accuracy) over `batches`."""
    module.eval()
    loss, correct, count, items = 0.0, 0, 0, 0
    totals: torch.Tensor | None = None
    with torch.no_grad():
        for inputs, labels in batches:
            labels = to_device(labels, device)
            with autocast(device, precision):
                outputs = module(to_device(inputs, device))
            size = len(labels)
            if objective.totals is not None:
                summed = objective.totals(outputs, labels).double().cpu()
                totals = summed if totals is None else totals + summed
            else:
                loss += float(objective.loss(outputs, labels)) * size
            hit, counted = objective.hits(outputs, labels)
            correct, count, items = correct + hit, count + counted, items + size
    if objective.summarise is not None and totals is not None:
        return objective.summarise(totals), correct / max(count, 1)
    return loss / max(items, 1), correct / max(count, 1)


def _resumed(checkpoint: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's contents, when it is readable and belongs to the run `identity` describes."""
    afresh = "run without --resume to start afresh"
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise CheckpointError(
            f"{checkpoint}: not a readable checkpoint ({reason}); it may be truncated: {afresh}"
        ) from None
    if not isinstance(saved, dict) or not isinstance(saved.get("run"), dict):
        raise CheckpointError(f"{checkpoint}: does not say which run it belongs to (an older zoo wrote it); {afresh}")
    for key, value in identity.items():
        if saved["run"].get(key) != value:
            raise CheckpointError(
                f"{checkpoint} belongs to another run ({key} {saved['run'].get(key)} there, {value} now): resume "
                f"with the same model, data and options, or {afresh}"
            )
    return saved


def _on_cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of a state dict on the CPU: the best epoch kept off the GPU, and loadable wherever it goes."""
    return {key: value.detach().to("cpu", copy=True) for key, value in state.items()}


def train_epochs(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    train: Batches,
    val: Callable[[], Iterable[tuple[Any, torch.Tensor]]],
    epochs: int,
    patience: int,
    checkpoint: Path | None = None,
    resume: bool = False,
    seed: int = 0,
    quiet: bool = True,
    identity: dict[str, Any] | None = None,
    before_evaluation: Callable[[], None] | None = None,
    *,
    objective: Objective = CLASSIFICATION,
    device: torch.device | None = None,
    precision: str = "fp32",
) -> tuple[list[Epoch], dict[str, torch.Tensor]]:
    """Train up to `epochs`, stopping after `patience` epochs without a better validation loss.

    `before_evaluation` runs after each epoch's training, before the validation pass; what it changes in the
    module is part of the epoch's state.

    `identity` (plain values by name: model, data fingerprints, options) is stored in the checkpoint and
    must match to resume from it. Returns the learning curve and the best epoch's state dict, on the CPU.
    """
    identity = identity or {}
    device = device or torch.device("cpu")
    scaler = grad_scaler(device, precision)
    core = getattr(module, "module", module)  # under DistributedDataParallel, the wrapped model
    curve: list[Epoch] = []
    best_loss, best_state, stale, start = float("inf"), _on_cpu(core.state_dict()), 0, 0
    if resume and checkpoint is not None and checkpoint.exists():
        saved = _resumed(checkpoint, identity)
        core.load_state_dict(saved["module"])
        optimizer.load_state_dict(saved["optimizer"])  # torch moves its state to the parameters' device
        if scaler is not None and saved.get("scaler"):
            scaler.load_state_dict(saved["scaler"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        curve, best_loss, best_state, stale = saved["curve"], saved["best_loss"], saved["best_state"], saved["stale"]
        start = len(curve)
    for epoch in tqdm(range(start, epochs), desc="epochs", initial=start, total=epochs, disable=quiet):
        if stale >= patience:
            break
        torch.manual_seed(seed + epoch)  # the same shuffles and dropout whether or not the run was resumed
        module.train()
        total, count = 0.0, 0
        for inputs, labels in tqdm(train(epoch), desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=quiet):
            optimizer.zero_grad()
            labels = to_device(labels, device)
            with autocast(device, precision):
                loss = objective.loss(module(to_device(inputs, device)), labels)
            if scaler is not None:  # fp16: the loss scaled up so small gradients survive, unscaled before the step
                scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total, count = total + float(loss.detach()) * len(labels), count + len(labels)
        if before_evaluation is not None:
            before_evaluation()
        val_loss, val_accuracy = _evaluate(module, val(), objective, device, precision)
        curve.append(
            {
                "epoch": epoch + 1,
                "train_loss": total / max(count, 1),
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
            }
        )
        if val_loss < best_loss:
            best_loss, best_state, stale = val_loss, _on_cpu(core.state_dict()), 0
        else:
            stale += 1
        if checkpoint is not None:
            state = {
                "module": core.state_dict(),
                "optimizer": optimizer.state_dict(),
                "curve": curve,
                "best_loss": best_loss,
                "best_state": best_state,
                "stale": stale,
                "run": identity,
                "scheduler": scheduler.state_dict() if scheduler is not None else {},
                "scaler": scaler.state_dict() if scaler is not None else {},
            }
            partial = checkpoint.with_suffix(".tmp")
            torch.save(state, partial)
            partial.replace(checkpoint)
    return curve, best_state
