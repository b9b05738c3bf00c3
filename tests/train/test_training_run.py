"""Real training runs in a separate process: events, checkpoints, stop, resume, failures."""

import json
import math
import os
import signal
import subprocess

import pytest

import tokenscope
from tokenscope.train.events import (
    CheckpointEvent,
    DoneEvent,
    ErrorEvent,
    EvalEvent,
    ProbeEvent,
    ProgressEvent,
    SampleEvent,
    StartEvent,
    StepEvent,
    WarningEvent,
    parse_event,
    read_events,
)


@pytest.mark.slow
def test_a_run_reports_every_kind_of_event_and_learns(tmp_path, tools):
    config = tools.run_config(tmp_path, steps=30)
    events, _ = tools.train("--config", config)
    kinds = [type(e) for e in events]
    assert kinds[-1] is DoneEvent and events[-1].status == "completed"
    for kind in (ProgressEvent, StartEvent, StepEvent, EvalEvent, SampleEvent, ProbeEvent,
                 CheckpointEvent):  # fmt: skip
        assert kind in kinds, kind
    start = tools.of_kind(events, StartEvent)[0]
    assert start.world_size == 1 and start.parameters > 0 and start.device == "cpu"
    assert start.config["steps"] == 30 and start.corpus["files"] == 1
    steps = tools.of_kind(events, StepEvent)
    assert [s.step for s in steps] == list(range(1, 31))
    assert all(s.tokens_per_s > 0 and 0 < s.mfu < 1 and s.eta_s >= 0 for s in steps)
    assert steps[-1].loss < steps[0].loss * 0.5
    evals = tools.of_kind(events, EvalEvent)
    assert [e.step for e in evals] == [10, 20, 30]
    assert evals[-1].val_perplexity == pytest.approx(math.exp(evals[-1].val_loss))
    probes = tools.of_kind(events, ProbeEvent)
    assert probes[-1].probability > probes[0].probability
    # The same events were appended to the run folder's events.jsonl.
    run = tmp_path / "run"
    assert [type(e) for e in read_events(run / "events.jsonl")] == kinds
    assert json.loads((run / "run.json").read_text())["steps"] == 30
    # The final checkpoint opens in the engine like any model.
    model = tokenscope.load_model(events[-1].checkpoint)
    dist = model.predict_next_token_probabilities("The capital of Indonesia is")
    assert dist.vector().sum() == pytest.approx(1.0, abs=1e-4)


@pytest.mark.slow
def test_stop_then_resume_gives_the_same_losses_as_one_run(tmp_path, tools):
    one = tools.run_config(tmp_path / "a", steps=16, checkpoint_every=100, dropout=0.1)
    events, _ = tools.train("--config", one)
    losses_one = [e.loss for e in tools.of_kind(events, StepEvent)]

    two = tools.run_config(tmp_path / "b", steps=16, checkpoint_every=100, dropout=0.1)
    first, _ = tools.train("--config", two, "--stop-at-step", 8)
    assert first[-1].status == "stopped" and first[-1].step == 8
    second, _ = tools.train("--config", two, "--resume")
    assert tools.of_kind(second, StartEvent)[0].resumed_from == 8
    losses_two = [e.loss for e in tools.of_kind(first + second, StepEvent)]
    assert len(losses_two) == 16
    assert losses_two == pytest.approx(losses_one, rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_a_stop_file_saves_and_stops(tmp_path, tools):
    config = tools.run_config(tmp_path, steps=100000, checkpoint_every=100000, eval_every=100000)
    proc = subprocess.Popen(
        tools.train_command("--config", config), stdout=subprocess.PIPE, text=True
    )
    seen = []
    for line in proc.stdout:
        event = parse_event(line)
        if event:
            seen.append(event)
            if isinstance(event, StepEvent) and event.step == 3:
                (tmp_path / "run" / "STOP").touch()
    assert proc.wait(timeout=120) == 0
    done = seen[-1]
    assert isinstance(done, DoneEvent) and done.status == "stopped"
    saved = [e for e in seen if isinstance(e, CheckpointEvent)]
    assert saved and saved[-1].step == done.step >= 3
    assert tokenscope.load_model(saved[-1].path).config.name == "tiny"
    # Resuming is a new request: the old STOP file does not stop it at once.
    more, _ = tools.train("--config", config, "--resume", "--stop-at-step", done.step + 3)
    assert more[-1].status == "stopped" and more[-1].step == done.step + 3


def test_sigterm_saves_and_stops(tmp_path, tools):
    config = tools.run_config(tmp_path, steps=100000, checkpoint_every=100000, eval_every=100000)
    proc = subprocess.Popen(
        tools.train_command("--config", config), stdout=subprocess.PIPE, text=True
    )
    seen = []
    for line in proc.stdout:
        event = parse_event(line)
        if event:
            seen.append(event)
            if isinstance(event, StepEvent) and event.step == 2:
                proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
    assert seen[-1].status == "stopped"
    assert isinstance(seen[-2], CheckpointEvent)


@pytest.mark.slow
def test_after_kill_9_the_last_checkpoint_loads_and_the_run_resumes(tmp_path, tools):
    config = tools.run_config(
        tmp_path, steps=100000, checkpoint_every=5, eval_every=100000, sample_every=100000
    )
    proc = subprocess.Popen(
        tools.train_command("--config", config), stdout=subprocess.PIPE, text=True
    )
    saved = []
    for line in proc.stdout:
        event = parse_event(line)
        if isinstance(event, CheckpointEvent):
            saved.append(event)
            if len(saved) == 2:
                # Killed while it goes on writing: mid-step or mid-checkpoint, either must be safe.
                os.kill(proc.pid, signal.SIGKILL)
                break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    model = tokenscope.load_model(saved[-1].path)
    assert model.config.name == "tiny"
    events, _ = tools.train("--config", config, "--resume", "--stop-at-step", saved[-1].step + 2)
    start = tools.of_kind(events, StartEvent)[0]
    assert start.resumed_from >= saved[-1].step
    assert events[-1].status == "stopped"


def test_an_empty_corpus_fails_with_a_clear_error(tmp_path, tools):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    config = tools.run_config(tmp_path)
    events, proc = tools.train("--config", config, ok=False)
    assert proc.returncode == 1
    warnings = [e.message for e in tools.of_kind(events, WarningEvent)]
    assert any("image.png" in w and "binary" in w for w in warnings)
    error = tools.of_kind(events, ErrorEvent)[0].message
    assert "corpus is empty" in error
    assert isinstance(events[-1], DoneEvent) and events[-1].status == "failed"
    assert "Traceback" not in proc.stderr


def test_a_diverging_run_skips_bad_steps_then_fails(tmp_path, tools):
    config = tools.run_config(
        tmp_path, steps=50, learning_rate=1e30, warmup_steps=0, grad_clip=1e30, max_bad_steps=3
    )
    events, proc = tools.train("--config", config, ok=False)
    warnings = [e for e in tools.of_kind(events, WarningEvent) if "step skipped" in e.message]
    assert len(warnings) == 3
    assert "not finite for 3 steps" in tools.of_kind(events, ErrorEvent)[0].message
    assert events[-1].status == "failed" and proc.returncode == 1


def test_invalid_config_is_refused_before_anything_runs(tmp_path, tools):
    config = tools.run_config(tmp_path, steps=0, batch_size=3, grad_accum=2)
    events, proc = tools.train("--config", config, ok=False)
    assert proc.returncode == 2
    assert "steps must be a whole number in [1, " in proc.stderr
    assert "multiple of grad_accum" in proc.stderr
    # The window reads the same as events: an error naming the field, and the end.
    assert [type(e) for e in events] == [ErrorEvent, DoneEvent]
    assert "steps must be a whole number" in events[0].message
    assert not (tmp_path / "run").exists()  # nothing was created


@pytest.mark.slow
def test_fine_tuning_continues_from_a_checkpoint_with_its_tokenizer(tmp_path, tools):
    base = tools.run_config(tmp_path / "base", steps=20)
    base_events, _ = tools.train("--config", base)
    checkpoint = base_events[-1].checkpoint
    tuned = tools.run_config(tmp_path / "tuned", steps=5, init_from=checkpoint, tokenizer="model")
    scratch = tools.run_config(tmp_path / "scratch", steps=5)
    tuned_events, _ = tools.train("--config", tuned)
    scratch_events, _ = tools.train("--config", scratch)
    first = lambda events: tools.of_kind(events, StepEvent)[0].loss  # noqa: E731
    assert first(tuned_events) < 0.5 * first(scratch_events)  # it starts where the base left off
    start = tools.of_kind(tuned_events, StartEvent)[0]
    assert start.parameters == tools.of_kind(base_events, StartEvent)[0].parameters


def test_tokenscope_train_is_the_same_command(tmp_path, tools):
    import sys

    config = tools.run_config(tmp_path, steps=3, eval_every=3)
    proc = subprocess.run(
        [sys.executable, "-m", "tokenscope", "train", "--config", str(config), "--set", "steps=2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    events = [e for line in proc.stdout.splitlines() if (e := parse_event(line))]
    assert events[-1].status == "completed" and events[-1].step == 2


def test_tokenscope_train_run_resumes_a_run_folder_or_trains_it_anew(tmp_path, tools):
    """`tokenscope train --run DIR` once failed before doing anything ("'PosixPath' object is
    not callable": the value of --run took the place of the command's handler). Through the
    command line's own entry (cli.main, in this process), on a real run folder: with
    --resume the run continues from its checkpoint; without, a new run starts there and the
    earlier one is set aside, as the Training tab's buttons do it."""
    from ..cli_run import run_cli

    config = tools.run_config(tmp_path, steps=4, eval_every=2, checkpoint_every=2)
    run = tmp_path / "run"

    def events(*args) -> list:
        out = run_cli("train", *args).stdout
        return [e for line in out.splitlines() if (e := parse_event(line))]

    first = events("--config", config, "--stop-at-step", 2)
    assert first[-1].status == "stopped" and first[-1].step == 2

    resumed = events("--run", run, "--resume")
    assert tools.of_kind(resumed, StartEvent)[0].resumed_from == 2
    assert [e.step for e in tools.of_kind(resumed, StepEvent)] == [3, 4]
    assert resumed[-1].status == "completed" and resumed[-1].step == 4
    assert resumed[-1].checkpoint == str(run / "checkpoints" / "step-000004")

    anew = events("--run", run, "--set", "steps=2")
    assert tools.of_kind(anew, StartEvent)[0].resumed_from is None
    assert [e.step for e in tools.of_kind(anew, StepEvent)] == [1, 2]
    assert any("held an earlier run" in w.message for w in tools.of_kind(anew, WarningEvent))
    (earlier,) = (run / "earlier-runs").iterdir()
    assert (earlier / "checkpoints" / "step-000004").is_dir()  # nothing trained is lost


def test_measure_steps_times_the_planned_model_without_a_corpus(tmp_path):
    import json
    import subprocess
    import sys

    config = {"data": ["(not read)"], "out_dir": str(tmp_path), "preset": "tiny",
              "batch_size": 4, "context": 32, "vocab_size": 300, "threads": 1}  # fmt: skip
    path = tmp_path / "run.json"
    path.write_text(json.dumps(config))
    proc = subprocess.run(
        [sys.executable, "-m", "tokenscope.train", "--config", str(path), "--measure-steps", "2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    event = json.loads(proc.stdout.splitlines()[-1])
    assert event["event"] == "measure" and 0 < event["seconds_per_step"] < 30
    assert not (tmp_path / "data").exists()  # nothing was prepared or written
