"""The Training tab: real short runs of the tiny preset launched from the panel, and the panel's
estimates, charts and notes.

Runs are real `python -m tokenscope.train` processes (a few seconds each, mostly importing
torch). Every wait is on a condition; the tab's shutdown() leaves no process behind.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from tokenscope.train import checkpoints as ckpt
from tokenscope.train.events import (
    BaselineEvent,
    EvalEvent,
    ProbeEvent,
    StartEvent,
    StepEvent,
    event_fields,
    read_events,
)

RUN_TIMEOUT = 90_000  # ms; a loaded 2-core machine can take a while to import torch
CAPITALS = [("Indonesia", "Jakarta"), ("France", "Paris"), ("Japan", "Tokyo"), ("Peru", "Lima")]


def write_corpus(folder: Path, lines: int = 1500, seed: int = 0) -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "capitals.txt", "w", encoding="utf-8") as f:
        for _ in range(lines):
            country, city = rng.choice(CAPITALS)
            f.write(f"The capital of {country} is {city}.\n")
    return folder


@pytest.fixture
def tab(qtbot, monkeypatch):
    """A Training tab on its own; one torch thread per trainer whatever the machine."""
    from tokenscope.gui.training import training_process
    from tokenscope.gui.training.training_tab import TrainingTab

    monkeypatch.setattr(training_process, "cpu_cores", lambda: 2)
    t = TrainingTab()
    qtbot.addWidget(t)
    t.resize(1400, 900)
    t.show()
    yield t
    t.shutdown()
    assert not t.process.is_running()  # no trainer outlives its test


def plan_tiny_run(qtbot, tab, corpus: Path, *, steps: int, name: str, eval_every: int = 5):
    """Fill the panel as a person would: the corpus, characters, the tiny preset, a short run."""
    tab.data.add_paths([str(corpus)])
    tab.data.kind.setCurrentIndex(tab.data.kind.findData("char"))
    tab.plan.preset.setCurrentIndex(tab.plan.preset.findData("tiny"))
    tab.plan.context.setValue(32)
    tab.plan.batch.setValue(8)
    tab.plan.steps.setValue(steps)
    tab.plan.eval_every.setValue(eval_every)
    tab.plan.lr.setValue(0.01)
    tab.options.name.setText(name)
    qtbot.waitUntil(lambda: "characters" in tab.data.summary_label.text(), timeout=15_000)


def click(qtbot, button) -> None:
    assert button.isEnabled(), button.objectName()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def finished(tab) -> bool:
    return not tab.process.is_running()


@pytest.mark.slow
def test_a_run_plots_stops_resumes_reopens_and_compares(qtbot, tab, tmp_path, private_home):
    corpus = write_corpus(tmp_path / "corpus")
    plan_tiny_run(qtbot, tab, corpus, steps=200, name="capitals")
    charts = tab.charts
    click(qtbot, tab.start_button)
    run_dir = private_home / "runs" / "capitals"
    assert json.loads((run_dir / "run.json").read_text())["threads"] == 1

    # Curves get points as events arrive: loss, validation, lr, gradient norm, probe.
    def every_curve_has_points() -> bool:
        probes = charts.probe_names()
        return bool(
            len(charts.curve_points("train")) >= 8
            and charts.curve_points("val")
            and probes
            and charts.curve_points(probes[0])
        )

    qtbot.waitUntil(every_curve_has_points, timeout=RUN_TIMEOUT)
    for name in ("lr", "grad_norm", "tokens_per_s"):
        assert charts.curve_points(name), name
    assert "Jakarta" in charts.probe_names()[0]
    assert all(0.0 <= p <= 1.0 for _, p in charts.curve_points(charts.probe_names()[0]))
    assert tab.notes_view.count() >= 1  # the "a uniform guess has a loss of ln(V)" note
    assert "Step" in tab.status.text() and "ETA" in tab.status.text()

    # Stop saves a checkpoint and ends the run as "stopped".
    click(qtbot, tab.stop_button)
    qtbot.waitUntil(lambda: finished(tab), timeout=RUN_TIMEOUT)
    assert tab.done_event.status == "stopped"
    stopped_at = tab.done_event.step
    latest = ckpt.latest_checkpoint(run_dir)
    assert latest is not None and latest.name == f"step-{stopped_at:06d}"
    assert not tab.error.isVisible()
    assert "stopped" in tab.status.text()

    # Resume continues from that checkpoint: the curve carries on after the stop.
    click(qtbot, tab.resume_button)
    qtbot.waitUntil(
        lambda: charts.curve_points("train")[-1][0] >= stopped_at + 5, timeout=RUN_TIMEOUT
    )
    click(qtbot, tab.stop_button)
    qtbot.waitUntil(lambda: finished(tab), timeout=RUN_TIMEOUT)
    notes = [tab.notes_view.item(i).text() for i in range(tab.notes_view.count())]
    assert f"Resumed from the checkpoint at step {stopped_at}." in notes
    steps = [s for s, _ in charts.curve_points("train")]
    assert steps == sorted(set(steps)) and steps[-1] > stopped_at  # one curve, no repeats

    # Open in Playground hands over a checkpoint folder the playground can load.
    with qtbot.waitSignal(tab.open_in_playground, timeout=5_000) as opened:
        click(qtbot, tab.playground_button)
    assert Path(opened.args[0]).parent == run_dir / "checkpoints"
    assert (Path(opened.args[0]) / "model.safetensors").is_file()

    # The runs list reopens the run with the same curves (here in a fresh tab).
    from tokenscope.gui.training.training_tab import TrainingTab

    again = TrainingTab()
    qtbot.addWidget(again)
    try:
        again.bottom.setCurrentWidget(again.runs)
        qtbot.waitUntil(lambda: again.runs.select(str(run_dir)), timeout=15_000)
        assert "capitals" in again.runs.list.currentItem().text()
        assert "stopped" in again.runs.list.currentItem().text()
        click(qtbot, again.runs.open_button)
        qtbot.waitUntil(
            lambda: again.charts.curve_points("train") == charts.curve_points("train"),
            timeout=15_000,
        )
        assert again.charts.curve_points("val") == charts.curve_points("val")
        assert again.resume_button.isEnabled() and again.playground_button.isEnabled()
    finally:
        again.shutdown()

    # Baselines: the n-gram and the LSTM's validation perplexity beside the run's.
    click(qtbot, tab.baselines_button)
    qtbot.waitUntil(lambda: finished(tab) and len(charts.baselines()) == 2, timeout=RUN_TIMEOUT)
    text = tab.baselines_label.text()
    assert "ngram" in text and "lstm" in text and "this run" in text
    assert not tab.error.isVisible()


def test_a_broken_corpus_shows_the_trainers_error(qtbot, tab, tmp_path):
    corpus = tmp_path / "broken"
    corpus.mkdir()
    (corpus / "image.bin").write_bytes(b"\x89PNG\x00\x00\x01" * 100)
    tab.data.add_paths([str(corpus)])
    qtbot.waitUntil(lambda: "binary file" in tab.data.summary_label.text(), timeout=15_000)
    assert "no text to train on" in tab.data.summary_label.text()
    tab.plan.preset.setCurrentIndex(tab.plan.preset.findData("tiny"))
    tab.data.kind.setCurrentIndex(tab.data.kind.findData("char"))
    click(qtbot, tab.start_button)
    qtbot.waitUntil(lambda: finished(tab) and tab.error.isVisible(), timeout=RUN_TIMEOUT)
    assert "corpus is empty" in tab.error.text()
    assert "tokenscope.train" in tab.log.toPlainText()  # the command, for reproducing it
    assert tab.start_button.isEnabled()  # the tab is ready for another try


def test_a_killed_trainer_is_an_error_not_a_crash(qtbot, tab, tmp_path):
    plan_tiny_run(qtbot, tab, write_corpus(tmp_path / "corpus"), steps=2000, name="killed")
    click(qtbot, tab.start_button)
    qtbot.waitUntil(lambda: bool(tab.charts.curve_points("train")), timeout=RUN_TIMEOUT)
    tab.process.kill()  # as if it ran out of memory and the system ended it
    qtbot.waitUntil(lambda: finished(tab), timeout=RUN_TIMEOUT)
    assert tab.error.isVisible()
    assert "killed before finishing" in tab.error.text()
    assert tab.start_button.isEnabled() and not tab.stop_button.isEnabled()


def test_several_processes_run_under_torchrun(qtbot, tab, tmp_path, monkeypatch):
    launched = []
    monkeypatch.setattr(tab.process, "start", lambda cmd, run_dir, threads: launched.append(cmd))
    plan_tiny_run(qtbot, tab, write_corpus(tmp_path / "corpus"), steps=10, name="ddp")
    tab.plan.processes.setValue(2)
    click(qtbot, tab.start_button)
    (command,) = launched
    assert command[1:5] == ["-m", "tokenscope.train.torchrun", "--standalone", "--nproc-per-node=2"]
    assert command[5:7] == ["-m", "tokenscope.train"]
    # An odd batch cannot be shared by two processes: refused before anything starts.
    tab.plan.batch.setValue(7)
    tab.options.name.setText("odd")
    click(qtbot, tab.start_button)
    assert len(launched) == 1 and "divide evenly" in tab.error.text()


def test_the_estimates_follow_the_model_shape(qtbot, tab):
    from tokenscope.lm.config import preset

    plan = tab.plan
    plan.preset.setCurrentIndex(plan.preset.findData("tiny"))
    plan.layers.setValue(3)
    assert plan.preset.currentData() == "custom"
    expected = preset("tiny", vocab_size=plan.vocab_size, n_layer=3)
    assert f"Parameters: {expected.parameter_count():,}" in plan.estimates.text()
    assert f"{expected.flops_per_token(context=64):,}" in plan.estimates.text()
    assert tab.scale_chart.planned_parameters == expected.parameter_count()
    plan.steps.setValue(10)
    plan.batch.setValue(4)
    assert "Planned: 2,560 tokens" in plan.estimates.text()  # 10 × 4 × 64
    qtbot.waitUntil(lambda: "Time: about" in plan.estimates.text(), timeout=30_000)
    plan.heads.setValue(3)  # 32 is not divisible by 3
    assert "Not a valid model" in plan.estimates.text()
    assert not tab.start_button.isEnabled()


def test_the_thread_count_leaves_a_core_for_the_window_or_says_it_cannot(tab):
    plan = tab.plan  # the fixture makes this a 2-core machine
    plan.processes.setValue(1)
    assert plan.threads_label.text().startswith("1 process × 1 torch thread on 2 cores")
    assert "one core is left for the window" in plan.threads_label.text()
    plan.processes.setValue(2)
    assert "no core is left for the window" in plan.threads_label.text()


def test_the_scale_chart_places_the_model_among_known_ones(tab):
    from tokenscope.gui.widgets.model_scale_chart import load_reference_models

    refs = {r.name: r for r in load_reference_models()}
    for name in ("BERT-Large", "GPT-2", "GPT-3", "Chinchilla", "Llama 2 70B", "SmolLM2-135M"):
        assert name in refs, name
    assert refs["GPT-3"].parameters == 175_000_000_000
    assert all(r.source.count("http") >= 1 and r.parameters > 0 for r in refs.values())
    shown = dict(tab.scale_chart.points())
    assert shown["BERT-Large"] == 340_000_000
    assert shown["your model"] == tab.plan.model_config().parameter_count()


def test_dropping_files_adds_them_and_summarises_the_corpus(qtbot, tab, tmp_path):
    write_corpus(tmp_path / "a")
    (tmp_path / "b.txt").write_bytes("caf\xe9 ok\n".encode("latin-1") * 3)  # not UTF-8
    mime = QMimeData()
    mime.setUrls(
        [QUrl.fromLocalFile(str(tmp_path / "a")), QUrl.fromLocalFile(str(tmp_path / "b.txt"))]
    )
    drop = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    tab.data.dropEvent(drop)
    assert tab.data.paths() == [str(tmp_path / "a"), str(tmp_path / "b.txt")]
    qtbot.waitUntil(lambda: "2 text files" in tab.data.summary_label.text(), timeout=15_000)
    assert "3 bytes were not valid UTF-8" in tab.data.summary_label.text()
    tab.data.kind.setCurrentIndex(tab.data.kind.findData("char"))
    qtbot.waitUntil(lambda: len(tab.data.preview) == len(tab.data.sentence.text()), timeout=15_000)


def test_notes_explain_spikes_and_overfitting():
    from tokenscope.gui.training.learning_notes import LearningNotes

    notes = LearningNotes()
    said = notes.feed(StartEvent(model={"vocab_size": 100}))
    assert "ln(100) = 4.61" in said[0]
    for step in range(1, 30):
        assert notes.feed(StepEvent(step=step, loss=3.0)) == []
    (spike,) = notes.feed(StepEvent(step=30, loss=9.0))
    assert "spike at step 30" in spike
    evals = [(10, 2.0, 2.1), (20, 1.8, 2.0), (30, 1.6, 2.2), (40, 1.4, 2.4)]
    said = []
    for step, train, val in evals:
        said += notes.feed(EvalEvent(step=step, train_loss=train, val_loss=val))
    assert len(said) == 2
    assert said[0].startswith("First evaluation (step 10)") and "perplexity of 8.2" in said[0]
    assert "overfitting" in said[1]


def test_notes_follow_epochs_probes_and_the_baselines():
    from tokenscope.gui.training.learning_notes import LearningNotes

    notes = LearningNotes()
    notes.feed(StartEvent(model={"vocab_size": 50}, corpus={"train_tokens": 1000}))
    said = notes.feed(StepEvent(step=5, loss=3.0, tokens=999))
    assert said == []
    (once,) = notes.feed(StepEvent(step=6, loss=3.0, tokens=1200))
    assert "whole training text once" in once
    (ten,) = notes.feed(StepEvent(step=50, loss=3.0, tokens=10_000))
    assert "10 passes" in ten
    probe = {"prompt": "The capital of Indonesia is", "continuation": " Jakarta"}
    assert notes.feed(ProbeEvent(**probe, step=10, probability=0.001)) == []
    (rising,) = notes.feed(ProbeEvent(**probe, step=20, probability=0.02))
    assert "risen from 0.10% to 2.00%" in rising
    (learned,) = notes.feed(ProbeEvent(**probe, step=30, probability=0.8))
    assert "has learned this fact" in learned
    notes.feed(EvalEvent(step=100, train_loss=3.0, val_loss=4.0))
    (ngram,) = notes.feed(BaselineEvent(model="ngram", val_loss=3.5))
    assert "n-gram (trigram) model beats the Transformer" in ngram and "small" in ngram
    (lstm,) = notes.feed(BaselineEvent(model="lstm", val_loss=4.5))
    assert lstm.startswith("The Transformer beats the LSTM")
    (passed,) = notes.feed(EvalEvent(step=200, train_loss=2.0, val_loss=3.4))
    assert "now below the n-gram (trigram) model's (3.50)" in passed


@pytest.mark.slow
def test_resume_can_train_a_finished_run_further(qtbot, tab, tmp_path, private_home):
    corpus = write_corpus(tmp_path / "corpus")
    plan_tiny_run(qtbot, tab, corpus, steps=10, name="longer", eval_every=5)
    click(qtbot, tab.start_button)
    qtbot.waitUntil(lambda: finished(tab) and tab.done_event is not None, timeout=RUN_TIMEOUT)
    assert tab.done_event.status == "completed" and tab.done_event.step == 10
    tab.plan.steps.setValue(16)  # ask for more steps, then Resume
    click(qtbot, tab.resume_button)
    qtbot.waitUntil(
        lambda: finished(tab) and tab.done_event is not None and tab.done_event.step == 16,
        timeout=RUN_TIMEOUT,
    )
    assert tab.done_event.status == "completed"
    steps = [s for s, _ in tab.charts.curve_points("train")]
    assert steps[-1] == 16 and steps == sorted(set(steps))


@pytest.mark.slow
def test_a_size_ladder_trains_every_size_and_charts_the_fit(qtbot, tab, tmp_path, private_home):
    corpus = write_corpus(tmp_path / "corpus")
    plan_tiny_run(qtbot, tab, corpus, steps=200, name="capitals", eval_every=2)
    budget = tab.controls.ladder_budget
    budget.addItem("a few steps", 4 * 8 * 32)  # 4 steps of 8 x 32 tokens per size
    budget.setCurrentIndex(budget.count() - 1)
    click(qtbot, tab.ladder_button)
    assert tab.bottom.currentWidget() is tab.ladder_chart
    qtbot.waitUntil(lambda: finished(tab), timeout=4 * RUN_TIMEOUT)
    assert not tab.error.isVisible(), tab.error.text()
    ladder_dir = private_home / "runs" / "capitals-ladder"
    sizes = sorted(p.name for p in ladder_dir.glob("size-*"))
    assert sizes == ["size-1", "size-2", "size-3", "size-4"]
    points = tab.ladder_chart.loss_points()
    assert len(points) == 4
    # Each point is that size's own last evaluation, read back from its run folder.
    for (parameters, loss), size in zip(points, sizes, strict=True):
        events = read_events(ladder_dir / size / "events.jsonl")
        start = next(e for e in events if isinstance(e, StartEvent))
        last_eval = [e for e in events if isinstance(e, EvalEvent)][-1]
        assert parameters == start.parameters
        assert loss == pytest.approx(last_eval.val_loss)
    assert [n for n, _ in points] == sorted(n for n, _ in points)
    fit = tab.ladder_chart.fit
    assert fit is not None and {"a", "alpha", "c", "next_parameters"} <= set(event_fields(fit))
    assert "Fit: L(N)" in tab.ladder_chart.summary.text()
    assert tab.status.text().startswith("Ladder capitals-ladder: 4 size(s) trained")
    # Reopened later (the runs list), the ladder shows the same sizes and fit again.
    tab.ladder_chart.clear()
    tab.runs.refresh()
    qtbot.waitUntil(lambda: any(r.path == str(ladder_dir) for r in tab.runs.runs), timeout=10_000)
    info = next(r for r in tab.runs.runs if r.path == str(ladder_dir))
    assert info.label() == "capitals-ladder — size ladder, 4 sizes, fitted"
    tab.open_run(str(ladder_dir))
    qtbot.waitUntil(lambda: tab.ladder_chart.fit is not None, timeout=10_000)
    again = tab.ladder_chart.loss_points()
    assert [n for n, _ in again] == [n for n, _ in points]
    assert [v for _, v in again] == pytest.approx([v for _, v in points])
    assert event_fields(tab.ladder_chart.fit) == pytest.approx(event_fields(fit))


@pytest.mark.slow
def test_stopping_a_ladder_saves_the_size_in_training_and_ends_it(qtbot, tab, tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    plan_tiny_run(qtbot, tab, corpus, steps=200, name="capitals", eval_every=50)
    budget = tab.controls.ladder_budget
    budget.addItem("long", 5000 * 8 * 32)  # far more than the test waits for
    budget.setCurrentIndex(budget.count() - 1)
    click(qtbot, tab.ladder_button)
    qtbot.waitUntil(lambda: tab._last_step is not None, timeout=RUN_TIMEOUT)  # size 1 trains
    click(qtbot, tab.stop_button)
    qtbot.waitUntil(lambda: finished(tab), timeout=RUN_TIMEOUT)
    assert not tab.error.isVisible(), tab.error.text()  # a stop asked for is not a failure
    size_1 = tab.run_dir / "size-1"
    assert ckpt.latest_checkpoint(size_1) is not None  # it saved where it stood
    assert not (tab.run_dir / "size-2").exists()  # and the ladder went no further
    summary = json.loads((tab.run_dir / "ladder.json").read_text())
    assert [s["status"] for s in summary["sizes"]] == ["stopped"] and "fit" not in summary
