"""The example plugin, pip-installed into a fresh venv beside a plugin that raises in every hook.

Through zoo's own CLI in that venv it goes through the whole job: search, info, download (verified), load,
check, finetune (features, and fine-tuning), export and predict; its own tests pass there with zoo's
fixtures; `zoo plugins` names the broken plugin and the hooks it failed in, and the broken plugin changes
none of the answers. The example's weights are shipped in its wheel; they were developed in this repository
(examples/zoo-example-plugin/make_weights.py, on the source split of scikit-learn's digits), not
third-party weights. The data is zoo's digits demo: the network learnt digits 0-4 and adapts to 5-9.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from zoo_core.images import image_files
from zoo_core.training.digits import DigitFolders, write_digits

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "zoo-example-plugin"
BROKEN = ROOT / "tests" / "plugins" / "zoo-broken-plugin"
README = EXAMPLE / "README.md"
WEIGHTS = "zoo_example_plugin/weights/digits_cnn_small.safetensors"
FLOAT_NOISE = re.compile(r"\d\.\de-\d\d")  # export parity's max |diff|: this machine's rounding
HOOK_FAILURE = re.compile(r"(\w+) raised RuntimeError: zoo-broken-plugin fails in \1 on purpose")


@dataclass(frozen=True)
class Venv:
    """A fresh venv that sees this environment's packages (zoo, torch, hatchling) through a .pth file, so
    nothing needs the network, with the two plugins installed into it by a real pip; zoo's home is its own."""

    python: Path
    env: dict[str, str]

    def run(
        self, *command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`python COMMAND` in the venv with `env` added, from `cwd` (default ZOO_HOME: not the repository,
        so that the installed plugin is the one imported); exit 0 asserted."""
        done = subprocess.run(
            [str(self.python), *map(str, command)],
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            cwd=cwd or self.env["ZOO_HOME"],
        )
        assert done.returncode == 0, (command, done.returncode, done.stdout, done.stderr)
        return done

    def zoo(self, *arguments: str | Path, **env: str) -> str:
        return self.run("-m", "zoo_core", *arguments, env=env).stdout

    def zoo_json(self, *arguments: str | Path) -> Any:
        return json.loads(self.zoo(*arguments, "--json"))


def _plain(*command: str | Path) -> str:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    folder = tmp_path_factory.mktemp("plugins")
    _plain(sys.executable, "-m", "venv", folder / "venv")
    python = folder / "venv" / "bin" / "python"
    site = Path(_plain(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (site / "zoo_test_parent.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    _plain(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation", EXAMPLE, BROKEN)
    (folder / "home").mkdir()
    switches = ("ZOO_REGISTRY", "ZOO_DISABLE_PLUGIN_AUTOLOAD", "ZOO_DISABLE_PLUGINS", "ZOO_TRACE_PLUGINS")
    env = {key: value for key, value in os.environ.items() if key not in switches}
    env |= {"ZOO_HOME": str(folder / "home"), "HF_HOME": str(folder / "hf"), "HF_HUB_OFFLINE": "1"}
    env |= {"PYTHONDONTWRITEBYTECODE": "1"}  # the example's own tests run from the repository: leave no .pyc there
    return Venv(python, env)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> DigitFolders:
    """zoo's digits demo in WORK/digits: the README's commands run in WORK, naming digits/… and runs/…"""
    return write_digits(tmp_path_factory.mktemp("work") / "digits")


def _readme() -> dict[str, list[str]]:
    """Each `$ zoo …` command of the example's README, and the lines the README shows it printing."""
    shown: dict[str, list[str]] = {}
    command = None
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("$ zoo "):
            command = line.removeprefix("$ ")
            shown[command] = []
        elif line.startswith(("$ ", "```")):
            command = None
        elif command is not None:
            shown[command].append(line)
    return shown


def _printed(venv: Venv, command: str, cwd: Path) -> list[str]:
    """What `command` prints, as a terminal shows these commands: stderr's lines first (less the broken
    plugin's warnings: the README's venv has no broken plugin), then stdout's."""
    done = venv.run("-m", "zoo_core", *shlex.split(command)[1:], cwd=cwd)
    stderr = [line for line in done.stderr.splitlines() if not line.startswith("zoo: warning: plugin 'broken'")]
    return stderr + done.stdout.splitlines()


def test_the_weights_are_in_the_installed_wheel_as_pinned(venv: Venv) -> None:
    listed = venv.run("-m", "pip", "show", "--files", "zoo-example-plugin").stdout
    assert f"  {WEIGHTS}\n" in listed and "zoo_example_plugin/__init__.py" in listed
    site = venv.run("-c", "import zoo_example_plugin, pathlib; print(pathlib.Path(zoo_example_plugin.__file__).parent)")
    installed = Path(site.stdout.strip()).parent / WEIGHTS
    assert not installed.is_relative_to(EXAMPLE)  # the venv's copy, not the repository's
    pinned = venv.zoo_json("info", "digits_cnn.small")["sha256"][WEIGHTS]
    assert hashlib.sha256(installed.read_bytes()).hexdigest() == pinned


def test_search_info_download_and_load(venv: Venv) -> None:
    assert venv.zoo("search", "digits").splitlines() == _readme()["zoo search digits"]
    info = venv.zoo_json("info", "digits_cnn")  # the alias
    assert info["name"] == "digits_cnn.small" and info["plugin"] == "example"
    assert info["source"]["package"] == "zoo-example-plugin"
    record = venv.zoo_json("download", "digits_cnn.small")
    assert record["source"] == "package" and [file["verified_by"] for file in record["files"]] == ["registry sha256"]
    assert Path(record["files"][0]["path"]).is_relative_to(venv.env["ZOO_HOME"])
    loaded = venv.run(
        "-c",
        "import torch, zoo_core; b = zoo_core.load('digits_cnn'); "
        "print(tuple(b(torch.zeros(2, 1, 8, 8)).shape), b.feature_dim, b.training, type(b).__name__)",
    )
    assert loaded.stdout == "(2, 5) 32 False DigitsCNN\n"
    assert venv.zoo("example-hello") == "hello from zoo-example-plugin\n"


def test_check_gives_zoos_findings_then_the_plugins(venv: Venv, digits: DigitFolders) -> None:
    report = venv.zoo_json("check", "digits_cnn", digits.train)
    checks = [finding["check"] for finding in report["findings"]]
    assert report["usable"] and checks == ["channels", "image-size", "aspect-ratio", "classes", "ink", "domain"]
    assert report["findings"][-2]["message"] == "50 of 50 images are light ink on a dark ground"


def _accuracy(predictions: list[dict[str, Any]]) -> float:
    right = [Path(row["input"]).parent.name == str(row["labels"][0]["label"]) for row in predictions]
    return sum(right) / len(right)


def test_the_readmes_finetune_export_and_predict_print_what_it_shows(venv: Venv, digits: DigitFolders) -> None:
    work = digits.train.parent.parent
    readme = _readme()
    commands = [command for command in readme if command.startswith(("zoo finetune", "zoo export", "zoo predict"))]
    assert [command.split()[1] for command in commands] == ["finetune", "finetune", "export", "predict"]
    for command in commands:  # features, then fine-tuning; the fine-tuned run exported; predictions from it
        shown = [FLOAT_NOISE.sub("…", line) for line in _printed(venv, command, work)]
        assert shown == [FLOAT_NOISE.sub("…", line) for line in readme[command]], command
    for run in ("features", "finetune"):
        metrics = json.loads((work / "runs" / run / "metrics.json").read_text())
        assert metrics["test"]["accuracy"] > 0.6  # chance is 20%: the digits 0-4 features carry over to 5-9
        manifest = json.loads((work / "runs" / run / "manifest.json").read_text())
        assert [(p["name"], p["distribution"], "build_backbone" in p["hooks"]) for p in manifest["plugins"]] == [
            ("example", "zoo-example-plugin", True)
        ]  # the broken plugin answered nothing that was used
    tests = image_files(digits.test)
    predictions = venv.zoo_json("predict", work / "exported" / "finetune", *tests)
    assert [row["input"] for row in predictions] == [str(path) for path in tests]
    tested = json.loads((work / "runs" / "finetune" / "metrics.json").read_text())["test"]["accuracy"]
    assert abs(_accuracy(predictions) - tested) <= 1 / len(tests)  # onnxruntime answers as the run measured


def test_the_plugins_own_tests_pass_in_the_venv(venv: Venv) -> None:
    done = venv.run("-m", "pytest", "-q", "-p", "no:cacheprovider", EXAMPLE / "tests")
    assert re.search(r"^7 passed", done.stdout, re.MULTILINE), done.stdout


def test_zoo_plugins_names_the_broken_plugin_which_changes_no_answer(venv: Venv, digits: DigitFolders) -> None:
    commands = [("search", "digits"), ("info", "digits_cnn"), ("check", "digits_cnn", digits.train)]
    for command in commands:
        assert venv.zoo(*command) == venv.zoo(*command, ZOO_DISABLE_PLUGINS="broken")
    checked = venv.run("-m", "zoo_core", "check", "digits_cnn", digits.train)
    assert "plugin 'broken'" in checked.stderr and "check_input raised RuntimeError" in checked.stderr
    loaded = venv.run("-c", "import zoo_core; print(type(zoo_core.load('digits_cnn')).__name__)")
    assert loaded.stdout == "DigitsCNN\n" and "build_backbone raised RuntimeError" in loaded.stderr
    plugins = {row["name"]: row for row in venv.zoo_json("plugins")}
    assert plugins["example"]["state"] == "ok" and plugins["example"]["families"] == {"digits_cnn": 2}
    broken = plugins["broken"]
    assert (broken["state"], broken["distribution"]) == ("error", "zoo-broken-plugin")
    hooks = {match.group(1) for match in HOOK_FAILURE.finditer(broken["reason"])}
    assert {"plugin_requirements", "register_models", "register_commands", "check_input", "build_backbone"} <= hooks
