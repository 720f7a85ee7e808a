"""`zoo_core.Predictor`: an exported folder on onnxruntime, on the fastest execution provider present.

Providers are chosen TensorRT > CUDA > CPU among those that can run here (a GPU provider needs the NVIDIA
driver, ``libcuda.so.1``), and the one actually in use is reported: onnxruntime itself silently falls back to
the CPU, so an explicitly requested provider that is not active after the session starts is an error that
says what is missing. Preprocessing is rebuilt from the model's metadata: the folder is all `predict` needs,
and it needs neither torch nor the training code.
"""

from __future__ import annotations

import ctypes
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo_core.errors import ExportError

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
        meta = self.session.get_modelmeta().custom_metadata_map
        if "zoo.labels" not in meta:
            raise ExportError(f"{path}: no zoo metadata (labels, preprocessing); export it with `zoo export`")
        self.folder, self.labels = folder, json.loads(meta["zoo.labels"])
        self.modality, self.input = meta["zoo.modality"], json.loads(meta["zoo.preprocessing"])
        self._tokenizer: Any = None

    def _image(self, path: Path) -> Any:
        import numpy as np
        from PIL import Image

        spec = self.input
        resample = getattr(Image.Resampling, spec["interpolation"].upper())
        try:
            with Image.open(path) as opened:
                image = opened.convert("L" if spec["channels"] == 1 else "RGB")
        except OSError as error:
            raise ExportError(f"{path}: not a readable image ({error})") from None
        short = math.floor(spec["height"] / spec["crop_pct"])  # as the training transform resizes
        scale = short / min(image.size)
        image = image.resize(
            (max(short, round(image.width * scale)), max(short, round(image.height * scale))), resample
        )
        left, top = (image.width - spec["width"]) // 2, (image.height - spec["height"]) // 2
        pixels = np.asarray(image.crop((left, top, left + spec["width"], top + spec["height"])), dtype=np.float32)
        pixels = pixels.reshape(spec["height"], spec["width"], -1).transpose(2, 0, 1) / 255.0
        low, high = spec["value_range"]
        pixels = pixels * (high - low)
        if spec["channel_order"] == "BGR":
            pixels = pixels[::-1]
        mean, std = np.asarray(spec["mean"], np.float32), np.asarray(spec["std"], np.float32)
        return (pixels - mean[:, None, None]) / std[:, None, None]

    def _texts(self, texts: Sequence[str]) -> dict[str, Any]:
        import numpy as np
        from tokenizers import Tokenizer

        if self._tokenizer is None:
            self._tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
            self._tokenizer.enable_truncation(self.input["max_length"])
            self._tokenizer.enable_padding()
        encoded = self._tokenizer.encode_batch(list(texts))
        return {"input_ids": np.asarray([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.asarray([e.attention_mask for e in encoded], dtype=np.int64)}  # fmt: skip

    def predict(self, inputs: Sequence[str], top: int = 5, batch_size: int = 32) -> list[list[tuple[str, float]]]:
        """For each input (an image path, or a text), the `top` labels with their probabilities."""
        import numpy as np

        found = []
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start : start + batch_size]
            if self.modality == "image":
                feeds = {"input": np.stack([self._image(Path(item)) for item in chunk]).astype(np.float32)}
            else:
                feeds = self._texts(chunk)
            logits = self.session.run(["logits"], feeds)[0]
            probabilities = np.exp(logits - logits.max(1, keepdims=True))
            probabilities /= probabilities.sum(1, keepdims=True)
            for row in probabilities:
                best = np.argsort(-row)[:top]
                found.append([(self.labels[i], float(row[i])) for i in best])
        return found
