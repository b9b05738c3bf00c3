"""Cancellation tokens: set from any thread, checked by the job between units of work."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


class JobCancelled(Exception):
    """Raised inside a job to stop it where it stands; the runner reports it as cancelled."""


class CancelToken:
    """One job's 'please stop'. `cancel()` is safe from any thread and idempotent."""

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
        """Raise JobCancelled if the job was cancelled (call between units of work)."""
        if self._event.is_set():
            raise JobCancelled
