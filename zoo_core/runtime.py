"""`zoo_core.Predictor`: an exported folder on onnxruntime, on the fastest execution provider present.

Providers are chosen TensorRT > CUDA > CPU among those that can run here (a GPU provider needs the NVIDIA
driver, ``libcuda.so.1``), and the one actually in use is reported: onnxruntime itself silently falls back to
the CPU, so an explicitly requested provider that is not active after the session starts is an error that
says what is missing. Preprocessing is rebuilt from the model's metadata: the folder is all `predict` needs,
and it needs neither torch nor the training code. Nothing in the folder is used unchecked: every file must
have the sha256 ``export.json`` records (`zoo_core.export_folder`), and every metadata field must pass
`zoo_core.export_metadata` (sizes within bounds and equal to the graph's, finite mean and std, known modes).

A multi-task export has one output per task (`Predictor.tasks`): `task_scores` and `predict_tasks` give each
task's answer; `scores` and `predict`, which give one answer per input, refuse it in one line.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo_core.errors import ExportError
from zoo_core.export_folder import verify_export
from zoo_core.export_metadata import read_metadata

__all__ = ["Predictor", "available_providers"]

PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


def _driver_present() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def available_providers() -> list[str]:
    """Providers that can run here, best first (a GPU build without a GPU offers only the CPU)."""
    import onnxruntime

    compiled = onnxruntime.get_available_providers()
    gpu = _driver_present()
    return [name for key, name in PROVIDERS.items() if name in compiled and (key == "cpu" or gpu)]


class Predictor:
    """Top-k labels for images or texts from an exported folder (model.onnx with zoo metadata)."""

    def __init__(self, folder: Path, provider: str = "auto") -> None:
        import onnxruntime

        path = folder / "model.onnx"
        if not path.is_file():
            raise ExportError(f"{folder}: no model.onnx; make one with `zoo export RUN_DIR --out {folder}`")
        if provider != "auto" and provider not in PROVIDERS:
            raise ExportError(f"unknown provider '{provider}'; use auto, tensorrt, cuda or cpu")
        verify_export(folder)  # before onnxruntime reads model.onnx or its weights
        wanted = available_providers() if provider == "auto" else [PROVIDERS[provider], PROVIDERS["cpu"]]
        onnxruntime.set_default_logger_severity(3)  # a missing GPU library is reported below, in one line
        options = onnxruntime.SessionOptions()
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=wanted)
        except Exception as error:  # onnxruntime raises its own types for a malformed file
            raise ExportError(f"{path}: not a valid ONNX model ({str(error).splitlines()[0][:120]})") from None
        self.provider = self.session.get_providers()[0]
        if provider not in ("auto", "cpu") and self.provider != PROVIDERS[provider]:
            missing = (
                "the NVIDIA driver (libcuda.so.1)"
                if not _driver_present()
                else "CUDA 13 / cuDNN 9 or TensorRT libraries"
            )
            raise ExportError(
                f"provider '{provider}' is not active (onnxruntime fell back to {self.provider}): "
                f"{missing} not found: install it (onnxruntime-gpu needs it), or use --provider cpu"
            )
        sizes = {
            output.name: output.shape[1] if isinstance(output.shape[1], int) else None
            for output in self.session.get_outputs()
            if len(output.shape) == 2
        }
        meta = read_metadata(
            self.session.get_modelmeta().custom_metadata_map, self.session.get_inputs()[0].shape, sizes, str(path)
        )
        self.folder, self.labels, self.modality, self.input = folder, meta.labels, meta.modality, meta.input
        self.outputs = meta.outputs  # each output's labels: {"logits": labels}, or one entry per task
        self._tokenizer: Any = None

    @property
    def tasks(self) -> list[str]:
        """A multi-task export's tasks, in the order it was trained with; empty for a single task."""
        return [] if "logits" in self.outputs else list(self.outputs)

    def _image(self, path: Path) -> Any:
        """The network's input for one image file: the training transform's pixels, computed with numpy."""
        from zoo_core.images import decode, normalised
        from zoo_core.specs import ImageInput

        return normalised(decode(path), ImageInput.from_dict(self.input))

    def _texts(self, texts: Sequence[str]) -> dict[str, Any]:
        import numpy as np
        from tokenizers import Tokenizer

        if self._tokenizer is None:
            self._tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
            self._tokenizer.enable_truncation(self.input["max_length"])
            self._tokenizer.enable_padding()
        encoded = self._tokenizer.encode_batch(list(texts))
        return {
            "input_ids": np.asarray([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.asarray([e.attention_mask for e in encoded], dtype=np.int64),
        }

    def task_scores(self, inputs: Sequence[str], batch_size: int = 32) -> dict[str, Any]:
        """Probabilities (softmax of the logits) for each input (an image path, or a text), by output: a
        numpy array per output with one row per input and one column per label, in `outputs` order."""
        import numpy as np

        names = list(self.outputs)
        rows: dict[str, list[Any]] = {name: [] for name in names}
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start : start + batch_size]
            if self.modality == "image":
                feeds = {"input": np.stack([self._image(Path(item)) for item in chunk]).astype(np.float32)}
            else:
                feeds = self._texts(chunk)
            for name, logits in zip(names, self.session.run(names, feeds), strict=True):
                probabilities = np.exp(logits - logits.max(1, keepdims=True))
                rows[name].append(probabilities / probabilities.sum(1, keepdims=True))
        return {
            name: np.concatenate(rows[name]) if rows[name] else np.zeros((0, len(labels)), dtype=np.float32)
            for name, labels in self.outputs.items()
        }

    def scores(self, inputs: Sequence[str], batch_size: int = 32) -> Any:
        """Probabilities for each input, one row per input and one column per label, in `labels` order; a
        multi-task export, which has no one answer, is refused (use `task_scores`)."""
        if self.tasks:
            raise ExportError(
                f"{self.folder} answers {len(self.tasks)} tasks ({', '.join(self.tasks)}), not one: "
                "`zoo predict` prints each task's answer"
            )
        return self.task_scores(inputs, batch_size)["logits"]

    def predict(self, inputs: Sequence[str], top: int = 5, batch_size: int = 32) -> list[list[tuple[str, float]]]:
        """For each input (an image path, or a text), the `top` labels with their probabilities."""
        return _ranked(self.scores(inputs, batch_size), self.labels, top)

    def predict_tasks(
        self, inputs: Sequence[str], top: int = 5, batch_size: int = 32
    ) -> list[dict[str, list[tuple[str, float]]]]:
        """For each input, each output's `top` labels with their probabilities, by output name."""
        found = {
            name: _ranked(scores, self.outputs[name], top)
            for name, scores in self.task_scores(inputs, batch_size).items()
        }
        return [{name: found[name][row] for name in found} for row in range(len(inputs))]


def _ranked(scores: Any, labels: list[str], top: int) -> list[list[tuple[str, float]]]:
    """Each row's `top` labels, best first, with their probabilities."""
    import numpy as np

    return [[(labels[i], float(row[i])) for i in np.argsort(-row)[:top]] for row in scores]
