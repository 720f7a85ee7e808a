"""zoo's own check of a user's data (zoo_core/input_check.py), whichever plugin builds the model.

Images, texts and word-vector datasets are checked by the core; a plugin's `check_input` findings come
after zoo's in the report. The image check works with the timm plugin disabled, and the word-vector
plugin's modules import each other one way only.
"""

from __future__ import annotations

import ast
import dataclasses
import graphlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import Run
from test_wordvec import spec_for

import zoo_core
from zoo_core.catalogue_sources import reset_catalogue
from zoo_core.plugins import reset_plugin_manager

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


def write_images(root: Path) -> Path:
    """Two classes of five 320x240 RGB noise images, a size every ImageNet model takes as it is."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for index in range(5):
            pixels = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{index}.png")
    return root


IMAGE_FINDINGS = [
    ("channels", "ok", "all images are RGB"),
    ("classes", "ok", "2 classes, 5-5 images each"),
]


@pytest.mark.parametrize(
    ("name", "size", "layout"),
    [
        ("alexnet.tv_in1k", "the model sees 224x224", "Normalize"),  # the torchvision plugin's
        ("caffenet.bvlc_in1k", "the model sees 227x227", "CaffeLayout(bgr=True, scale=255.0)"),  # Caffe's
    ],
)
def test_the_image_check_works_with_the_timm_plugin_disabled(
    name: str, size: str, layout: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo: Run
) -> None:
    pytest.importorskip("torchvision", reason="the dev extra installs torchvision")
    folder = write_images(tmp_path / "photos")
    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", "timm")
    reset_plugin_manager()
    reset_catalogue()
    assert "resnet18" not in zoo_core.load_catalogue()  # timm's catalogue is gone: the plugin is off
    code, out, err = zoo("check", name, str(folder), "--json")
    assert code == 0, err
    report = json.loads(out)
    found = {(f["check"], f["level"], f["message"]) for f in report["findings"]}
    assert set(IMAGE_FINDINGS) <= found and report["usable"]
    assert size in next(f["message"] for f in report["findings"] if f["check"] == "image-size")
    assert "Prepare(RGB" in report["transform"] and layout in report["transform"]
    python = zoo_core.check(name, folder, domain=True)  # the Python API gives the same report
    assert [dataclasses.asdict(f) for f in python.findings] == report["findings"]


def test_the_core_check_alone_by_modality(tmp_path: Path) -> None:
    """`check_data` is what every model of a modality gets, before any plugin adds to it."""
    from zoo_core.input_check import check_data

    pytest.importorskip("torchvision", reason="the dev extra installs torchvision")
    images = check_data(zoo_core.get("alexnet"), write_images(tmp_path / "photos"))
    assert [f.check for f in images.findings] == ["channels", "image-size", "aspect-ratio", "classes"]
    assert repr(images.transform).startswith("Compose(")
    batch = check_data(zoo_core.get("alexnet"), np.zeros((2, 3, 224, 224), dtype=np.float32))
    assert [f.check for f in batch.findings] == ["channels", "image-size", "aspect-ratio", "values"]
    assert batch.transform is not None
    texts = tmp_path / "texts.csv"
    texts.write_text("text,label\nThe film was great,pos\nA dull film,neg\n,neg\n")
    found = [(f.check, f.level, f.message) for f in check_data(zoo_core.get("bert-base-uncased"), texts).findings]
    assert found == [
        ("rows", "warn", "1 of 3 rows are empty"),
        ("labels", "ok", "2 labels, 1-2 texts each"),
        ("casing", "ok", "29% of words capitalised; the model is uncased"),
        ("script", "ok", "100% of letters are Latin"),
    ]
    embedding = check_data(zoo_core.get("glove-6B-50d"), texts)
    assert [f.check for f in embedding.findings] == ["rows", "labels"] and embedding.transform is None


def test_a_missing_path_is_one_line_naming_it(tmp_path: Path) -> None:
    from zoo_core.input_check import check_data

    with pytest.raises(zoo_core.DataError, match=r"^\S+/gone: no such file or folder; check the path to your data$"):
        check_data(zoo_core.get("alexnet"), tmp_path / "gone")


def test_the_text_report_has_zoos_findings_then_the_tokenizers(minilm: zoo_core.ModelSpec, tmp_path: Path) -> None:
    pytest.importorskip("transformers", reason="the dev extra installs transformers")
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\nThe film was great,pos\nA dull film,neg\nAnother fine film,pos\n")
    report = zoo_core.check("minilm", data)
    assert [f.check for f in report.findings] == ["rows", "labels", "casing", "script", "length", "unk"]
    assert [f.level for f in report.findings] == ["ok"] * 6
    assert report.findings[-1].message == "0.00% of tokens are [UNK]"


def write_vectors(path: Path) -> zoo_core.ModelSpec:
    """A four-word GloVe text file of 3-d vectors, and a spec that reads it."""
    path.write_text("the 0.1 0.2 0.3\nfilm 0.4 0.5 0.6\nwas 0.7 0.8 0.9\ngreat 1.0 1.1 1.2\n")
    return spec_for(path, dim=3)


OOV = "12.5% of tokens and 20.0% of distinct words are out of the vocabulary; most frequent unknown: dull (1)"


def test_the_word_vector_report_has_zoos_findings_then_the_vocabularys(tmp_path: Path) -> None:
    spec = write_vectors(tmp_path / "four.txt")
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\nthe film was great,pos\nthe film was dull,neg\n")
    found = [(f.check, f.level, f.message) for f in zoo_core.check(spec, data).findings]
    assert found == [
        ("rows", "ok", "2 texts"),
        ("labels", "ok", "2 labels, 1-1 texts each"),
        ("oov", "warn", OOV),
    ]


def test_rows_without_a_label_are_counted_not_taken_for_a_label(tmp_path: Path) -> None:
    """A blank label is no class: the check says training leaves those rows out, as `load_dataset` does."""
    spec = write_vectors(tmp_path / "four.txt")
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\nthe film was great,pos\nthe film was dull,neg\nthe film,\nthe was, \n")
    found = [(f.check, f.level, f.message, f.fix) for f in zoo_core.check(spec, data).findings[:3]]
    assert found == [
        ("rows", "ok", "4 texts", None),
        ("labels", "warn", "2 rows have no label", "training leaves them out"),
        ("labels", "ok", "2 labels, 1-1 texts each", None),
    ]


def test_a_file_whose_every_label_is_blank_is_an_error_as_in_training(tmp_path: Path) -> None:
    spec = write_vectors(tmp_path / "four.txt")
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\nthe film,\nthe was,\n")
    found = [(f.check, f.level, f.message) for f in zoo_core.check(spec, data).findings[:3]]
    assert found == [
        ("rows", "ok", "2 texts"),
        ("labels", "warn", "2 rows have no label"),
        ("labels", "error", "no row has a label"),
    ]


def test_texts_given_as_a_generator_reach_the_plugins_too(tmp_path: Path) -> None:
    """zoo's own check reads the texts first: the word-vector plugin after it must still see every one."""
    spec = write_vectors(tmp_path / "four.txt")
    found = {f.check: f.message for f in zoo_core.check(spec, (text for text in ["the film was dull"])).findings}
    assert found["rows"] == "1 texts" and found["oov"].startswith("25.0% of tokens")


def _imports(path: Path, package: str) -> set[str]:
    """The `package` modules a file imports, at its top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith(package)}
    return found


def test_the_word_vector_modules_import_each_other_one_way() -> None:
    folder = PLUGINS / "zoo_wordvec"
    graph = {f"zoo_wordvec.{path.stem}": _imports(path, "zoo_wordvec.") for path in folder.glob("*.py")}
    assert graph["zoo_wordvec.check"] >= {"zoo_wordvec.vectors"}  # the edge that used to be half of a cycle
    list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError naming a cycle


def test_embedding_texts_needs_no_check_module() -> None:
    """In a fresh interpreter: the vectors embed texts without importing the plugin's check."""
    probe = (
        "import sys, numpy as np\n"
        "from zoo_wordvec.vectors import WordVectors\n"
        "WordVectors(['a'], np.ones((1, 2), np.float32)).embed(['a b'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('zoo_wordvec')))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['zoo_wordvec', 'zoo_wordvec.readers', 'zoo_wordvec.vectors']"


def test_the_core_check_imports_nothing_heavy() -> None:
    probe = "import sys, zoo_core.input_check\nprint(sorted({m.split('.')[0] for m in sys.modules} & %r))"
    heavy = {"torch", "torchvision", "timm", "transformers", "PIL", "numpy"}
    result = subprocess.run([sys.executable, "-c", probe % heavy], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stderr
