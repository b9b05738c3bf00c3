"""The status line follows the background compile of the decode step (see
tokenscope.lm.background_compile): "compiling…" while the eager model serves, "compiled" once
the compiled step has taken over, or the reason it stayed eager."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer

from tokenscope.service.jobs import CompileStatus
from tokenscope.service.records import ModelInfo

POLL_MS = 2000  # the service answers at once; the compile itself takes seconds to minutes


class CompileWatch(QObject):
    """Asks the service every POLL_MS while a model's compile runs; `on_info` gets each answer."""

    def __init__(self, bridge: Any, on_info: Callable[[ModelInfo], None], parent: QObject) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.on_info = on_info
        self.epoch = -1
        self.timer = QTimer(self, interval=POLL_MS)
        self.timer.timeout.connect(self._ask)

    def follow(self, info: ModelInfo) -> None:
        """A model was loaded: watch its compile, if one runs."""
        self.epoch = info.epoch
        if info.compiling:
            self.timer.start()
        else:
            self.timer.stop()

    def _ask(self) -> None:
        self.bridge.submit(CompileStatus(), lane="compileStatus", on_done=self._answered,
                           on_error=lambda _message: self.timer.stop())  # fmt: skip

    def _answered(self, info: Any, outcome: str) -> None:
        if outcome != "completed" or not isinstance(info, ModelInfo) or info.epoch != self.epoch:
            return  # another model since (its own load restarts the watch)
        if not info.compiling:
            self.timer.stop()
        self.on_info(info)


def compile_state(info: ModelInfo) -> str:
    """ " · compiled", " · compiling…" or nothing, for the model's status line."""
    return " · compiled" if info.compiled else " · compiling…" if info.compiling else ""
