"""JobRunner: runs the model service's jobs on one thread, in turn, reporting as they go.

    runner = JobRunner(service, sink)     # sink(JobEvent) is called on the runner's thread
    thread = threading.Thread(target=runner.serve); thread.start()
    ticket = runner.submit(job, epoch)    # from any thread
    ticket.cancel()                       # from any thread
    runner.shutdown(); thread.join()

    result = run_job(service, job, on_record)   # the command line: one job, on this thread

Scheduling: interactive jobs (a prediction, a tokenization) run as soon as they arrive, even
between two tokens of a generation. Long jobs (generation, sweeps, loads) advance one unit at
a time (a token, a sweep point) and take turns. Before each unit the runner drops the job if
it was cancelled or if it was asked of an older model epoch.

Events, in order, per ticket: "started", any number of "yielded", at most one "errored",
then exactly one "finished" whose payload is the result (or None) and whose outcome is
"completed", "cancelled", "failed" or "stale" (asked of a model that is no longer loaded).
"""

from __future__ import annotations

import inspect
import itertools
import queue
import threading
import traceback
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from tokenscope.service.cancel import CancelToken, JobCancelled
from tokenscope.service.jobs import Job
from tokenscope.service.service import JobContext, ModelService

_STOP = object()

#: a long job's handler: records (passed on as they are), then its result
_Steps = Generator[object, Any, object]


@dataclass(frozen=True)
class JobEvent:
    ticket: int
    kind: str  # "started", "yielded", "errored", "finished"
    payload: Any = None  # a record ("yielded"), a message ("errored"), the result ("finished")
    outcome: str = ""  # with "finished": completed, cancelled, failed, stale
    epoch: int = 0  # the model epoch after the event (a load moves it on)


class Ticket:
    """A submitted job: its id, its cancellation token and the epoch it was asked for."""

    __slots__ = ("epoch", "id", "job", "token")

    def __init__(self, ticket_id: int, job: Job, epoch: int) -> None:
        self.id = ticket_id
        self.job = job
        self.epoch = epoch
        self.token = CancelToken()

    def cancel(self) -> None:
        self.token.cancel()

    def __repr__(self) -> str:
        return f"Ticket({self.id}, {type(self.job).__name__}, epoch={self.epoch})"


def describe_error(e: BaseException) -> str:
    """What to show a person: our own errors as they are, anything else with its origin."""
    from tokenscope.lm.errors import TokenscopeError

    if isinstance(e, (TokenscopeError, ValueError, OSError)):
        return str(e) or type(e).__name__
    return f"{type(e).__name__}: {e}\n\n{traceback.format_exc(limit=3)}"


def run_job(
    service: ModelService,
    job: Job,
    on_record: Callable[[Any], None] | None = None,
    token: CancelToken | None = None,
) -> Any:
    """Run `job` on the calling thread to its end, through the same handler the window's
    runner uses: each record it yields goes to `on_record`, its result is returned, and an
    error is raised as it is (JobCancelled when `token` was cancelled)."""
    ctx = JobContext(token or CancelToken(), on_record or (lambda _record: None))
    result = service.handle(job, ctx)
    if not inspect.isgenerator(result):
        return result
    try:
        while True:
            record = next(result)
            if on_record is not None:
                on_record(record)
    except StopIteration as done:
        return done.value
    finally:
        result.close()


class JobRunner:
    """Runs jobs on the thread that calls `serve()`; everything else may be called anywhere."""

    def __init__(self, service: ModelService, sink: Callable[[JobEvent], None]) -> None:
        self.service = service
        self._sink = sink
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ids = itertools.count(1)
        self._open: dict[int, Ticket] = {}  # submitted and not finished
        self._lock = threading.Lock()
        self._closed = False
        self._active: deque[tuple[Ticket, _Steps]] = deque()

    # ----- any thread ----------------------------------------------------------------------

    def submit(self, job: Job, epoch: int) -> Ticket:
        """Queue `job`, asked of model epoch `epoch`; returns its ticket at once."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the model service has been shut down")
            ticket = Ticket(next(self._ids), job, epoch)
            self._open[ticket.id] = ticket
        self._queue.put(ticket)
        return ticket

    def cancel_all(self) -> None:
        with self._lock:
            tickets = list(self._open.values())
        for t in tickets:
            t.cancel()

    def shutdown(self) -> None:
        """Cancel every job and make `serve()` return once the job in hand has stopped."""
        with self._lock:
            self._closed = True
        self.cancel_all()
        self._queue.put(_STOP)

    # ----- the runner's thread -------------------------------------------------------------

    def serve(self) -> None:
        """Run jobs until `shutdown()`; returns with every job finished or cancelled."""
        try:
            while True:
                # Wait for work only when nothing is in progress; otherwise just look.
                block = not self._active
                while True:
                    try:
                        item = self._queue.get(block=block)
                    except queue.Empty:
                        break
                    block = False
                    if item is _STOP:
                        return
                    self._start(item)
                if self._active:
                    self._advance(*self._active.popleft())
        finally:
            while self._active:
                ticket, steps = self._active.popleft()
                self._close(ticket, steps, "cancelled")
            while True:  # finish what was queued and never started
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    self._finish(item, None, "cancelled")

    def _emit(self, ticket: Ticket, kind: str, payload: Any = None, outcome: str = "") -> None:
        self._sink(JobEvent(ticket.id, kind, payload, outcome, self.service.epoch))

    def _finish(self, ticket: Ticket, result: Any, outcome: str) -> None:
        with self._lock:
            self._open.pop(ticket.id, None)
        self._emit(ticket, "finished", result, outcome)

    def _stale(self, ticket: Ticket) -> bool:
        return ticket.job.needs_model and ticket.epoch != self.service.epoch

    def _start(self, ticket: Ticket) -> None:
        if ticket.token.cancelled:
            self._finish(ticket, None, "cancelled")
            return
        if self._stale(ticket):
            self._finish(ticket, None, "stale")
            return
        self._emit(ticket, "started")
        ctx = JobContext(ticket.token, lambda record: self._emit(ticket, "yielded", record))
        try:
            result = self.service.handle(ticket.job, ctx)
        except BaseException as e:
            self._fail(ticket, e)
            return
        if not inspect.isgenerator(result):
            self._finish(ticket, result, "completed")
        elif ticket.job.interactive:
            self._run_through(ticket, result)
        else:
            self._active.append((ticket, result))

    def _run_through(self, ticket: Ticket, steps: _Steps) -> None:
        while self._advance(ticket, steps, requeue=False):
            pass

    def _advance(self, ticket: Ticket, steps: _Steps, requeue: bool = True) -> bool:
        """One unit of a long job; True while it has more to do."""
        if ticket.token.cancelled or self._stale(ticket):
            self._close(ticket, steps, "cancelled" if ticket.token.cancelled else "stale")
            return False
        try:
            record = next(steps)
        except StopIteration as done:
            self._finish(ticket, done.value, "completed")
            return False
        except BaseException as e:
            self._fail(ticket, e)
            return False
        self._emit(ticket, "yielded", record)
        if requeue:
            self._active.append((ticket, steps))
        return True

    def _close(self, ticket: Ticket, steps: _Steps, outcome: str) -> None:
        try:
            steps.close()  # runs the job's own clean-up (finally blocks)
        except BaseException as e:
            self._emit(ticket, "errored", describe_error(e))
        self._finish(ticket, None, outcome)

    def _fail(self, ticket: Ticket, e: BaseException) -> None:
        if isinstance(e, JobCancelled):
            self._finish(ticket, None, "cancelled")
            return
        # KeyboardInterrupt, SystemExit and the like belong to the process, not to a job; a
        # Rust panic (pyo3's PanicException) is a BaseException but only this job's.
        if not isinstance(e, Exception) and type(e).__name__ != "PanicException":
            self._finish(ticket, None, "failed")
            raise e
        self._emit(ticket, "errored", describe_error(e))
        self._finish(ticket, None, "failed")
