"""The Caffe converter against an independent numpy reference of Caffe's layers (tests/caffe_reference.py):
per layer on random inputs and parameters, and end to end on the real AlexNet, CaffeNet, GoogLeNet and
ResNet-50 deploy definitions (the plugin's copies, plugins/zoo_caffe/deploy) with random weights that the
tests write into .caffemodel files — no pretrained Caffe weights can be downloaded here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import zoo_core

pytest.importorskip("google.protobuf", reason="the caffe extra installs protobuf")
torch = pytest.importorskip("torch", reason="the caffe extra installs torch")

import caffe_reference  # noqa: E402
from zoo_caffe import caffe_pb2  # noqa: E402
from zoo_caffe.network import CaffeNetwork  # noqa: E402
from zoo_caffe.reader import Net, read_mean, read_net, read_weights  # noqa: E402

ZOO = Path(__file__).parent / "data" / "caffe-zoo"
DEPLOY = Path(__file__).parents[1] / "plugins" / "zoo_caffe" / "deploy"
TOLERANCE = 1e-4


def write_caffemodel(path: Path, net: Net, weights: dict[str, list[np.ndarray]], legacy: bool = False) -> Path:
    """A binary .caffemodel of every layer, with the blobs in `weights`: the current `layer` form, or the V1
    `layers` form with 4-D num/channels/height/width blobs, as the BVLC models of 2014 were saved."""
    message = caffe_pb2.NetParameter(name=net.name)
    v1_types = {"Convolution": "CONVOLUTION", "InnerProduct": "INNER_PRODUCT", "ReLU": "RELU", "LRN": "LRN",
                "Pooling": "POOLING", "Dropout": "DROPOUT", "Concat": "CONCAT", "Softmax": "SOFTMAX", "Input": "DATA"}  # fmt: skip
    for layer in net.layers:
        if legacy:
            entry = message.layers.add(
                name=layer.name, type=caffe_pb2.V1LayerParameter.LayerType.Value(v1_types[layer.type])
            )
        else:
            entry = message.layer.add(name=layer.name, type=layer.type)
        for array in weights.get(layer.name, []):
            blob = entry.blobs.add()
            if legacy:
                blob.num, blob.channels, blob.height, blob.width = (1,) * (4 - array.ndim) + array.shape
            else:
                blob.shape.dim.extend(array.shape)
            blob.data.extend(array.reshape(-1).tolist())
    path.write_bytes(message.SerializeToString())
    return path


def net_from_text(text: str, tmp_path: Path, shape: tuple[int, ...] = (2, 5, 13, 11)) -> Net:
    path = tmp_path / "deploy.prototxt"
    dims = "".join(f"input_dim: {d}\n" for d in shape)
    path.write_text(f'name: "t"\ninput: "data"\n{dims}{text}')
    return read_net(path)


def converted(net: Net, weights: dict[str, list[np.ndarray]], tmp_path: Path, legacy: bool = False) -> CaffeNetwork:
    """The converter's module, its weights read back from a .caffemodel written to disk."""
    network = CaffeNetwork(net).eval()
    network.load_blobs(read_weights(write_caffemodel(tmp_path / "w.caffemodel", net, weights, legacy)), "w.caffemodel")
    return network


LAYERS = {
    "conv stride 2 pad 1": 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 7 kernel_size: 3 stride: 2 pad: 1 } }',
    "conv grouped, rectangular, no bias": 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 10 group: 5 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_w: 1 bias_term: false } }',
    "conv dilated": 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 4 kernel_size: 3 dilation: 2 pad: 2 } }',
    "max pool, ceil": 'layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }',
    "max pool, padded (last window dropped)": 'layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 1 } }',
    "ave pool, padded": 'layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }',
    "ave pool, ceil overhang": 'layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { pool: AVE kernel_size: 4 stride: 3 } }',
    "ave pool, floor rounding": 'layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { pool: AVE kernel_size: 3 stride: 2 round_mode: FLOOR } }',
    "global ave pool": 'layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { pool: AVE global_pooling: true } }',
    "inner product (flattens)": 'layer { name: "f" type: "InnerProduct" bottom: "data" top: "f" inner_product_param { num_output: 6 } }',
    "leaky relu": 'layer { name: "r" type: "ReLU" bottom: "data" top: "data" relu_param { negative_slope: 0.1 } }',
    "prelu": 'layer { name: "r" type: "PReLU" bottom: "data" top: "r" }',
    "prelu shared": 'layer { name: "r" type: "PReLU" bottom: "data" top: "r" prelu_param { channel_shared: true } }',
    "sigmoid": 'layer { name: "s" type: "Sigmoid" bottom: "data" top: "s" }',
    "tanh": 'layer { name: "s" type: "TanH" bottom: "data" top: "s" }',
    "lrn across channels": 'layer { name: "n" type: "LRN" bottom: "data" top: "n" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 } }',
    "lrn within channel": 'layer { name: "n" type: "LRN" bottom: "data" top: "n" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL } }',
    "dropout": 'layer { name: "d" type: "Dropout" bottom: "data" top: "data" dropout_param { dropout_ratio: 0.5 } }',
    "concat": 'layer { name: "s" type: "Sigmoid" bottom: "data" top: "s" } layer { name: "c" type: "Concat" bottom: "data" bottom: "s" top: "c" }',
    "eltwise sum with coefficients": 'layer { name: "s" type: "Sigmoid" bottom: "data" top: "s" } layer { name: "e" type: "Eltwise" bottom: "data" bottom: "s" top: "e" eltwise_param { operation: SUM coeff: 1 coeff: -0.5 } }',
    "eltwise prod": 'layer { name: "s" type: "TanH" bottom: "data" top: "s" } layer { name: "e" type: "Eltwise" bottom: "data" bottom: "s" top: "e" eltwise_param { operation: PROD } }',
    "eltwise max": 'layer { name: "s" type: "TanH" bottom: "data" top: "s" } layer { name: "e" type: "Eltwise" bottom: "data" bottom: "s" top: "e" eltwise_param { operation: MAX } }',
    "batchnorm + scale": 'layer { name: "b" type: "BatchNorm" bottom: "data" top: "data" } layer { name: "s" type: "Scale" bottom: "data" top: "data" scale_param { bias_term: true } }',
    "softmax": 'layer { name: "s" type: "Softmax" bottom: "data" top: "s" }',
    "flatten": 'layer { name: "f" type: "Flatten" bottom: "data" top: "f" flatten_param { axis: 2 } }',
    "reshape": 'layer { name: "r" type: "Reshape" bottom: "data" top: "r" reshape_param { shape { dim: 0 dim: -1 dim: 11 } } }',
    "split": 'layer { name: "s" type: "Split" bottom: "data" top: "a" top: "b" } layer { name: "e" type: "Eltwise" bottom: "a" bottom: "b" top: "e" }',
}  # fmt: skip


@pytest.mark.parametrize("case", list(LAYERS))
def test_each_layer_matches_the_reference(case: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(len(case))
    net = net_from_text(LAYERS[case], tmp_path)
    x = rng.standard_normal((2, 5, 13, 11)).astype(np.float32)
    weights: dict[str, list[np.ndarray]] = {}
    expected = caffe_reference.run_net(net, x, weights, rng)
    with torch.no_grad():
        found = converted(net, weights, tmp_path)(torch.from_numpy(x)).numpy()
    assert found.shape == expected.shape
    assert np.abs(found - expected).max() <= TOLERANCE


FEATURES_AND_GROUPS = {  # the classifier's input width; stages (runs at one resolution) and the head
    "bvlc_alexnet": (4096, 5), "bvlc_reference_caffenet": (4096, 5), "bvlc_googlenet": (1024, 6),
    "resnet-50": (2048, 6),  # conv1+pool1, res2, res3, res4, res5+pool5, head
}  # fmt: skip


@pytest.mark.parametrize(("model", "legacy"), [("bvlc_alexnet", True), ("bvlc_reference_caffenet", False),
                                               ("bvlc_googlenet", True), ("resnet-50", False)])  # fmt: skip
def test_real_deploy_definitions_match_the_reference(model: str, legacy: bool, tmp_path: Path) -> None:
    """Random weights (the published ones cannot be downloaded here), written as the zoo saved them:
    the BVLC models of 2014 in the V1 `layers` form."""
    rng = np.random.default_rng(7)
    net = read_net(DEPLOY / f"{model}.prototxt")
    network = CaffeNetwork(net).eval()
    x = (rng.uniform(0, 255, (1, *network.input_shape[1:])) - 117).astype(np.float32)  # BGR, 0-255, mean taken off
    weights: dict[str, list[np.ndarray]] = {}
    expected = caffe_reference.run_net(net, x, weights, rng)
    with torch.no_grad():
        found = converted(net, weights, tmp_path, legacy)(torch.from_numpy(x)).numpy()
    assert found.shape == (1, 1000)
    assert np.abs(found - expected).max() <= TOLERANCE
    assert found.argmax() == expected.argmax()

    from zoo_caffe.backbone import CaffeBackbone
    from zoo_caffe.convert import convert_caffe

    spec = convert_caffe(DEPLOY / f"{model}.prototxt", tmp_path / "w.caffemodel", tmp_path / "converted")
    backbone = CaffeBackbone(spec, tmp_path / "converted")
    groups = [group.name for group in backbone.layer_groups()]
    assert (backbone.feature_dim, len(groups)) == FEATURES_AND_GROUPS[model] and groups[-1] == "head"


def test_convert_googlenet_then_load_fine_tune_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """zoo convert caffe → a registered model that loads as a backbone, matches the reference, and exports to
    ONNX with its parity check passed."""
    from zoo_core.cli import main
    from zoo_core.export import export_onnx

    rng = np.random.default_rng(3)
    net = read_net(DEPLOY / "bvlc_googlenet.prototxt")
    x = (rng.uniform(0, 255, (1, 3, 224, 224)) - 117).astype(np.float32)
    weights: dict[str, list[np.ndarray]] = {}
    expected = caffe_reference.run_net(net, x, weights, rng)
    model = write_caffemodel(tmp_path / "bvlc_googlenet.caffemodel", net, weights, legacy=True)
    with pytest.raises(SystemExit) as exited:
        main(["convert", "caffe", str(DEPLOY / "bvlc_googlenet.prototxt"), str(model), "--out",
              str(tmp_path / "converted"), "--name", "googlenet.test"])  # fmt: skip
    assert exited.value.code == 0 and "googlenet.test: 6,998,552 parameters, 1000 classes" in capsys.readouterr().out
    spec = zoo_core.get("googlenet.test")
    assert spec.input.channel_order == "BGR" and spec.input.value_range == (0.0, 255.0)  # type: ignore[union-attr]
    assert spec.input.mean == (104.0, 117.0, 123.0) and spec.input.crop_pct == 224 / 256  # type: ignore[union-attr]
    backbone = zoo_core.load("googlenet.test").eval()
    with torch.no_grad():
        logits = backbone(torch.from_numpy(x)).numpy()  # zoo's models give logits: the net's Softmax is left out
    assert np.abs(caffe_reference.softmax(logits, 1) - expected).max() <= TOLERANCE
    assert backbone.feature_dim == 1024 and [g.name for g in backbone.layer_groups()][-1] == "head"
    assert backbone.freeze(all_but_last=2) == ["stage4", "head"]
    report = export_onnx("googlenet.test", tmp_path / "export")
    assert report.max_abs_diff <= 1e-4 and report.top1_agreement == 1.0

    # Caffe's preprocessing (BGR, 0-255, mean off, 224 of 256) is the same in training and in `zoo predict`
    from PIL import Image

    from zoo_core.compatibility import check
    from zoo_core.runtime import Predictor

    image = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (260, 300, 3), dtype=np.uint8)).save(image)
    with Image.open(image) as opened, torch.no_grad():
        tensor = check(spec, image).transform(opened)
        assert abs(float(tensor[0].mean()) - (np.asarray(opened)[..., 2].mean() - 104)) < 2  # channel 0 is blue
        probabilities = torch.softmax(backbone(tensor[None]), 1)[0].numpy()
    label, score = Predictor(tmp_path / "export").predict([str(image)], top=1)[0][0]
    assert int(label) == probabilities.argmax() and abs(score - probabilities.max()) <= 1e-3


def test_a_converted_net_fine_tunes_and_drops_stages(tmp_path: Path) -> None:
    """Red against blue pictures, with GoogLeNet's random-weight stand-in: its last stage trained under a new
    head, and (drop_last) features from pool4 averaged over space."""
    import json

    from PIL import Image
    from zoo_caffe.convert import convert_caffe

    from zoo_core.settings import Settings
    from zoo_core.sources import reset_catalogue
    from zoo_core.training.run import FinetuneOptions, finetune
    from zoo_core.user_registry import add_to_user_registry

    rng = np.random.default_rng(9)
    net = read_net(DEPLOY / "bvlc_googlenet.prototxt")
    weights: dict[str, list[np.ndarray]] = {}
    caffe_reference.run_net(net, np.zeros((1, 3, 224, 224), np.float32), weights, rng)
    model = write_caffemodel(tmp_path / "googlenet.caffemodel", net, weights)
    spec = convert_caffe(DEPLOY / "bvlc_googlenet.prototxt", model, tmp_path / "converted", "googlenet.tune")
    add_to_user_registry(Settings.from_env().home, spec)
    reset_catalogue()
    for colour, channel in (("red", 0), ("blue", 2)):
        (tmp_path / "data" / colour).mkdir(parents=True)
        for index in range(6):
            pixels = rng.integers(0, 80, (48, 48, 3), dtype=np.uint8)
            pixels[..., channel] += 170
            Image.fromarray(pixels).save(tmp_path / "data" / colour / f"{index}.png")
    metrics = finetune("googlenet.tune", tmp_path / "data", tmp_path / "run",
                       FinetuneOptions(strategy="finetune", unfreeze=1, epochs=2, lr=1e-3, val_split=0.34))  # fmt: skip
    assert len(metrics["transfer"]["curve"]) == 2 and (tmp_path / "run" / "model.safetensors").exists()
    backbone = zoo_core.load("googlenet.tune")
    backbone.drop_last(1)
    assert backbone.feature_dim == 832 and backbone.features(torch.zeros(2, 3, 224, 224)).shape == (2, 832)
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["model"] == "googlenet.tune"


@pytest.mark.parametrize("model", ["bvlc_alexnet", "bvlc_reference_caffenet", "bvlc_googlenet"])
def test_the_built_in_entries_are_the_zoo_s_published_files(model: str) -> None:
    """URL and sha1 as each model's readme front matter publishes them; the sizes of the network built."""
    published = dict(
        line.split(": ", 1) for line in (ZOO / model / "model.yml").read_text().splitlines() if ": " in line
    )
    spec = zoo_core.get(model)
    assert spec.plugin == "caffe" and spec.arch == model
    assert spec.source.url == published["caffemodel_url"]
    assert spec.sha1 == {published["caffemodel"]: published["sha1"]}
    network = CaffeNetwork(read_net(DEPLOY / f"{model}.prototxt"))
    assert spec.params == sum(p.numel() for p in network.parameters())
    assert (spec.input.height, spec.input.channel_order) == (network.input_shape[2], "BGR")  # type: ignore[union-attr]


def test_a_zoo_entry_downloads_checks_sha1_and_converts_on_first_use(
    tmp_path: Path, write_registry: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from zoo_core.settings import Settings
    from zoo_core.sources import reset_catalogue

    rng = np.random.default_rng(5)
    net = read_net(DEPLOY / "bvlc_googlenet.prototxt")
    x = (rng.uniform(0, 255, (1, 3, 224, 224)) - 117).astype(np.float32)
    weights: dict[str, list[np.ndarray]] = {}
    expected = caffe_reference.run_net(net, x, weights, rng)
    published = tmp_path / "published"
    published.mkdir()
    model = write_caffemodel(published / "bvlc_googlenet.caffemodel", net, weights, legacy=True)
    sha1 = hashlib.sha1(model.read_bytes()).hexdigest()
    entry = zoo_core.get("googlenet.bvlc_in1k").to_entry() | {"name": "googlenet.local", "aliases": []}
    entry["source"] = {"url": model.as_uri()}
    rows = "".join(f"{key} = {_toml(value)}\n" for key, value in entry.items() if key != "sha1")
    for digest, name in ((sha1, "googlenet.local"), ("0" * 40, "googlenet.wrong")):
        rows_named = rows.replace('"googlenet.local"', f'"{name}"')
        (tmp_path / f"{name}.toml").write_text(
            f'[[model]]\n{rows_named}sha1 = {{ "bvlc_googlenet.caffemodel" = "{digest}" }}\n'
        )
    monkeypatch.setenv("ZOO_REGISTRY", f"{tmp_path / 'googlenet.local.toml'}")
    reset_catalogue()
    backbone = zoo_core.load("googlenet.local").eval()
    with torch.no_grad():
        logits = backbone(torch.from_numpy(x)).numpy()
    assert np.abs(caffe_reference.softmax(logits, 1) - expected).max() <= TOLERANCE
    converted = Settings.from_env().home / "converted" / "googlenet.local" / sha1[:16] / "model.safetensors"
    stamp = converted.stat().st_mtime_ns
    zoo_core.load("googlenet.local")
    assert converted.stat().st_mtime_ns == stamp  # converted once
    monkeypatch.setenv("ZOO_REGISTRY", f"{tmp_path / 'googlenet.wrong.toml'}")
    reset_catalogue()
    with pytest.raises(zoo_core.ChecksumError, match="has sha1"):
        zoo_core.load("googlenet.wrong")


def _toml(value: object) -> str:
    import json

    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {_toml(item)}" for key, item in value.items()) + " }"
    return json.dumps(value)


def test_a_truncated_or_foreign_caffemodel_is_a_clear_error(tmp_path: Path) -> None:
    net = net_from_text(LAYERS["conv stride 2 pad 1"], tmp_path)
    weights: dict[str, list[np.ndarray]] = {}
    caffe_reference.run_net(net, np.zeros((2, 5, 13, 11), np.float32), weights, np.random.default_rng(0))
    whole = write_caffemodel(tmp_path / "w.caffemodel", net, weights).read_bytes()
    (tmp_path / "cut.caffemodel").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(zoo_core.WeightsFormatError, match="truncated"):
        CaffeNetwork(net).load_blobs(read_weights(tmp_path / "cut.caffemodel"), "cut.caffemodel")
    (tmp_path / "page.caffemodel").write_bytes(b"<html>Not Found</html>")
    with pytest.raises(zoo_core.WeightsFormatError, match="not a Caffe model"):
        read_weights(tmp_path / "page.caffemodel")


def test_the_convert_weights_hook(tmp_path: Path) -> None:
    from zoo_core.plugins import convert_weights

    net = net_from_text(LAYERS["inner product (flattens)"], tmp_path)
    weights: dict[str, list[np.ndarray]] = {}
    caffe_reference.run_net(net, np.zeros((2, 5, 13, 11), np.float32), weights, np.random.default_rng(0))
    write_caffemodel(tmp_path / "t.caffemodel", net, weights)
    spec = convert_weights("caffe", tmp_path, tmp_path / "out")
    assert spec.plugin == "caffe" and spec.output.num_classes == 6 and spec.params == 6 * 5 * 13 * 11 + 6
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["deploy.prototxt", "model.safetensors", "spec.json"]


def test_an_unsupported_layer_is_named(tmp_path: Path) -> None:
    net = net_from_text('layer { name: "up" type: "Deconvolution" bottom: "data" top: "up" }', tmp_path)
    with pytest.raises(zoo_core.WeightsFormatError, match="layer 'up' of type Deconvolution is not supported"):
        CaffeNetwork(net)


def test_the_imagenet_mean_file(tmp_path: Path) -> None:
    mean = np.load(ZOO / "ilsvrc_2012_mean.npy")
    blob = caffe_pb2.BlobProto(num=1, channels=3, height=256, width=256)
    blob.data.extend(mean.reshape(-1).tolist())
    (tmp_path / "mean.binaryproto").write_bytes(blob.SerializeToString())
    found = read_mean(tmp_path / "mean.binaryproto")
    assert found.shape == (3, 256, 256)
    assert np.allclose(found.mean(axis=(1, 2)), [104.0, 116.7, 122.7], atol=0.1)  # B, G, R

    from zoo_caffe.convert import convert_caffe

    net = net_from_text(LAYERS["inner product (flattens)"], tmp_path, shape=(1, 3, 13, 11))
    weights: dict[str, list[np.ndarray]] = {}
    caffe_reference.run_net(net, np.zeros((1, 3, 13, 11), np.float32), weights, np.random.default_rng(0))
    model = write_caffemodel(tmp_path / "t.caffemodel", net, weights)
    spec = convert_caffe(tmp_path / "deploy.prototxt", model, tmp_path / "out", mean=tmp_path / "mean.binaryproto")
    assert np.allclose(spec.input.mean, [104.0, 116.7, 122.7], atol=0.1)  # type: ignore[union-attr]
