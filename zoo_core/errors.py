"""Every exception zoo raises, in one place.

Each error is a `ZooError` and also the built-in type a caller would naturally catch
(`ModelNotFoundError` is a `KeyError`, `RegistryError` a `ValueError`), so code that knows nothing of zoo
still handles them. Messages say what happened and what to type to fix it; the CLI prints them as one line.
"""

from __future__ import annotations

__all__ = [
    "ArchiveError",
    "CheckpointError",
    "ChecksumError",
    "DataError",
    "DataWarning",
    "DownloadError",
    "ExportError",
    "ModelNameTakenError",
    "ModelNotFoundError",
    "NotCachedError",
    "PluginError",
    "PluginUnavailableError",
    "PluginWarning",
    "RegistryError",
    "RegistryWarning",
    "RunFolderBusyError",
    "RunFolderError",
    "RunOptionError",
    "UnreachableHubError",
    "UnsafeValueError",
    "UnsafeWeightsError",
    "UntrustedServerError",
    "WeightsFormatError",
    "ZooError",
]


class ZooError(Exception):
    """Base of every error zoo raises on purpose; the CLI shows its message without a traceback."""

    def __str__(self) -> str:
        # KeyError quotes its message; a user-facing error must read as plain text.
        return str(self.args[0]) if self.args else ""


# --- the catalogue -------------------------------------------------------------------------------------


class RegistryError(ZooError, ValueError):
    """A registry file or one of its entries is malformed; the message names file, line, entry and field."""


class RegistryWarning(UserWarning):
    """Something in the catalogue was skipped or overridden; loading carried on."""


class ModelNotFoundError(ZooError, KeyError):
    """No model in the catalogue has the asked-for name or alias."""


class ModelNameTakenError(ZooError, ValueError):
    """A new model's name is already a model's name or alias in the catalogue (``zoo pretrain --name``)."""


# --- plugins -------------------------------------------------------------------------------------------


class PluginError(ZooError, RuntimeError):
    """A plugin failed while zoo called one of its hooks, or no plugin could do what was asked."""


class PluginUnavailableError(PluginError, ImportError):
    """The plugin a model needs is not installed, or is missing one of its dependencies."""


class PluginWarning(UserWarning):
    """A plugin failed in a hook called for another plugin's model (or for none) and was skipped; zoo carried on."""


# --- downloads and the cache -------------------------------------------------------------------------


class DownloadError(ZooError, OSError):
    """A file could not be fetched: the repo, revision or file does not exist, or the server kept failing."""


class ChecksumError(ZooError, ValueError):
    """A file's bytes do not match the digest the registry or the hub promised; nothing was kept."""


class ArchiveError(ZooError, ValueError):
    """A cache archive is unreadable, or its manifest or members are not what `zoo cache export` writes."""


class UntrustedServerError(DownloadError):
    """A hub or mirror sent metadata that could lead a write astray (an ETag or commit that is not a digest)."""


class UnreachableHubError(DownloadError):
    """The hub or mirror's name does not resolve, or it refuses connections; `transient` if worth a retry."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class NotCachedError(ZooError, FileNotFoundError):
    """Offline, and the model's files are not in the cache."""


class UnsafeValueError(ZooError, ValueError):
    """A value from outside (registry, server header, archive) is malformed or would lead outside zoo's folders.

    Raised by `zoo_core.validate` before the value becomes a path, a name or a "verified" claim.
    """


class UnsafeWeightsError(ZooError, ValueError):
    """A checkpoint could only be loaded by unpickling, which can run arbitrary code."""


class WeightsFormatError(ZooError, ValueError):
    """A weights or vectors file is malformed; the message names the file and the line or byte offset."""


# --- a user's data -------------------------------------------------------------------------------------


class DataError(ZooError, ValueError):
    """A user's dataset cannot be read; the message names the file and the line."""


class DataWarning(UserWarning):
    """A user's data can be used but weakens what is measured (evaluation data the model was trained or
    selected on); the command carried on."""


# --- fine-tuning runs ---------------------------------------------------------------------------------


class RunOptionError(ZooError, ValueError):
    """Options that cannot make a run (``--epochs 0``, ``--head logreg`` with ``--strategy full``), or an
    ``--out`` folder that is not a run; the message names the option and the fix."""


class RunFolderBusyError(ZooError, RuntimeError):
    """Another process is writing the same run folder; the message names the folder and that process."""


class RunFolderError(ZooError, ValueError):
    """A folder given as a finished run is not one, or one of its files is missing or unreadable; the message
    names the folder and the file."""


class CheckpointError(ZooError, ValueError):
    """``--resume`` cannot go on from a run's ``last.pt``: there is none, it is unreadable, or it belongs to
    another run (other data, strategy, seed…)."""


# --- export and inference ------------------------------------------------------------------------------


class ExportError(ZooError, RuntimeError):
    """An export could not be made or did not prove equal to the PyTorch model; no file was left."""
