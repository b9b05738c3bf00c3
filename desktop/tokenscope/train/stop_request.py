"""A request to stop a run: SIGTERM, SIGINT or a STOP file in the run folder.

The run saves a checkpoint and ends with status "stopped"; before its first step (while the
corpus is read or tokenized) it ends without one, and its token files stay incomplete.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from tokenscope.train.run_folder import STOP_FILE


class StopRequested:
    """Set by SIGTERM/SIGINT or a STOP file in the run folder; checked between steps and
    between chunks of the corpus while it is read and tokenized.

    Python runs signal handlers in the main thread only, and only between bytecodes: while
    the main thread waits inside native code (the tokenizer library training on the corpus,
    which reads it from a thread of its own) the handler would run only when that returns.
    So the signal also goes through a wakeup pipe, which `requested()` reads from any thread.
    """

    def __init__(self, run_dir: Path) -> None:
        self.flag = False
        self.stop_file = run_dir / STOP_FILE
        self._previous: dict[int, Any] = {}
        self._pipe: tuple[int, int] | None = None
        self._previous_fd = -1

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. called from a test thread)
                return
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._pipe = (read_fd, write_fd)
        self._previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        if self._pipe is not None:
            signal.set_wakeup_fd(self._previous_fd)
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.flag = True

    def requested(self) -> bool:
        if not self.flag and self._pipe is not None:
            try:
                woken = os.read(self._pipe[0], 512)
            except (BlockingIOError, OSError):
                woken = b""
            if signal.SIGTERM in woken or signal.SIGINT in woken:
                self.flag = True
        return self.flag or self.stop_file.exists()
