"""Printing for the CLI: aligned tables for people, JSON for programs, and number formats."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import click

__all__ = ["format_count", "print_json", "print_table", "printable"]
_HIDDEN = ("Cc", "Cf", "Cs", "Co", "Cn")  # controls, format (bidi overrides), surrogates, private use, unassigned
_RAW_IN_JSON = re.compile(r"[\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]")


def printable(text: str) -> str:
    """`text` safe for a terminal: control, format (bidi) and other invisible characters become '?'.

    Registry descriptions, server messages and file names come from outside and reach the user's
    terminal, where an escape sequence could rewrite what is shown. Line breaks and tabs become spaces:
    what zoo prints as one line stays one line.
    """
    if text.isprintable():
        return text
    return "".join(_printable_char(char) for char in text)


def _printable_char(char: str) -> str:
    category = unicodedata.category(char)
    if char in "\t\n\r" or category in ("Zl", "Zp"):
        return " "
    return "?" if category in _HIDDEN else char


def print_json(data: Any) -> None:
    """Write `data` to stdout as JSON and nothing else, so it can be piped into other tools.

    Characters a terminal may act on are escaped (``\\u009b``); JSON already escapes those below 0x20.
    """
    text = json.dumps(data, indent=2, ensure_ascii=False)
    click.echo(_RAW_IN_JSON.sub(lambda found: f"\\u{ord(found.group()):04x}", text))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Write rows as left-aligned columns under upper-case headers; cells are made `printable`."""
    rows = [[printable(cell) for cell in row] for row in rows]
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
