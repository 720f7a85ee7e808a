"""A plugin that raises in every hook: zoo must name it, record it, and keep working for everyone else.

It imports fine (a plugin that fails to import is another, simpler case) and implements every hook of
`zoo_core.hookspecs`; each raises a RuntimeError naming the hook, so a test can tell which one zoo reports.
"""

from __future__ import annotations

from pathlib import Path

import click

from zoo_core import CheckReport, Finding, ModelSpec, Requirement, hookimpl


def _fail(hook: str) -> RuntimeError:
    return RuntimeError(f"zoo-broken-plugin fails in {hook} on purpose")


@hookimpl
def plugin_requirements() -> list[Requirement]:
    raise _fail("plugin_requirements")


@hookimpl
def register_models() -> list[ModelSpec]:
    raise _fail("register_models")


@hookimpl
def build_backbone(spec: ModelSpec, weights_dir: Path | None) -> object | None:
    raise _fail("build_backbone")


@hookimpl
def check_input(spec: ModelSpec, data: object, report: CheckReport) -> list[Finding] | None:
    raise _fail("check_input")


@hookimpl
def convert_weights(format: str, source: Path, destination: Path) -> ModelSpec | None:
    raise _fail("convert_weights")


@hookimpl
def onnx_exporter(spec: ModelSpec) -> tuple[str, str] | None:
    raise _fail("onnx_exporter")


@hookimpl
def register_commands(cli: click.Group) -> None:
    raise _fail("register_commands")
