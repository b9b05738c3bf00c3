"""Event lines, run configs and the learning-rate schedule."""

import io
import itertools
import json
import math

import pytest

from tokenscope.train.config import Probe, TrainConfig, recipe_path
from tokenscope.train.events import (
    VERSION,
    DoneEvent,
    EvalEvent,
    EventWriter,
    StartEvent,
    StepEvent,
    parse_event,
    read_events,
)
from tokenscope.train.loop import learning_rate


def test_events_are_versioned_json_lines_written_twice(tmp_path):
    stream = io.StringIO()
    writer = EventWriter(tmp_path / "events.jsonl", stream=stream)
    writer.emit(StepEvent(step=1, loss=float("nan"), grad_norm=float("inf")))
    writer.emit(DoneEvent(status="completed"))
    writer.close()
    lines = stream.getvalue().splitlines()
    assert (tmp_path / "events.jsonl").read_text().splitlines() == lines
    first = json.loads(lines[0])  # NaN and infinity become null: still valid JSON
    assert first["v"] == VERSION and first["event"] == "step" and first["loss"] is None
    with pytest.raises(ValueError, match="unknown event kind"):
        EventWriter(None, stream=io.StringIO()).emit("hello")


def test_other_ranks_write_nothing(tmp_path):
    stream = io.StringIO()
    writer = EventWriter(tmp_path / "events.jsonl", stream=stream, enabled=False)
    writer.emit(StepEvent(step=1))
    assert stream.getvalue() == "" and not (tmp_path / "events.jsonl").exists()


@pytest.mark.parametrize(
    "line",
    [
        "",
        "Traceback (most recent call last):",
        "{not json",
        '{"v": 1, "event": "unknown-kind"}',
        '{"event": "step"}',
        f'{{"v": {VERSION + 1}, "event": "step"}}',
        "[1, 2]",
        "W1128 12:00:00.000 torch/distributed warning",
    ],
)
def test_parser_skips_lines_that_are_not_events(line):
    assert parse_event(line) is None


def test_parser_reads_events_and_damaged_files(tmp_path):
    assert parse_event(b'{"v": 1, "event": "eval", "val_loss": 2.0}\n') == EvalEvent(val_loss=2.0)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"v": 1, "event": "start"}\n\xff\xfe garbage\n{"v": 1, "event": "do')
    assert [type(e) for e in read_events(path)] == [StartEvent]
    assert read_events(tmp_path / "missing.jsonl") == []


def test_config_round_trip_and_relative_paths(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(
        json.dumps(
            {
                "data": "texts",
                "out_dir": "out",
                "steps": 5,
                "probes": [{"prompt": "a", "continuation": " b"}],
            }
        )
    )
    config = TrainConfig.from_file(path)
    assert config.data == (str(tmp_path / "texts"),)
    assert config.out_dir == str(tmp_path / "out")
    assert config.probes == (Probe("a", " b"),)
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config


def test_config_refuses_mistakes(tmp_path):
    with pytest.raises(ValueError, match="unknown training config keys: stepz"):
        TrainConfig.from_dict({"data": ["x"], "out_dir": "o", "stepz": 3})
    with pytest.raises(ValueError, match="needs init_from"):
        TrainConfig(data=("x",), out_dir="o", tokenizer="model")
    with pytest.raises(ValueError, match="name at least one file"):
        TrainConfig(data=(), out_dir="o")
    with pytest.raises(ValueError, match="not valid JSON"):
        (tmp_path / "bad.json").write_text("{")
        TrainConfig.from_file(tmp_path / "bad.json")


def test_the_default_recipe_is_shipped_and_valid():
    config = TrainConfig.from_file(recipe_path("default"))
    assert config.corpus_recipe == "default"
    assert config.model_config(2048).parameter_count() < 2_000_000  # a few MB of weights


def test_learning_rate_warms_up_then_decays_to_the_minimum():
    c = TrainConfig(
        data=("x",),
        out_dir="o",
        steps=100,
        warmup_steps=10,
        learning_rate=1.0,
        min_learning_rate=0.1,
    )
    lrs = [learning_rate(s, c) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)
    assert learning_rate(55, c) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
