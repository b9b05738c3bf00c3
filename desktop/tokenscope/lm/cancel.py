"""Cancellation: one token per piece of work, set from any thread, honoured down to a socket.

    token = CancelToken()
    model.generate(prompt, cancel=token)      # checked between tokens
    with token.calling(connection.shut): ...  # wakes a request blocked on a server
    token.cancel()                            # from any thread

Work checks `token.check()` between units (a token, a tensor, a sweep point), which raises
Cancelled; where it blocks with no point to check (waiting on a server), it registers a
callback with `calling` that cancelling runs at once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


class Cancelled(Exception):
    """Raised inside cancelled work to stop it where it stands."""


class CancelToken:
    """One piece of work's 'please stop'. `cancel()` is safe from any thread and idempotent."""

    __slots__ = ("_callbacks", "_event", "_lock")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:  # each one, whatever the others do
            with contextlib.suppress(Exception):
                callback()

    @contextlib.contextmanager
    def calling(self, callback: Callable[[], None]) -> Iterator[None]:
        """While inside, cancelling also calls `callback` (at once if already cancelled): it
        wakes work blocked where no check can run, such as a request waiting on a server."""
        with self._lock:
            self._callbacks.append(callback)
            already = self._event.is_set()
        try:
            if already:
                callback()
            yield
        finally:
            with self._lock:
                self._callbacks.remove(callback)

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise Cancelled if the work was cancelled (call between units of work)."""
        if self._event.is_set():
            raise Cancelled


def check(token: CancelToken | None) -> None:
    """`token.check()`, for work that may have been given no token."""
    if token is not None:
        token.check()
