"""What zoo adds to huggingface_hub's HTTP client while it downloads: header checks and a reachability test.

**Headers.** A hub or mirror whose file metadata could steer where huggingface_hub writes is refused.

`huggingface_hub` names a downloaded blob after the server's ETag and its snapshot folder after the
``X-Repo-Commit`` header, without checking either (2.4 writes the body to ``blobs/<ETag>`` whatever the
ETag holds, and records a 404's commit under ``.no_exist/<commit>/``). So while zoo downloads, every
response the client receives passes `check_response` before the client reads it: a commit must be 40
lowercase hex digits and the ETag the client will use (``X-Linked-Etag``, else ``ETag``) of a file's
metadata 40 or 64 — a content digest. Anything else ends the download with `UntrustedServerError`
before a byte is written. The last ETag seen is kept, so zoo can compare it with what the cache holds.

**Reachability.** huggingface_hub retries a host it cannot reach five times over 23 s, logging each try.
Before the first request to a host, zoo resolves its name and opens one connection (once per process;
skipped when a proxy is configured for the host): a name that does not resolve is `UnreachableHubError`
at once; a refused connection is one too, which zoo retries briefly (`zoo_core.network`) before saying
"cannot reach HOST" in one line.

Both are hooks on every client huggingface_hub makes: zoo wraps the client factory (the client is replaced
after a connection error, so hooking one client is not enough). They act only inside `guarded` (a context
variable), so other users of huggingface_hub in the process are left alone.
"""

from __future__ import annotations

import contextvars
import socket
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from zoo_core import validate
from zoo_core.errors import UnreachableHubError, UnsafeValueError, UntrustedServerError

__all__ = ["Guard", "check_reachable", "check_response", "guarded", "refused"]

_REACHED: set[tuple[str, int]] = set()  # hosts this process has connected to
_CONNECT_TIMEOUT = 10.0


@dataclass
class Guard:
    """One guarded download: whose it is, and the last (valid) ETag a server gave for a file."""

    model: str
    etag: str | None = None


_ACTIVE: contextvars.ContextVar[Guard | None] = contextvars.ContextVar("zoo_hub_guard", default=None)


def _normalized(value: str) -> str:
    """The ETag as huggingface_hub reads it (its `_normalize_etag`): weak prefix and quotes dropped."""
    return value.lstrip("W/").strip('"')


def check_response(response: Any) -> None:
    """Raise `UntrustedServerError` if a response's commit or file ETag is not a digest (inside `guarded`)."""
    guard = _ACTIVE.get()
    if guard is None:
        return
    headers, request = response.headers, response.request
    where = f"'{guard.model}': the server {request.url.scheme}://{request.url.netloc.decode()} sent"
    try:
        if "X-Repo-Commit" not in headers:
            return
        validate.commit(headers["X-Repo-Commit"], f"{where} X-Repo-Commit")
        name = "X-Linked-Etag" if headers.get("X-Linked-Etag") else "ETag"
        file_metadata = request.method == "HEAD" or "/resolve/" in request.url.path  # not JSON from /api
        if name in headers and file_metadata and response.status_code < 400:
            guard.etag = validate.etag(_normalized(headers[name]), f"{where} {name}")
    except UnsafeValueError as error:
        response.close()
        raise refused(error) from None


def check_reachable(request: Any) -> None:
    """Raise `UnreachableHubError` at once if the request's host cannot be resolved or connected to."""
    if _ACTIVE.get() is None:
        return
    host, scheme = request.url.host, request.url.scheme
    port = request.url.port or (443 if scheme == "https" else 80)
    if (host, port) in _REACHED or (urllib.request.getproxies().get(scheme) and not urllib.request.proxy_bypass(host)):
        return
    offline = "check the address (HF_ENDPOINT or source.endpoint) and your network, or work offline (--offline)"
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise UnreachableHubError(f"cannot reach {host}: the name does not resolve ({error}); {offline}") from None
    try:
        socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise UnreachableHubError(f"cannot reach {host}:{port} ({reason}); {offline}", transient=True) from None
    _REACHED.add((host, port))


def refused(error: UnsafeValueError) -> UntrustedServerError:
    """The error that ends a download from a server that sent `error`'s value."""
    advice = "zoo refuses this server and wrote nothing (check source.endpoint or HF_ENDPOINT)"
    return UntrustedServerError(f"{error}; {advice}")


class _CheckingFactory:
    """Builds huggingface_hub's clients with `check_response` among their response hooks."""

    def __init__(self, inner: Callable[[], Any]) -> None:
        self.inner = inner

    def __call__(self) -> Any:
        client = self.inner()
        client.event_hooks["request"].append(check_reachable)
        client.event_hooks["response"].append(check_response)
        return client


def _install() -> None:
    """Wrap huggingface_hub's client factory (the user's, if they set one) once."""
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils import _http  # its current factory is not public; we wrap rather than replace it

    current = getattr(_http, "_GLOBAL_CLIENT_FACTORY", _http.default_client_factory)
    if not isinstance(current, _CheckingFactory):
        set_client_factory(_CheckingFactory(current))


@contextmanager
def guarded(model: str) -> Iterator[Guard]:
    """Check every hub response received in this block on behalf of `model`."""
    _install()
    guard = Guard(model)
    token = _ACTIVE.set(guard)
    try:
        yield guard
    finally:
        _ACTIVE.reset(token)
