"""Documentation keeps up with the code: every hook is documented and has a test of its own, and the plugin
that docs/plugins.md writes block by block is built from those blocks and does what the page says."""

from __future__ import annotations

import ast
import doctest
import hashlib
import inspect
import re
import runpy
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Run

from zoo_core import hookspecs

ROOT = Path(__file__).resolve().parent.parent
PLUGINS_PAGE = ROOT / "docs" / "plugins.md"
# a fenced block that starts with the file it is, "# my-zoo-plugin/PATH": the page's plugin, file by file
PLUGIN_FILE = re.compile(r"^```(?:python|toml)\n# (my-zoo-plugin/\S+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
HOOKS = sorted(
    name for name, value in vars(hookspecs).items() if inspect.isfunction(value) and hasattr(value, "zoo_spec")
)


def test_there_are_hooks() -> None:
    assert {"register_models", "build_backbone", "check_input", "convert_weights"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook: str) -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = re.search(rf"^### `{hook}\((.*?)\)", docs, re.MULTILINE)
    assert section, f"docs/plugins.md has no '### `{hook}(…)`' section"
    expected = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert section.group(1) == expected, (
        f"docs/plugins.md shows {hook}({section.group(1)}), the hook takes ({expected})"
    )


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook: str) -> None:
    tests = (ROOT / "tests" / "test_hooks.py").read_text(encoding="utf-8")
    assert f"def test_hook_{hook}(" in tests, f"tests/test_hooks.py has no test_hook_{hook}"


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in ("pip install -e '.[dev]'", "python -m pytest"):
        assert command in readme and command in ci


def _block_after(page: str, start: str) -> list[str]:
    """The lines of the fenced block in docs/PAGE that holds a line starting with `start`, from that line on."""
    lines = (ROOT / "docs" / page).read_text(encoding="utf-8").splitlines()
    first = next(number for number, line in enumerate(lines) if line.startswith(start))
    end = next(number for number in range(first, len(lines)) if lines[number].startswith("```"))
    return lines[first:end]


def test_the_zero_shot_examples_print_what_the_docs_say(minilm: object, zoo: Run) -> None:
    import shlex

    import zoo_core

    command, *expected = _block_after("text.md", "$ zoo predict minilm")
    code, out, _ = zoo(*shlex.split(command)[2:])
    assert code == 0 and out.splitlines() == expected
    call, comment = _block_after("text.md", 'zoo_core.zero_shot("minilm"')[:2]
    ranked = eval(call, {"zoo_core": zoo_core})  # the documented call, as written
    shown = comment.removeprefix("# ").split("   ")[0]
    assert [[(label, round(score, 4)) for label, score in row] for row in ranked] == ast.literal_eval(shown)


def test_the_readme_search_prints_what_the_readme_shows(zoo: Run) -> None:
    import shlex

    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    first = next(number for number, line in enumerate(lines) if line.startswith("$ zoo search"))
    end = next(number for number in range(first + 1, len(lines)) if lines[number].startswith(("$", "```")))
    code, out, _ = zoo(*shlex.split(lines[first])[2:])
    assert code == 0 and out.splitlines() == lines[first + 1 : end]


@pytest.fixture
def documented_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Path]:
    """The five-minute plugin of docs/plugins.md, written from its blocks, importable, with the weights its
    make_weights.py writes, and laid out as pip installs it (a RECORD naming the weights file)."""
    for name, text in PLUGIN_FILE.findall(PLUGINS_PAGE.read_text(encoding="utf-8")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    folder = tmp_path / "my-zoo-plugin"
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.chdir(folder)
    capsys.readouterr()
    runpy.run_path("make_weights.py", run_name="__main__")
    printed = capsys.readouterr().out.strip()
    weights = "my_zoo_plugin/weights/tinycnn.safetensors"
    assert printed == hashlib.sha256((folder / weights).read_bytes()).hexdigest()
    info = folder / "my_zoo_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-zoo-plugin\nVersion: 0.1.0\n")
    (info / "RECORD").write_text(f"{weights},,\nmy_zoo_plugin-0.1.0.dist-info/RECORD,,\n")
    try:
        yield folder
    finally:
        for module in [name for name in sys.modules if name.split(".")[0] == "my_zoo_plugin"]:
            del sys.modules[module]


def test_the_documented_plugin_pins_the_digest_its_script_prints(documented_plugin: Path) -> None:
    import my_zoo_plugin

    made = hashlib.sha256((documented_plugin / my_zoo_plugin.WEIGHTS).read_bytes()).hexdigest()
    assert my_zoo_plugin.ENTRY["sha256"] == {my_zoo_plugin.WEIGHTS: made}, (
        f"docs/plugins.md pins another digest than its make_weights.py prints ({made}): paste that one"
    )


def test_the_documented_backbone_does_what_the_page_shows(
    documented_plugin: Path, register_plugin: Callable[[object, str], None]
) -> None:
    """The page's session, run as a doctest: zoo_core.load copies the weights from the 'installed'
    distribution, verifies them against the pinned digest and builds the page's TinyCNN with them."""
    import my_zoo_plugin

    register_plugin(my_zoo_plugin, "mine")
    session = re.search(r"^```pycon\n(.*?)^```$", PLUGINS_PAGE.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    assert session, "docs/plugins.md has no ```pycon block"
    test = doctest.DocTestParser().get_doctest(session.group(1), {}, "docs/plugins.md", str(PLUGINS_PAGE), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_the_documented_plugin_test_passes(
    documented_plugin: Path, zoo_env: Path, register_plugin: Callable[[object, str], None]
) -> None:
    module = runpy.run_path(str(documented_plugin / "tests" / "test_tinycnn.py"))
    module["test_tinycnn_is_in_the_catalogue_and_loads_its_weights"](zoo_env, register_plugin)


def test_the_backbone_table_lists_every_member_a_subclass_writes() -> None:
    """The members marked "you write it: yes" are those the constructor checks, and the page shows the
    error it raises for a subclass missing some, word for word."""
    import torch

    import zoo_core
    from zoo_core.backbone import PROVIDED, Backbone

    page = PLUGINS_PAGE.read_text(encoding="utf-8")
    written = re.findall(r"^\| `(\w+)(?:\([^`]*\))?` \| yes", page, re.MULTILINE)
    assert sorted(written) == sorted(PROVIDED)

    class Half(Backbone):
        @property
        def feature_dim(self) -> int:
            return 1

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(TypeError) as raised:
        Half(zoo_core.get("alexnet.tv_in1k"))
    assert f"TypeError: {str(raised.value).replace(Half.__qualname__, 'Half')}" in page.splitlines()


@pytest.mark.parametrize("modality", ["image", "text", "embedding"])
def test_every_input_field_says_who_reads_it(modality: str) -> None:
    from zoo_core.registry import _INPUT_FIELDS

    rows = [
        line for line in PLUGINS_PAGE.read_text(encoding="utf-8").splitlines() if line.startswith(f"| {modality} |")
    ]
    named = {field for row in rows for field in re.findall(r"`(\w+)`", row.split("|")[2])}
    assert named == set(_INPUT_FIELDS[modality])


def test_safetensors_metadata_changes_the_bytes_as_documented() -> None:
    """docs/plugins.md's pitfall: with two metadata keys or more, saving the same tensors gives other bytes."""
    import torch
    from safetensors.torch import save

    tensors = {"weight": torch.arange(12, dtype=torch.float32).reshape(3, 4), "bias": torch.ones(3)}

    def digests(keys: int) -> set[str]:
        metadata = {f"key{index}": f"value{index}" for index in range(keys)} or None
        return {hashlib.sha256(save(tensors, metadata=metadata)).hexdigest() for _ in range(20)}

    assert [len(digests(keys)) for keys in (0, 1, 2)] == [1, 1, 2]
    assert len(digests(8)) > 2
