"""Typed training events (tokenscope.train.events): one record per kind, the same JSON lines as
before on the wire, and a reader that never raises on what it cannot make sense of."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import random

import pytest

from tokenscope.train.events import (
    EVENT_TYPES,
    KINDS,
    BaselineEvent,
    CheckpointEvent,
    DoneEvent,
    ErrorEvent,
    EvalEvent,
    EventWriter,
    LadderEvent,
    LadderFit,
    LadderSizeResult,
    ProbeEvent,
    ProgressEvent,
    SampleEvent,
    StartEvent,
    StepEvent,
    WarningEvent,
    event_fields,
    parse_event,
    read_events,
    to_dict,
)

EXAMPLES = [
    StartEvent(
        config={"steps": 30, "out_dir": "/r"},
        model={"vocab_size": 300},
        parameters=1234,
        device="cpu",
        world_size=2,
        threads=3,
        precision="float32",
        peak_flops=3e11,
        tokens_per_step=256,
        resumed_from=10,
        corpus={"files": 1, "train_tokens": 900},
        run_dir="/r",
    ),
    ProgressEvent(stage="lstm", done=3, total=10, eta_s=1.5),
    StepEvent(
        step=7,
        loss=2.5,
        lr=1e-3,
        grad_norm=0.5,
        tokens_per_s=1000.0,
        mfu=0.01,
        eta_s=3.0,
        tokens=1792,
    ),
    EvalEvent(step=10, train_loss=2.0, val_loss=2.2, val_perplexity=math.exp(2.2), best=True),
    BaselineEvent(model="ngram", order=3, val_perplexity=9.0, val_loss=math.log(9.0), seconds=1.0),
    SampleEvent(step=10, prompt="The", text=" capital"),
    ProbeEvent(
        step=10, prompt="The capital of Peru is", continuation=" Lima", probability=0.25, tokens=2
    ),
    CheckpointEvent(step=10, path="/r/checkpoints/step-000010"),
    WarningEvent(message="careful", step=4),
    ErrorEvent(message="broken"),
    DoneEvent(
        status="completed",
        step=30,
        loss=1.0,
        best_val_loss=1.1,
        checkpoint="/c",
        best_checkpoint="/b",
    ),
    LadderEvent(
        sizes=(
            LadderSizeResult(
                run_dir="/l/size-1", parameters=100, tokens=1000, val_loss=3.0, status="completed"
            ),
        ),
        fit=LadderFit(a=2.0, alpha=0.3, c=1.5, rms=0.01, next_parameters=400, next_val_loss=2.9),
    ),
]


def test_there_is_one_record_for_every_kind():
    assert {type(e) for e in EXAMPLES} == set(EVENT_TYPES.values())
    kinds = {"start", "progress", "step", "eval", "baseline", "sample", "probe", "checkpoint",
             "warning", "error", "done", "ladder"}  # fmt: skip
    assert set(KINDS) == kinds


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.kind)
def test_every_kind_is_written_and_read_back_as_the_same_record(event):
    stream = io.StringIO()
    written = EventWriter(None, stream=stream).emit(event)
    assert written.time > 0 and dataclasses.replace(written, time=0.0) == event
    line = stream.getvalue()
    obj = json.loads(line)
    assert obj["v"] == 1 and obj["event"] == event.kind and obj["time"] == written.time
    assert parse_event(line) == written


def test_the_wire_keeps_the_field_names_and_leaves_out_what_was_not_said():
    line = json.dumps(to_dict(WarningEvent(message="m")))
    assert json.loads(line) == {"v": 1, "event": "warning", "time": 0.0, "message": "m"}
    done = to_dict(DoneEvent(status="failed", message="no"))
    assert set(done) == {"v", "event", "time", "status", "message"}
    # NaN and infinity are measurements that went wrong: written as null, read back as None.
    step = to_dict(StepEvent(step=1, loss=math.nan, grad_norm=math.inf))
    assert step["loss"] is None and step["grad_norm"] is None
    ladder = event_fields(LadderEvent(sizes=(LadderSizeResult(val_loss=math.nan),)))
    assert ladder == {"sizes": [{"run_dir": "", "parameters": 0, "tokens": 0, "val_loss": None,
                                 "status": ""}]}  # fmt: skip


def test_lines_written_by_the_earlier_untyped_writer_still_read():
    """As the dict-based writer wrote them (nulls where now nothing is written)."""
    start = parse_event(
        '{"v": 1, "event": "start", "time": 1.5, "config": {"steps": 3}, "model": {}, '
        '"parameters": 10, "device": "cpu", "world_size": 1, "threads": 2, '
        '"precision": "float32", "peak_flops": 2e11, "tokens_per_step": 64, '
        '"resumed_from": null, "corpus": {}, "run_dir": "/r"}'
    )
    assert isinstance(start, StartEvent) and start.resumed_from is None and start.time == 1.5
    assert start.parameters == 10 and start.config == {"steps": 3}
    done = parse_event('{"v": 1, "event": "done", "time": 2, "status": "failed", "message": "x"}')
    assert done == DoneEvent(time=2.0, status="failed", message="x")
    assert done.step is None and done.checkpoint is None
    step = parse_event('{"v": 1, "event": "step", "time": 3, "step": 2, "loss": null}')
    assert step == StepEvent(time=3.0, step=2)


def test_unknown_fields_are_ignored_and_missing_ones_get_defaults():
    event = parse_event('{"v": 1, "event": "probe", "step": 4, "probability": 0.5, "new": [1]}')
    assert event == ProbeEvent(step=4, probability=0.5)
    assert parse_event('{"v": 1, "event": "start"}') == StartEvent()
    assert parse_event('{"v": 1, "event": "ladder", "sizes": [{"parameters": 5}]}') == (
        LadderEvent(sizes=(LadderSizeResult(parameters=5),))
    )


@pytest.mark.parametrize(
    "line",
    [
        '{"v": 1, "event": "step", "step": "ten"}',
        '{"v": 1, "event": "step", "step": 1.5}',
        '{"v": 1, "event": "step", "step": true}',
        '{"v": 1, "event": "eval", "val_loss": "low"}',
        '{"v": 1, "event": "start", "config": [1, 2]}',
        '{"v": 1, "event": "warning", "message": 3}',
        '{"v": 1, "event": "eval", "best": 1}',
        '{"v": 1, "event": "ladder", "sizes": [1]}',
        '{"v": 1, "event": "ladder", "sizes": {"parameters": 1}}',
        '{"v": 1, "event": "ladder", "fit": {"a": 1.0}}',  # a fit needs its exponent
        '{"v": 1, "event": "done", "time": "now"}',
        '{"v": 1, "event": ["step"]}',
        '{"v": "1", "event": "step"}',
        '{"v": 1, "event": "step", "step": ' + "[" * 5000 + "]" * 5000 + "}",
    ],
)
def test_a_malformed_event_is_skipped(line):
    assert parse_event(line) is None


def test_the_reader_never_raises_on_damaged_lines(tmp_path):
    rng = random.Random(5)
    lines = [json.dumps(to_dict(e)) for e in EXAMPLES]
    damaged = []
    for _ in range(400):
        line = list(rng.choice(lines))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(line))
            line[i] = rng.choice('{}[]",:0123456789.-eE null true x\\\u00e9')
        damaged.append("".join(line))
    for line in damaged:
        event = parse_event(line)
        assert event is None or type(event) in EVENT_TYPES.values()
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines + damaged + lines) + "\n", encoding="utf-8")
    events = read_events(path)
    assert events[: len(EXAMPLES)] == EXAMPLES and events[-len(EXAMPLES) :] == EXAMPLES


def test_emit_refuses_anything_but_an_event_record():
    writer = EventWriter(None, stream=io.StringIO())
    for wrong in ("step", {"event": "step"}, LadderFit(a=1.0, alpha=1.0)):
        with pytest.raises(ValueError, match="unknown event kind"):
            writer.emit(wrong)
