"""Training events: one versioned JSON object per line, on stdout and in the run's events.jsonl.

    {"v": 1, "event": "step", "time": 1732800000.1, "step": 10, "loss": 3.2, ...}

In Python each kind is a frozen record (StepEvent, EvalEvent, ...): the trainer emits one,
readers get one back from parse_event and match on its class.

Kinds: start, progress, step, eval, baseline, sample, probe, checkpoint, warning, error, done;
and ladder (after a size ladder: each size's loss and the power-law fit).
`done` carries "status": completed, stopped or failed. Readers use parse_event, which skips
anything on the stream that is not an event (library warnings, tracebacks, blank lines), and
any event it cannot make sense of (a field of the wrong type); fields it does not know (a later
version's) are ignored, and fields left out get their defaults.

On the wire a field that is None is left out, and a float that is NaN or infinite is written as
null (JSON has neither), so every line stays parseable.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import sys
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TextIO, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

VERSION = 1


@dataclass(frozen=True, kw_only=True)
class Event:
    """What every event carries: when it was written (seconds since the epoch)."""

    kind: ClassVar[str] = ""  # its "event" on the wire
    time: float = 0.0  # set by the writer


@dataclass(frozen=True, kw_only=True)
class StartEvent(Event):
    """A run begins (or resumes): what is trained, where, and how fast it could go."""

    kind: ClassVar[str] = "start"
    config: dict[str, Any] = field(default_factory=dict)  # the TrainConfig's fields
    model: dict[str, Any] = field(default_factory=dict)  # the ModelConfig's fields
    parameters: int = 0
    device: str = ""
    world_size: int = 1
    threads: int | None = None
    precision: str = ""
    compiled: bool | None = None  # with config compile: whether torch.compile worked
    peak_flops: float | None = None  # FLOP/s of all processes together, roughly
    tokens_per_step: int = 0
    resumed_from: int | None = None  # the checkpoint's step, when resuming
    corpus: dict[str, Any] = field(default_factory=dict)  # files, bytes, train_tokens, ...
    run_dir: str = ""


@dataclass(frozen=True, kw_only=True)
class ProgressEvent(Event):
    """A long stage moves on: tokenizer, tokenize, ngram or lstm, `done` of `total`."""

    kind: ClassVar[str] = "progress"
    stage: str = ""
    done: int = 0
    total: int = 0
    eta_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class StepEvent(Event):
    """An optimizer step (every log_every steps, and the last)."""

    kind: ClassVar[str] = "step"
    step: int = 0
    loss: float | None = None  # None: not finite
    lr: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    mfu: float | None = None
    eta_s: float | None = None
    tokens: int = 0  # training tokens seen so far, over every process


@dataclass(frozen=True, kw_only=True)
class EvalEvent(Event):
    """Losses on fixed batches of both splits; `best` when validation improved."""

    kind: ClassVar[str] = "eval"
    step: int = 0
    train_loss: float | None = None
    val_loss: float | None = None
    val_perplexity: float | None = None
    best: bool = False
    # In-context learning (tokenscope.lm.icl): validation loss late in the window minus early
    # (negative: the model uses what it has read), and every head's induction and
    # previous-token scores (layers x heads) on repeated random tokens.
    icl_score: float | None = None
    induction_scores: tuple[tuple[float, ...], ...] = ()
    induction_max: float | None = None
    previous_token_scores: tuple[tuple[float, ...], ...] = ()
    previous_token_max: float | None = None


@dataclass(frozen=True, kw_only=True)
class BaselineEvent(Event):
    """A baseline model (ngram or lstm) trained on the run's tokens."""

    kind: ClassVar[str] = "baseline"
    model: str = ""
    order: int | None = None  # the n-gram model's n
    val_perplexity: float | None = None
    val_loss: float | None = None
    seconds: float | None = None


@dataclass(frozen=True, kw_only=True)
class SampleEvent(Event):
    """Text the model wrote after one of the run's sample prompts."""

    kind: ClassVar[str] = "sample"
    step: int = 0
    prompt: str = ""
    text: str = ""


@dataclass(frozen=True, kw_only=True)
class ProbeEvent(Event):
    """The probability of a probe's continuation after its prompt."""

    kind: ClassVar[str] = "probe"
    step: int = 0
    prompt: str = ""
    continuation: str = ""
    probability: float | None = None
    tokens: int = 0  # in the continuation


@dataclass(frozen=True, kw_only=True)
class CheckpointEvent(Event):
    """A checkpoint was saved (its folder)."""

    kind: ClassVar[str] = "checkpoint"
    step: int = 0
    path: str = ""


@dataclass(frozen=True, kw_only=True)
class WarningEvent(Event):
    """Something a person should know; the run goes on."""

    kind: ClassVar[str] = "warning"
    message: str = ""
    step: int | None = None


@dataclass(frozen=True, kw_only=True)
class ErrorEvent(Event):
    """What made the run fail, in one line (a `done` with status failed follows)."""

    kind: ClassVar[str] = "error"
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class DoneEvent(Event):
    """The run ended: completed, stopped or failed."""

    kind: ClassVar[str] = "done"
    status: str = ""
    step: int | None = None
    loss: float | None = None
    best_val_loss: float | None = None
    checkpoint: str | None = None  # the latest ("" when there is none)
    best_checkpoint: str | None = None
    message: str | None = None


@dataclass(frozen=True, kw_only=True)
class LadderSizeResult:
    """One size of a ladder, as the ladder event tells it."""

    run_dir: str = ""
    parameters: int = 0
    tokens: int = 0  # trained on
    val_loss: float | None = None  # the last evaluation's (None: there was none)
    status: str = ""


@dataclass(frozen=True, kw_only=True)
class LadderFit:
    """L(N) = a * N^-alpha + c over the sizes, and what it predicts for the next size up."""

    a: float
    alpha: float
    c: float = 0.0
    rms: float = 0.0
    next_parameters: int | None = None
    next_val_loss: float | None = None


@dataclass(frozen=True, kw_only=True)
class LadderEvent(Event):
    """A size ladder ended: every size's loss, and the fit when every size completed."""

    kind: ClassVar[str] = "ladder"
    sizes: tuple[LadderSizeResult, ...] = ()
    fit: LadderFit | None = None


EVENT_TYPES: dict[str, type[Event]] = {
    t.kind: t
    for t in (
        StartEvent,
        ProgressEvent,
        StepEvent,
        EvalEvent,
        BaselineEvent,
        SampleEvent,
        ProbeEvent,
        CheckpointEvent,
        WarningEvent,
        ErrorEvent,
        DoneEvent,
        LadderEvent,
    )
}
KINDS = frozenset(EVENT_TYPES)


# ----- writing ---------------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """JSON-ready: NaN and infinity as null, records as objects, tuples as lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return event_fields(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def event_fields(record: DataclassInstance) -> dict[str, Any]:
    """A record's fields as JSON-ready values, without `time` and without the fields that are
    None (a reader gives those their default)."""
    return {
        f.name: _clean(value)
        for f in dataclasses.fields(record)
        if f.name != "time" and (value := getattr(record, f.name)) is not None
    }


def to_dict(event: Event) -> dict[str, Any]:
    """The event as the JSON object written on its line."""
    return {"v": VERSION, "event": event.kind, "time": event.time, **event_fields(event)}


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

    def emit(self, event: Event) -> Event:
        """Write `event`, stamped with the time now; return the stamped event.

        Raises ValueError for anything that is not one of the event kinds (a bug)."""
        if not isinstance(event, Event) or EVENT_TYPES.get(event.kind) is not type(event):
            raise ValueError(f"unknown event kind {event!r}")
        event = dataclasses.replace(event, time=round(time.time(), 3))
        if self.enabled:
            line = json.dumps(to_dict(event), ensure_ascii=False)
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
        assert file is not None  # called when writing to it failed
        try:
            file.close()
        except (OSError, ValueError):
            pass
        why = getattr(error, "strerror", None) or error
        warning = WarningEvent(
            message=f"{file.name} cannot be written any more: {why}", time=round(time.time(), 3)
        )
        self._write_stream(json.dumps(to_dict(warning), ensure_ascii=False))

    def close(self) -> None:
        if self._file:
            try:
                self._file.close()
            except OSError as e:
                self.file_error = e
            self._file = None


# ----- reading ---------------------------------------------------------------------------------
#
# Records are built from JSON by a converter made once per field from the type hints, not by
# pydantic: pydantic comes only with the `serve` extra (fastapi), and neither the trainer nor
# the window should need it for twelve flat records. Measured on a step line: about twice the
# time of json.loads alone (~7 us against ~3 us per line on one core).


class _Malformed(Exception):
    """A field that cannot be what its record says it is."""


Converter = typing.Callable[[Any], Any]
T = TypeVar("T")
Record = TypeVar("Record", bound="DataclassInstance")


def _converter(hint: Any) -> Converter:
    """A function from decoded JSON to a value of type `hint` (raising _Malformed), made once
    per field: the window parses every line of a run as it arrives."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _converter(inner)  # (null never reaches a converter: it means "left out")
    if origin is tuple:
        item = _converter(typing.get_args(hint)[0])
        return lambda v: tuple(item(x) for x in _checked(v, list))
    if origin is dict:
        return lambda v: _checked(v, dict)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return lambda v: _record(hint, _checked(v, dict))
    return _SCALARS[hint]


def _checked(value: Any, kind: type[T]) -> T:
    if not isinstance(value, kind):
        raise _Malformed
    return value


def _to_int(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    raise _Malformed


def _to_float(v: Any) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    raise _Malformed


_SCALARS: dict[Any, Converter] = {
    int: _to_int,
    float: _to_float,
    str: lambda v: _checked(v, str),
    bool: lambda v: _checked(v, bool),
}


@functools.cache
def _plan(record_type: type) -> tuple[tuple[str, Converter, dataclasses.Field], ...]:
    hints = typing.get_type_hints(record_type)
    return tuple((f.name, _converter(hints[f.name]), f) for f in dataclasses.fields(record_type))


def _record(record_type: type[Record], values: dict[str, Any]) -> Record:
    """A record from a JSON object: unknown keys ignored, those left out (or null) defaulted."""
    given = {}
    for name, convert, f in _plan(record_type):
        value = values.get(name)
        if value is not None:
            given[name] = convert(value)
        elif f.default_factory is not dataclasses.MISSING:
            given[name] = f.default_factory()
        elif f.default is not dataclasses.MISSING:
            given[name] = f.default
        else:
            raise _Malformed  # a field the record cannot do without
    return record_type(**given)


def event_from_dict(obj: Any) -> Event | None:
    """The event a decoded JSON object holds, or None if it is not one we can read."""
    if not isinstance(obj, dict):
        return None
    kind, v = obj.get("event"), obj.get("v")
    event_type = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if event_type is None or not isinstance(v, int) or isinstance(v, bool) or v > VERSION:
        return None
    try:
        return _record(event_type, obj)
    except (_Malformed, ValueError, TypeError):
        return None


def parse_event(line: str | bytes) -> Event | None:
    """The event on this line, or None if the line is not one (of any version we read)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return None
    return event_from_dict(obj)


def read_events(path: str | Path) -> list[Event]:
    """All events in an events.jsonl file (a run folder's history), skipping damaged lines."""
    from tokenscope.files import FileReadError, open_regular_file

    try:
        f = open_regular_file(path, "a run's events (JSON lines)")
    except FileReadError:
        return []  # none yet, or something that is not a file (open() blocks on a FIFO)
    with io.TextIOWrapper(f, encoding="utf-8", errors="replace") as text:
        return [e for line in text if (e := parse_event(line)) is not None]
