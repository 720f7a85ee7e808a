"""Refusing a hub or mirror whose file metadata could steer where huggingface_hub writes.

`huggingface_hub` names a downloaded blob after the server's ETag and its snapshot folder after the
``X-Repo-Commit`` header, without checking either (2.4 writes the body to ``blobs/<ETag>`` whatever the
ETag holds, and records a 404's commit under ``.no_exist/<commit>/``). So while zoo downloads, every
response the client receives passes `check_response` before the client reads it: a commit must be 40
lowercase hex digits and the ETag the client will use (``X-Linked-Etag``, else ``ETag``) 40 or 64 — a
content digest. Anything else ends the download with `UntrustedServerError` before a byte is written.

The check is a response hook on the client's shared session, active only inside `guarded` (a context
variable), so other users of huggingface_hub in the same process are left alone.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from zoo_core import validate
from zoo_core.errors import UnsafeValueError, UntrustedServerError

__all__ = ["check_response", "guarded", "refused"]

_ACTIVE: contextvars.ContextVar[str | None] = contextvars.ContextVar("zoo_hub_guard", default=None)


def _normalized(value: str) -> str:
    """The ETag as huggingface_hub reads it (its `_normalize_etag`): weak prefix and quotes dropped."""
    return value.lstrip("W/").strip('"')


def check_response(response: Any) -> None:
    """Raise `UntrustedServerError` if a response's commit or ETag is not a digest (inside `guarded`)."""
    model = _ACTIVE.get()
    if model is None:
        return
    headers = response.headers
    server = f"{response.request.url.scheme}://{response.request.url.netloc.decode()}"
    where = f"'{model}': the server {server} sent"
    try:
        if "X-Repo-Commit" in headers:
            validate.commit(headers["X-Repo-Commit"], f"{where} X-Repo-Commit")
            tag = headers.get("X-Linked-Etag") or headers.get("ETag")
            if tag is not None and response.status_code < 400:
                name = "X-Linked-Etag" if headers.get("X-Linked-Etag") else "ETag"
                validate.etag(_normalized(tag), f"{where} {name}")
    except UnsafeValueError as error:
        response.close()
        raise refused(error) from None


def refused(error: UnsafeValueError) -> UntrustedServerError:
    """The error that ends a download from a server that sent `error`'s value."""
    advice = "zoo refuses this server and wrote nothing (check source.endpoint or HF_ENDPOINT)"
    return UntrustedServerError(f"{error}; {advice}")


@contextmanager
def guarded(model: str) -> Iterator[None]:
    """Check every hub response received in this block on behalf of `model`."""
    from huggingface_hub import get_session

    hooks = get_session().event_hooks["response"]
    if check_response not in hooks:
        hooks.append(check_response)
    token = _ACTIVE.set(model)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
