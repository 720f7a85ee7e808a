"""Caffe Model Zoo nets: zoo's one-time conversion of a .caffemodel, and what it buys on every later load.

For the deploy definitions zoo ships (AlexNet, GoogLeNet, ResNet-50), a .caffemodel of random weights (the
published ones cannot be downloaded here; speed does not depend on the values) is written in Caffe's binary
format, then timed: the one-time conversion (protobuf parse, net build, safetensors write), and, side by
side in one run, a load of the converted model as a backbone against building the same net straight from
the .caffemodel (parse and copy the blobs), which a converter without a cache would redo on every load.

    python bench/bench_caffe.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from timing import median_seconds

DEPLOY = Path(__file__).resolve().parents[1] / "plugins" / "zoo_caffe" / "deploy"


def write_random_caffemodel(network: object, path: Path) -> None:
    """Every parameter blob of `network` (a CaffeNetwork) as random values, in Caffe's `layer` form."""
    from zoo_caffe import caffe_pb2

    message = caffe_pb2.NetParameter()
    rng = np.random.default_rng(0)
    for key, module in network.layers.items():  # type: ignore[attr-defined]
        names = [name for name in getattr(module, "blob_names", ()) if getattr(module, name, None) is not None]
        if not names:
            continue
        layer = message.layer.add(name=network.caffe_names[key], type=network.caffe_types[key])  # type: ignore[attr-defined]
        shapes = [tuple(getattr(module, name).shape) for name in names]
        if layer.type == "BatchNorm":
            shapes.append((1,))
        for shape in shapes:
            blob = layer.blobs.add()
            blob.shape.dim.extend(shape)
            blob.data.extend(rng.standard_normal(int(np.prod(shape)), dtype=np.float32).tolist())
    path.write_bytes(message.SerializeToString())


def main() -> None:
    from zoo_caffe.backbone import CaffeBackbone
    from zoo_caffe.convert import convert_caffe
    from zoo_caffe.network import CaffeNetwork
    from zoo_caffe.reader import read_net, read_weights

    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as folder:
        os.environ["ZOO_HOME"] = str(Path(folder) / "home")
        for model in ("bvlc_alexnet", "bvlc_googlenet", "resnet-50"):
            deploy = DEPLOY / f"{model}.prototxt"
            caffemodel = Path(folder) / f"{model}.caffemodel"
            write_random_caffemodel(CaffeNetwork(read_net(deploy)), caffemodel)
            start = time.perf_counter()
            spec = convert_caffe(deploy, caffemodel, Path(folder) / model, model)
            convert = time.perf_counter() - start

            def from_caffemodel(deploy: Path = deploy, caffemodel: Path = caffemodel) -> None:
                CaffeNetwork(read_net(deploy)).load_blobs(read_weights(caffemodel), caffemodel.name)

            direct = median_seconds(from_caffemodel, 3)
            load = median_seconds(lambda spec=spec, model=model: CaffeBackbone(spec, Path(folder) / model), 3)
            size = caffemodel.stat().st_size / 1e6
            print(
                f"{model:<15} {size:5.0f} MB: convert {convert:5.2f} s once; then load {load:5.2f} s "
                f"vs {direct:5.2f} s from the .caffemodel ({direct / load:.2f}x)"
            )


if __name__ == "__main__":
    main()
