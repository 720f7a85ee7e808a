"""A Hugging Face hub-protocol server on 127.0.0.1, for testing downloads with the real client.

It speaks the parts of the protocol that `huggingface_hub` uses to download: ``HEAD``/``GET`` on
``/{repo}/resolve/{revision}/{file}`` (with ``Range``, ``ETag``, ``X-Repo-Commit`` and the
``X-Error-Code`` of the hub's 404s), ``/api/models/{repo}[/revision/{revision}]`` and
``/api/models/{repo}/tree/{revision}``. Files whose name ends in ``.safetensors``, ``.bin`` or
``.onnx`` are served as LFS files (the ETag is their sha256), others as git blobs (git's sha1).

Faults are scripted per file, to test what the client and zoo do about them::

    hub.add_repo("org/model", {"model.safetensors": data})
    hub.fail("org/model", "model.safetensors", "flip")        # one byte changed in the body
    hub.fail("org/model", "model.safetensors", "cut")         # connection closed halfway
    hub.fail("org/model", "model.safetensors", "500", times=2)

A hostile server lies in its headers::

    hub.lie("org/model", "model.safetensors", ETag='"../../x.pth"', **{"X-Repo-Commit": "../x"})

Every request is logged in `hub.requests` as ``(method, path, headers)``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["HubServer", "git_blob_sha1", "running_hub"]

_LFS_SUFFIXES = (".safetensors", ".bin", ".onnx", ".pth", ".caffemodel", ".npy", ".zip", ".gz")
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def git_blob_sha1(data: bytes) -> str:
    """The id git gives a file's content: the hub's ETag for files not stored in LFS."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class _Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit -> files
    refs: dict[str, str] = field(default_factory=dict)  # branch -> commit


class HubServer:
    """The server's state: repos, scripted faults, and the request log."""

    def __init__(self) -> None:
        self.repos: dict[str, _Repo] = {}
        self.faults: dict[tuple[str, str], list[str]] = {}
        self.lies: dict[tuple[str, str], dict[str, str]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the server is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add_repo(self, repo: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Add a commit of `files` to `repo` on `branch`; returns the commit id."""
        listing = "".join(f"{name}:{hashlib.sha256(data).hexdigest()}\n" for name, data in sorted(files.items()))
        commit = hashlib.sha1(f"{repo}\n{branch}\n{listing}".encode(), usedforsecurity=False).hexdigest()
        entry = self.repos.setdefault(repo, _Repo())
        entry.commits[commit] = dict(files)
        entry.refs[branch] = commit
        return commit

    def fail(self, repo: str, filename: str, fault: str, times: int = 1) -> None:
        """Script `fault` ("flip", "cut", or an HTTP status like "500") for the next `times` GETs."""
        self.faults.setdefault((repo, filename), []).extend([fault] * times)

    def lie(self, repo: str, filename: str, **headers: str) -> None:
        """Send these header values (``ETag``, ``X-Repo-Commit``, ``X-Linked-Etag``…) for every request of the file."""
        self.lies.setdefault((repo, filename), {}).update(headers)

    def downloads(self, filename: str) -> list[dict[str, str]]:
        """The headers of every GET of `filename`."""
        return [headers for method, path, headers in self.requests if method == "GET" and path.endswith(filename)]

    def _take_fault(self, repo: str, filename: str, method: str) -> str | None:
        with self._lock:
            planned = self.faults.get((repo, filename))
            if not planned:
                return None
            if method == "HEAD" and not planned[0].isdigit():
                return None  # body faults act on GET; status faults on every request
            return planned.pop(0)

    def resolve(self, repo: str, revision: str) -> tuple[str, dict[str, bytes]] | None:
        entry = self.repos.get(repo)
        if entry is None:
            return None
        commit = entry.refs.get(revision, revision)
        files = entry.commits.get(commit)
        return (commit, files) if files is not None else None

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def etag_of(filename: str, data: bytes) -> str:
    """What the hub sends as ETag: sha256 for LFS files, git's blob sha1 otherwise."""
    return hashlib.sha256(data).hexdigest() if filename.endswith(_LFS_SUFFIXES) else git_blob_sha1(data)


def _tree_entry(name: str, data: bytes) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "file", "path": name, "size": len(data), "oid": git_blob_sha1(data)}
    if name.endswith(_LFS_SUFFIXES):
        entry["lfs"] = {"oid": etag_of(name, data), "size": len(data), "pointerSize": 134}
    return entry


def _handler_for(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read hub.requests
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append((self.command, path, dict(self.headers)))
            if path.startswith("/api/models/"):
                self._api(path.removeprefix("/api/models/"))
            elif "/resolve/" in path:
                repo, rest = path.lstrip("/").split("/resolve/", 1)
                revision, _, filename = rest.partition("/")
                self._file(repo, revision, filename, body)
            else:
                self._error(404, "RepoNotFound", "not found")

        def _error(self, status: int, code: str | None, message: str, commit: str | None = None) -> None:
            data = json.dumps({"error": message}).encode()
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", message)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _json(self, payload: object) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _resolve(self, repo: str, revision: str) -> tuple[str, dict[str, bytes]] | None:
            """The commit and files, or None after answering the hub's 404 for a missing repo or revision."""
            found = hub.resolve(repo, revision)
            if found is None:
                code = "RepoNotFound" if repo not in hub.repos else "RevisionNotFound"
                self._error(404, code, f"{repo}@{revision} not found")
            return found

        def _api(self, rest: str) -> None:
            parts = rest.split("/")
            repo = "/".join(parts[:2])
            kind, revision = (parts[2], "/".join(parts[3:])) if len(parts) > 3 else ("revision", "main")
            found = self._resolve(repo, revision)
            if found is None:
                return
            commit, files = found
            if kind == "tree":
                self._json([_tree_entry(name, data) for name, data in sorted(files.items())])
            else:
                siblings = [{"rfilename": name} for name in sorted(files)]
                self._json({"id": repo, "modelId": repo, "sha": commit, "siblings": siblings, "private": False})

        def _file(self, repo: str, revision: str, filename: str, body: bool) -> None:
            found = self._resolve(repo, revision)
            if found is None:
                return
            commit, files = found
            lies = hub.lies.get((repo, filename), {})
            if filename not in files:
                self._error(404, "EntryNotFound", f"{filename} not in {repo}", lies.get("X-Repo-Commit", commit))
                return
            fault = hub._take_fault(repo, filename, self.command)
            if fault is not None and fault.isdigit():
                self._error(int(fault), None, f"scripted {fault}")
                return
            data = files[filename]
            start, end = 0, len(data)
            match = _RANGE.fullmatch(self.headers.get("Range", ""))
            if match:
                start, end = int(match.group(1)), int(match.group(2) or len(data) - 1) + 1
            self.send_response(206 if match else 200)
            headers = {"X-Repo-Commit": commit, "ETag": f'"{etag_of(filename, data)}"', **lies}
            for header, value in headers.items():
                self.send_header(header, value)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start))
            if match:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            self.end_headers()
            if not body:
                return
            chunk = data[start:end]
            if fault == "flip":
                middle = len(chunk) // 2
                chunk = chunk[:middle] + bytes([chunk[middle] ^ 0xFF]) + chunk[middle + 1 :]
            if fault == "cut":
                self.wfile.write(chunk[: len(chunk) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)  # the client sees the connection drop mid-body
                return
            view = memoryview(chunk)
            for offset in range(0, len(view), 1 << 20):
                self.wfile.write(view[offset : offset + (1 << 20)])

    return Handler


@contextmanager
def running_hub() -> Iterator[HubServer]:
    """A started `HubServer`, stopped on exit."""
    hub = HubServer()
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()
