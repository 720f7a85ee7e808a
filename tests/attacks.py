"""Helpers for the attack tests (tests/test_security*.py): targets outside zoo's folders, and the checks
that an attack changed nothing there, ran no payload and left nothing unverified in the cache."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from zoo_core.hashing import matches_etag


@dataclass
class Targets:
    """What the payloads aim at, and the marker a payload would create if it ever ran."""

    root: Path  # the test's temporary root: nothing outside ZOO_HOME/HF_HOME may change under it
    site: Path  # a folder used as site-packages
    home: Path  # $HOME, with .bashrc and .profile
    marker: Path

    @property
    def payload(self) -> bytes:
        """A .pth line: Python runs it at start-up when the file lies in a site folder."""
        return f"import pathlib; pathlib.Path({str(self.marker)!r}).touch()\n".encode()


def zoo_folders() -> list[Path]:
    return [Path(os.environ["ZOO_HOME"]).resolve(), Path(os.environ["HF_HOME"]).resolve()]


def _snapshot(root: Path) -> dict[str, str]:
    """Every entry under `root` except zoo's own folders: a link's target or a file's sha256."""
    skipped = zoo_folders()
    found = {}
    for top, folders, files in os.walk(root):
        base = Path(top)
        folders[:] = [each for each in folders if (base / each).resolve() not in skipped]
        for name in folders + files:
            path = base / name
            if path.is_symlink():
                found[str(path)] = f"link to {path.readlink()}"
            elif path.is_file():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif not any(folder.is_relative_to(path.resolve()) for folder in skipped):  # zoo's folders' parents
                found[str(path)] = "folder"
    return found


def assert_cache_clean() -> None:
    """Nothing unverified stays: every hub blob has the content its name (the ETag) promises, every
    snapshot link leads to a blob, and no staging file is left behind."""
    hub_cache = Path(os.environ["HF_HOME"]) / "hub"
    for path in hub_cache.rglob("*") if hub_cache.exists() else []:
        if path.parent.name == "blobs":
            assert matches_etag(path, path.name, hashlib.sha256(path.read_bytes()).hexdigest()), path
        if "snapshots" in path.parts and path.is_symlink():
            assert path.resolve().parent.name == "blobs" and path.resolve().is_file(), path
        assert not path.name.endswith((".incomplete", ".tmp")), path
    files = Path(os.environ["ZOO_HOME"]) / "files"
    assert not [path for path in files.rglob("*.incomplete")] if files.exists() else True


@contextmanager
def attack(targets: Targets) -> Iterator[None]:
    """Run an attack; afterwards, nothing outside zoo's folders has changed and the payload never ran."""
    before = _snapshot(targets.root)
    yield
    assert _snapshot(targets.root) == before
    subprocess.run([sys.executable, "-S", "-c", f"import site; site.addsitedir({str(targets.site)!r})"], check=True)
    assert not targets.marker.exists()
    assert_cache_clean()


def write_catalogue(path: Path, text: str) -> None:
    """Rewrite a registry file the catalogue reads, and have the next command read it again."""
    from zoo_core.catalogue_sources import reset_catalogue

    path.write_text(text)
    reset_catalogue()


def refused(result: tuple[int, str, str], *fragments: str) -> None:
    code, out, err = result
    assert code == 1 and out == "", result
    assert err.startswith("Error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def blobs_folder() -> Path:
    """tiny.v1's blobs in the current HF_HOME."""
    return Path(os.environ["HF_HOME"]) / "hub" / "models--org--tiny" / "blobs"
