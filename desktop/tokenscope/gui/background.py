"""Run a short blocking call off the GUI thread and get its result back on the GUI thread.

    run_in_background(lambda: read_header(path), on_done, parent=self)
    # later, on the GUI thread: on_done(result, None) or on_done(None, "OSError: ...")

The calls run in a small pool of plain Python threads (they mostly wait on files, so a few at
once even on two cores). Their answers come back through an `Inbox`: no pool thread touches
Qt. An answer for a widget that has been closed meanwhile is dropped.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import TypeVar

from PySide6.QtCore import QCoreApplication, QObject
from shiboken6 import isValid

from tokenscope.gui.inbox import Inbox

WORKERS = 4

T = TypeVar("T")

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_inbox: Inbox | None = None
_pending: set[concurrent.futures.Future[None]] = set()
_lock = threading.Lock()


def _the_pool() -> tuple[concurrent.futures.ThreadPoolExecutor, Inbox]:
    global _pool, _inbox
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="background")
    if _inbox is None or not isValid(_inbox):
        _inbox = Inbox(QCoreApplication.instance())
    return _pool, _inbox


def run_in_background(
    fn: Callable[[], T], on_done: Callable[[T | None, str | None], None], parent: QObject
) -> None:
    """Call fn() in the pool; on_done(result, error) runs later on the GUI thread, unless
    `parent` has been deleted by then."""
    pool, inbox = _the_pool()

    def done(result: T | None, error: str | None) -> None:
        inbox.settle()
        if isValid(parent):
            on_done(result, error)

    def task() -> None:
        # Whatever happens, one answer is posted: the inbox waits for it (a Rust panic from
        # the tokenizer is a BaseException, not an Exception).
        outcome: tuple[T | None, str | None] = (None, "the call ended without an answer")
        try:
            outcome = (fn(), None)
        except BaseException as e:  # handed to the caller, who shows it
            outcome = (None, f"{type(e).__name__}: {e}")
        finally:
            inbox.post(done, *outcome)

    inbox.expect()
    future = pool.submit(task)
    with _lock:
        _pending.add(future)
    future.add_done_callback(_forget)


def _forget(future: concurrent.futures.Future[None]) -> None:
    with _lock:
        _pending.discard(future)


def wait_for_all(timeout_s: float) -> bool:
    """Wait (at most `timeout_s`) for the calls still running; True if none is left.

    Their answers are not delivered: this is for a window that is closing."""
    with _lock:
        running = list(_pending)
    _done, not_done = concurrent.futures.wait(running, timeout=timeout_s)
    return not not_done
