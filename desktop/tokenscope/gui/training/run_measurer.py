"""The measurement behind the Training tab's time estimate: one trainer process at a time that
times the parts of the planned run (tokenscope.train.measure), killed as soon as the plan
changes again or a run starts, so that it never competes with a run for the cores.

The process's wall time less the time it spent measuring is the start-up a run pays too
(Python, torch, building the model); both come back with the parts.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from PySide6.QtCore import QElapsedTimer, QObject, QProcess, QProcessEnvironment, QTimer, Signal

from tokenscope.gui.training.training_process import train_command

MEASURE_STEPS = 3
MEASURE_TIMEOUT_MS = 180_000


class RunMeasurer(QObject):
    """Starts, replaces and kills the one measuring process."""

    #: (key, parts dict, start-up seconds) — a measurement finished; GUI thread
    measured = Signal(object, object, float)
    #: (key, message) — a measurement could not be made; GUI thread
    failed = Signal(object, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.process: QProcess | None = None
        self.started_count = 0  # how many were started (tests, and to see the churn)
        self.key: Any = None
        self._folder: str | None = None
        self._clock = QElapsedTimer()
        self._timeout = QTimer(self, singleShot=True, interval=MEASURE_TIMEOUT_MS)
        self._timeout.timeout.connect(self._on_timeout)

    def is_running(self) -> bool:
        return self.process is not None

    def start(self, key: Any, fields: dict[str, Any], threads: int) -> None:
        """Measure the run `fields` (TrainConfig fields), ending any measurement still
        running first."""
        self.stop()
        folder = tempfile.mkdtemp(prefix="tokenscope-measure-")
        path = Path(folder) / "run.json"
        path.write_text(json.dumps({**fields, "out_dir": folder}), encoding="utf-8")
        command = train_command(["--config", str(path), "--measure-steps", str(MEASURE_STEPS)])
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("OMP_NUM_THREADS", str(threads))
        env.insert("MKL_NUM_THREADS", str(threads))
        process.setProcessEnvironment(env)
        process.finished.connect(lambda code, _status: self._on_finished(process, code))
        process.errorOccurred.connect(lambda error: self._on_error(process, error))
        self.process, self.key, self._folder = process, key, folder
        self.started_count += 1
        self._clock.start()
        self._timeout.start()
        process.start(command[0], command[1:])

    def stop(self) -> None:
        """Kill the measurement in progress, if any, and wait for it to be gone."""
        process, self.process = self.process, None
        self._timeout.stop()
        if process is not None:
            process.blockSignals(True)
            process.kill()
            process.waitForFinished(3000)
            process.deleteLater()
        self._remove_folder()

    def _on_timeout(self) -> None:
        key = self.key
        if self.process is not None:
            self.stop()
            self.failed.emit(key, "the measurement took too long")

    def _remove_folder(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def _on_finished(self, process: QProcess, code: int) -> None:
        if process is not self.process:
            return
        wall = self._clock.elapsed() / 1000
        self._timeout.stop()
        out = bytes(process.readAllStandardOutput().data()).decode("utf-8", "replace")
        err = bytes(process.readAllStandardError().data()).decode("utf-8", "replace")
        self.process = None
        process.deleteLater()
        self._remove_folder()
        for line in reversed(out.splitlines()):
            if line.startswith("{"):
                try:
                    parts = json.loads(line)
                    start = max(0.0, wall - float(parts.get("work_seconds", 0.0)))
                    float(parts["seconds_per_step"])
                except (ValueError, KeyError, TypeError):
                    break
                self.measured.emit(self.key, parts, start)
                return
        last = (err.strip().splitlines() or [f"exit code {code}"])[-1]
        self.failed.emit(self.key, last)

    def _on_error(self, process: QProcess, error: QProcess.ProcessError) -> None:
        if process is self.process and error == QProcess.ProcessError.FailedToStart:
            self.process = None
            self._timeout.stop()
            self._remove_folder()
            self.failed.emit(self.key, process.errorString())
