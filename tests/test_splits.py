"""Three disjoint splits: training, validation (model selection) and test (reported once)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from zoo_core.errors import DataError, RunOptionError
from zoo_core.training.splits import read_splits, three_splits, write_splits


def _images(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """An image folder: `counts[name]` random 8x8 RGB images in each class subfolder."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for index in range(count):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / name / f"{index}.png")
    return root


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_shares_are_disjoint_stratified_and_follow_the_seed(tmp_path: Path, seed: int) -> None:
    data = _images(tmp_path / "data", {"a": 20, "b": 10})
    splits = three_splits(data, "image", val=None, test=None, val_split=0.2, test_split=0.3, seed=seed)
    parts = [set(part.items) for part in splits]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert len(parts[0] | parts[1] | parts[2]) == 30
    # shares of each class of the whole dataset: test 30% (6 and 3), validation 20% (4 and 2)
    assert Counter(splits.test.labels) == {0: 6, 1: 3} and Counter(splits.val.labels) == {0: 4, 1: 2}
    again = three_splits(data, "image", val=None, test=None, val_split=0.2, test_split=0.3, seed=seed)
    assert again == splits
    other = three_splits(data, "image", val=None, test=None, val_split=0.2, test_split=0.3, seed=seed + 10)
    assert other.test.items != splits.test.items


def test_given_folders_are_used_whole_and_must_not_share_files(tmp_path: Path) -> None:
    data = _images(tmp_path / "data", {"a": 6, "b": 6})
    test = _images(tmp_path / "test", {"a": 3, "b": 3}, seed=1)
    splits = three_splits(data, "image", val=None, test=test, val_split=0.5, test_split=0.2, seed=0)
    assert len(splits.test.items) == 6 and len(splits.val.items) == 6 and len(splits.train.items) == 6
    with pytest.raises(RunOptionError, match=r"--test .*/data is also DATA: each split needs its own data"):
        three_splits(data, "image", val=None, test=data, val_split=0.2, test_split=0.2, seed=0)
    shutil.copytree(data / "a", tmp_path / "val" / "a")  # every validation image is also a training image
    shutil.copytree(test / "b", tmp_path / "val" / "b")  # and some are test images
    with pytest.raises(
        DataError,
        match=r"\(the same as '.*/data/a/.*'\) is in both the train and the val split: the splits must be disjoint",
    ):
        three_splits(data, "image", val=tmp_path / "val", test=test, val_split=0.2, test_split=0.2, seed=0)
    shutil.rmtree(tmp_path / "val" / "a")
    with pytest.raises(
        DataError, match=r"test/b/0.png' \(the same as '.*/val/b/0.png'\) is in both the val and the test"
    ):
        three_splits(data, "image", val=tmp_path / "val", test=test, val_split=0.2, test_split=0.2, seed=0)


def test_a_class_too_small_for_three_splits_is_one_line(tmp_path: Path) -> None:
    data = _images(tmp_path / "data", {"a": 2, "b": 5})
    with pytest.raises(DataError, match=r"class 'a' has 1 item left, too few for a validation split .*--val$"):
        three_splits(data, "image", val=None, test=None, val_split=0.2, test_split=0.2, seed=0)


def test_splits_json_gives_back_the_same_datasets(tmp_path: Path) -> None:
    data = _images(tmp_path / "data", {"a": 5, "b": 5})
    splits = three_splits(data, "image", val=None, test=None, val_split=0.2, test_split=0.2, seed=0)
    write_splits(splits, tmp_path)
    assert read_splits(tmp_path, "image", splits.train.classes) == splits


def test_copies_inside_data_and_repeated_texts(tmp_path: Path) -> None:
    data = _images(tmp_path / "data", {"a": 10, "b": 10})
    for index in range(10):  # every image of class a twice: some copies must land in two splits
        shutil.copyfile(data / "a" / f"{index}.png", data / "a" / f"{index}-copy.png")
    with pytest.raises(DataError, match=r"/data holds '.*/a/\d+(-copy)?.png' twice .* delete one of them"):
        three_splits(data, "image", val=None, test=None, val_split=0.2, test_split=0.2, seed=0)
    texts = tmp_path / "texts.csv"  # the same sentence (up to case and spacing) stays on one side
    rows = [f"Sentence  {i % 4},x" for i in range(12)] + [f"other {i},y" for i in range(12)]
    texts.write_text("text,label\n" + "\n".join(rows) + "\n")
    splits = three_splits(texts, "text", val=None, test=None, val_split=0.25, test_split=0.25, seed=0)
    sides = [{item.lower().replace("  ", " ") for item in part.items} for part in splits]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    test = tmp_path / "test.csv"
    test.write_text("text,label\nsentence 1,x\nother 99,y\n")
    with pytest.raises(DataError, match=r"'sentence 1' \(the same as 'Sentence  1'\) is in both the train and"):
        three_splits(texts, "text", val=None, test=test, val_split=0.25, test_split=0.25, seed=0)


def test_a_given_set_without_some_classes_is_used_with_a_warning(tmp_path: Path) -> None:
    data = _images(tmp_path / "data", {"a": 6, "b": 6, "c": 6})
    test = _images(tmp_path / "test", {"a": 2}, seed=1)
    with pytest.warns(UserWarning, match=r"--test .*/test: no items of class\(es\) b, c; its figures speak"):
        splits = three_splits(data, "image", val=None, test=test, val_split=0.2, test_split=0.2, seed=0)
    assert splits.test.labels == [0, 0]


def test_a_tampered_splits_json_is_refused(tmp_path: Path) -> None:
    import json

    data = _images(tmp_path / "data", {"a": 5, "b": 5})
    write_splits(three_splits(data, "image", val=None, test=None, val_split=0.2, test_split=0.2, seed=0), tmp_path)
    saved = json.loads((tmp_path / "splits.json").read_text())
    saved["test"]["items"] = [1] * len(saved["test"]["items"])
    (tmp_path / "splits.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="every item must be a string"):
        read_splits(tmp_path, "image", ["a", "b"])
    saved["test"]["items"] = "abc"
    (tmp_path / "splits.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="lists of the same length"):
        read_splits(tmp_path, "image", ["a", "b"])


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_text_files_label_column_and_its_blank_labels(tmp_path: Path, suffix: str) -> None:
    """Labels come from the column a reader names where the file has it (else ``label``), and a text without a
    label is left out with one warning: never a class named ''."""
    from zoo_core.training.data import load_dataset

    rows = [
        ("good film", "pos", "film"),
        ("dull film", "neg", ""),
        ("good book", "", "book"),
        ("bad book", "neg", None),
    ]
    data = tmp_path / f"reviews{suffix}"
    if suffix == ".csv":
        data.write_text("text,label,medium\n" + "".join(f"{t},{label},{m or ''}\n" for t, label, m in rows))
    else:
        data.write_text("".join(json.dumps({"text": t, "label": label, "medium": m}) + "\n" for t, label, m in rows))
    with pytest.warns(UserWarning, match=f"{data}: left out 1 text\\(s\\) with no label, the first 'good book'"):
        plain = load_dataset(data, "text")
    assert (plain.items, plain.classes) == (["good film", "dull film", "bad book"], ["neg", "pos"])
    with pytest.warns(UserWarning, match="left out 2 text\\(s\\) with no medium, the first 'dull film'"):
        medium = load_dataset(data, "text", label_column="medium")
    assert (medium.items, medium.classes, medium.labels) == (["good film", "good book"], ["book", "film"], [1, 0])
    with pytest.warns(UserWarning, match="with no label"):
        assert load_dataset(data, "text", label_column="text").classes == ["neg", "pos"]  # never the text itself
    unlabelled = tmp_path / f"plain{suffix}"
    unlabelled.write_text("text,medium\ngood film,film\n" if suffix == ".csv" else '{"text": "a", "medium": "b"}\n')
    with pytest.raises(DataError, match=r"or name the task after one of its columns \(medium\)$"):
        load_dataset(unlabelled, "text", label_column="mood")


def test_a_spreadsheets_csv_and_json_lines_that_label_some_rows_only(tmp_path: Path) -> None:
    """A byte-order mark does not hide the first column's name; a JSONL column counts when any row has it (the
    rows a task does not label may leave its key out); a line that is not an object is one line naming it."""
    from zoo_core.textdata import read_texts

    excel = tmp_path / "excel.csv"
    excel.write_text("\ufefflabel,text\npos,good film\n", encoding="utf-8")
    assert (read_texts(excel).texts, read_texts(excel).labels) == (["good film"], ["pos"])
    partial = tmp_path / "partial.jsonl"
    partial.write_text('{"text": "a", "topic": "x"}\n{"text": "b", "topic": "y", "mood": "sad"}\n')
    found = read_texts(partial, "mood")
    assert (found.columns, found.label_column, found.labels) == (["text", "topic", "mood"], "mood", ["", "sad"])
    partial.write_text('{"text": "a"}\n\n[1, 2]\n')
    with pytest.raises(DataError, match=r"partial.jsonl:3: a JSON list, not an object; one object per line$"):
        read_texts(partial)


def test_a_csvs_quoted_line_breaks_and_repeated_column_names(tmp_path: Path) -> None:
    """A quoted cell keeps its line break and a text its U+2028 (neither splits a row); a header that names a
    column twice is refused, since one of the two would be silently dropped."""
    from zoo_core.textdata import read_texts

    data = tmp_path / "texts.csv"
    data.write_text('text,label\n"first line\nsecond line",a\nhello\u2028world,b\n', encoding="utf-8")
    assert read_texts(data).texts == ["first line\nsecond line", "hello\u2028world"]
    assert read_texts(data).labels == ["a", "b"]
    jsonl = tmp_path / "texts.jsonl"
    jsonl.write_text('{"text": "hello\u2028world", "label": "b"}\n', encoding="utf-8")
    assert read_texts(jsonl).texts == ["hello\u2028world"]
    data.write_text("text,Topic,,\na,x,,\n")  # a spreadsheet's unnamed trailing columns; a header in capitals
    assert (read_texts(data, "topic").label_column, read_texts(data, "topic").labels) == ("Topic", ["x"])
    data.write_text("text,label,label\na,x,y\n")
    with pytest.raises(DataError, match=r"texts.csv: the header names column 'label' twice; rename one$"):
        read_texts(data)


def test_a_folder_given_for_texts_is_one_line(tmp_path: Path) -> None:
    from zoo_core.textdata import read_texts

    with pytest.raises(DataError, match=r"a folder; a text model reads one file of texts \(.txt, .csv or .jsonl\)$"):
        read_texts(tmp_path)
