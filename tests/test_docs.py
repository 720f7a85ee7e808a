"""Documentation keeps up with the code: every hook is documented and has a test of its own."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

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
