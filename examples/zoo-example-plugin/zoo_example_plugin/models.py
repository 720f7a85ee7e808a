"""The plugin's catalogue: two registry entries, returned by `register_models` as mappings.

Each entry has the shape of a registry file's ``[[model]]`` table (docs/registry.md); zoo validates each
one on its own, so a mistake in one entry skips that entry with a warning naming the plugin, the entry and
the field, and the other entry still loads. The weights are files of this distribution (a ``package``
source): pip installs them with the plugin, and zoo copies each into its cache only after checking the
sha256 pinned here. `make_weights.py` writes them and prints these digests.
"""

from __future__ import annotations

from typing import Any

PLUGIN = "example"  # the entry-point name in pyproject.toml: what an entry's `plugin` field names
DISTRIBUTION = "zoo-example-plugin"
WEIGHTS = "zoo_example_plugin/weights/{arch}.safetensors"  # as the distribution's RECORD lists the file
SHA256 = {
    "digits_cnn_small": "ef203ee9c511306a5ca96ba807cb770602d95db3343be682adb8afa58be43ab5",
    "digits_cnn_wide": "9ab4ad977dccad770c00a37defd2f9a423c78a465ceeb0bdfff697295ed9549f",
}


def _entry(name: str, arch: str, description: str, params: int, feature_dim: int, *aliases: str) -> dict[str, Any]:
    weights = WEIGHTS.format(arch=arch)
    return {
        "name": name,
        "aliases": list(aliases),
        "plugin": PLUGIN,
        "arch": arch,
        "family": "digits_cnn",
        "task": "image-classification",
        "modality": "image",
        "license": "mit",
        "tags": ["digits", "example", "offline"],
        "description": f"{description}, trained on digits 0-4 of scikit-learn's 8x8 digits; weights in the wheel",
        "params": params,
        "source": {"package": DISTRIBUTION, "files": [weights]},
        "sha256": {weights: SHA256[arch]},
        # scikit-learn's digits: 8x8, light ink on a dark ground, 0-16 ink levels saved as 0-255 grey
        "input": {"channels": 1, "height": 8, "width": 8, "mean": [0.5], "std": [0.5], "crop_pct": 1.0},
        "output": {"num_classes": 5, "feature_dim": feature_dim},  # digits 0-4
    }


ENTRIES = [
    _entry("digits_cnn.small", "digits_cnn_small", "A small CNN", 6053, 32, "digits_cnn"),
    _entry("digits_cnn.wide", "digits_cnn_wide", "A wider CNN", 13397, 48),
]
