"""Things that are not regular files, put where a test expects a file, and a guard that turns
a read blocked on a FIFO into a test failure instead of a hang."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest


def replace_with(path: Path, kind: str) -> Path:
    """Put `kind` at `path` in place of whatever is there: "fifo", "folder", "socket" or
    "dev-zero" (a symbolic link to /dev/zero, which never ends)."""
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    else:
        path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "socket":
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(path))  # the file stays after the socket is closed
    else:
        raise ValueError(kind)
    return path


def call_unblocked(
    fn: Callable[[], Any], fifos: Path | Sequence[Path] | None = None, timeout: float = 60
) -> Any:
    """fn() in a thread; if it is still blocked after `timeout` (an open() waiting for a
    FIFO's writer), each FIFO is opened for writing and closed, which lets its reader go, and
    the test fails. Exceptions fn raises are raised here."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as e:
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        _release([fifos] if isinstance(fifos, Path) else list(fifos or ()), thread)
        pytest.fail(f"blocked for {timeout} s reading {fifos or 'a file'}")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _release(fifos: list[Path], thread: threading.Thread) -> None:
    """Give every reader blocked on one of `fifos` an end of file, until `thread` ends."""
    for _ in range(100):
        for fifo in fifos:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass  # no reader waiting on this one (ENXIO)
        thread.join(0.1)
        if not thread.is_alive():
            return
