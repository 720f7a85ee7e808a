"""ONNX export with proven parity, and prediction on onnxruntime from nothing but the export folder."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import Run, registered_in_own_home

import zoo_core
from zoo_core.testing.hub import HubServer

onnx = pytest.importorskip("onnx", reason="the dev extra installs onnx and onnxruntime")

SOURCE = tuple[zoo_core.ModelSpec, Path, Path, Path]


def _fine_tuned(spec: zoo_core.ModelSpec, train: Path, val: Path, test: Path, root: Path) -> Path:
    """`spec` fine-tuned on `train` (validated on `val`, tested on `test`) into ``root/run``, in a zoo home
    of its own."""
    from zoo_core.training.run import FinetuneOptions, finetune

    options = FinetuneOptions(epochs=4, lr=3e-3, val=str(val), test=str(test))
    with registered_in_own_home(spec, root):
        finetune(spec.name, train, root / "run", options)
    return root / "run"


@pytest.fixture(scope="module")
def trained(source: SOURCE, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fine-tuned run on the target digits 5-9 for the whole module (exports only read it)."""
    spec, train, val, test = source
    return _fine_tuned(spec, train, val, test, tmp_path_factory.mktemp("export-run"))


@pytest.fixture(scope="module")
def separated(source: SOURCE, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose head separates its classes: the source model on its own digits 0-4 (10 training images a
    class, 100 for validation, 20 for the test). int8 keeps nearly every answer of such a model (one near-tie
    of 500 flips), so its tests do not sit on the 99% line that near-ties put a barely trained head on
    (there, any change of training or CPU moves the verdict)."""
    spec, train, _, _ = source
    root = tmp_path_factory.mktemp("separated")
    for digit in sorted((train.parent / "source").iterdir()):
        images = sorted(digit.glob("*.png"))
        for split, chosen in (("train", images[:10]), ("val", images[10:110]), ("test", images[110:130])):
            (root / split / digit.name).mkdir(parents=True)
            for image in chosen:
                shutil.copyfile(image, root / split / digit.name / image.name)
    return _fine_tuned(spec, root / "train", root / "val", root / "test", root)


def _registered(run: Path, spec: zoo_core.ModelSpec) -> Path:
    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    add_to_user_registry(Settings.from_env().home, spec)
    reset_catalogue()
    return run


@pytest.fixture
def confident(separated: Path, source: SOURCE) -> Path:
    """The module's separated run, its source model in this test's user registry."""
    return _registered(separated, source[0])


@pytest.fixture
def run(trained: Path, source: SOURCE) -> Path:
    """The module's run, its source model in this test's user registry, as export finds it."""
    return _registered(trained, source[0])


def _torch_labels(run: Path, images: list[str]) -> list[str]:
    """The run's saved model's answers on `images`, through torch."""
    from zoo_core.catalogue_sources import default_catalogue
    from zoo_core.training.data import Dataset
    from zoo_core.training.evaluate import predict_scores
    from zoo_core.training.saved import load_run

    saved = load_run(run, default_catalogue())
    dataset = Dataset("image", images, [0] * len(images), saved.classes)
    return [saved.classes[row] for row in predict_scores(saved.model, dataset, saved.transform, 16).argmax(1)]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line_error(zoo: Run, *args: str) -> str:
    """Run `zoo ARGS`, expect exit 1 with one line on stderr, and return that line."""
    code, out, err = zoo(*args)
    assert code == 1 and out == "" and err.count("\n") == 1 and err.startswith("Error: "), (code, out, err)
    return err


def test_export_is_one_checked_self_describing_file(run: Path, tmp_path: Path) -> None:
    from zoo_core.export import export_onnx

    report = export_onnx(run, tmp_path / "export")
    assert report.tolerance is not None and report.max_abs_diff <= report.tolerance
    assert report.top1_agreement == 1.0 and report.samples == 50  # the run's validation images (splits.json)
    assert sorted(path.name for path in (tmp_path / "export").iterdir()) == ["export.json", "model.onnx"]
    model = onnx.load(str(tmp_path / "export" / "model.onnx"))
    onnx.checker.check_model(model)
    meta = {entry.key: entry.value for entry in model.metadata_props}
    assert json.loads(meta["zoo.labels"]) == ["5", "6", "7", "8", "9"]
    assert json.loads(meta["zoo.preprocessing"])["channels"] == 1 and meta["zoo.version"] == zoo_core.__version__
    assert meta["zoo.model"] == "digits-src.resnet10t" and "model.safetensors" in json.loads(meta["zoo.sha256"])
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch"  # a dynamic batch axis, not the traced 2
    record = json.loads((tmp_path / "export" / "export.json").read_text())
    assert record["files"] == {"model.onnx": sha256(tmp_path / "export" / "model.onnx")} == report.files


def test_predict_needs_only_the_export_folder(run: Path, source: SOURCE, tmp_path: Path) -> None:
    """Predict's numpy preprocessing gives the answers the training transform gives, image by image, through
    the same onnxruntime session: like with like, whatever the trained model's accuracy."""
    from PIL import Image

    from zoo_core.compatibility import check
    from zoo_core.export import export_onnx
    from zoo_core.runtime import Predictor

    export_onnx(run, tmp_path / "export")
    predictor = Predictor(tmp_path / "export")
    assert predictor.provider == "CPUExecutionProvider"
    images = sorted(source[2].rglob("*.png"))[::10]
    found = predictor.predict([str(path) for path in images], top=2, batch_size=16)
    transform = check(zoo_core.get("digits-src.resnet10t"), source[1]).transform
    tensors = []
    for path in images:
        with Image.open(path) as image:
            tensors.append(transform(image).numpy())
    logits = predictor.session.run(["logits"], {"input": np.stack(tensors)})[0]
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    assert [ranked[0][0] for ranked in found] == [predictor.labels[index] for index in logits.argmax(1)]
    assert max(abs(ranked[0][1] - row.max()) for ranked, row in zip(found, probabilities, strict=True)) <= 1e-5
    assert all(len(ranked) == 2 and ranked[0][1] >= ranked[1][1] for ranked in found)


def test_predict_cli_and_its_errors(run: Path, source: SOURCE, tmp_path: Path, zoo: Run) -> None:
    from zoo_core.runtime import available_providers

    code, out, _ = zoo("export", str(run), "--out", str(tmp_path / "export"))
    assert code == 0 and "top-1 agreement 100.0%" in out and "(allowed " in out
    image = str(next(source[2].rglob("*.png")))
    code, out, err = zoo("predict", str(tmp_path / "export"), image, "--json", "--top", "3")
    assert code == 0 and len(json.loads(out)[0]["labels"]) == 3
    assert err == "onnxruntime provider: CPUExecutionProvider\n"
    if "CUDAExecutionProvider" not in available_providers():  # no GPU here: asking for one is an error
        err = one_line_error(zoo, "predict", str(tmp_path / "export"), image, "--provider", "cuda")
        assert "provider 'cuda' is not active" in err
    err = one_line_error(zoo, "predict", str(tmp_path / "export"), str(tmp_path / "missing.png"))
    assert "not a readable image" in err


def test_a_changed_model_file_is_refused(run: Path, source: SOURCE, tmp_path: Path, zoo: Run) -> None:
    """export.json records the sha256 of every file; predict checks them all before onnxruntime reads one."""
    from zoo_core.export import export_onnx

    export_onnx(run, tmp_path / "export")
    model = tmp_path / "export" / "model.onnx"
    image = str(next(source[2].rglob("*.png")))
    good = model.read_bytes()
    model.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # one bit of the last weight
    err = one_line_error(zoo, "predict", str(tmp_path / "export"), image)
    assert f"{model}: changed since it was exported" in err and "export it again" in err
    model.write_bytes(b"not onnx")
    assert "changed since it was exported" in one_line_error(zoo, "predict", str(tmp_path / "export"), image)
    model.write_bytes(good)
    (tmp_path / "export" / "export.json").unlink()
    err = one_line_error(zoo, "predict", str(tmp_path / "export"), image)
    assert "no export.json, so nothing vouches for model.onnx" in err and "export it again" in err


def test_weights_above_the_limit_go_beside_the_graph(
    run: Path, source: SOURCE, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo: Run
) -> None:
    """Above protobuf's 2 GB the weights move to model.onnx.data, hashed like the graph; a small limit
    stands in for 2 GB here."""
    from zoo_core import export_graph
    from zoo_core.export import export_onnx
    from zoo_core.runtime import Predictor

    monkeypatch.setattr(export_graph, "SELF_CONTAINED_LIMIT", 1_000_000)
    report = export_onnx(run, tmp_path / "export", triton=tmp_path / "triton")
    assert report.tolerance is not None and report.max_abs_diff <= report.tolerance
    graph, data = tmp_path / "export" / "model.onnx", tmp_path / "export" / "model.onnx.data"
    assert graph.stat().st_size < 1_000_000 < data.stat().st_size
    assert report.files == {"model.onnx": sha256(graph), "model.onnx.data": sha256(data)}
    assert (tmp_path / "triton" / "digits-src_resnet10t" / "1" / "model.onnx.data").exists()
    images = sorted(str(path) for path in source[3].rglob("*.png"))[:20]
    assert [found[0][0] for found in Predictor(tmp_path / "export").predict(images)] == _torch_labels(run, images)
    image = images[0]
    weights = bytearray(data.read_bytes())
    weights[len(weights) // 2] ^= 0xFF
    data.write_bytes(bytes(weights))
    err = one_line_error(zoo, "predict", str(tmp_path / "export"), str(image))
    assert f"{data}: changed since it was exported" in err


def _rewrite_metadata(folder: Path, key: str, value: str) -> None:
    """Set one `zoo.*` entry of an export, and record the new file's sha256 too, as a hostile folder would."""
    path = folder / "model.onnx"
    model = onnx.load(str(path))
    next(entry for entry in model.metadata_props if entry.key == key).value = value
    onnx.save(model, str(path))
    record = json.loads((folder / "export.json").read_text())
    record.setdefault("files", {})["model.onnx"] = sha256(path)
    (folder / "export.json").write_text(json.dumps(record))


def test_metadata_is_checked_before_use(run: Path, source: SOURCE, tmp_path: Path, zoo: Run) -> None:
    """Every metadata field predict uses is checked first: one line naming the field, never a 44 GB resize."""
    from zoo_core.export import export_onnx

    export_onnx(run, tmp_path / "export")
    model = onnx.load(str(tmp_path / "export" / "model.onnx"))
    meta = {entry.key: entry.value for entry in model.metadata_props}
    image = str(next(source[2].rglob("*.png")))

    def preprocessing(**changes: object) -> tuple[str, str]:
        return "zoo.preprocessing", json.dumps({**json.loads(meta["zoo.preprocessing"]), **changes})

    cases: list[tuple[tuple[str, str], str]] = [
        (preprocessing(crop_pct=math.nan), "field 'input.crop_pct': must be above 0 and finite"),
        (preprocessing(height=100_000), "height 100000 is above 4096 pixels"),
        (preprocessing(height=64, width=64), "1x64x64 images, but the graph takes 1x32x32"),
        (preprocessing(crop_pct=0.001), "height / crop_pct = 32000 pixels, above 8192"),
        (preprocessing(std=[0.0]), "field 'input.std': must be above 0"),
        (preprocessing(mean=[math.inf]), "field 'input.mean': must be finite numbers"),
        (preprocessing(interpolation="sinc"), "field 'input.interpolation': 'sinc' is not one of"),
        (preprocessing(channels=4, mean=[0.5] * 4, std=[0.5] * 4), "channels is 4"),
        (("zoo.labels", json.dumps(["5", "6", "7"])), "names 3 labels for 5 logits"),
        (("zoo.labels", "[5, 6"), "metadata 'zoo.labels' is not JSON"),
        (("zoo.modality", "audio"), "metadata 'zoo.modality' is 'audio', not one of image, text"),
        (("zoo.precision", "int4"), "metadata 'zoo.precision' is 'int4'"),
    ]
    for number, ((key, value), expected) in enumerate(cases):
        folder = tmp_path / f"case{number}"
        shutil.copytree(tmp_path / "export", folder)
        _rewrite_metadata(folder, key, value)
        err = one_line_error(zoo, "predict", str(folder), image)
        assert expected in err and f"{folder / 'model.onnx'}: metadata" in err, (expected, err)
        assert "export the model again" in err


def test_export_a_catalogue_image_model(hub: HubServer, tmp_path: Path) -> None:
    from safetensors.torch import save

    from zoo_core.export import export_onnx

    random_weights = zoo_core.load("resnet18", pretrained=False)  # stand-ins for the published weights
    state = {key: value.contiguous() for key, value in random_weights.network.state_dict().items()}
    hub.add_repo("timm/resnet18.a1_in1k", {"model.safetensors": save(state)})
    report = export_onnx("resnet18", tmp_path / "export")
    assert report.tolerance is not None and report.max_abs_diff <= report.tolerance and report.samples == 16
    with pytest.raises(zoo_core.ExportError, match="fine-tune it"):
        export_onnx("bert-base-uncased", tmp_path / "text")


CAFFE_LIKE = """
[[model]]
name = "loud.v1"
plugin = "timm"
arch = "resnet18"
family = "resnet"
task = "image-classification"
modality = "image"
source = { hub = "org/loud", files = ["model.safetensors"] }
input = { channels = 3, height = 64, width = 64, mean = [104.0, 117.0, 123.0], std = [1.0, 1.0, 1.0], value_range = [0.0, 255.0], channel_order = "BGR" }
output = { num_classes = 10 }
"""


@pytest.fixture
def loud(hub: HubServer, write_registry: Callable[..., Path]) -> Path:
    """A catalogue model (in a registry file) that takes Caffe's mean-subtracted 0-255 pixels and gives
    logits in the thousands, as converted Caffe ResNets do."""
    import torch
    from safetensors.torch import save

    network = zoo_core.load("resnet18", pretrained=False).network
    network.reset_classifier(10)
    with torch.no_grad():
        network.fc.weight.mul_(1e4)
    hub.add_repo("org/loud", {"model.safetensors": save({k: v.contiguous() for k, v in network.state_dict().items()})})
    return write_registry(CAFFE_LIKE)


def test_parity_is_relative_to_the_logits_on_inputs_drawn_from_the_spec(
    loud: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A correct export of a model with large logits is kept: the tolerance is 1e-4 of the largest |logit|,
    on seeded pictures in the model's own value range, mean and std (not unseeded N(0, 1) noise)."""
    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.export import export_onnx, spec_images
    from zoo_core.specs import ImageInput

    monkeypatch.setenv("ZOO_REGISTRY", str(loud))
    reset_catalogue()
    spec = zoo_core.get("loud.v1")
    assert isinstance(spec.input, ImageInput)
    images = spec_images(spec.input, 16)
    assert (images == spec_images(spec.input, 16)).all() and tuple(images.shape) == (16, 3, 64, 64)
    for channel, mean in enumerate(spec.input.mean):  # 0-255 pixels less the mean, spread over that range
        assert (
            -mean <= float(images[:, channel].min()) < -mean + 40
            and 255 - mean - 40 < float(images[:, channel].max()) <= 255 - mean
        )
    report = export_onnx("loud.v1", tmp_path / "export")
    assert report.max_abs_diff > 1e-4  # refused under the old flat tolerance
    assert report.tolerance is not None and report.max_abs_diff <= report.tolerance
    assert report.tolerance > 0.1  # 1e-4 of logits in the thousands
    again = export_onnx("loud.v1", tmp_path / "again")
    assert again.max_abs_diff == report.max_abs_diff  # seeded: the same inputs every time


def test_export_reads_the_catalogue_of_the_command(loud: Path, tmp_path: Path, zoo: Run) -> None:
    """`zoo --registry FILE export NAME` finds NAME in FILE, as download and check do."""
    code, out, err = zoo("--registry", str(loud), "export", "loud.v1", "--out", str(tmp_path / "export"))
    assert code == 0 and "parity on 16 inputs" in out, err
    assert "no model named" in one_line_error(zoo, "export", "loud.v1", "--out", str(tmp_path / "without"))


def test_export_errors_name_the_path(run: Path, tmp_path: Path, zoo: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo_core import export

    err = one_line_error(zoo, "export", "runs/doesnotexist", "--out", str(tmp_path / "x"))
    assert "runs/doesnotexist: no such run folder (the path does not exist)" in err
    (tmp_path / "empty").mkdir()
    err = one_line_error(zoo, "export", str(tmp_path / "empty"), "--out", str(tmp_path / "x"))
    assert "not a run folder (no manifest.json)" in err
    assert "no model named 'resnet18x'" in one_line_error(zoo, "export", "resnet18x", "--out", str(tmp_path / "x"))
    monkeypatch.setattr(export, "INT8_AGREEMENT", 1.01)  # a check nothing passes: the export is refused
    err = one_line_error(zoo, "export", str(run), "--out", str(tmp_path / "refused"), "--int8")
    assert "(needed: top-1 agreement ≥ 101%; torch itself nearly ties on " in err and "export was discarded" in err
    assert not (tmp_path / "refused").exists() and not (tmp_path / "x").exists()  # no folder, no file left


def test_staging_left_by_a_killed_export_is_removed(run: Path, tmp_path: Path) -> None:
    """Staging folders name their host and process: the next export into the folder removes those whose
    process is gone or that are older than six hours, and keeps a running export's."""
    from zoo_core.export import export_onnx
    from zoo_core.export_folder import STAGING_PREFIX, _host

    out = tmp_path / "export"
    out.mkdir()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, alive = int(finished.stdout), os.getpid()
    killed = out / f"{STAGING_PREFIX}{_host()}-{dead}-abc123"
    old = out / f"{STAGING_PREFIX}otherhost-{alive}-def456"
    running = out / f"{STAGING_PREFIX}{_host()}-{alive}-ghi789"
    for folder in (killed, old, running):
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"half written")
    os.utime(old, (time.time() - 7 * 3600, time.time() - 7 * 3600))
    export_onnx(run, out)
    assert sorted(path.name for path in out.iterdir()) == sorted(["export.json", "model.onnx", running.name])


@pytest.mark.slow
def test_a_fine_tuned_text_model_exports_with_its_tokenizer(
    minilm: zoo_core.ModelSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoo_core.export import export_onnx
    from zoo_core.runtime import Predictor
    from zoo_core.training.run import FinetuneOptions, finetune

    data = tmp_path / "topics.csv"
    rows = [
        ("the team won the match", "sports"),
        ("the striker scored a goal", "sports"),
        ("the coach praised the players", "sports"),
        ("shares fell on the market", "finance"),
        ("the bank raised interest rates", "finance"),
        ("investors sold their bonds", "finance"),
    ]
    data.write_text("text,label\n" + "".join(f"{text},{label}\n" for text, label in rows * 2))
    finetune("minilm", data, tmp_path / "run", FinetuneOptions(epochs=15, lr=1e-2, val_split=0.25))
    report = export_onnx(tmp_path / "run", tmp_path / "export")
    assert report.tolerance is not None and report.max_abs_diff <= report.tolerance
    assert set(report.files) == {
        "model.onnx",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
    }
    model = onnx.load(str(tmp_path / "export" / "model.onnx"))
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    assert model.graph.input[0].type.tensor_type.shape.dim[1].dim_param == "sequence"
    texts = ["the goalkeeper saved a penalty", "stock prices dropped sharply"]
    assert [ranked[0][0] for ranked in Predictor(tmp_path / "export").predict(texts)] == ["sports", "finance"]
    fused = export_onnx(tmp_path / "run", tmp_path / "fused", optimize=True)
    assert fused.tolerance is not None and fused.max_abs_diff <= fused.tolerance and fused.top1_agreement == 1.0
    ops = [node.op_type for node in onnx.load(str(tmp_path / "fused" / "model.onnx")).graph.node]
    assert ops.count("Attention") == 6 and ops.count("SkipLayerNormalization") == 12  # MiniLM's 6 layers, fused
    small = export_onnx(tmp_path / "run", tmp_path / "int8", precision="int8")
    assert small.top1_agreement >= 0.99 and small.exporter == "torchscript, int8 dynamic"
    size = (tmp_path / "export" / "model.onnx").stat().st_size / (tmp_path / "int8" / "model.onnx").stat().st_size
    assert size >= 3  # int8 weights: about a quarter of the float32 file
    assert [ranked[0][0] for ranked in Predictor(tmp_path / "int8").predict(texts)] == ["sports", "finance"]
    monkeypatch.chdir(tmp_path / "run")  # nothing may land in the current directory
    before = sorted(path.name for path in (tmp_path / "run").iterdir())
    both = export_onnx(tmp_path / "run", tmp_path / "int8-fused", precision="int8", optimize=True)
    assert both.exporter == "torchscript, int8 dynamic, optimized" and both.top1_agreement >= 0.99
    ops = [node.op_type for node in onnx.load(str(tmp_path / "int8-fused" / "model.onnx")).graph.node]
    assert ops.count("QAttention") == 6  # fused first, then quantised
    assert [ranked[0][0] for ranked in Predictor(tmp_path / "int8-fused").predict(texts)] == ["sports", "finance"]
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == before


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
    assert sorted(path.name for path in (tmp_path / "triton").iterdir()) == ["digits-src_resnet10t"]


def _int8_weights(model: object) -> list[np.ndarray]:
    from onnx import numpy_helper

    return [
        numpy_helper.to_array(tensor)
        for tensor in model.graph.initializer  # type: ignore[attr-defined]
        if tensor.data_type == onnx.TensorProto.INT8 and len(tensor.dims) > 1
    ]


def test_int8_for_a_cnn_is_static_calibrated_and_the_same_on_every_cpu(confident: Path, tmp_path: Path) -> None:
    """Static QDQ int8 with weights in 7 bits: on CPUs without VNNI, onnxruntime adds pairs of uint8 x int8
    products in 16 bits, which two 8-bit products (255 x 127 x 2) overflow and two 7-bit ones do not."""
    from zoo_core.export import export_onnx
    from zoo_core.runtime import Predictor

    report = export_onnx(confident, tmp_path / "int8", precision="int8")
    # 1 near-tie of 500 may flip; 8-bit weights saturating on CPUs without VNNI cost ~4% (see the docstring)
    assert report.exporter == "torchscript, int8 static" and report.top1_agreement >= 0.996
    assert report.samples == 500  # the whole validation set, not 64 inputs
    model = onnx.load(str(tmp_path / "int8" / "model.onnx"))
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ: int8 activations as well as weights
    weights = _int8_weights(model)
    assert weights and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= 64  # 255 x 64 x 2 < 2**15
    assert {e.key: e.value for e in model.metadata_props}["zoo.precision"] == "int8"
    image = next((confident.parent / "val").rglob("*.png"))
    assert Predictor(tmp_path / "int8").predict([str(image)])[0][0][0] == image.parent.name
    with pytest.raises(zoo_core.ExportError, match="calibrates on the run's training images"):
        export_onnx("resnet18", tmp_path / "catalogue", precision="int8")  # no run, no calibration data
    assert not (tmp_path / "catalogue").exists()


def test_int8_with_optimize_works_in_its_staging_folder(
    confident: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--int8 --optimize: quantised first, then optimised (the other order fails in shape inference), with
    nothing written to the current directory."""
    from zoo_core.export import export_onnx
    from zoo_core.runtime import Predictor

    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    report = export_onnx(confident, tmp_path / "export", precision="int8", optimize=True)
    assert report.exporter == "torchscript, int8 static, optimized" and report.top1_agreement >= 0.996
    ops = {node.op_type for node in onnx.load(str(tmp_path / "export" / "model.onnx")).graph.node}
    assert "QLinearConv" in ops  # onnxruntime's int8 kernels, stored
    assert list((tmp_path / "cwd").iterdir()) == []
    assert sorted(path.name for path in (tmp_path / "export").iterdir()) == ["export.json", "model.onnx"]
    image = next((confident.parent / "val").rglob("*.png"))
    assert Predictor(tmp_path / "export").predict([str(image)])[0][0][0] == image.parent.name


def test_fp16_keeps_float32_inputs_within_tolerance(run: Path, tmp_path: Path) -> None:
    from zoo_core.export import export_onnx

    report = export_onnx(run, tmp_path / "fp16", precision="fp16")
    assert report.exporter == "torchscript, fp16" and report.tolerance is not None
    assert 0 < report.max_abs_diff <= report.tolerance
    model = onnx.load(str(tmp_path / "fp16" / "model.onnx"))
    weights = {tensor.data_type for tensor in model.graph.initializer if len(tensor.dims) > 1}
    assert weights == {onnx.TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # predict feeds float32
    export_onnx(run, tmp_path / "fp32")
    size = (tmp_path / "fp16" / "model.onnx").stat().st_size / (tmp_path / "fp32" / "model.onnx").stat().st_size
    assert size < 0.6  # half the bytes per weight


def test_the_dynamo_exporter_on_request(run: Path, tmp_path: Path, zoo: Run) -> None:
    code, out, _ = zoo("export", str(run), "--out", str(tmp_path / "dynamo"), "--exporter", "dynamo", "--json")
    report = json.loads(out)
    assert code == 0 and report["exporter"] == "dynamo" and report["exporter_reason"] == "asked for"
    assert report["max_abs_diff"] <= report["tolerance"] and report["top1_agreement"] == 1.0
    batch = onnx.load(str(tmp_path / "dynamo" / "model.onnx")).graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch"  # dynamic, not the traced 2
    code, _, err = zoo("export", str(run), "--out", str(tmp_path / "auto"))
    assert code == 0 and err.startswith("exporter: torchscript (folds BatchNorm")
    code, _, err = zoo("export", str(run), "--out", str(tmp_path / "both"), "--fp16", "--int8")
    assert code == 2 and "choose one" in err


def test_a_plugin_chooses_the_exporter_for_its_models(
    run: Path, source: SOURCE, tmp_path: Path, register_plugin: Callable[[object, str], None]
) -> None:
    from zoo_core.export import EXPORTERS, choose_exporter, export_onnx

    class Chooser:
        """Dynamo for the source model (the plugin's own, as it were); zoo's choice for every other."""

        @zoo_core.hookimpl
        def onnx_exporter(self, spec: zoo_core.ModelSpec) -> tuple[str, str] | None:
            return ("dynamo", "its graph traces only under dynamo") if spec.name == source[0].name else None

    register_plugin(Chooser(), "chooser")
    report = export_onnx(run, tmp_path / "export")
    assert (
        report.exporter == "dynamo" and report.exporter_reason == "plugin 'chooser': its graph traces only under dynamo"
    )
    assert report.tolerance is not None and report.max_abs_diff <= report.tolerance and report.top1_agreement == 1.0
    assert choose_exporter(source[0], "torchscript") == ("torchscript", "asked for")  # asked for: no plugin asked
    assert choose_exporter(zoo_core.get("resnet18"), "auto") == EXPORTERS["image"]


def test_optimize_keeps_parity_and_metadata(run: Path, tmp_path: Path) -> None:
    from zoo_core.export import export_onnx

    report = export_onnx(run, tmp_path / "export", optimize=True)
    assert report.exporter == "torchscript, optimized"
    assert report.tolerance is not None and report.max_abs_diff <= report.tolerance
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
