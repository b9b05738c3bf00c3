"""Training under hostile conditions, in real trainer processes: kill -9 at random moments,
two trainers on one folder, a full disk, an unwritable folder, a stop while tokenizing, odd
corpora. Each ends in a clear event, and a resume reproduces the uninterrupted run."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

import tokenscope
from tokenscope.train.events import (
    DoneEvent,
    ErrorEvent,
    Event,
    ProgressEvent,
    StartEvent,
    StepEvent,
    WarningEvent,
    parse_event,
    read_events,
)
from tokenscope.train.token_files import read_manifest


def _reference_losses(tools, tmp_path, **config) -> list[float]:
    path = tools.run_config(tmp_path / "reference", **config)
    events, _ = tools.train("--config", path)
    return [e.loss for e in tools.of_kind(events, StepEvent)]


def _assert_same_losses(reported: dict[int, list[float]], reference: list[float]) -> None:
    """Every loss reported for a step (also those redone after a resume) is the reference's."""
    assert sorted(reported) == list(range(1, len(reference) + 1))
    for step, losses in reported.items():
        assert losses == pytest.approx([reference[step - 1]] * len(losses), rel=1e-5, abs=1e-6)


KILL_CONFIG = dict(steps=18, checkpoint_every=3, eval_every=6, sample_every=1000, dropout=0.1)


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_reproduces_the_losses(tmp_path, tools):
    """Killed while tokenizing, between steps and inside checkpoint writes (a checkpoint
    follows the step event of every third step at once), then resumed to the end: every
    loss ever reported equals the uninterrupted run's. benchmarks/train_kill_soak.py runs a
    longer loop of the same."""
    reference = _reference_losses(tools, tmp_path, **KILL_CONFIG)
    config = tools.run_config(tmp_path / "killed", **KILL_CONFIG)
    run = tmp_path / "killed" / "run"
    rng = random.Random(17)
    args = ["--config", config]
    kills = 0
    last_step = 0
    while kills < 4:
        proc = tools.start(*args)
        seen: list[Event] = []
        if kills == 0:  # the first while the corpus is being tokenized
            event = tools.read_until(proc, seen, lambda e: isinstance(e, ProgressEvent))
        else:
            target = last_step + rng.randint(1, 4)
            event = tools.read_until(
                proc, seen, lambda e, t=target: isinstance(e, StepEvent) and e.step >= t
            )
            time.sleep(rng.uniform(0, 0.02))  # into the eval or the checkpoint that follows
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()
        assert event is not None, "the trainer ended before it could be killed"
        assert proc.returncode == -signal.SIGKILL
        kills += 1
        last_step = max([last_step] + [e.step for e in tools.of_kind(seen, StepEvent)])
        args = ["--config", config, "--resume"]
    events, _ = tools.train(*args)
    assert events[-1].status == "completed" and events[-1].step == KILL_CONFIG["steps"]
    history = read_events(run / "events.jsonl")
    _assert_same_losses(tools.step_losses(history), reference)
    assert not [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    assert tokenscope.load_model(events[-1].checkpoint).config.name == "tiny"


@pytest.mark.slow
def test_a_second_trainer_on_the_folder_is_refused_and_the_first_goes_on(tmp_path, tools):
    config = tools.run_config(tmp_path, steps=100000, checkpoint_every=100000, eval_every=100000)
    first = tools.start("--config", config)
    seen: list[Event] = []
    assert tools.read_until(first, seen, lambda e: isinstance(e, StepEvent) and e.step == 2)

    # A new run and a resume into the same folder: both refused, naming the first's pid.
    for args in (("--config", config), ("--config", config, "--resume")):
        events, proc = tools.train(*args, ok=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert [type(e) for e in events] == [ErrorEvent, DoneEvent]
        message = events[0].message
        assert f"pid {first.pid}" in message and "in use by another trainer" in message
        assert events[-1].status == "failed"

    # The first trainer never noticed: it trains on, then stops when asked, as usual.
    now = max(e.step for e in tools.of_kind(seen, StepEvent))
    assert tools.read_until(first, seen, lambda e: isinstance(e, StepEvent) and e.step == now + 3)
    (tmp_path / "run" / "STOP").touch()
    stderr = tools.finish(first, seen)
    assert first.returncode == 0, stderr[-2000:]
    assert seen[-1].status == "stopped" and seen[-1].step >= now + 3
    assert tokenscope.load_model(seen[-1].checkpoint).config.name == "tiny"
    history = read_events(tmp_path / "run" / "events.jsonl")
    assert len(tools.of_kind(history, StartEvent)) == 1 and not tools.of_kind(history, ErrorEvent)


@pytest.mark.slow
def test_a_full_disk_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, tools, small_disk):
    """The disk fills while a checkpoint is written: the run ends with a message, the earlier
    checkpoint is intact, nothing half-written is left; with room again, it resumes to the
    same losses as a run that never stopped."""
    config = dict(steps=12, checkpoint_every=4, eval_every=4, sample_every=1000)
    reference = _reference_losses(tools, tmp_path, **config)
    path = tools.run_config(small_disk.path, **config)
    run = small_disk.path / "run"
    first, _ = tools.train("--config", path, "--stop-at-step", 4)
    assert first[-1].status == "stopped"

    small_disk.fill(64 * 1024)  # room for events, not for a checkpoint of about 0.5 MB
    proc = tools.start("--config", path, "--resume", **small_disk.popen())
    failed: list[Event] = []
    stderr = tools.finish(proc, failed)
    assert proc.returncode == 1, stderr[-2000:]
    assert "Traceback" not in stderr and "SafetensorError" not in stderr
    error = tools.of_kind(failed, ErrorEvent)[0].message
    assert "could not save the checkpoint of step 8" in error
    reason = "No space left on device" if small_disk.tmpfs else "File too large"
    assert reason in error and "step-000004, is intact" in error
    assert isinstance(failed[-1], DoneEvent) and failed[-1].status == "failed"
    leftovers = [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert tokenscope.load_model(run / "checkpoints" / "step-000004").config.name == "tiny"

    small_disk.grow()
    second, _ = tools.train("--config", path, "--resume")
    assert second[-1].status == "completed"
    _assert_same_losses(tools.step_losses(first + failed + second), reference)


def test_an_unwritable_run_folder_fails_with_one_line(tmp_path, tools, read_only_dir):
    config = tools.run_config(tmp_path, out_dir=str(read_only_dir / "run"))
    events, proc = tools.train("--config", config, ok=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    error = tools.of_kind(events, ErrorEvent)[0].message
    assert str(read_only_dir / "run") in error
    assert "read-only" in error or "permission denied" in error
    assert [type(e) for e in events] == [ErrorEvent, DoneEvent]


def _tokenizing(event: Event) -> bool:
    return isinstance(event, ProgressEvent) and event.stage == "tokenize"


@pytest.mark.slow
def test_stopped_or_killed_while_tokenizing_then_resume_tokenizes_everything(tmp_path, tools):
    tools.write_corpus(tmp_path / "corpus", lines=60000)  # about 2 MB: a second or two
    config = tools.run_config(tmp_path, steps=2, eval_every=2, sample_every=1000)
    total = sum(p.stat().st_size for p in (tmp_path / "corpus").iterdir())
    data = tmp_path / "run" / "data"

    proc = tools.start("--config", config)
    seen: list[Event] = []
    assert tools.read_until(proc, seen, _tokenizing)
    proc.send_signal(signal.SIGTERM)
    stderr = tools.finish(proc, seen)
    assert proc.returncode == 0, stderr[-2000:]
    assert isinstance(seen[-1], DoneEvent) and seen[-1].status == "stopped"
    assert seen[-1].step == 0 and not tools.of_kind(seen, StepEvent)
    assert read_manifest(data) is None and not list(data.glob(".*"))

    proc = tools.start("--config", config, "--resume")
    assert tools.read_until(proc, [], _tokenizing)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stdout.close()
    proc.stderr.close()
    assert read_manifest(data) is None  # incomplete token files are never marked complete

    events, _ = tools.train("--config", config, "--resume")
    corpus = tools.of_kind(events, StartEvent)[0].corpus
    assert corpus["bytes"] == total and corpus["files"] == 1
    manifest = read_manifest(data)
    assert manifest["bytes"] == total
    tokens = sum((data / name).stat().st_size // 2 for name in ("train.bin", "val.bin"))
    assert corpus["train_tokens"] + corpus["val_tokens"] == tokens
    assert events[-1].status == "completed"


@pytest.mark.slow
def test_token_files_cut_short_are_made_again_on_resume(tmp_path, tools):
    config = tools.run_config(tmp_path, steps=4, eval_every=2, sample_every=1000)
    first, _ = tools.train("--config", config, "--stop-at-step", 2)
    assert first[-1].status == "stopped"
    train_bin = tmp_path / "run" / "data" / "train.bin"
    full = train_bin.stat().st_size
    with open(train_bin, "r+b") as f:  # what a writer killed half-way would have left
        f.truncate(full // 3)
    events, _ = tools.train("--config", config, "--resume")
    warnings = [e.message for e in tools.of_kind(events, WarningEvent)]
    assert any("train.bin is incomplete" in w and "tokenizing the corpus again" in w
               for w in warnings)  # fmt: skip
    assert train_bin.stat().st_size == full
    assert tools.of_kind(events, StartEvent)[0].resumed_from == 2
    assert events[-1].status == "completed"


@pytest.mark.slow
def test_a_new_run_sets_aside_an_earlier_run_in_its_folder(tmp_path, tools):
    """What `tokenscope train --recipe default` run twice does: the second run must neither
    prune nor report the first run's checkpoints."""
    config = tools.run_config(tmp_path, steps=20, checkpoint_every=5, keep_checkpoints=1)
    first, _ = tools.train("--config", config)
    assert first[-1].checkpoint.endswith("step-000020")
    second, _ = tools.train("--config", config, "--set", "steps=6", "--set", "checkpoint_every=3")
    run = tmp_path / "run"
    moved = [e.message for e in tools.of_kind(second, WarningEvent) if "earlier run" in e.message]
    assert len(moved) == 1
    done = second[-1]
    assert done.status == "completed" and done.checkpoint == str(
        run / "checkpoints" / "step-000006"
    )
    assert done.best_checkpoint.startswith(str(run / "checkpoints"))
    kept = {p.name for p in (run / "checkpoints").glob("step-*")}
    assert "step-000006" in kept and kept <= {"step-000003", "step-000006"}
    earlier = list((run / "earlier-runs").iterdir())
    assert len(earlier) == 1 and (earlier[0] / "checkpoints" / "step-000020").is_dir()
    assert json.loads((earlier[0] / "run.json").read_text())["steps"] == 20
    # The folder's history is the new run's alone.
    history = read_events(run / "events.jsonl")
    assert len(tools.of_kind(history, StartEvent)) == 1
    assert tools.of_kind(history, StartEvent)[0].config["steps"] == 6


@pytest.mark.slow
def test_a_corpus_of_one_enormous_line_trains(tmp_path, tools):
    rng = random.Random(3)
    words = ["capital", "Jakarta", "Paris", "the", "of", "is", "language", "model", "token"]
    (tmp_path / "corpus").mkdir()
    line = " ".join(rng.choice(words) for _ in range(300_000))  # about 2 MB, no newline
    (tmp_path / "corpus" / "line.txt").write_text(line, encoding="utf-8")
    config = tools.run_config(tmp_path, steps=3, eval_every=3, sample_every=1000)
    events, _ = tools.train("--config", config)
    corpus = tools.of_kind(events, StartEvent)[0].corpus
    assert corpus["bytes"] == len(line) and corpus["train_tokens"] > 100_000
    assert events[-1].status == "completed"


@pytest.mark.slow
def test_a_sparse_multi_gb_file_is_skipped_in_bounded_memory(tmp_path, tools):
    """A 4 GB file of text at the start and a hole after it (its first NUL byte far past
    the first 8 KB), and a 4 GB file that is all hole: both are binary, found without
    reading them whole; the run trains on the real text beside them."""
    corpus = tools.write_corpus(tmp_path / "corpus")
    sparse = corpus / "sparse.txt"
    sparse.write_text("The capital of Peru is Lima.\n" * 1000)  # about 29 KB of text
    os.truncate(sparse, 4 << 30)
    with open(corpus / "hole.txt", "wb") as f:
        f.truncate(4 << 30)
    config = tools.run_config(tmp_path, steps=2, eval_every=2, sample_every=1000)
    # A parent of its own, so that its children's peak memory is the trainer's alone.
    measure = (
        "import resource, subprocess, sys\n"
        "code = subprocess.call(sys.argv[1:])\n"
        "print('PEAK', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", measure, *tools.train_command("--config", config)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [e for line in proc.stdout.splitlines() if (e := parse_event(line))]
    warnings = " ".join(e.message for e in tools.of_kind(events, WarningEvent))
    assert "sparse.txt: binary file (a NUL byte at offset 29,000)" in warnings
    assert "hole.txt: binary file" in warnings
    start = tools.of_kind(events, StartEvent)[0]
    assert start.corpus["bytes"] == (corpus / "capitals.txt").stat().st_size
    peak = int(proc.stdout.split("PEAK")[-1])
    assert peak < 2e9  # never the 4 GB files in memory
    assert events[-1].status == "completed"


def _checkpoints_a(kind: str):
    def damage(run):
        os.replace(run / "checkpoints", run / "checkpoints-moved")
        if kind == "file":
            (run / "checkpoints").write_text("not a folder")
        else:
            os.mkfifo(run / "checkpoints")

    return damage


def _state_file(content: str | None):
    def damage(run):
        state = run / "checkpoints" / "step-000002" / "training_state.json"
        state.unlink()
        if content is None:
            os.mkfifo(state)  # reading it would wait for a writer forever
        else:
            state.write_text(content)

    return damage


def _unlistable(run):
    os.chmod(run / "checkpoints", 0)


RESUME_DAMAGE = [
    ("checkpoints is a file", _checkpoints_a("file"), "is a file, not a folder of checkpoints"),
    ("checkpoints is a FIFO", _checkpoints_a("fifo"), "named pipe (FIFO), not a folder"),
    ("training state not JSON", _state_file("{ cut"), "is not valid JSON"),
    ("training state nested", _state_file("[" * 100_000), "nested too deeply"),
    ("training state a FIFO", _state_file(None), "newest checkpoint is incomplete or damaged"),
    ("training state of another shape", _state_file('{"step": "2"}'), "training state"),
]


@pytest.mark.slow
def test_a_resume_whose_checkpoints_cannot_be_read_says_so_and_stops(tmp_path, tools):
    """A resume used to take checkpoints it could not list or read for no checkpoints at
    all and start again from step 0 (in a real process, as the Training tab starts it). Now it
    stops at once with one line saying which path is wrong; nothing is trained or changed.
    (chmod 000 stops only a user who is not root: tests may run as root, so the damage here
    is what stops root too, and the unreadable folder is tried where it can be.)"""
    import shutil

    config = tools.run_config(tmp_path, steps=4, checkpoint_every=2, eval_every=2)
    first, _ = tools.train("--config", config, "--stop-at-step", 2)
    assert first[-1].status == "stopped" and first[-1].step == 2
    cases = list(RESUME_DAMAGE)
    if os.geteuid() != 0:
        cases.append(("checkpoints unreadable", _unlistable, "cannot be read (Permission"))
    for what, damage, said in cases:
        run = tmp_path / what.replace(" ", "-")
        shutil.copytree(tmp_path / "run", run, symlinks=True)
        damage(run)
        proc = subprocess.run(
            tools.train_command("--run", run, "--resume"),
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        os.chmod(run, 0o755)
        if (run / "checkpoints").is_dir():
            os.chmod(run / "checkpoints", 0o755)
        events = [e for line in proc.stdout.splitlines() if (e := parse_event(line))]
        assert proc.returncode == 1, (what, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr, what
        events = [e for e in events if not isinstance(e, ProgressEvent)]  # ("building...")
        assert [type(e) for e in events] == [ErrorEvent, DoneEvent], (what, events)
        message = events[0].message
        assert said in message and str(run) in message and "\n" not in message, (what, message)
        assert events[-1].status == "failed"
