"""Run and ladder folders seen from outside (tokenscope.train.runs): a new run's folder, listing
runs with how far they got, and one rule for what a ladder is. Folders are made by hand here, as
the trainer leaves them; no Qt and no torch."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from tokenscope.train.config import TrainConfig
from tokenscope.train.events import (
    CheckpointEvent,
    DoneEvent,
    EvalEvent,
    EventWriter,
    LadderEvent,
    StartEvent,
    StepEvent,
    event_fields,
)
from tokenscope.train.events import (
    LadderFit as Fit,
)
from tokenscope.train.events import (
    LadderSizeResult as Row,
)
from tokenscope.train.runs import (
    TAIL_BYTES,
    create_run,
    is_ladder_folder,
    is_run_folder,
    ladder_sizes,
    list_runs,
    planned_steps,
    read_ladder_events,
    read_run_events,
    read_run_info,
    run_label,
    run_sizes,
    runs_root,
    tokens_per_step,
    unique_run_dir,
)


def make_run(folder: Path, *events, steps: int | None = 20, checkpoints=()) -> Path:
    """A run folder as a trainer leaves it: run.json, events.jsonl, checkpoints/step-N."""
    folder.mkdir(parents=True, exist_ok=True)
    if steps is not None:
        settings = {"steps": steps, "batch_size": 4, "context": 8}
        (folder / "run.json").write_text(json.dumps(settings), encoding="utf-8")
    if events:
        writer = EventWriter(folder / "events.jsonl", stream=io.StringIO())
        for event in events:
            writer.emit(event)
        writer.close()
    for step in checkpoints:
        (folder / "checkpoints" / f"step-{step:06d}").mkdir(parents=True)
    return folder


def make_ladder(folder: Path, sizes: int, *, fitted: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"steps": 10}), encoding="utf-8")
    for i in range(1, sizes + 1):
        make_run(folder / f"size-{i}", StartEvent(parameters=100 * 10**i, tokens_per_step=32),
                 EvalEvent(step=10, val_loss=4.0 - i), checkpoints=[10])  # fmt: skip
    if fitted:
        rows = tuple(Row(parameters=100 * 10**i, val_loss=4.0 - i, status="completed")
                     for i in range(1, sizes + 1))  # fmt: skip
        summary = event_fields(LadderEvent(sizes=rows, fit=Fit(a=2.0, alpha=0.3)))
        (folder / "ladder.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder


def test_runs_go_under_the_users_data_folder(private_home):
    assert runs_root() == private_home / "runs"


def test_a_new_run_gets_a_folder_of_its_own_and_its_config_written_whole(tmp_path):
    root = tmp_path / "runs"
    first = unique_run_dir("capitals", root)
    assert first == root / "capitals" and not first.exists()
    corpus = str(tmp_path / "corpus")
    config = TrainConfig.from_dict({"data": [corpus], "out_dir": str(first), "steps": 7})
    assert create_run(config) == first
    assert TrainConfig.from_file(first / "run.json") == config
    assert [p.name for p in first.iterdir()] == ["run.json"]  # no temporary file left behind
    assert unique_run_dir("capitals", root) == root / "capitals-2"
    (root / "capitals-2").mkdir()
    assert unique_run_dir("capitals", root) == root / "capitals-3"
    # Never into another run's folder, even one that appeared meanwhile.
    with pytest.raises(FileExistsError):
        create_run(config)
    assert planned_steps(first) == 7


def test_a_runs_info_says_how_far_it_got(tmp_path):
    done = make_run(tmp_path / "done", StartEvent(), StepEvent(step=10, tokens=320),
                    EvalEvent(step=10, val_loss=2.5), EvalEvent(step=20, val_loss=2.25),
                    StepEvent(step=20, tokens=640),
                    DoneEvent(status="stopped", step=20, best_val_loss=2.25))  # fmt: skip
    info = read_run_info(done)
    assert (info.status, info.step, info.steps, info.best_val_loss) == ("stopped", 20, 20, 2.25)
    assert info.label() == "done — step 20/20, stopped, best validation loss 2.250"

    killed = make_run(tmp_path / "killed", StartEvent(), StepEvent(step=5),
                      CheckpointEvent(step=6, path="x"))  # fmt: skip
    info = read_run_info(killed)
    assert (info.status, info.step, info.best_val_loss) == ("running or interrupted", 6, None)

    failed = make_run(tmp_path / "failed", DoneEvent(status="failed", message="no"), steps=None)
    info = read_run_info(failed)
    assert (info.status, info.step, info.steps) == ("failed", 0, None)

    empty = make_run(tmp_path / "empty")
    assert read_run_info(empty).status == "not started"


def test_only_the_tail_of_a_long_events_file_is_read(tmp_path):
    many = [StepEvent(step=s, loss=3.0, tokens=32 * s) for s in range(1, 5001)]
    run = make_run(tmp_path / "long", StartEvent(), *many, DoneEvent(status="completed", step=5000))
    assert (run / "events.jsonl").stat().st_size > 4 * TAIL_BYTES
    info = read_run_info(run)
    assert (info.status, info.step) == ("completed", 5000)


def test_the_list_holds_runs_and_ladders_newest_first(tmp_path):
    root = tmp_path / "runs"
    old = make_run(root / "old", StartEvent(), StepEvent(step=1))
    ladder = make_ladder(root / "ladder", 3)
    unfinished = make_ladder(root / "unfinished", 2, fitted=False)
    new = make_run(root / "new", DoneEvent(status="completed", step=20))
    (root / "not-a-run").mkdir()
    (root / "notes.txt").write_text("not a folder")
    for age, folder in enumerate((new, unfinished, ladder, old)):
        stamp = 1_700_000_000 - 1000 * age
        for path in (folder, *folder.rglob("*")):
            os.utime(path, (stamp, stamp))
    runs = list_runs(root)
    assert [r.name for r in runs] == ["new", "unfinished", "ladder", "old"]
    labels = {r.name: r.label() for r in runs}
    assert labels["ladder"] == "ladder — size ladder, 3 sizes, fitted"
    assert labels["unfinished"] == "unfinished — size ladder, 2 sizes, unfinished"
    assert labels["old"] == "old — step 1/20, running or interrupted"
    assert list_runs(tmp_path / "nowhere") == []


def test_one_rule_says_what_a_ladder_is_and_which_runs_it_holds(tmp_path):
    ladder = make_ladder(tmp_path / "ladder", 3)
    (ladder / "size-x").mkdir()  # not a size
    (ladder / "size-10").mkdir()  # a size that has not trained yet (sorted as 10, not "1")
    assert is_ladder_folder(ladder) and is_ladder_folder(str(ladder))
    assert [p.name for p in ladder_sizes(ladder)] == ["size-1", "size-2", "size-3", "size-10"]
    # The runs to measure are the sizes with checkpoints, smallest first.
    assert run_sizes(ladder) == [ladder / f"size-{i}" for i in (1, 2, 3)]
    assert is_run_folder(str(ladder)) and run_label(ladder / "size-2") == "ladder/size-2"

    # A run's own folder is never a ladder, whatever it holds.
    run = make_run(tmp_path / "run", StartEvent(), checkpoints=[5])
    (run / "size-1" / "checkpoints").mkdir(parents=True)
    assert not is_ladder_folder(run) and ladder_sizes(run) == []
    assert run_sizes(run) == [run] and run_label(run) == "run"
    assert not is_ladder_folder(ladder / "size-1") and run_sizes(ladder / "size-1")

    # A run that has no checkpoint yet, a checkpoint, a file: nothing to measure.
    assert not is_run_folder(str(make_run(tmp_path / "fresh", StartEvent())))
    assert not is_run_folder(str(run / "checkpoints" / "step-000005"))
    assert not is_run_folder(str(run / "events.jsonl")) and not is_run_folder("/no/such/path")


def test_a_ladders_events_are_every_sizes_then_its_summary(tmp_path):
    ladder = make_ladder(tmp_path / "ladder", 2)
    events = read_run_events(ladder)
    assert [type(e) for e in events] == [StartEvent, EvalEvent, StartEvent, EvalEvent, LadderEvent]
    summary = events[-1]
    assert [r.parameters for r in summary.sizes] == [1000, 10000]
    assert summary.fit == Fit(a=2.0, alpha=0.3)
    # Unfinished, or a summary that cannot be read: the sizes still show.
    (ladder / "ladder.json").write_text("{not json")
    assert [type(e) for e in read_ladder_events(ladder)][-1] is EvalEvent
    (ladder / "ladder.json").write_text(json.dumps({"sizes": "many"}))
    assert len(read_ladder_events(ladder)) == 4
    # A single run's events, from its events.jsonl.
    run = make_run(tmp_path / "run", StartEvent(), StepEvent(step=1))
    assert [type(e) for e in read_run_events(run)] == [StartEvent, StepEvent]


@pytest.mark.parametrize("kind", ["fifo", "folder", "dev-zero"])
def test_a_runs_files_that_are_no_files_read_as_absent_without_blocking(tmp_path, kind):
    """The window lists runs in its thread pool: a FIFO (open() waits for a writer), a folder
    or a link to /dev/zero (which never ends) in place of a run's reports must not hang or
    fill the memory; each reads as absent."""
    from tokenscope.lm.run_checkpoints import best_checkpoint
    from tokenscope.train.events import read_events
    from tokenscope.train.token_files import read_manifest

    from ..special_files import call_unblocked, replace_with

    run = make_run(tmp_path / "run", StartEvent(), StepEvent(step=5), checkpoints=[5])
    ladder = make_ladder(tmp_path / "ladder", 2)
    (run / "data").mkdir()
    paths = [run / "events.jsonl", run / "run.json", ladder / "ladder.json",
             run / "checkpoints" / "best.json", run / "data" / "manifest.json"]  # fmt: skip
    for path in paths:
        replace_with(path, kind)

    def read_all():
        info = read_run_info(run)
        return (info.status, info.steps, read_events(run / "events.jsonl"), planned_steps(run),
                [type(e) for e in read_ladder_events(ladder)], best_checkpoint(run),
                read_manifest(run / "data"))  # fmt: skip

    fifos = paths if kind == "fifo" else None
    status, steps, events, planned, ladder_events, best, manifest = call_unblocked(read_all, fifos)
    assert (status, steps, events, planned) == ("not started", None, [], None)
    assert ladder_events == [StartEvent, EvalEvent, StartEvent, EvalEvent]  # the sizes still show
    assert best is None and manifest is None


def test_tokens_per_step_come_from_the_run_or_its_config(tmp_path):
    run = make_run(tmp_path / "run", StartEvent(), StepEvent(step=4, tokens=4 * 96))
    assert tokens_per_step(run) == 96.0  # what the run counted (every process, accumulation)
    assert tokens_per_step(make_run(tmp_path / "fresh", StartEvent())) == 4 * 8.0
    assert tokens_per_step(tmp_path / "nothing") == 0.0


def test_reading_runs_imports_no_qt_and_no_torch():
    import subprocess

    code = (
        "import sys, tokenscope.train.runs, tokenscope.train.events;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'PySide6', 'pyqtgraph', 'shiboken6')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
