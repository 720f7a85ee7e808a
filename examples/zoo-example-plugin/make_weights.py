"""Train the weights this plugin ships: each digits_cnn arch on the *source* split of scikit-learn's digits.

    python make_weights.py        # from this folder, with zoo-tl[train] installed

`zoo_core.training.digits.write_digits` splits the 1,797 digits into a source task (digits 0-4, every image)
and a target task (digits 5-9), so fine-tuning these weights on the target split is real transfer: the
network has never seen a 5. The weights were developed here, with this script; they are not third-party
weights. Each network trains on 80% of the source images, seeded (same torch, same file); the held-out 20%
gives the accuracy printed. The script prints each file's sha256, which `zoo_example_plugin/models.py`
pins: paste them there after retraining. The files carry no metadata: safetensors writes metadata in no
fixed order, so a file with two keys could differ byte for byte between two runs, and with it its sha256.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from zoo_example_plugin.backbone import DigitsCNN
from zoo_example_plugin.models import ENTRIES

from zoo_core.images import decode, labelled_images, normalised
from zoo_core.registry import parse_spec
from zoo_core.specs import ImageInput, ModelSpec
from zoo_core.training.digits import write_digits

HERE = Path(__file__).resolve().parent
EPOCHS, BATCH, LR, SEED = 30, 64, 3e-3, 0


def _source_images(spec: ModelSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The source split (digits 0-4) as the network's input, and its labels."""
    assert isinstance(spec.input, ImageInput)
    with tempfile.TemporaryDirectory() as folder:
        pairs = labelled_images(write_digits(Path(folder)).source)
        pixels = np.stack([normalised(decode(path), spec.input) for path, _ in pairs])
    return torch.from_numpy(pixels), torch.tensor([int(label) for _, label in pairs])


def train(spec: ModelSpec, images: torch.Tensor, labels: torch.Tensor) -> tuple[DigitsCNN, float]:
    """The network trained on 80% of the images, and its accuracy on the other 20%."""
    torch.manual_seed(SEED)
    order = torch.randperm(len(labels))
    held, kept = order[: len(order) // 5], order[len(order) // 5 :]
    network = DigitsCNN(spec, None)
    optimiser = torch.optim.Adam(network.parameters(), lr=LR)
    network.train()
    for _ in range(EPOCHS):
        for batch in torch.split(kept[torch.randperm(len(kept))], BATCH):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(network(images[batch]), labels[batch])
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
    network.eval()
    with torch.no_grad():
        accuracy = float((network(images[held]).argmax(dim=1) == labels[held]).float().mean())
    return network, accuracy


def main() -> None:
    torch.set_num_threads(1)  # one thread: the same sums in the same order, the same file
    torch.use_deterministic_algorithms(True)
    for entry in ENTRIES:
        spec = parse_spec(entry, "make_weights.py")
        images, labels = _source_images(spec)
        network, accuracy = train(spec, images, labels)
        target = HERE / spec.source.files[0]
        partial = target.with_name(target.name + ".incomplete")  # never a half-written weights file
        save_file({key: value.contiguous() for key, value in network.state_dict().items()}, str(partial))
        partial.replace(target)
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        print(
            f"{spec.arch}: {sum(p.numel() for p in network.parameters())} parameters, held-out source "
            f"accuracy {accuracy:.1%} ({len(labels) // 5} images), {target.stat().st_size} bytes, sha256 {digest}"
        )


if __name__ == "__main__":
    main()
