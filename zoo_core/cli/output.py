"""Printing for the CLI: aligned tables for people, JSON for programs, and number formats."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

__all__ = ["format_count", "parse_count", "print_json", "print_table"]

_SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}


def print_json(data: Any) -> None:
    """Write `data` to stdout as JSON and nothing else, so it can be piped into other tools."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Write rows as left-aligned columns under upper-case headers."""
    widths = [max([len(header), *(len(row[column]) for row in rows)]) for column, header in enumerate(headers)]
    for row in [[header.upper() for header in headers], *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def format_count(value: int | None) -> str:
    """25557032 -> '25.6M'; unknown -> '-'."""
    if value is None:
        return "-"
    for suffix, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f}{suffix}"
    return str(value)


def parse_count(text: str) -> int:
    """'25M', '1.5B', '500k' or '25000000' -> a whole number; ValueError otherwise."""
    cleaned = text.strip().lower().replace("_", "")
    scale = _SUFFIXES.get(cleaned[-1:], 1) if cleaned else 1
    number = float(cleaned[:-1] if scale != 1 else cleaned)
    if number < 0:
        raise ValueError(text)
    return int(number * scale)
