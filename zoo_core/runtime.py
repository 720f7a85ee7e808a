"""`zoo_core.Predictor`: an exported folder on onnxruntime, on the fastest execution provider present.

Providers are chosen TensorRT > CUDA > CPU among those that can run here (a GPU provider needs the NVIDIA
driver, ``libcuda.so.1``), and the one actually in use is reported: onnxruntime itself silently falls back to
the CPU, so an explicitly requested provider that is not active after the session starts is an error that
says what is missing. Preprocessing is rebuilt from the model's metadata: the folder is all `predict` needs,
and it needs neither torch nor the training code. Nothing in the folder is used unchecked: every file must
have the sha256 ``export.json`` records (`zoo_core.export_folder`), and every metadata field must pass
`zoo_core.export_metadata` (sizes within bounds and equal to the graph's, finite mean and std, known modes).
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
        logits = next((output.shape for output in self.session.get_outputs() if output.name == "logits"), None)
        if logits is None or len(logits) != 2:
            raise ExportError(f"{path}: no 'logits' output of shape (batch, classes); export it with `zoo export`")
        meta = read_metadata(
            self.session.get_modelmeta().custom_metadata_map,
            self.session.get_inputs()[0].shape,
            logits[1] if isinstance(logits[1], int) else None,
            str(path),
        )
        self.folder, self.labels, self.modality, self.input = folder, meta.labels, meta.modality, meta.input
        self._tokenizer: Any = None

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

    def scores(self, inputs: Sequence[str], batch_size: int = 32) -> Any:
        """Probabilities (softmax of the logits) for each input (an image path, or a text): a numpy array
        with one row per input and one column per label, in `labels` order."""
        import numpy as np

        rows = []
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start : start + batch_size]
            if self.modality == "image":
                feeds = {"input": np.stack([self._image(Path(item)) for item in chunk]).astype(np.float32)}
            else:
                feeds = self._texts(chunk)
            logits = self.session.run(["logits"], feeds)[0]
            probabilities = np.exp(logits - logits.max(1, keepdims=True))
            rows.append(probabilities / probabilities.sum(1, keepdims=True))
        return np.concatenate(rows) if rows else np.zeros((0, len(self.labels)), dtype=np.float32)

    def predict(self, inputs: Sequence[str], top: int = 5, batch_size: int = 32) -> list[list[tuple[str, float]]]:
        """For each input (an image path, or a text), the `top` labels with their probabilities."""
        import numpy as np

        return [
            [(self.labels[i], float(row[i])) for i in np.argsort(-row)[:top]] for row in self.scores(inputs, batch_size)
        ]
