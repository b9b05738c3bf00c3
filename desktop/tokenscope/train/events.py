"""Training events: one versioned JSON object per line, on stdout and in the run's events.jsonl.

    {"v": 1, "event": "step", "time": 1732800000.1, "step": 10, "loss": 3.2, ...}

Kinds: start, progress, step, eval, baseline, sample, probe, checkpoint, warning, error, done;
and ladder (after a size ladder: each size's loss and the power-law fit).
`done` carries "status": completed, stopped or failed. Readers use parse_event, which skips
anything on the stream that is not an event (library warnings, tracebacks, blank lines).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

VERSION = 1
KINDS = frozenset(
    {
        "start",
        "progress",
        "step",
        "eval",
        "baseline",
        "sample",
        "probe",
        "checkpoint",
        "warning",
        "error",
        "done",
        "ladder",
    }
)


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null so every line stays parseable."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class EventWriter:
    """Writes events to a stream and appends them to a file; a no-op on ranks other than 0.

    Writing never raises: a file that cannot be written any more (a full disk, a folder
    taken away) is closed with a warning on the stream, and a stream nobody reads any more
    (the window went away) is dropped, so reporting a failure can never cause another.
    """

    def __init__(self, path: Path | None, stream: TextIO | None = None, enabled: bool = True):
        self.enabled = enabled
        self.stream: TextIO | None = stream if stream is not None else sys.stdout
        self._file: TextIO | None = None
        self.file_error: Exception | None = None
        if path is not None:
            self.open_file(path)

    def open_file(self, path: Path) -> None:
        """Append to `path` from now on (raises OSError when it cannot be opened)."""
        if self.enabled:
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        event = {"v": VERSION, "event": kind, "time": round(time.time(), 3), **_clean(fields)}
        if self.enabled:
            line = json.dumps(event, ensure_ascii=False)
            self._write_stream(line)
            if self._file:
                try:
                    self._file.write(line + "\n")
                    self._file.flush()
                except (OSError, ValueError) as e:  # ValueError: the file was closed
                    self._drop_file(e)
        return event

    def _write_stream(self, line: str) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nobody is listening
            self.stream = None

    def _drop_file(self, error: Exception) -> None:
        self.file_error = error
        file, self._file = self._file, None
        try:
            file.close()
        except (OSError, ValueError):
            pass
        why = getattr(error, "strerror", None) or error
        message = f"{file.name} cannot be written any more: {why}"
        warning = {"v": VERSION, "event": "warning", "time": round(time.time(), 3)}
        self._write_stream(json.dumps({**warning, "message": message}, ensure_ascii=False))

    def close(self) -> None:
        if self._file:
            try:
                self._file.close()
            except OSError as e:
                self.file_error = e
            self._file = None


def parse_event(line: str | bytes) -> dict[str, Any] | None:
    """The event on this line, or None if the line is not one (of any version we read)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(event, dict) or event.get("event") not in KINDS:
        return None
    if not isinstance(event.get("v"), int) or event["v"] > VERSION:
        return None
    return event


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """All events in an events.jsonl file (a run folder's history), skipping damaged lines."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        return [e for line in f if (e := parse_event(line)) is not None]
