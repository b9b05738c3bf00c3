"""Progress of long engine work (loading a model), reported to whoever asked, and cancellable.

Loaders call `report(stage, done, total)` between tensors. By default nothing listens. A
caller that wants progress (the window's model service) wraps the work in `reporting(cb)`;
its callback may raise to stop the work where it stands, which is how a load is cancelled:

    with reporting(lambda stage, done, total: print(stage, done, total)):
        model = load_model("smollm2-135m")

The listener is a context variable, so each thread (and each nested call) has its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: (stage, done, total) — total is 0 when the amount of work is not known
Reporter = Callable[[str, int, int], None]

_reporter: ContextVar[Reporter | None] = ContextVar("tokenscope_progress", default=None)


@contextmanager
def reporting(callback: Reporter | None) -> Iterator[None]:
    """Send the `report` calls made inside this block to `callback` (None: to nobody)."""
    token = _reporter.set(callback)
    try:
        yield
    finally:
        _reporter.reset(token)


def report(stage: str, done: int = 0, total: int = 0) -> None:
    """Tell the listener, if any, where the work is; the listener may raise to cancel it."""
    callback = _reporter.get()
    if callback is not None:
        callback(stage, done, total)
