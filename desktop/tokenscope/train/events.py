"""Training events: one versioned JSON object per line, on stdout and in the run's events.jsonl.

    {"v": 1, "event": "step", "time": 1732800000.1, "step": 10, "loss": 3.2, ...}

Kinds: start, progress, step, eval, baseline, sample, probe, checkpoint, warning, error, done.
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
    """Writes events to a stream and appends them to a file; a no-op on ranks other than 0."""

    def __init__(self, path: Path | None, stream: TextIO | None = None, enabled: bool = True):
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stdout
        self._file = open(path, "a", encoding="utf-8") if (enabled and path) else None  # noqa: SIM115

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        event = {"v": VERSION, "event": kind, "time": round(time.time(), 3), **_clean(fields)}
        if self.enabled:
            line = json.dumps(event, ensure_ascii=False)
            self.stream.write(line + "\n")
            self.stream.flush()
            if self._file:
                self._file.write(line + "\n")
                self._file.flush()
        return event

    def close(self) -> None:
        if self._file:
            self._file.close()
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
