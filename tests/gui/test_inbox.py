"""Answers from other threads reach the GUI thread through the inbox, in order, and only there."""

from __future__ import annotations

import gc
import threading

from tokenscope.gui.inbox import Inbox


def test_calls_posted_from_a_thread_run_on_the_gui_thread_in_order(qtbot):
    inbox = Inbox()
    seen: list[tuple[int, bool]] = []
    gui = threading.get_ident()

    def record(n: int) -> None:
        seen.append((n, threading.get_ident() == gui))

    inbox.expect()

    def worker() -> None:
        for n in range(200):
            inbox.post(record, n)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == []  # nothing runs until the GUI thread's event loop looks
    qtbot.waitUntil(lambda: len(seen) == 200, timeout=5_000)
    assert [n for n, _ in seen] == list(range(200))
    assert all(on_gui for _, on_gui in seen)
    assert inbox.listening  # still expecting: the source has not settled
    inbox.settle()
    qtbot.waitUntil(lambda: not inbox.listening, timeout=5_000)


def test_an_idle_inbox_does_not_wake_the_gui_thread(qtbot):
    inbox = Inbox()
    assert not inbox.listening
    inbox.expect()
    inbox.post(lambda: None)
    inbox.settle()
    qtbot.waitUntil(lambda: not inbox.listening, timeout=5_000)


def test_the_service_thread_is_a_plain_python_thread(window):
    """Only the GUI thread calls into Qt (see gui/inbox.py); the model's thread is not a QThread."""
    thread = window.bridge.thread_
    assert type(thread) is threading.Thread and thread.is_alive()
    assert thread.name == "modelThread"


def test_the_window_exempts_start_up_objects_from_full_collections(window):
    """Otherwise a full collection walks ~200,000 objects and stalls the window (gui/heap.py)."""
    assert gc.get_freeze_count() > 50_000
    assert len(gc.get_objects()) < gc.get_freeze_count()


def test_a_background_call_that_panics_still_answers(qtbot):
    """A Rust panic (pyo3's PanicException) is a BaseException: the answer must still come,
    or the inbox would wait for it forever."""
    from PySide6.QtWidgets import QWidget

    from tokenscope.gui import background

    class PanicException(BaseException):
        pass

    def panics():
        raise PanicException("the tokenizer gave up")

    owner = QWidget()
    answers = []
    background.run_in_background(panics, lambda r, e: answers.append((r, e)), owner)
    qtbot.waitUntil(lambda: bool(answers), timeout=5_000)
    assert answers == [(None, "PanicException: the tokenizer gave up")]
    _pool, inbox = background._the_pool()
    qtbot.waitUntil(lambda: not inbox.listening, timeout=5_000)
