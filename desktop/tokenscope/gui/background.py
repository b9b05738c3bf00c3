"""Run a short blocking call off the GUI thread and get its result back on the GUI thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


class _Relay(QObject):
    #: (result or None, error message or None) — emitted from the pool thread, received in
    #: the GUI thread because the relay lives there (queued connection)
    finished = Signal(object, object)


class _Task(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self.fn, self.relay = fn, relay

    def run(self) -> None:
        try:
            outcome = (self.fn(), None)
        except Exception as e:  # handed to the caller, who shows it
            outcome = (None, f"{type(e).__name__}: {e}")
        try:
            self.relay.finished.emit(*outcome)
        except RuntimeError:
            pass  # the widget that asked has been closed: nobody is waiting for the answer


_alive: set[_Relay] = set()  # keeps relays referenced until their task reports


def run_in_background(
    fn: Callable[[], Any], on_done: Callable[[Any, str | None], None], parent: QObject
) -> None:
    """Call fn() in Qt's thread pool; on_done(result, error) runs later on the GUI thread."""
    relay = _Relay(parent)
    _alive.add(relay)

    def done(result: Any, error: Any) -> None:
        _alive.discard(relay)
        relay.deleteLater()
        on_done(result, error)

    relay.finished.connect(done)
    QThreadPool.globalInstance().start(_Task(fn, relay))
