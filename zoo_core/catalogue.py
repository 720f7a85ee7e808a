"""The catalogue: every known model spec, held in a SQLite index for lookup, filters and ranked search.

SQLite keeps a 50,000-entry catalogue cheap: opening a cached index costs milliseconds, and search
scans lower-cased columns in C. Specs are stored as JSON and rebuilt only for the rows a query returns.

Search ranks, best first: exact name > alias > name or alias prefix > every query word in the name >
every query word in name, aliases, family, tags or description; when none of these match any model
(filters aside), close spellings of a word in a name or alias ("resnt" finds resnet). Within a rank, a
model's default tag (the one its alias points at) comes first, then natural name order (``resnet18``
before ``resnet101``).

A sort by a figure (`SORTS`) replaces that order; a search sorts all its matches, then keeps the first
`limit`. The most accurate or fastest come first, the smallest or cheapest first, and models without
the figure last.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from zoo_core.errors import ModelNotFoundError
from zoo_core.specs import ModelSpec

__all__ = ["SORTS", "Catalogue", "Filters", "parse_count"]

_WORD_FILTERS = ("family", "task", "modality", "plugin")
_SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}


def parse_count(text: str) -> int:
    """'25M', '1.5B', '500k' or '25000000' -> a whole number; ValueError otherwise."""
    cleaned = text.strip().lower().replace("_", "")
    scale = _SUFFIXES.get(cleaned[-1:], 1) if cleaned else 1
    number = float(cleaned[:-1] if scale != 1 else cleaned)
    if not number >= 0 or number == float("inf"):
        raise ValueError(text)
    return int(number * scale)


EXACT, ALIAS, PREFIX, WORDS_IN_NAME, WORDS = 6, 5, 4, 3, 2  # fuzzy matches come only when none of these do
_SCHEMA = """
CREATE TABLE models (
    name TEXT PRIMARY KEY, name_l TEXT, aliases_l TEXT, text_l TEXT, natural TEXT, has_alias INTEGER,
    family TEXT, task TEXT, modality TEXT, plugin TEXT, license_l TEXT, params INTEGER,
    top1 REAL, gmacs REAL, speed REAL
);
CREATE TABLE specs (name TEXT PRIMARY KEY, data TEXT);
CREATE TABLE lookup (key TEXT PRIMARY KEY, name TEXT);
CREATE TABLE words (word TEXT, name TEXT);
CREATE INDEX words_by_word ON words (word);
CREATE TABLE vocabulary (word TEXT PRIMARY KEY);
CREATE TABLE notes (message TEXT);
"""
_COLUMN = {"license": "license_l"}  # filter name -> column, where they differ
_WORD = re.compile(r"[a-z]{3,}")  # fuzzy vocabulary: letter runs, so "resnet50" gives "resnet"
_DIGITS = re.compile(r"\d+")
# --sort KEY: an ORDER BY clause; unknown figures (NULL) last, then the usual order breaks ties
SORTS = {
    "top1": "top1 IS NULL, top1 DESC",
    "params": "params IS NULL, params",
    "gmacs": "gmacs IS NULL, gmacs",
    "speed": "speed IS NULL, speed DESC",
}


@dataclass(frozen=True, slots=True)
class Filters:
    """Conditions a spec must meet; ``None`` (or empty) means "any"."""

    family: str | None = None
    task: str | None = None
    modality: str | None = None
    plugin: str | None = None
    licenses: tuple[str, ...] = ()  # any of these, compared case-insensitively
    max_params: int | None = None  # specs with an unknown parameter count are excluded
    min_top1: float | None = None  # ImageNet top-1 percent at least this; specs without the figure excluded
    max_gmacs: float | None = None  # at most this many GMACs; specs without the figure excluded
    hidden_plugins: tuple[str, ...] = ()  # models these plugins build are left out

    def sql(self) -> tuple[str, list[Any]]:
        """A WHERE clause (always valid, "1" when empty) and its parameters; words compare without case."""
        clauses, values = ["1"], []
        for column in _WORD_FILTERS:
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{column} = ? COLLATE NOCASE")
                values.append(value)
        if self.licenses:
            clauses.append(f"license_l IN ({', '.join('?' * len(self.licenses))})")
            values.extend(each.lower() for each in self.licenses)
        bounds = (("params <= ?", self.max_params), ("top1 >= ?", self.min_top1), ("gmacs <= ?", self.max_gmacs))
        for clause, bound in bounds:  # NULL (unknown) never passes a comparison
            if bound is not None:
                clauses.append(clause)
                values.append(bound)
        if self.hidden_plugins:
            clauses.append(f"plugin NOT IN ({', '.join('?' * len(self.hidden_plugins))})")
            values.extend(self.hidden_plugins)
        return " AND ".join(clauses), values


def _order(sort: str | None, then: str) -> str:
    """An ORDER BY clause: the figure `sort` names (unknown values last), then `then`."""
    if sort is None:
        return then
    if sort not in SORTS:
        raise ValueError(f"sort={sort!r} is not one of {', '.join(SORTS)}")
    return f"{SORTS[sort]}, {then}"


_FIGURE_FILTERS = (  # Filters field, option, figure, how it reads, the value closest to passing
    ("min_top1", "--min-top1", "top1", "top-1", "highest", max),
    ("max_gmacs", "--max-gmacs", "gmacs", "GMACs", "lowest", min),
)


def _figures_missed(candidates: list[ModelSpec], filters: Filters, scope: str) -> str:
    """Why no candidate (each passes every other filter) passes the figure filters: the figure closest to
    passing among them, and how many have no figure at all (a figure filter leaves those out)."""
    options, reasons = [], []
    for field, option, figure, label, closest, pick in _FIGURE_FILTERS:
        bound = getattr(filters, field)
        if bound is None:
            continue
        options.append(f"{option} {bound:g}")
        known = [value for spec in candidates if (value := getattr(spec.figures, figure)) is not None]
        if not known:
            reasons.append(f"none of them has a {label} figure, and a model without one never passes")
        elif len(known) < len(candidates):
            missing = len(candidates) - len(known)
            reasons.append(
                f"their {closest} {label} is {pick(known):g}, and {missing} without a {label} figure never pass"
            )
        else:
            reasons.append(f"their {closest} {label} is {pick(known):g}")
    count = len(candidates)
    return f"{count} model(s) {scope}pass the other filters, but none passes {' '.join(options)}: {'; '.join(reasons)}."


def _natural(name: str) -> str:
    """A sort key that orders numbers by value: resnet18 < resnet101."""
    return _DIGITS.sub(lambda digits: digits.group().zfill(12), name.lower())


def write_index(connection: sqlite3.Connection, specs: Iterable[ModelSpec], notes: Iterable[str]) -> None:
    """Fill an empty database with `specs` (names unique) and the load-time `notes` to repeat on reuse."""
    connection.executescript(_SCHEMA)
    rows: list[tuple[Any, ...]] = []
    lookup: dict[str, str] = {}
    words: list[tuple[str, str]] = []
    specs_json: list[tuple[str, str]] = []
    for spec in specs:
        name_l = spec.name.lower()
        aliases_l = [alias.lower() for alias in spec.aliases]
        text = " ".join((spec.name, *spec.aliases, spec.family, *spec.tags, spec.description)).lower()
        rows.append(
            (
                spec.name,
                name_l,
                "".join(f"\n{alias}\n" for alias in aliases_l),
                text,
                _natural(spec.name),
                bool(spec.aliases),
                spec.family,
                spec.task,
                spec.modality,
                spec.plugin,
                (spec.license or "").lower(),
                spec.params,
                spec.figures.top1,
                spec.figures.gmacs,
                spec.figures.images_per_second,
            )
        )
        specs_json.append((spec.name, json.dumps(spec.to_dict(), separators=(",", ":"))))
        for alias in aliases_l:
            lookup.setdefault(alias, spec.name)
        words.extend((word, spec.name) for word in set(_WORD.findall(" ".join((name_l, *aliases_l)))))
    lookup.update({row[1]: row[0] for row in rows})  # a name always beats another model's alias
    connection.executemany(f"INSERT INTO models VALUES ({', '.join('?' * 15)})", rows)
    connection.executemany("INSERT INTO specs VALUES (?, ?)", specs_json)
    connection.executemany("INSERT INTO lookup VALUES (?, ?)", lookup.items())
    connection.executemany("INSERT INTO words VALUES (?, ?)", words)
    connection.executemany("INSERT INTO vocabulary VALUES (?)", [(word,) for word in {word for word, _ in words}])
    connection.executemany("INSERT INTO notes VALUES (?)", [(note,) for note in notes])
    connection.commit()


class Catalogue:
    """A read-only set of specs, found by name or alias, filtered, and searched."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    @classmethod
    def from_specs(cls, specs: Iterable[ModelSpec], notes: Iterable[str] = ()) -> Catalogue:
        """A catalogue in memory, for specs that need no cache (tests, small programs, a read-only home)."""
        connection = sqlite3.connect(":memory:")
        write_index(connection, specs, notes)
        return cls(connection)

    @property
    def notes(self) -> list[str]:
        """Warnings recorded while the sources were merged (overrides, skipped entries)."""
        return [row[0] for row in self._db.execute("SELECT message FROM notes")]

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM models").fetchone()[0])

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self.select())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) is not None

    def _find(self, name: str) -> str | None:
        row = self._db.execute("SELECT name FROM models WHERE name = ?", (name,)).fetchone()
        row = row or self._db.execute("SELECT name FROM lookup WHERE key = ?", (name.lower(),)).fetchone()
        return row[0] if row else None

    def _specs(self, sql: str, values: Iterable[Any] = ()) -> list[ModelSpec]:
        """Run `sql`, which selects names in order, and rebuild those names' specs."""
        return self._named([row[0] for row in self._db.execute(sql, list(values))])

    def _named(self, names: list[str]) -> list[ModelSpec]:
        """The specs of these names, in this order."""
        found: dict[str, str] = {}
        for start in range(0, len(names), 500):  # SQLite limits the parameters of one statement
            chunk = names[start : start + 500]
            rows = self._db.execute(
                f"SELECT name, data FROM specs WHERE name IN ({', '.join('?' * len(chunk))})", chunk
            )
            found.update(rows.fetchall())
        return [ModelSpec.from_dict(json.loads(found[name])) for name in names]

    def get(self, name: str) -> ModelSpec:
        """The spec with this name or alias (case-insensitive); `ModelNotFoundError` says what is close."""
        found = self._find(name)
        if found is not None:
            return self._named([found])[0]
        skipped = [note for note in self.notes if f"model '{name}': " in note]
        if skipped:  # say why rather than "no such model": its entry was refused
            raise ModelNotFoundError(f"'{name}' is not in the catalogue: its entry was skipped, {skipped[-1]}")
        keys = [row[0] for row in self._db.execute("SELECT key FROM lookup")]
        close = difflib.get_close_matches(name.lower(), keys, n=3, cutoff=0.6)
        suggestion = ", ".join(f"'{self._find(key)}'" for key in close)
        hint = f"did you mean {suggestion}?" if close else f"try `zoo search {name}`"
        raise ModelNotFoundError(f"no model named '{name}' in the catalogue; {hint}")

    def select(self, filters: Filters = Filters(), sort: str | None = None) -> list[ModelSpec]:
        """Specs that pass `filters`, in natural name order or by the figure `sort` names (a key of `SORTS`)."""
        where, values = filters.sql()
        return self._specs(f"SELECT name FROM models WHERE {where} ORDER BY {_order(sort, 'natural')}", values)

    def search(
        self, query: str, filters: Filters = Filters(), limit: int | None = 20, sort: str | None = None
    ) -> list[ModelSpec]:
        """Specs that match `query` and pass `filters`, best first (ranks in the module docstring), or the
        first `limit` of all matches in the order of the figure `sort` names."""
        needle = query.strip().lower()
        words = needle.split()
        order = _order(sort, "rank DESC, has_alias DESC, natural")  # an unknown sort is refused, even with no query
        if not words:
            return []
        where, values = filters.sql()
        in_name = " AND ".join(["instr(name_l, ?)"] * len(words))
        in_text = " AND ".join(["instr(text_l, ?)"] * len(words))
        rank = f"""CASE
            WHEN name_l = ? THEN {EXACT}
            WHEN instr(aliases_l, ?) THEN {ALIAS}
            WHEN substr(name_l, 1, length(?)) = ? OR instr(aliases_l, ?) THEN {PREFIX}
            WHEN {in_name} THEN {WORDS_IN_NAME}
            WHEN {in_text} THEN {WORDS}
            ELSE 0 END"""
        rank_values = [needle, f"\n{needle}\n", needle, needle, f"\n{needle}", *words, *words]
        sql = f"""SELECT name FROM (SELECT *, {rank} AS rank FROM models WHERE {where})
                  WHERE rank > 0 ORDER BY {order} LIMIT ?"""
        found = self._specs(sql, [*rank_values, *values, -1 if limit is None else limit])
        if found or (values and self._db.execute(f"SELECT 1 FROM models WHERE {rank} > 0", rank_values).fetchone()):
            return found  # the filters removed every match: a close spelling is no answer to that (why_empty is)
        return self._fuzzy(needle, where, values, limit, sort)

    def _fuzzy(
        self, needle: str, where: str, values: list[Any], limit: int | None, sort: str | None
    ) -> list[ModelSpec]:
        """Models with a name word or alias spelled close to the query ("resnt", "mobilnet"), closest first
        (or in the order of `sort`)."""
        vocabulary = [row[0] for row in self._db.execute("SELECT word FROM vocabulary")]
        close = difflib.get_close_matches(needle, vocabulary, n=10, cutoff=0.75)
        if sort is not None:  # all close words' models at once, since the figure decides the order
            sql = f"""SELECT name FROM models WHERE {where} AND name IN
                      (SELECT name FROM words WHERE word IN ({", ".join("?" * len(close))}))
                      ORDER BY {_order(sort, "natural")} LIMIT ?"""
            return self._specs(sql, [*values, *close, -1 if limit is None else limit])
        names: dict[str, None] = {}  # ordered set
        for word in close:
            sql = f"""SELECT name FROM models WHERE {where} AND name IN (SELECT name FROM words WHERE word = ?)
                      ORDER BY substr(name_l, 1, length(?)) = ? DESC, has_alias DESC, natural LIMIT ?"""
            rows = self._db.execute(sql, [*values, word, word, word, -1 if limit is None else limit])
            names.update((row[0], None) for row in rows)
        return self._named(list(names)[:limit])

    def why_empty(self, filters: Filters, query: str | None = None) -> str:
        """Why a listing (or a search for `query`) found nothing: a filter value no model has (with the
        closest one), or a query that matches models the filters then remove."""
        for column in (*_WORD_FILTERS, "license"):
            wanted = [getattr(filters, column)] if column != "license" else list(filters.licenses)
            known = [row[0] for row in self._db.execute(f"SELECT DISTINCT {_COLUMN.get(column, column)} FROM models")]
            for value in (each for each in wanted if each is not None):
                if value.lower() not in {str(each).lower() for each in known}:
                    close = difflib.get_close_matches(value.lower(), [str(each).lower() for each in known], n=1)
                    names = sorted({str(each).lower() for each in known if each})
                    listed = ", ".join(names[:12]) + (", …" if len(names) > 12 else "")
                    hint = f"; did you mean '{close[0]}'?" if close else f"; known: {listed}"
                    return f"No model has {column} '{value}'{hint}"
        if filters.min_top1 is not None or filters.max_gmacs is not None:
            others = dataclasses.replace(filters, min_top1=None, max_gmacs=None)
            if candidates := self.search(query, others, limit=None) if query else self.select(others):
                return _figures_missed(candidates, filters, f"match '{query}' and " if query else "")
        if query and (found := self.search(query, Filters(), limit=None)):
            hint = ""
            if filters.max_params is not None and filters.max_params < 1000:
                hint = f" (--max-params {filters.max_params} means {filters.max_params} parameters: 25M, 1.5B?)"
            return f"{len(found)} model(s) match '{query}', but none passes the filters{hint}."
        return f"No model matches '{query}'." if query else "No model passes the filters."

    def plugins(self) -> dict[str, int]:
        """How many models each plugin named by an entry builds."""
        return dict(self._db.execute("SELECT plugin, count(*) FROM models GROUP BY plugin").fetchall())

    def families(self, plugin: str) -> dict[str, int]:
        """How many models of each family the named plugin builds, most first."""
        rows = self._db.execute(
            "SELECT family, count(*) FROM models WHERE plugin = ? GROUP BY family ORDER BY count(*) DESC, family",
            (plugin,),
        )
        return dict(rows.fetchall())
