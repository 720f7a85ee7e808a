"""The core alone (`pip install -e .`): fast commands work, the others say which extra to install.

The light install is imitated in a fresh interpreter whose import system refuses every module the extras
bring (torch, numpy, Pillow, protobuf's ``google`` package, …), as if they were not installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

VISION, TEXT, TRAIN = (
    ("torch", "torchvision", "timm", "safetensors", "PIL"),
    ("transformers", "tokenizers"),
    ("sklearn",),
)
EXTRAS_MODULES = (*VISION, *TEXT, *TRAIN, "matplotlib", "scipy", "numpy", "onnx", "onnxruntime", "onnxscript", "google")
LIGHT = f"""
import importlib.abc, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EXTRAS_MODULES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, NotInstalled())
from zoo_core.cli import main
main(sys.argv[1:])
"""


def light_zoo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", LIGHT, *args], capture_output=True, text=True, timeout=120)


def test_plugins_lists_every_plugin_as_unavailable_with_its_extra() -> None:
    result = light_zoo("plugins")
    assert result.returncode == 0, result.stderr
    assert (
        "caffe: unavailable: missing torch, google.protobuf, safetensors — fix: pip install 'zoo-tl[caffe]'"
        in result.stdout
    )
    assert "timm: unavailable" in result.stdout and "pip install 'zoo-tl[vision]'" in result.stdout


@pytest.mark.parametrize(
    ("args", "needs"),
    [
        (["check", "resnet18", "DATA"], "zoo check needs PIL, which is not installed: pip install 'zoo-tl[vision]'"),
        (["doctor"], "zoo doctor needs onnxruntime, which is not installed: pip install 'zoo-tl[onnx]'"),
        (["quickstart"], "zoo quickstart needs numpy, which is not installed: pip install 'zoo-tl[all]'"),
        (
            ["finetune", "resnet18", "DATA", "--out", "RUN"],
            "zoo finetune needs numpy, which is not installed: pip install 'zoo-tl[train]'",
        ),
        (
            ["export", "resnet18", "--out", "OUT"],
            "zoo export needs torch, which is not installed: pip install 'zoo-tl[vision,onnx]'",
        ),
    ],
)
def test_a_command_that_needs_an_extra_names_it(tmp_path: Path, args: list[str], needs: str) -> None:
    (tmp_path / "data" / "cat").mkdir(parents=True)
    (tmp_path / "data" / "cat" / "a.png").write_bytes(b"not decoded: the check stops before")
    paths = {"DATA": str(tmp_path / "data"), "RUN": str(tmp_path / "run"), "OUT": str(tmp_path / "out")}
    result = light_zoo(*(paths.get(arg, arg) for arg in args))
    assert result.returncode == 1 and result.stderr == f"Error: {needs}\n", result.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "out").exists()
