"""Documentation keeps up with the code: every hook is documented and has a test of its own."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
from conftest import Run

from zoo_core import hookspecs

ROOT = Path(__file__).resolve().parent.parent
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
