"""The Caffe converter against an independent numpy reference of Caffe's layers (tests/caffe_reference.py):
per layer on random inputs and parameters, and end to end on the real AlexNet, CaffeNet, GoogLeNet and
ResNet-50 deploy definitions (the plugin's copies, plugins/zoo_caffe/deploy) and BVLC's CaffeNet
train_val.prototxt (tests/data/caffe-zoo), with random weights that the tests write into .caffemodel files —
no pretrained Caffe weights can be downloaded here. Then: converted nets fine-tuned, exported and predicted,
and every malformed file or parameter refused in one line naming the file and the layer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import zoo_core

pytest.importorskip("google.protobuf", reason="the caffe extra installs protobuf")
torch = pytest.importorskip("torch", reason="the caffe extra installs torch")

import caffe_reference  # noqa: E402
from conftest import Run  # noqa: E402
from zoo_caffe import caffe_pb2  # noqa: E402
from zoo_caffe.deploy_net import deploy_net  # noqa: E402
from zoo_caffe.network import CaffeNetwork  # noqa: E402
from zoo_caffe.reader import Net, read_mean, read_net, read_weights  # noqa: E402

ZOO = Path(__file__).parent / "data" / "caffe-zoo"
DEPLOY = Path(__file__).parents[1] / "plugins" / "zoo_caffe" / "deploy"
CAFFENET_TRAIN_VAL = ZOO / "bvlc_reference_caffenet" / "train_val.prototxt"
TOLERANCE = 1e-4


def write_caffemodel(path: Path, net: Net, weights: dict[str, list[np.ndarray]], legacy: bool = False) -> Path:
    """A binary .caffemodel of every layer, with the blobs in `weights`: the current `layer` form, or the V1
    `layers` form with 4-D num/channels/height/width blobs, as the BVLC models of 2014 were saved."""
    path.parent.mkdir(parents=True, exist_ok=True)
    message = caffe_pb2.NetParameter(name=net.name)
    v1_types = {
        "Convolution": "CONVOLUTION",
        "InnerProduct": "INNER_PRODUCT",
        "ReLU": "RELU",
        "LRN": "LRN",
        "Pooling": "POOLING",
        "Dropout": "DROPOUT",
        "Concat": "CONCAT",
        "Softmax": "SOFTMAX",
        "Input": "DATA",
    }
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
    "scale by one learned scalar (num_axes 0)": 'layer { name: "s" type: "Scale" bottom: "data" top: "s" scale_param { num_axes: 0 bias_term: true } }',
    "scale by a second input (SENet's channel weights)": 'layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { pool: AVE global_pooling: true } } layer { name: "f" type: "Flatten" bottom: "p" top: "f" } layer { name: "s" type: "Scale" bottom: "data" bottom: "f" top: "s" scale_param { axis: 0 } }',
    "softmax": 'layer { name: "s" type: "Softmax" bottom: "data" top: "s" }',
    "flatten": 'layer { name: "f" type: "Flatten" bottom: "data" top: "f" flatten_param { axis: 2 } }',
    "reshape": 'layer { name: "r" type: "Reshape" bottom: "data" top: "r" reshape_param { shape { dim: 0 dim: -1 dim: 11 } } }',
    "split": 'layer { name: "s" type: "Split" bottom: "data" top: "a" top: "b" } layer { name: "e" type: "Eltwise" bottom: "a" bottom: "b" top: "e" }',
}


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


@dataclass(frozen=True)
class StandIn:
    """GoogLeNet's deploy definition with random weights (the published ones cannot be downloaded here),
    written as .caffemodel files in both forms, and what the reference computes on one input."""

    x: np.ndarray
    expected: np.ndarray
    legacy: Path  # the V1 `layers` form, as BVLC published GoogLeNet in 2014
    current: Path  # the `layer` form


@pytest.fixture(scope="module")
def googlenet(tmp_path_factory: pytest.TempPathFactory) -> StandIn:
    rng = np.random.default_rng(3)
    folder = tmp_path_factory.mktemp("googlenet")
    net = read_net(DEPLOY / "bvlc_googlenet.prototxt")
    x = (rng.uniform(0, 255, (1, 3, 224, 224)) - 117).astype(np.float32)  # BGR, 0-255, mean taken off
    weights: dict[str, list[np.ndarray]] = {}
    expected = caffe_reference.run_net(net, x, weights, rng)
    legacy = write_caffemodel(folder / "legacy" / "bvlc_googlenet.caffemodel", net, weights, legacy=True)
    current = write_caffemodel(folder / "bvlc_googlenet.caffemodel", net, weights)
    return StandIn(x, expected, legacy, current)


def register(spec: zoo_core.ModelSpec) -> None:
    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    add_to_user_registry(Settings.from_env().home, spec)
    reset_catalogue()


FEATURES_AND_GROUPS = {  # the classifier's input width; stages (runs at one resolution) and the head
    "bvlc_alexnet": (4096, 5),
    "bvlc_reference_caffenet": (4096, 5),
    "bvlc_googlenet": (1024, 6),
    "resnet-50": (2048, 6),  # conv1+pool1, res2, res3, res4, res5+pool5, head
}


@pytest.mark.parametrize(
    ("model", "definition", "legacy"),
    [
        pytest.param("bvlc_alexnet", DEPLOY / "bvlc_alexnet.prototxt", True, marks=pytest.mark.slow),
        pytest.param(
            "bvlc_reference_caffenet", DEPLOY / "bvlc_reference_caffenet.prototxt", False, marks=pytest.mark.slow
        ),
        pytest.param("bvlc_reference_caffenet", CAFFENET_TRAIN_VAL, True, marks=pytest.mark.slow, id="train_val"),
        pytest.param("bvlc_googlenet", DEPLOY / "bvlc_googlenet.prototxt", True, marks=pytest.mark.slow),
        pytest.param("resnet-50", DEPLOY / "resnet-50.prototxt", False, marks=pytest.mark.slow),
    ],
)
def test_real_definitions_match_the_reference(model: str, definition: Path, legacy: bool, tmp_path: Path) -> None:
    """Random weights (the published ones cannot be downloaded here), written as the zoo saved them:
    the BVLC models of 2014 in the V1 `layers` form. A train_val definition is run as its deploy net."""
    rng = np.random.default_rng(7)
    net = deploy_net(read_net(definition))
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

    spec = convert_caffe(definition, tmp_path / "w.caffemodel", tmp_path / "converted")
    backbone = CaffeBackbone(spec, tmp_path / "converted").eval()
    groups = [group.name for group in backbone.layer_groups()]
    assert (backbone.feature_dim, len(groups)) == FEATURES_AND_GROUPS[model] and groups[-1] == "head"
    with torch.no_grad():
        logits = backbone(torch.from_numpy(x)).numpy()  # the classifier's logits: a deploy net's Softmax is left out
    probabilities = found if net.layers[-1].type == "Softmax" else caffe_reference.softmax(found, 1)
    assert np.abs(caffe_reference.softmax(logits, 1) - probabilities).max() <= TOLERANCE


@pytest.mark.slow
def test_convert_googlenet_then_load_and_export(googlenet: StandIn, tmp_path: Path, zoo: Run) -> None:
    """zoo convert caffe → a registered model that loads as a backbone, matches the reference, and exports to
    ONNX with its parity check passed."""
    from zoo_core.export import export_onnx

    deploy = DEPLOY / "bvlc_googlenet.prototxt"
    out_folder = tmp_path / "converted"
    code, out, _ = zoo(
        "convert", "caffe", str(deploy), str(googlenet.legacy), "--out", str(out_folder), "--name", "g.test"
    )
    assert code == 0 and "g.test: 6,998,552 parameters, 1000 classes" in out
    spec = zoo_core.get("g.test")
    assert spec.input.channel_order == "BGR" and spec.input.value_range == (0.0, 255.0)  # type: ignore[union-attr]
    assert spec.input.mean == (104.0, 117.0, 123.0) and spec.input.crop_pct == 224 / 256  # type: ignore[union-attr]
    backbone = zoo_core.load("g.test").eval()
    with torch.no_grad():
        logits = backbone(torch.from_numpy(googlenet.x)).numpy()  # zoo's models give logits: no Softmax
    assert np.abs(caffe_reference.softmax(logits, 1) - googlenet.expected).max() <= TOLERANCE
    assert backbone.feature_dim == 1024 and [g.name for g in backbone.layer_groups()][-1] == "head"
    assert backbone.freeze(all_but_last=2) == ["stage4", "head"]
    report = export_onnx("g.test", tmp_path / "export")
    assert report.tolerance is not None and report.max_abs_diff <= report.tolerance and report.top1_agreement == 1.0

    # Caffe's preprocessing (BGR, 0-255, mean off, 224 of 256) is the same in training and in `zoo predict`
    from PIL import Image

    from zoo_core.compatibility import check
    from zoo_core.runtime import Predictor

    rng = np.random.default_rng(3)
    image = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (260, 300, 3), dtype=np.uint8)).save(image)
    with Image.open(image) as opened, torch.no_grad():
        tensor = check(spec, image).transform(opened)
        assert abs(float(tensor[0].mean()) - (np.asarray(opened)[..., 2].mean() - 104)) < 2  # channel 0 is blue
        probabilities = torch.softmax(backbone(tensor[None]), 1)[0].numpy()
    label, score = Predictor(tmp_path / "export").predict([str(image)], top=1)[0][0]
    assert int(label) == probabilities.argmax() and abs(score - probabilities.max()) <= 1e-3


def test_a_converted_backbone_holds_each_tensor_once_and_drops_stages(googlenet: StandIn, tmp_path: Path) -> None:
    """The classifier is the backbone's head and no longer also a layer of its network: a state dict names
    every tensor once, so safetensors' save_model keeps them all (it drops all but one name of a shared
    tensor, and the run then failed to load: "Missing key(s) in state_dict: ...loss3_classifier.weight")."""
    from safetensors.torch import load_file, save_model
    from zoo_caffe.convert import convert_caffe

    spec = convert_caffe(DEPLOY / "bvlc_googlenet.prototxt", googlenet.current, tmp_path / "converted", "g.once")
    register(spec)
    backbone = zoo_core.load("g.once")
    state = backbone.state_dict()
    storage = [tensor.data_ptr() for tensor in state.values()]
    assert len(set(storage)) == len(storage)
    assert [key for key in state if "loss3_classifier" in key or key.startswith("head.")] == [
        "head.weight",
        "head.bias",
    ]
    save_model(backbone, str(tmp_path / "saved.safetensors"))
    zoo_core.load("g.once").load_state_dict(load_file(tmp_path / "saved.safetensors"))  # strict: nothing missing

    backbone.drop_last(1)  # features from pool4, averaged over space
    assert backbone.feature_dim == 832 and backbone.features(torch.zeros(2, 3, 224, 224)).shape == (2, 832)


def colour_pictures(root: Path, rng: np.random.Generator) -> Path:
    """Six red and six blue pictures, one folder per class."""
    from PIL import Image

    for colour, channel in (("red", 0), ("blue", 2)):
        (root / colour).mkdir(parents=True)
        for index in range(6):
            pixels = rng.integers(0, 80, (48, 48, 3), dtype=np.uint8)
            pixels[..., channel] += 170
            Image.fromarray(pixels).save(root / colour / f"{index}.png")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["features", "finetune"])
def test_a_fine_tuned_converted_net_exports_and_predicts(
    strategy: str, googlenet: StandIn, tmp_path: Path, zoo: Run
) -> None:
    """Red against blue pictures, with GoogLeNet's random-weight stand-in: a new head trained on its frozen
    features, or with its last stage; then `zoo export RUN` (parity with torch proven by onnxruntime) and
    `zoo predict`, which ranks a new picture's classes as the trained torch model does."""
    import json

    from PIL import Image
    from safetensors.torch import load_file
    from zoo_caffe.convert import convert_caffe

    from zoo_core.compatibility import check
    from zoo_core.training.model import TransferModel
    from zoo_core.training.run import FinetuneOptions, finetune

    rng = np.random.default_rng(9)
    spec = convert_caffe(DEPLOY / "bvlc_googlenet.prototxt", googlenet.current, tmp_path / "converted", "g.tune")
    register(spec)
    run, export = tmp_path / "run", tmp_path / "export"
    options = FinetuneOptions(strategy=strategy, unfreeze=1, epochs=2, lr=1e-3, val_split=0.34)
    metrics = finetune("g.tune", colour_pictures(tmp_path / "data", rng), run, options)
    assert len(metrics["transfer"]["runs"][0]["curve"]) == 2 and metrics["classes"] == ["blue", "red"]
    backbone = zoo_core.load("g.tune")
    backbone.reset_head(0)  # as the run did: its own classifier is not in the run
    trained = TransferModel(backbone, torch.nn.Linear(1024, 2)).eval()
    trained.load_state_dict(load_file(run / "model.safetensors"))  # strict: the run holds every tensor it uses

    code, out, err = zoo("export", str(run), "--out", str(export))
    assert code == 0, err
    report = json.loads((export / "export.json").read_text())
    assert report["max_abs_diff"] <= report["tolerance"]
    picture = tmp_path / "new.png"
    pixels = rng.integers(0, 80, (60, 50, 3), dtype=np.uint8)
    pixels[..., 2] += 170
    Image.fromarray(pixels).save(picture)
    with Image.open(picture) as opened, torch.no_grad():
        probabilities = torch.softmax(trained(check(spec, picture).transform(opened)[None]), 1)[0].numpy()
    code, out, err = zoo("predict", str(export), str(picture), "--top", "2", "--json")
    assert code == 0, err
    labels = json.loads(out)[0]["labels"]
    assert [found["label"] for found in labels] == [metrics["classes"][i] for i in np.argsort(-probabilities)]
    assert abs(labels[0]["score"] - probabilities.max()) <= 1e-3


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
    googlenet: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import shutil

    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.settings import Settings

    published = tmp_path / "published"
    published.mkdir()
    model = Path(shutil.copy(googlenet.legacy, published / "bvlc_googlenet.caffemodel"))
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
        logits = backbone(torch.from_numpy(googlenet.x)).numpy()
    assert np.abs(caffe_reference.softmax(logits, 1) - googlenet.expected).max() <= TOLERANCE
    folder = Settings.from_env().home / "converted" / "googlenet.local" / sha1[:16]
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    zoo_core.load("googlenet.local")
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # converted once

    # a conversion cut short (the spec, moved in last, missing) is done again, not loaded half-written
    (folder / "spec.json").unlink()
    (folder / "model.safetensors").write_bytes(b"cut")
    zoo_core.load("googlenet.local")
    assert (folder / "spec.json").is_file() and (folder / "model.safetensors").stat().st_size > 4 * 6_998_552
    # a converted file that no longer fits its definition is one line, not a traceback
    (folder / "model.safetensors").write_bytes(b"cut")
    with pytest.raises(zoo_core.WeightsFormatError, match=r"model\.safetensors: does not fit .*convert it again"):
        zoo_core.load("googlenet.local")

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
    with (tmp_path / "huge.caffemodel").open("wb") as sparse:
        sparse.truncate(2**31)  # 2 GiB of holes: refused by its size, before a byte is read
    with pytest.raises(zoo_core.WeightsFormatError, match="2,147,483,648 bytes, more than the 2 GiB"):
        read_weights(tmp_path / "huge.caffemodel")


def test_the_convert_weights_hook(tmp_path: Path) -> None:
    """A BVLC model folder holds deploy.prototxt, train_val.prototxt and solver.prototxt: deploy is taken."""
    from zoo_core.plugins import convert_weights

    net = net_from_text(LAYERS["inner product (flattens)"], tmp_path)
    weights: dict[str, list[np.ndarray]] = {}
    caffe_reference.run_net(net, np.zeros((2, 5, 13, 11), np.float32), weights, np.random.default_rng(0))
    write_caffemodel(tmp_path / "t.caffemodel", net, weights)
    (tmp_path / "train_val.prototxt").write_text(SMALL_TRAIN_VAL)
    (tmp_path / "solver.prototxt").write_text('net: "train_val.prototxt"\nbase_lr: 0.01\n')
    spec = convert_weights("caffe", tmp_path, tmp_path / "out")
    assert spec.plugin == "caffe" and spec.output.num_classes == 6 and spec.params == 6 * 5 * 13 * 11 + 6
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["deploy.prototxt", "model.safetensors", "spec.json"]
    (tmp_path / "deploy.prototxt").unlink()
    (tmp_path / "other.prototxt").write_text(SMALL_TRAIN_VAL)
    with pytest.raises(zoo_core.WeightsFormatError, match=r"found \['other.prototxt', 'train_val.prototxt', 't.caf"):
        convert_weights("caffe", tmp_path, tmp_path / "out2")


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

    two = caffe_pb2.BlobProto(num=2, channels=3, height=4, width=4)
    two.data.extend([0.0] * 96)
    (tmp_path / "two.binaryproto").write_bytes(two.SerializeToString())
    with pytest.raises(zoo_core.WeightsFormatError, match=r"two.binaryproto: a mean file holds one C x H x W image"):
        read_mean(tmp_path / "two.binaryproto")


# --- train_val definitions -------------------------------------------------------------------------------


def test_bvlc_caffenet_train_val_gives_its_deploy_net() -> None:
    """BVLC's train_val.prototxt (tests/data, as published): the TEST data layer's crop_size gives the input,
    the TRAIN data layer, accuracy and loss go, and what is left is BVLC's deploy.prototxt, layer for layer
    and blob for blob (less the deploy net's closing Softmax, which a train_val net leaves to its loss)."""
    train_val = CaffeNetwork(read_net(CAFFENET_TRAIN_VAL))
    deploy = CaffeNetwork(read_net(DEPLOY / "bvlc_reference_caffenet.prototxt"))
    assert train_val.input_shape == deploy.input_shape == (1, 3, 227, 227)
    assert [*train_val.caffe_names.values(), "prob"] == list(deploy.caffe_names.values())
    assert {key: value.shape for key, value in train_val.state_dict().items()} == {
        key: value.shape for key, value in deploy.state_dict().items()
    }
    assert train_val.net.transform.crop_size == 227 and not train_val.net.transform.mirror  # the TEST phase's


SMALL_TRAIN_VAL = """name: "small"
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
        transform_param { mirror: true crop_size: 9 } }
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST }
        transform_param { mean_value: 104 mean_value: 117 mean_value: 123 scale: 0.0078125 } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "aux" type: "InnerProduct" bottom: "conv" top: "aux" inner_product_param { num_output: 3 } }
layer { name: "aux_loss" type: "SoftmaxWithLoss" bottom: "aux" bottom: "label" top: "aux_loss" loss_weight: 0.3 }
layer { name: "noise" type: "Dropout" bottom: "conv" top: "conv" include { phase: TRAIN } }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc" inner_product_param { num_output: 3 } }
layer { name: "accuracy" type: "Accuracy" bottom: "fc" bottom: "label" top: "accuracy" include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""


def test_a_train_val_without_a_crop_needs_input_shape(tmp_path: Path, zoo: Run) -> None:
    """No crop in the TEST phase: one line that names the file and the option to give; with the option, the
    deploy net (an auxiliary classifier whose loss went, a TRAIN-only layer, data, accuracy and losses left
    out) converts, its spec taking the mean values and scale of the TEST transform, and loads as a backbone
    that computes what the reference computes."""
    definition = tmp_path / "train_val.prototxt"
    definition.write_text(SMALL_TRAIN_VAL)
    net = deploy_net(read_net(definition), (3, 8, 8))
    assert [layer.name for layer in net.layers] == ["conv", "relu", "fc"]
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    weights: dict[str, list[np.ndarray]] = {}
    expected = caffe_reference.run_net(net, x, weights, rng)
    weights["aux"] = [np.zeros((3, 144), np.float32), np.zeros(3, np.float32)]  # a trained net's file holds it too
    model = write_caffemodel(tmp_path / "small.caffemodel", read_net(definition), weights)

    code, out, err = zoo("convert", "caffe", str(definition), str(model), "--out", str(tmp_path / "out"))
    assert code == 1 and err.count("\n") == 1 and not out
    assert f"{definition}: the input blob 'data' has no C,H,W shape" in err and "--input-shape 3,227,227" in err
    assert not (tmp_path / "out").exists()
    code, _, err = zoo(
        "convert", "caffe", str(definition), str(model), "--out", str(tmp_path / "out"), "--input-shape", "3,8,8x"
    )
    assert code == 2 and "'3,8,8x' is not C,H,W; use e.g. 3,227,227" in err

    code, out, err = zoo(
        "convert", "caffe", str(definition), str(model), "--out", str(tmp_path / "out"), "--input-shape", "3,8,8"
    )
    assert code == 0, err
    assert out.startswith(f"small: {4 * 3 * 9 + 4 + 3 * 144 + 3:,} parameters, 3 classes")
    spec = zoo_core.get("small")
    assert spec.input.mean == (104.0, 117.0, 123.0) and spec.input.std == (128.0,) * 3  # type: ignore[union-attr]
    assert (spec.input.height, spec.input.width, spec.input.crop_pct) == (8, 8, 1.0)  # type: ignore[union-attr]
    written = read_net(tmp_path / "out" / "deploy.prototxt")
    assert written.inputs == {"data": (1, 3, 8, 8)} and [layer.name for layer in written.layers] == [
        "conv",
        "relu",
        "fc",
    ]
    backbone = zoo_core.load("small").eval()
    with torch.no_grad():
        logits = backbone(torch.from_numpy(x)).numpy()
    assert np.abs(logits - expected).max() <= TOLERANCE


# --- malformed files and parameters: one line naming the file and the layer, nothing allocated first -------


ABSURD_BLOBS = {  # shape.dim (or the legacy num, channels, height, width) and how many values the blob holds
    "10^12 values claimed": ((10**6, 10**6), 4, False),
    "dimensions whose product overflows int64": ((2**32, 2**32), 0, False),
    "negative dimensions": ((-1, -4), 4, False),
    "a zero dimension": ((0, 5), 0, False),
    "more values than the shape": ((2, 2), 5, False),
    "legacy negative num and channels": ((-1, -1, 2, 2), 4, True),
}


@pytest.mark.parametrize("case", list(ABSURD_BLOBS))
def test_an_absurd_blob_is_one_line_naming_the_file_and_layer(case: str, tmp_path: Path, zoo: Run) -> None:
    shape, count, legacy = ABSURD_BLOBS[case]
    net_from_text(LAYERS["inner product (flattens)"], tmp_path)  # deploy.prototxt: the layer 'f' those blobs are for
    message = caffe_pb2.NetParameter(name="t")
    blob = message.layer.add(name="f", type="InnerProduct").blobs.add()
    if legacy:
        blob.num, blob.channels, blob.height, blob.width = shape
    else:
        blob.shape.dim.extend(shape)
    blob.data.extend([0.5] * count)
    model = tmp_path / "absurd.caffemodel"
    model.write_bytes(message.SerializeToString())
    with pytest.raises(zoo_core.WeightsFormatError, match=rf"{model}: layer 'f' blob 0 declares shape"):
        read_weights(model)
    code, _, err = zoo("convert", "caffe", str(tmp_path / "deploy.prototxt"), str(model), "--out", str(tmp_path / "o"))
    assert code == 1 and err.count("\n") == 1 and f"{model}: layer 'f' blob 0 declares shape {shape}" in err


ABSURD_LAYERS = {  # a layer definition on a (2, 5, 13, 11) input, and the reason given
    "an inner product of 10^12 weights": (
        'layer { name: "f" type: "InnerProduct" bottom: "data" top: "f" inner_product_param { num_output: 1400000000 } }',
        "makes a blob of shape (1400000000, 715): more than the 2,147,483,647 values Caffe allows",
    ),
    "a group that does not divide the channels": (
        'layer { name: "f" type: "Convolution" bottom: "data" top: "f" convolution_param { num_output: 4 kernel_size: 3 group: 2 } }',
        "group 2 must divide the 5 input channels and num_output 4",
    ),
    "no kernel size": (
        'layer { name: "f" type: "Pooling" bottom: "data" top: "f" pooling_param { pool: MAX stride: 2 } }',
        "kernel is 0, must be at least 1",
    ),
    "a stride of 0": (
        'layer { name: "f" type: "Convolution" bottom: "data" top: "f" convolution_param { num_output: 4 kernel_size: 3 stride: 0 } }',
        "stride is 0, must be at least 1",
    ),
    "three kernel sizes for a 2-D convolution": (
        'layer { name: "f" type: "Convolution" bottom: "data" top: "f" convolution_param { num_output: 4 kernel_size: 3 kernel_size: 1 kernel_size: 2 } }',
        "3 values of kernel_size: zoo converts 2-D layers",
    ),
    "a kernel larger than the input": (
        'layer { name: "f" type: "Convolution" bottom: "data" top: "f" convolution_param { num_output: 4 kernel_size: 15 } }',
        "Kernel size can't be greater than actual input size",
    ),
    "an axis out of range": (
        'layer { name: "f" type: "Softmax" bottom: "data" top: "f" softmax_param { axis: 4 } }',
        "axis 4 is out of range for an input of 4 axes",
    ),
    "eltwise inputs of two shapes (Caffe does not broadcast)": (
        'layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { pool: AVE global_pooling: true } } '
        'layer { name: "f" type: "Eltwise" bottom: "data" bottom: "p" top: "f" }',
        "needs two or more inputs of one shape",
    ),
    "eltwise coefficients for fewer inputs": (
        'layer { name: "s" type: "Sigmoid" bottom: "data" top: "s" } '
        'layer { name: "f" type: "Eltwise" bottom: "data" bottom: "s" top: "f" eltwise_param { coeff: 1 } }',
        "1 coeff for 2 inputs",
    ),
    "a reshape to another count": (
        'layer { name: "f" type: "Reshape" bottom: "data" top: "f" reshape_param { shape { dim: 0 dim: 7 } } }',
        "shape '[1, 7]' is invalid for input of size 715",
    ),
    "an unsupported layer": (
        'layer { name: "f" type: "Deconvolution" bottom: "data" top: "f" }',
        "not supported by zoo's Caffe converter",
    ),
}


@pytest.mark.parametrize("case", list(ABSURD_LAYERS))
def test_an_absurd_layer_parameter_is_one_line_naming_the_file_and_layer(case: str, tmp_path: Path) -> None:
    text, reason = ABSURD_LAYERS[case]
    net = net_from_text(text, tmp_path)
    with pytest.raises(zoo_core.WeightsFormatError) as raised:
        CaffeNetwork(net)
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'deploy.prototxt'}: layer 'f' (") and reason in message
    assert "\n" not in message


def test_an_absurd_input_shape_is_refused(tmp_path: Path) -> None:
    net = net_from_text(LAYERS["sigmoid"], tmp_path, shape=(1, 1000, 1000000, 1000000))
    with pytest.raises(zoo_core.WeightsFormatError, match=r"deploy.prototxt: the input blob 'data' has shape"):
        CaffeNetwork(net)


def test_parameters_take_memory_only_once_the_weights_fit(tmp_path: Path) -> None:
    """A definition asking for 71.5 million weights costs nothing until a .caffemodel with as many arrives: a
    file holding 6 is refused without the 286 MB being allocated."""
    text = 'layer { name: "f" type: "InnerProduct" bottom: "data" top: "f" inner_product_param { num_output: 100000 } }'
    network = CaffeNetwork(net_from_text(text, tmp_path))
    assert sum(p.numel() for p in network.parameters()) == 100000 * 715 + 100000
    assert all(tensor.is_meta for tensor in network.state_dict().values())
    weights = {"f": [np.zeros((6, 715), np.float32), np.zeros(6, np.float32)]}  # a 6-class layer's blobs
    with pytest.raises(
        zoo_core.WeightsFormatError,
        match=r"w: layer 'f' blob 'weight' has 4,290 values, the net definition needs \(100000, 715\)",
    ):
        network.load_blobs(weights, "w")
    assert all(tensor.is_meta for tensor in network.state_dict().values())
