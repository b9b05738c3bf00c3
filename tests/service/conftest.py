"""The model service run as the window runs it: a JobRunner serving on its own thread."""

from __future__ import annotations

import threading
import time

import pytest

from tokenscope.service import JobRunner, Load, ModelService


class Harness:
    """A runner on a thread, and every event it reported, in order."""

    def __init__(self) -> None:
        self.events = []
        self.listeners = []  # called on the runner's thread with each event
        self._changed = threading.Condition()
        self.service = ModelService()
        self.runner = JobRunner(self.service, self._sink)
        self.thread = threading.Thread(target=self.runner.serve, name="model-service")
        self.thread.start()

    def _sink(self, event) -> None:
        for listener in list(self.listeners):
            listener(event)
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def submit(self, job, epoch=None):
        return self.runner.submit(job, self.service.epoch if epoch is None else epoch)

    def of(self, ticket, kind=None):
        return [e for e in list(self.events) if e.ticket == ticket.id and kind in (None, e.kind)]

    def wait_until(self, predicate, timeout=30.0):
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                assert left > 0, "timed out waiting for the model service"
                self._changed.wait(left)

    def finished(self, ticket, timeout=30.0):
        """Wait for the ticket's "finished" event and return it."""
        self.wait_until(lambda: self.of(ticket, "finished"), timeout)
        return self.of(ticket, "finished")[0]

    def yielded(self, ticket):
        return [e.payload for e in self.of(ticket, "yielded")]

    def load(self, target):
        done = self.finished(self.submit(Load(str(target))))
        assert done.outcome == "completed", self.events
        return done.payload

    def close(self) -> None:
        self.runner.shutdown()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def harness():
    h = Harness()
    yield h
    h.close()
