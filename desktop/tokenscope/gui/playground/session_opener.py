"""Opening a session file off the GUI thread: read and checked in the background, then shown.

A session of thousands of generated tokens is megabytes of JSON, and reading and checking every
step takes seconds; on the GUI thread that would freeze the window. The work runs in the
background pool (tokenscope.gui.background) and only the newest request's answer comes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from tokenscope.gui.background import run_in_background
from tokenscope.gui.playground.sampling_panel import check_values
from tokenscope.gui.playground.session import Branch, read_session


@dataclass(frozen=True)
class OpenedSession:
    """A session file's content, every part checked."""

    fields: dict[str, Any]  # prompt, watch, model, current
    knobs: dict[str, Any]  # the sampling knobs
    branches: list[Branch]


def read_opened_session(path: str | Path) -> OpenedSession | str:
    """The checked content of a session file, or why it cannot be opened (one line).
    Blocking: seconds for a large file."""
    try:
        fields, branches = read_session(path)
        return OpenedSession(fields, check_values(fields.get("sampling", {})), branches)
    except (OSError, ValueError) as e:  # SessionError (a ValueError) names the part that is wrong
        return str(e)


class SessionOpener(QObject):
    #: (path, OpenedSession) — a session file was read and checked; GUI thread
    opened = Signal(str, object)
    #: (path, message) — a session file cannot be opened (why, in one line); GUI thread
    failed = Signal(str, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._request = 0  # the newest request: an older one's answer is dropped

    def open(self, path: str | Path) -> None:
        """Read `path` in the background; `opened` or `failed` follows on the GUI thread."""
        self._request += 1
        done = partial(self._on_read, self._request, str(path))
        run_in_background(partial(read_opened_session, path), done, parent=self)

    def _on_read(
        self, request: int, path: str, result: OpenedSession | str | None, error: str | None
    ) -> None:
        if request != self._request:
            return  # superseded by a newer request
        if isinstance(result, OpenedSession):
            self.opened.emit(path, result)
        else:
            self.failed.emit(path, result or error or "it could not be read")
