"""How answers from other threads reach the GUI thread: a plain queue, emptied by a GUI timer.

    inbox = Inbox(parent)
    inbox.expect()                       # GUI thread: an answer will come; start listening
    inbox.post(callback, *args)          # any thread: run callback(*args) on the GUI thread
    inbox.settle()                       # GUI thread: nothing more is expected from this one

Only the GUI thread ever touches Qt. A worker thread that emitted a Qt signal itself would
run Qt's C++ (its connection and event-queue locks) while holding Python's GIL, and the GUI
thread does the reverse; the two can wait on each other forever (a rare hang that a CI run
met in the soak test). Here a worker only appends to a `queue.SimpleQueue`, which needs no
lock but the GIL.

The timer runs only while answers are expected, so an idle window does not wake up.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer

#: how often the GUI thread looks for answers while some are expected (ms); well under a
#: frame, so a token or a prediction is shown as soon as a person could see it
POLL_MS = 4
#: how long one look may spend running callbacks before the GUI thread paints and reads input
SLICE_S = 0.03


class Inbox(QObject):
    """A queue of calls for the GUI thread; emptied every POLL_MS while answers are expected."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]]] = (
            queue.SimpleQueue()
        )
        self._expected = 0
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.drain)

    def post(self, callback: Callable[..., None], *args: Any) -> None:
        """From any thread: run `callback(*args)` on the GUI thread soon."""
        self._queue.put((callback, args))

    def expect(self) -> None:
        """GUI thread: one more source of answers; listen until it settles."""
        self._expected += 1
        if not self._timer.isActive():
            self._timer.start()

    def settle(self) -> None:
        """GUI thread: one source has sent its last answer."""
        self._expected = max(0, self._expected - 1)

    @property
    def listening(self) -> bool:
        return self._timer.isActive()

    def drain(self) -> None:
        """Run what has arrived, for at most SLICE_S; stop listening once nothing is expected."""
        deadline = time.perf_counter() + SLICE_S
        while time.perf_counter() < deadline:
            try:
                callback, args = self._queue.get_nowait()
            except queue.Empty:
                break
            callback(*args)
        if self._expected == 0 and self._queue.empty():
            self._timer.stop()

    def stop(self) -> None:
        """The window is closing: drop whatever is still on its way."""
        self._timer.stop()
        self._expected = 0
        while not self._queue.empty():
            self._queue.get_nowait()
