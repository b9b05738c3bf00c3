"""The Training tab's time estimate and what a learner meets first: one measuring process at
a time (none beside a run), the bundled sample text, a default that trains in minutes, the
phases of a run in the status line, the newest run shown on start, and a layout that fits a
1024x768 screen.

Measurements and runs are real trainer processes.
"""

from __future__ import annotations

import psutil
import pytest
from PySide6.QtCore import Qt

from tokenscope.train.events import ProgressEvent, StartEvent

MEASURE_TIMEOUT = 120_000  # ms: torch's import on a loaded 2-core machine
RUN_TIMEOUT = 120_000


@pytest.fixture
def tab(qtbot, monkeypatch, private_home):
    from tokenscope.gui.training import training_process
    from tokenscope.gui.training.training_tab import TrainingTab

    monkeypatch.setattr(training_process, "cpu_cores", lambda: 2)
    t = TrainingTab()
    qtbot.addWidget(t)
    t.resize(1400, 900)
    t.show()
    yield t
    t.shutdown()
    assert not t.process.is_running() and not t.plan.measurer.is_running()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_one_measurement_at_a_time_and_none_beside_a_run(qtbot, tab, tmp_path):
    plan = tab.plan
    measurer = plan.measurer
    pids = []
    for name in ("tiny", "tiny-llama", "mini", "tiny"):  # changing presets quickly
        plan.preset.setCurrentIndex(plan.preset.findData(name))
        plan.measure()  # what the rest timer does a second later
        assert measurer.is_running()
        pids.append(measurer.process.processId())
        assert all(gone(pid) for pid in pids[:-1])  # the earlier ones were killed
    assert measurer.started_count == 4 and len(set(pids)) == 4
    qtbot.waitUntil(lambda: plan.run_estimate is not None, timeout=MEASURE_TIMEOUT)
    assert gone(pids[-1]) and not measurer.is_running()
    plan.steps.setValue(30)  # the parts do not change with the steps: nothing to measure
    plan.measure()
    assert not measurer.is_running() and measurer.started_count == 4
    assert "30 steps" in plan.estimates.text().splitlines()[-1]

    # A run starts: a measurement under way is killed, and none starts while it goes.
    plan.batch.setValue(8)
    plan.measure()
    measuring = measurer.process.processId()
    tab.data.add_sample_text()
    qtbot.waitUntil(lambda: tab.data.summary is not None, timeout=30_000)
    started = measurer.started_count
    tab.options.name.setText("beside")
    qtbot.mouseClick(tab.start_button, Qt.MouseButton.LeftButton)
    assert tab.process.is_running() and gone(measuring) and not measurer.is_running()
    plan.batch.setValue(4)  # the plan changes during the run
    plan.measure()
    assert not measurer.is_running()
    qtbot.waitUntil(lambda: not tab.process.is_running(), timeout=RUN_TIMEOUT)
    assert measurer.started_count in (started, started + 1)  # at most the one after the run
    assert plan._measure_timer.isActive() or measurer.is_running()  # measured again after


def test_the_estimate_adds_the_measured_parts_as_often_as_the_run_does_them():
    from tokenscope.train.estimate import estimate_run, saves_in_run, times_in_run

    assert times_in_run(1000, 100) == 10 and times_in_run(1001, 100) == 11
    assert saves_in_run(1000, 100, 100) == 10 and saves_in_run(250, 200, 100) == 3  # 100,200,250
    parts = {"seconds_per_step": 0.1, "seconds_per_eval": 2.0, "seconds_per_sample": 0.5,
             "seconds_per_checkpoint": 0.25, "prepare_seconds_per_char": 1e-6}  # fmt: skip
    fields = {"steps": 1000, "eval_every": 100, "sample_every": 200, "checkpoint_every": 100}
    e = estimate_run(parts, fields, start_seconds=5.0, corpus_chars=2_000_000)
    assert (e.start, e.prepare, e.steps) == (5.0, 2.0, 100.0)
    assert (e.evals, e.samples, e.checkpoints) == (20.0, 2.5, 2.5)
    assert e.total == pytest.approx(132.0)
    two = estimate_run(parts, fields, start_seconds=5.0, corpus_chars=None, processes=2)
    assert two.steps == 50.0 and two.prepare == 0.0


@pytest.mark.slow
def test_the_default_plan_on_the_sample_text_is_estimated_in_minutes(qtbot, tab):
    plan = tab.plan
    assert plan.preset.currentData() == "mini" and plan.steps.value() == 500
    tab.data.add_sample_text()
    qtbot.waitUntil(lambda: plan.corpus_chars is not None, timeout=30_000)
    plan.measure()
    qtbot.waitUntil(lambda: plan.run_estimate is not None, timeout=MEASURE_TIMEOUT)
    e = plan.run_estimate
    assert e.prepare > 0 and e.evals > 0 and e.checkpoints > 0 and e.start > 0
    assert e.total < 20 * 60  # minutes, not hours, even on one thread of this machine
    line = plan.estimates.text().splitlines()[-1]
    assert line.startswith("Time: about") and "preparing the text" in line and "500 steps" in line


def test_the_sample_text_is_bundled_public_domain_and_one_click_away(qtbot, tab):
    from tokenscope.files import resource_path

    path = resource_path("sample", "shakespeare.txt")
    assert path.is_file() and 500_000 < path.stat().st_size <= 2_000_000
    text = path.read_text(encoding="ascii")
    assert "HAMLET" in text and "Gutenberg" not in text  # the works, no licence boilerplate
    readme = resource_path("README.md").read_text(encoding="utf-8")
    assert "sample/shakespeare.txt" in readme and "public domain" in readme
    assert "`shakespeare` 0.6" in readme  # where it came from

    from tokenscope.gui.training.training_tab import NO_DATA

    qtbot.mouseClick(tab.start_button, Qt.MouseButton.LeftButton)
    assert tab.error.text() == NO_DATA and "Sample text" in NO_DATA
    qtbot.mouseClick(tab.data.use_sample, Qt.MouseButton.LeftButton)
    assert tab.data.paths() == [str(path)]
    item = tab.data.files.item(0)  # named, not a path cut off at the column's edge
    assert item.text() == "shakespeare.txt (the sample text)" and item.toolTip() == str(path)
    assert not tab.error.isVisible()
    qtbot.waitUntil(lambda: "940,659 characters" in tab.data.summary_label.text(), timeout=30_000)
    qtbot.mouseClick(tab.data.use_sample, Qt.MouseButton.LeftButton)  # not twice
    assert tab.data.paths() == [str(path)]


def test_the_status_says_what_the_trainer_is_doing_in_each_phase(tab):
    tab.mode = "train"  # as while a trainer runs: its events arrive live
    seen = []
    for event in (
        ProgressEvent(stage="tokenizer", done=0, total=1),
        ProgressEvent(stage="tokenize", done=50, total=100),
        ProgressEvent(stage="tokenize", done=100, total=100),
        ProgressEvent(stage="model", done=0, total=1),
        StartEvent(parameters=1234, device="cpu", world_size=1, threads=1),
    ):
        tab._handle_event(event, live=True)
        seen.append(tab.status.text())
    tab.mode = None
    assert seen[0] == "Preparing data (training the tokenizer)…"
    assert seen[1] == "Preparing data (tokenizing the text): 50%"
    assert "100%" not in seen[2] and "writing the token files" in seen[2]
    assert seen[3] == "Building the model and its optimizer…"
    assert "first step" in seen[4] and "1,234 parameters" in seen[4]


@pytest.mark.slow
def test_the_newest_run_is_shown_when_the_tab_opens(qtbot, private_home, monkeypatch):
    import json
    import subprocess
    import sys

    from tokenscope.files import resource_path
    from tokenscope.gui.training.training_tab import TrainingTab
    from tokenscope.train.runs import runs_root

    run = runs_root() / "earlier"
    run.mkdir(parents=True)
    config = {"data": [str(resource_path("sample", "shakespeare.txt"))], "out_dir": str(run),
              "preset": "tiny", "tokenizer": "char", "steps": 4, "batch_size": 2, "context": 16,
              "eval_every": 2, "eval_batches": 1, "sample_every": 4, "threads": 1}  # fmt: skip
    (run / "run.json").write_text(json.dumps(config))
    command = [sys.executable, "-m", "tokenscope.train", "--config", str(run / "run.json")]
    subprocess.run(command, capture_output=True, check=True, timeout=300)

    t = TrainingTab()  # as after a restart
    qtbot.addWidget(t)
    try:
        qtbot.waitUntil(lambda: t.status.text().startswith("Run earlier:"), timeout=30_000)
        assert "step 4, completed" in t.status.text()
        assert t.run_dir == run and t.runs.selected_path() == str(run)
        assert t.charts.curve_points("train")  # its curves are back
    finally:
        t.shutdown()


def test_the_tab_fits_a_1024_by_768_window(qtbot, private_home):
    from PySide6.QtWidgets import QScrollBar

    from tokenscope.gui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.resize(1024, 768)
    window.show()
    tab = window.findChild(object, "trainingTab")
    window.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: tab.isVisible() and tab.settings_scroll.width() > 0)
    scroll = tab.settings_scroll
    # The settings wrap to their column: nothing hides to the right of it.
    assert scroll.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    inner = scroll.widget()
    assert inner.minimumSizeHint().width() <= scroll.viewport().width()
    # The charts' side gets at least what it needs, and stays inside the window.
    right = tab.splitter.widget(1)
    assert right.width() >= right.minimumSizeHint().width()
    assert right.mapTo(window, right.rect().topRight()).x() <= window.width()
    assert isinstance(scroll.verticalScrollBar(), QScrollBar)
    # Axis titles short enough for a chart a third of the charts' width.
    for plot in (tab.charts.loss_plot, tab.charts.grad_plot, tab.charts.probe_plot):
        label = plot.getPlotItem().getAxis("left").labelText
        assert len(label) <= 16, label
    window.close()
