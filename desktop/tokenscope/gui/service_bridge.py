"""The one bridge between the window and the model service, which runs on its own thread.

    handle = bridge.submit(Predict(text), lane="playground.predict",
                           on_done=self._on_prediction, on_error=self._on_prediction_failed)
    handle.cancel()

A job goes in; its records come back to the callbacks on the GUI thread: `on_yield(record)`
for each record, `on_error(message)` if it failed, `on_done(result, outcome)` at the end
(outcome: "completed", "cancelled" or "failed"; a job asked of a model that was replaced
before it ran ends "cancelled", with no result). Submitting to a lane supersedes the job
there before it: the old one is cancelled and nothing more of it is delivered. Results of a
job asked of a model that is no longer loaded (an older epoch) are dropped here, in one place.
A cancelled job delivers no more records, only its `on_done`.

The service's thread receives nothing from here but jobs (through the runner's queue) and
cancellations (thread-safe tokens); its events come back through an `Inbox` (a plain queue the
GUI thread empties): that thread is a plain Python thread and never calls into Qt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal

from tokenscope.gui.inbox import Inbox
from tokenscope.service import JobEvent, JobRunner, Load, ModelService, Ticket
from tokenscope.service.jobs import Job
from tokenscope.service.records import ModelInfo

# The service's Python between torch calls holds the GIL; switching threads more often than
# the 5 ms default keeps the GUI thread's timers on time. Measured with a 5 ms GUI timer and a
# pure-Python worker loop on 2 cores: p99 gap ~75 ms at the default, 33 ms at 1 ms, 13 ms at
# 0.2 ms (a torch matmul worker, which releases the GIL: ~7 ms).
SWITCH_INTERVAL_S = 0.0005


@dataclass(eq=False)
class JobHandle:
    """A job the window asked for; `cancel()` stops it (safe to call at any time)."""

    ticket: Ticket
    lane: str | None
    on_yield: Callable[[Any], None] | None = None
    on_done: Callable[[Any, str], None] | None = None
    on_error: Callable[[str], None] | None = None
    cancelled: bool = False
    superseded: bool = False  # a newer job took its lane: deliver nothing more
    finished: bool = False
    outcome: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def job(self) -> Job:
        return self.ticket.job

    @property
    def epoch(self) -> int:
        return self.ticket.epoch

    def cancel(self) -> None:
        if not self.finished:
            self.cancelled = True
            self.ticket.cancel()


class ServiceBridge(QObject):
    """Owns the model service and its thread; lives in the GUI thread."""

    #: (ModelInfo) — another model is loaded (a new epoch); GUI thread
    model_loaded = Signal(object)
    #: (ModelInfo) — the same model, described anew (e.g. its threads changed); GUI thread
    info_changed = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        import sys

        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.service = ModelService()
        self.inbox = Inbox(self)
        self.runner = JobRunner(self.service, lambda event: self.inbox.post(self._on_event, event))
        self.epoch = 0  # the model the window shows; results of other epochs are dropped
        self.info: ModelInfo | None = None
        self._handles: dict[int, JobHandle] = {}
        self._lanes: dict[str, JobHandle] = {}
        self._closed = False
        # daemon: should the process end without shutdown(), this thread does not hold it open
        self.thread_ = threading.Thread(target=self.runner.serve, name="modelThread", daemon=True)
        self.thread_.start()

    # ----- asking --------------------------------------------------------------------------

    def submit(
        self,
        job: Job,
        *,
        lane: str | None = None,
        on_yield: Callable[[Any], None] | None = None,
        on_done: Callable[[Any, str], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> JobHandle | None:
        """Queue `job` for the current model; None once the window is closing."""
        if self._closed:
            return None
        if lane is not None and lane in self._lanes:
            old = self._lanes.pop(lane)
            old.superseded = True
            old.cancel()
        handle = JobHandle(self.runner.submit(job, self.epoch), lane, on_yield, on_done, on_error)
        self._handles[handle.ticket.id] = handle
        self.inbox.expect()  # until its "finished" event
        if lane is not None:
            self._lanes[lane] = handle
        return handle

    def load(
        self,
        target: str,
        threads: int | None = None,
        *,
        dtype: str | None = None,
        compile: bool = False,
        api_key: str | None = None,
        **callbacks: Callable[..., None],
    ) -> JobHandle | None:
        """Switch models: stop every job (generation, sweeps, an unfinished load), then load.

        `model_loaded` is emitted when the new model is in place; until then the current
        model stays, and a failed or cancelled load keeps it.
        """
        self.cancel_all()
        job = Load(target, dtype=dtype, threads=threads, compile=compile, api_key=api_key)
        return self.submit(job, lane="load", **callbacks)

    def current(self, lane: str) -> JobHandle | None:
        """The job running or waiting in `lane`, if any."""
        handle = self._lanes.get(lane)
        return handle if handle is not None and not handle.finished else None

    def cancel_all(self) -> None:
        for handle in list(self._handles.values()):
            handle.cancel()

    def shutdown(self) -> None:
        """Cancel everything and join the service's thread (never abandon it running)."""
        if self._closed:
            return
        self._closed = True
        for handle in self._handles.values():
            handle.superseded = True  # nobody is listening any more
        self.runner.shutdown()
        self.thread_.join()
        self.inbox.stop()

    @property
    def busy(self) -> bool:
        """Whether any job is waiting or running."""
        return bool(self._handles)

    # ----- answers (GUI thread) ------------------------------------------------------------

    def _on_event(self, event: JobEvent) -> None:
        handle = self._handles.get(event.ticket)
        if handle is None:
            return
        if event.kind == "finished":
            del self._handles[event.ticket]
            self.inbox.settle()
            if handle.lane is not None and self._lanes.get(handle.lane) is handle:
                del self._lanes[handle.lane]
            handle.finished, handle.outcome = True, event.outcome
            if isinstance(event.payload, ModelInfo) and event.outcome == "completed":
                if isinstance(handle.job, Load):
                    self.epoch, self.info = event.payload.epoch, event.payload
                    self.model_loaded.emit(event.payload)
                elif event.payload.epoch == self.epoch:
                    self.info = event.payload
                    self.info_changed.emit(event.payload)
        if handle.superseded or self._closed:
            return
        if handle.job.needs_model and handle.epoch != self.epoch:
            # Asked of a model that is no longer loaded: nothing it found is shown, but its
            # asker still learns that it is over (a Generate button waits for that).
            if event.kind == "finished" and handle.on_done is not None:
                handle.on_done(None, "cancelled")
            return
        if event.kind == "yielded":
            if handle.on_yield is not None and not handle.cancelled:
                handle.on_yield(event.payload)
        elif event.kind == "errored":
            if handle.on_error is not None and not handle.cancelled:
                handle.on_error(event.payload)
        elif event.kind == "finished" and handle.on_done is not None:
            stopped = handle.cancelled or event.outcome == "stale"
            handle.on_done(event.payload, "cancelled" if stopped else event.outcome)
