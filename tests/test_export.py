"""ONNX export with proven parity, and prediction on onnxruntime from nothing but the export folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import zoo_core
from zoo_core.cli import main
from zoo_core.testing.hub import HubServer

onnx = pytest.importorskip("onnx", reason="the dev extra installs onnx and onnxruntime")


@pytest.fixture
def run(source: tuple[zoo_core.ModelSpec, Path, Path], tmp_path: Path) -> Path:
    """A fine-tuned run on the digits, its model in the user's registry as export finds it."""
    from zoo_core.settings import Settings
    from zoo_core.sources import reset_catalogue
    from zoo_core.training.run import FinetuneOptions, finetune
    from zoo_core.user_registry import add_to_user_registry

    spec, train, test = source
    add_to_user_registry(Settings.from_env().home, spec)
    reset_catalogue()
    finetune(spec.name, train, tmp_path / "run", FinetuneOptions(epochs=4, lr=3e-3, val=str(test)))
    return tmp_path / "run"


def test_export_is_one_checked_self_describing_file(run: Path, tmp_path: Path) -> None:
    from zoo_core.export import export_onnx

    report = export_onnx(run, tmp_path / "export")
    assert report.max_abs_diff <= 1e-4 and report.top1_agreement == 1.0 and report.samples == 64
    assert sorted(path.name for path in (tmp_path / "export").iterdir()) == ["export.json", "model.onnx"]
    model = onnx.load(str(tmp_path / "export" / "model.onnx"))
    onnx.checker.check_model(model)
    meta = {entry.key: entry.value for entry in model.metadata_props}
    assert json.loads(meta["zoo.labels"]) == ["5", "6", "7", "8", "9"]
    assert json.loads(meta["zoo.preprocessing"])["channels"] == 1 and meta["zoo.version"] == zoo_core.__version__
    assert meta["zoo.model"] == "digits-src.resnet10t" and "model.safetensors" in json.loads(meta["zoo.sha256"])
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch"  # a dynamic batch axis, not the traced 2


def test_predict_needs_only_the_export_folder(run: Path, source: tuple[zoo_core.ModelSpec, Path, Path],
                                              tmp_path: Path) -> None:  # fmt: skip
    from zoo_core.export import export_onnx
    from zoo_core.runtime import Predictor

    export_onnx(run, tmp_path / "export")
    predictor = Predictor(tmp_path / "export")
    assert predictor.provider == "CPUExecutionProvider"
    images = sorted(source[2].rglob("*.png"))[::10]
    found = predictor.predict([str(path) for path in images], top=2, batch_size=16)
    accuracy = np.mean([ranked[0][0] == path.parent.name for path, ranked in zip(images, found, strict=True)])
    metrics = json.loads((run / "metrics.json").read_text())
    assert abs(accuracy - metrics["transfer"]["final"]) <= 0.1  # the numpy preprocessing matches training's
    assert all(len(ranked) == 2 and ranked[0][1] >= ranked[1][1] for ranked in found)


def test_predict_cli_and_its_errors(run: Path, source: tuple[zoo_core.ModelSpec, Path, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from zoo_core.runtime import available_providers

    with pytest.raises(SystemExit) as exited:
        main(["export", str(run), "--out", str(tmp_path / "export")])
    assert exited.value.code == 0 and "top-1 agreement 100%" in capsys.readouterr().out
    image = str(next(source[2].rglob("*.png")))
    with pytest.raises(SystemExit) as exited:
        main(["predict", str(tmp_path / "export"), image, "--json", "--top", "3"])
    captured = capsys.readouterr()
    assert exited.value.code == 0 and len(json.loads(captured.out)[0]["labels"]) == 3
    assert captured.err == "onnxruntime provider: CPUExecutionProvider\n"
    if "CUDAExecutionProvider" not in available_providers():  # no GPU here: asking for one is an error
        with pytest.raises(SystemExit) as exited:
            main(["predict", str(tmp_path / "export"), image, "--provider", "cuda"])
        err = capsys.readouterr().err
        assert exited.value.code == 1 and "provider 'cuda' is not active" in err and err.count("\n") == 1
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(SystemExit) as exited:
        main(["predict", str(tmp_path / "broken"), image])
    assert exited.value.code == 1 and "not a valid ONNX model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["predict", str(tmp_path / "export"), str(tmp_path / "missing.png")])
    assert exited.value.code == 1 and "not a readable image" in capsys.readouterr().err


def test_export_a_catalogue_image_model(hub: HubServer, tmp_path: Path) -> None:
    from safetensors.torch import save

    from zoo_core.export import export_onnx

    random_weights = zoo_core.load("resnet18", pretrained=False)  # stand-ins for the published weights
    state = {key: value.contiguous() for key, value in random_weights.network.state_dict().items()}
    hub.add_repo("timm/resnet18.a1_in1k", {"model.safetensors": save(state)})
    report = export_onnx("resnet18", tmp_path / "export")
    assert report.max_abs_diff <= 1e-4
    with pytest.raises(zoo_core.ExportError, match="fine-tune it"):
        export_onnx("bert-base-uncased", tmp_path / "text")


def test_a_fine_tuned_text_model_exports_with_its_tokenizer(minilm: zoo_core.ModelSpec, tmp_path: Path) -> None:
    from zoo_core.export import export_onnx
    from zoo_core.runtime import Predictor
    from zoo_core.training.run import FinetuneOptions, finetune

    data = tmp_path / "topics.csv"
    rows = [("the team won the match", "sports"), ("the striker scored a goal", "sports"),
            ("the coach praised the players", "sports"), ("shares fell on the market", "finance"),
            ("the bank raised interest rates", "finance"), ("investors sold their bonds", "finance")]  # fmt: skip
    data.write_text("text,label\n" + "".join(f"{text},{label}\n" for text, label in rows * 2))
    finetune("minilm", data, tmp_path / "run", FinetuneOptions(epochs=15, lr=1e-2, val_split=0.25))
    report = export_onnx(tmp_path / "run", tmp_path / "export")
    assert report.max_abs_diff <= 1e-4 and (tmp_path / "export" / "tokenizer.json").exists()
    model = onnx.load(str(tmp_path / "export" / "model.onnx"))
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    assert model.graph.input[0].type.tensor_type.shape.dim[1].dim_param == "sequence"
    found = Predictor(tmp_path / "export").predict(["the goalkeeper saved a penalty", "stock prices dropped sharply"])
    assert [ranked[0][0] for ranked in found] == ["sports", "finance"]
    fused = export_onnx(tmp_path / "run", tmp_path / "fused", optimize=True)
    assert fused.max_abs_diff <= 1e-4 and fused.top1_agreement == 1.0
    ops = [node.op_type for node in onnx.load(str(tmp_path / "fused" / "model.onnx")).graph.node]
    assert ops.count("Attention") == 6 and ops.count("SkipLayerNormalization") == 12  # MiniLM's 6 layers, fused
    small = export_onnx(tmp_path / "run", tmp_path / "int8", precision="int8")
    assert small.top1_agreement >= 0.99 and small.exporter == "torchscript, int8 dynamic"
    size = (tmp_path / "export" / "model.onnx").stat().st_size / (tmp_path / "int8" / "model.onnx").stat().st_size
    assert size >= 3  # int8 weights: about a quarter of the float32 file
    found = Predictor(tmp_path / "int8").predict(["the goalkeeper saved a penalty", "stock prices dropped sharply"])
    assert [ranked[0][0] for ranked in found] == ["sports", "finance"]


def test_a_triton_repository_beside_the_export(run: Path, tmp_path: Path) -> None:
    from zoo_core.export import export_onnx

    export_onnx(run, tmp_path / "export", triton=tmp_path / "triton")
    folder = tmp_path / "triton" / "digits-src_resnet10t"
    assert (folder / "1" / "model.onnx").read_bytes() == (tmp_path / "export" / "model.onnx").read_bytes()
    assert (folder / "labels.txt").read_text().split() == ["5", "6", "7", "8", "9"]
    config = (folder / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config and "max_batch_size: 64" in config
    assert '{ name: "input" data_type: TYPE_FP32 dims: [ 1, 32, 32 ] }' in config
    assert 'dims: [ 5 ] label_filename: "labels.txt"' in config and "dynamic_batching { }" in config


def test_int8_for_a_cnn_is_static_and_calibrated(run: Path, source: tuple[zoo_core.ModelSpec, Path, Path],
                                                 tmp_path: Path) -> None:  # fmt: skip
    from zoo_core.export import export_onnx
    from zoo_core.runtime import Predictor

    report = export_onnx(run, tmp_path / "int8", precision="int8")
    assert report.exporter == "torchscript, int8 static" and report.top1_agreement >= 0.99
    assert report.samples == len(list(source[2].rglob("*.png")))  # the whole validation set, not 64 inputs
    model = onnx.load(str(tmp_path / "int8" / "model.onnx"))
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ: int8 activations as well as weights
    assert {e.key: e.value for e in model.metadata_props}["zoo.precision"] == "int8"
    image = next(source[2].rglob("*.png"))
    assert Predictor(tmp_path / "int8").predict([str(image)])[0][0][0] == image.parent.name
    with pytest.raises(zoo_core.ExportError, match="calibrates on the run's training images"):
        export_onnx("resnet18", tmp_path / "catalogue", precision="int8")  # no run, no calibration data
    assert not (tmp_path / "catalogue" / "model.onnx").exists()


def test_fp16_keeps_float32_inputs_within_tolerance(run: Path, tmp_path: Path) -> None:
    from zoo_core.export import export_onnx

    report = export_onnx(run, tmp_path / "fp16", precision="fp16")
    assert report.exporter == "torchscript, fp16" and 0 < report.max_abs_diff <= 1e-2
    model = onnx.load(str(tmp_path / "fp16" / "model.onnx"))
    weights = {tensor.data_type for tensor in model.graph.initializer if len(tensor.dims) > 1}
    assert weights == {onnx.TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # predict feeds float32
    export_onnx(run, tmp_path / "fp32")
    size = (tmp_path / "fp16" / "model.onnx").stat().st_size / (tmp_path / "fp32" / "model.onnx").stat().st_size
    assert size < 0.6  # half the bytes per weight


def test_weights_above_the_limit_go_beside_the_graph(run: Path, source: tuple[zoo_core.ModelSpec, Path, Path],
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Above protobuf's 2 GB the weights move to model.onnx.data; a small limit stands in for 2 GB here."""
    from zoo_core import export
    from zoo_core.runtime import Predictor

    monkeypatch.setattr(export, "SELF_CONTAINED_LIMIT", 1_000_000)
    report = export.export_onnx(run, tmp_path / "export", triton=tmp_path / "triton")
    assert report.max_abs_diff <= 1e-4
    graph, data = tmp_path / "export" / "model.onnx", tmp_path / "export" / "model.onnx.data"
    assert graph.stat().st_size < 1_000_000 < data.stat().st_size
    assert (tmp_path / "triton" / "digits-src_resnet10t" / "1" / "model.onnx.data").exists()
    image = next(source[2].rglob("*.png"))
    assert Predictor(tmp_path / "export").predict([str(image)])[0][0][0] == image.parent.name


def test_the_dynamo_exporter_on_request(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["export", str(run), "--out", str(tmp_path / "dynamo"), "--exporter", "dynamo", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert exited.value.code == 0 and report["exporter"] == "dynamo" and report["exporter_reason"] == "asked for"
    assert report["max_abs_diff"] <= 1e-4 and report["top1_agreement"] == 1.0
    batch = onnx.load(str(tmp_path / "dynamo" / "model.onnx")).graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch"  # dynamic, not the traced 2
    with pytest.raises(SystemExit) as exited:
        main(["export", str(run), "--out", str(tmp_path / "auto")])
    captured = capsys.readouterr()
    assert exited.value.code == 0 and captured.err.startswith("exporter: torchscript (folds BatchNorm")
    with pytest.raises(SystemExit) as exited:
        main(["export", str(run), "--out", str(tmp_path / "both"), "--fp16", "--int8"])
    assert exited.value.code == 2 and "choose one" in capsys.readouterr().err


def test_optimize_keeps_parity_and_metadata(run: Path, tmp_path: Path) -> None:
    from zoo_core.export import export_onnx

    report = export_onnx(run, tmp_path / "export", optimize=True)
    assert report.exporter == "torchscript, optimized" and report.max_abs_diff <= 1e-4
    model = onnx.load(str(tmp_path / "export" / "model.onnx"))
    assert {entry.key for entry in model.metadata_props} >= {"zoo.labels", "zoo.preprocessing", "zoo.version"}


def test_only_one_onnxruntime_distribution_is_installed() -> None:
    """onnxruntime-gpu and plain onnxruntime in one environment silently lose the CUDA provider: the extras
    pick one by platform, and no other dependency may pull the second in."""
    import importlib.metadata
    import platform

    installed = {dist.metadata["Name"].lower() for dist in importlib.metadata.distributions()}
    runtimes = installed & {"onnxruntime", "onnxruntime-gpu"}
    gpu_wheel = (platform.system() == "Linux" and platform.machine() == "x86_64") or platform.system() == "Windows"
    expected = "onnxruntime-gpu" if gpu_wheel else "onnxruntime"  # as pyproject.toml's markers choose
    assert runtimes == {expected}
