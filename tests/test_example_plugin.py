"""The example third-party plugin, pip-installed into a fresh venv, is found by `zoo`."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "zoo-example-plugin"


def _run(*command: str | Path) -> str:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_example_plugin_installs_and_its_models_are_found(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    # The new venv sees this environment's packages (zoo itself, hatchling) through a .pth file, so the
    # test needs no network; the example is then installed into the new venv by a real pip.
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (site / "zoo_test_parent.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    _run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation", EXAMPLE)
    assert "zoo_example_plugin.py" in _run(python, "-m", "pip", "show", "--files", "zoo-example-plugin")

    models = json.loads(_run(python, "-m", "zoo_core", "list", "--plugin", "example", "--json"))
    assert [model["name"] for model in models] == ["digits_cnn.small", "digits_cnn.wide"]
    plugins = {row["name"]: row for row in json.loads(_run(python, "-m", "zoo_core", "plugins", "--json"))}
    assert plugins["example"]["distribution"] == "zoo-example-plugin" and plugins["example"]["version"] == "0.1.0"
    assert plugins["example"]["state"] == "ok" and plugins["example"]["families"] == {"digits_cnn": 2}
    assert _run(python, "-m", "zoo_core", "example-hello") == "hello from zoo-example-plugin\n"
    assert (
        _run(python, "-m", "zoo_core", "search", "digits", "--limit", "1")
        .splitlines()[1]
        .startswith("digits_cnn.small")
    )
