"""`zoo search/list/info/plugins` never import torch, timm, transformers or onnxruntime."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "timm", "transformers", "onnxruntime", "torchvision", "safetensors", "numpy")
PROBE = """
import json, sys
from zoo_core.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(%r)))
print("\\nLOADED " + json.dumps({"code": code, "heavy": loaded}), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args", [["search", "resnet"], ["list", "--family", "vgg"], ["info", "bert-base-uncased"], ["plugins"]]
)
def test_fast_commands_import_nothing_heavy(args: list[str]) -> None:
    probe = PROBE % json.dumps(HEAVY)
    result = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True)
    report = json.loads(result.stderr.rsplit("LOADED ", 1)[1])
    assert report == {"code": 0, "heavy": []}, result.stderr
    assert result.stdout.startswith("NAME") or args[0] == "info"


def test_the_probe_would_see_a_heavy_import() -> None:
    """Guards the test above: the same probe reports a module that was imported."""
    probe = "import numpy\n" + PROBE % json.dumps(HEAVY)
    result = subprocess.run([sys.executable, "-c", probe, "plugins"], capture_output=True, text=True, check=True)
    assert json.loads(result.stderr.rsplit("LOADED ", 1)[1])["heavy"] == ["numpy"]
