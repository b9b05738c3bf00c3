"""Cancellation tokens: set from any thread, checked by the job between units of work."""

from __future__ import annotations

import threading


class JobCancelled(Exception):
    """Raised inside a job to stop it where it stands; the runner reports it as cancelled."""


class CancelToken:
    """One job's 'please stop'. `cancel()` is safe from any thread and idempotent."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise JobCancelled if the job was cancelled (call between units of work)."""
        if self._event.is_set():
            raise JobCancelled
