"""The trainer as a child process (QProcess): launch, read its events as they come, stop, kill.

The trainer writes one JSON event per line on stdout. Output arrives in chunks that may end
mid-line, so bytes are buffered until a newline; each complete line is parsed on the GUI
thread (a json.loads per line: microseconds) and anything that is not an event goes to the log.
A crash of the child is only a `finished` signal here: the window never goes down with it.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

from tokenscope.lm.threads import cpu_cores
from tokenscope.train.events import parse_event
from tokenscope.train.run_folder import STOP_FILE

SHUTDOWN_WAIT_MS = 15_000


def trainer_threads(processes: int) -> int:
    """Torch threads per trainer process, leaving one core for the window where there is one."""
    return max(1, (cpu_cores() - 1) // max(1, processes))


def threads_note(processes: int) -> str:
    """What the processes and threads of a run take from this machine, in words."""
    cores, threads = cpu_cores(), trainer_threads(processes)
    text = (
        f"{processes} process{'es' if processes > 1 else ''} × {threads} torch "
        f"thread{'s' if threads > 1 else ''} on {cores} core{'s' if cores > 1 else ''}"
    )
    if cores - processes * threads >= 1:
        return text + " (one core is left for the window)"
    return text + " — no core is left for the window: it will answer slowly while training"


def train_command(args: list[str], processes: int = 1) -> list[str]:
    """The trainer's command line (see tokenscope.launch: torchrun, frozen builds)."""
    from tokenscope.launch import trainer_command

    return trainer_command(*args, processes=processes)


class TrainingProcess(QObject):
    """One trainer process at a time; its events and output lines, and how it ended."""

    #: (tokenscope.train.events.Event) — one parsed event from the trainer's stdout; GUI thread
    event_received = Signal(object)
    #: (text line) — a line of output that is not an event (stderr, library messages); GUI thread
    log_received = Signal(str)
    #: (exit code, crashed) — the process ended; crashed is True when it did not exit by
    #: itself (killed, segfault); GUI thread
    process_finished = Signal(int, bool)
    #: (message) — the process could not be started at all; GUI thread
    start_failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.process: QProcess | None = None
        self.run_dir: Path | None = None
        self._stdout = b""
        self._stderr = b""
        self.stopping = False

    def is_running(self) -> bool:
        return self.process is not None

    def start(self, command: list[str], run_dir: Path, threads: int) -> None:
        """Launch `command` in `run_dir`; refuses if a process is already running."""
        if self.process is not None:
            raise RuntimeError("a trainer process is already running")
        self.run_dir = run_dir
        self.stopping = False
        self._stdout = self._stderr = b""
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        # torch's thread pools read these; torchrun would otherwise force 1 and warn.
        env.insert("OMP_NUM_THREADS", str(threads))
        env.insert("MKL_NUM_THREADS", str(threads))
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("PYTHONIOENCODING", "utf-8")
        process.setProcessEnvironment(env)
        process.setWorkingDirectory(str(run_dir))
        process.readyReadStandardOutput.connect(self._on_process_stdout)
        process.readyReadStandardError.connect(self._on_process_stderr)
        process.finished.connect(self._on_process_finished)
        process.errorOccurred.connect(self._on_process_error)
        self.process = process
        process.start(command[0], command[1:])

    def request_stop(self) -> None:
        """Ask the run to save a checkpoint and stop (a STOP file, seen by every rank).

        Asking a second time kills the process: for a trainer that no longer answers.
        """
        if self.process is None:
            return
        if self.stopping:
            self.process.kill()
            return
        self.stopping = True
        if self.run_dir is not None:
            try:
                (self.run_dir / STOP_FILE).touch()
            except OSError:
                self.process.terminate()  # SIGTERM also saves and stops
        else:
            self.process.terminate()

    def kill(self) -> None:
        """End the process now (no checkpoint is written by it)."""
        if self.process is not None:
            self.process.kill()

    def shutdown(self, wait_ms: int = SHUTDOWN_WAIT_MS) -> None:
        """Stop the run (it saves a checkpoint), wait a while, then kill; then it is gone."""
        process = self.process
        if process is None:
            return
        self.request_stop()
        process.terminate()
        if not process.waitForFinished(wait_ms):
            process.kill()
            process.waitForFinished(5_000)
        self._drop(process)

    # ----- output ---------------------------------------------------------------------------

    def _on_process_stdout(self) -> None:
        if self.process is None:
            return
        self._stdout += bytes(self.process.readAllStandardOutput().data())
        self._stdout = self._emit_lines(self._stdout, events=True)

    def _on_process_stderr(self) -> None:
        if self.process is None:
            return
        self._stderr += bytes(self.process.readAllStandardError().data())
        self._stderr = self._emit_lines(self._stderr, events=False)

    def _emit_lines(self, buffer: bytes, *, events: bool) -> bytes:
        *lines, rest = buffer.split(b"\n")
        for raw in lines:
            event = parse_event(raw) if events else None
            if event is not None:
                self.event_received.emit(event)
            else:
                text = raw.decode("utf-8", errors="replace").rstrip()
                if text:
                    self.log_received.emit(text)
        return rest

    def _flush(self) -> None:
        """What is left without a final newline still counts."""
        for buffer, events in ((self._stdout, True), (self._stderr, False)):
            if buffer:
                self._emit_lines(buffer + b"\n", events=events)
        self._stdout = self._stderr = b""

    def _on_process_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        process = self.process
        if process is None:
            return
        self._on_process_stdout()
        self._on_process_stderr()
        self._flush()
        self._drop(process)
        self.process_finished.emit(code, status == QProcess.ExitStatus.CrashExit)

    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self.process is not None:
            message = self.process.errorString()
            self._drop(self.process)
            self.start_failed.emit(message)

    def _drop(self, process: QProcess) -> None:
        if self.process is process:
            self.process = None
        if self.run_dir is not None:
            # A STOP file left behind would stop nothing (a new run deletes it) but would confuse.
            (self.run_dir / STOP_FILE).unlink(missing_ok=True)
        process.deleteLater()
