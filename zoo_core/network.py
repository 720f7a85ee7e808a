"""What both download paths share: retrying transient network faults, and quiet progress bars."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["is_transient", "silent_tqdm", "with_retries"]

T = TypeVar("T")
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def is_transient(error: BaseException) -> bool:
    """Whether trying again later may help: server errors and network faults, not 404s or 401s."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from zoo_core.errors import UnreachableHubError

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, UnreachableHubError):
            return seen.transient
        if isinstance(seen, RepositoryNotFoundError | RevisionNotFoundError | EntryNotFoundError):
            return False
        if isinstance(seen, HfHubHTTPError):
            return seen.response is not None and seen.response.status_code in TRANSIENT_STATUS
        if type(seen).__module__.split(".")[0].startswith("httpx") or isinstance(seen, TimeoutError | ConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def with_retries(action: Callable[[], T], attempts: int, delay: float) -> T:
    """Call `action`, again after a doubling delay while it fails transiently, at most `attempts` times."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as error:
            if attempt == attempts or not is_transient(error):
                raise
            time.sleep(delay * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def silent_tqdm() -> type[Any]:
    """A tqdm class that draws nothing: huggingface_hub takes a class, not a switch."""
    from tqdm.auto import tqdm  # type: ignore[import-untyped]

    class Silent(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent
