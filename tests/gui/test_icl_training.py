"""In-context learning in the Training tab: the ICL score, the strongest heads and the heads x
evaluations heat strip from a real run's eval events, the transition marker and its note, the
causal test at a real checkpoint, and the induction recipe as a ready-made run.

The runs are real `python -m tokenscope.train --recipe induction` processes, cut to a few dozen
steps (about 20 s each on a busy 2-core machine); the causal test is a real `tokenscope icl`
process on one of their checkpoints.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from tokenscope.train.events import EvalEvent, EventWriter, StartEvent, read_events

RUN_TIMEOUT = 120_000  # ms
SHORT_RUN = ["--set", "steps=40", "--set", "eval_every=10", "--set", "threads=1",
             "--set", "checkpoint_every=20", "--set", "batch_size=8",
             "--set", "sample_every=1000"]  # fmt: skip


@pytest.fixture(scope="session")
def induction_run(tmp_path_factory) -> Path:
    """A real run of the induction recipe, 40 steps with an evaluation every 10."""
    out = tmp_path_factory.mktemp("icl") / "run"
    command = [sys.executable, "-m", "tokenscope.train", "--recipe", "induction", "--out",
               str(out), *SHORT_RUN]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def eval_events(run_dir: Path) -> list[EvalEvent]:
    return [e for e in read_events(run_dir / "events.jsonl") if isinstance(e, EvalEvent)]


@pytest.fixture
def tab(qtbot, monkeypatch):
    from tokenscope.gui import background
    from tokenscope.gui.training import training_process
    from tokenscope.gui.training.training_tab import TrainingTab

    monkeypatch.setattr(training_process, "cpu_cores", lambda: 2)
    t = TrainingTab()
    qtbot.addWidget(t)
    t.resize(1024, 700)
    t.show()
    yield t
    t.shutdown()
    assert not t.process.is_running()
    # The plan times a few steps in a process of its own when shown: on a busy machine that
    # outlasts a short test, and nothing may be left running after it.
    assert background.wait_for_all(120)


def test_a_real_runs_measures_are_charted(qtbot, tab, induction_run):
    evals = eval_events(induction_run)
    assert len(evals) >= 4 and all(e.induction_scores for e in evals)
    tab.open_run(str(induction_run))
    charts = tab.icl.charts
    qtbot.waitUntil(lambda: len(charts.steps) == len(evals), timeout=15_000)

    steps = [float(e.step) for e in evals]
    assert charts.icl_points() == (steps, [e.icl_score for e in evals])
    assert charts.max_points("induction") == (steps, [e.induction_max for e in evals])
    assert charts.max_points("previous_token") == (steps, [e.previous_token_max for e in evals])

    # The heat strip: one row per head (2 layers x 4 heads), one column per evaluation.
    values, rows, columns = charts.heat_strip("induction")
    assert rows == ["L0 H0", "L0 H1", "L0 H2", "L0 H3", "L1 H0", "L1 H1", "L1 H2", "L1 H3"]
    assert columns == [e.step for e in evals]
    assert values.shape == (8, len(evals))
    for col, e in enumerate(evals):
        assert values[:, col].tolist() == [v for row in e.induction_scores for v in row]
    # Row 6 is layer 1, head 2; the last column the last evaluation.
    assert values[6, -1] == evals[-1].induction_scores[1][2]

    # The pane takes the charts' place while it is shown, and gives it back.
    tab.bottom.setCurrentWidget(tab.icl)
    assert not tab.charts.isVisible() and tab.icl.isVisible()

    # The previous-token heads: the same strip, toggled.
    qtbot.mouseClick(charts.kind_buttons["previous_token"], Qt.MouseButton.LeftButton)
    assert charts.strip_kind() == "previous_token"
    previous, _rows, _cols = charts.heat_strip()
    assert previous[:, 0].tolist() == [v for row in evals[0].previous_token_scores for v in row]

    def shows_previous() -> bool:
        shown = charts.image.image
        return shown is not None and shown.shape == previous.shape and np.allclose(shown, previous)

    qtbot.waitUntil(shows_previous, timeout=5_000)
    # Pointing at a cell names the head, the step and the score.
    vb = charts.strip.getPlotItem().vb
    charts.strip.scene().sigMouseMoved.emit(vb.mapViewToScene(QPointF(len(evals) - 0.5, 6.5)))
    value = evals[-1].previous_token_scores[1][2]
    assert charts.strip.toolTip() == f"L1 H2 at step {evals[-1].step:,}: {value:.2f}"

    tab.bottom.setCurrentWidget(tab.notes_view)
    assert tab.charts.isVisible()


def write_evals(path: Path, icl_scores: dict[int, float]) -> None:
    """Eval events as the trainer writes them (EventWriter), with these ICL scores."""
    writer = EventWriter(path, stream=io.StringIO())
    writer.emit(StartEvent(config={"steps": 1000}))
    for step, score in icl_scores.items():
        writer.emit(EvalEvent(step=step, train_loss=3.0, val_loss=3.0, icl_score=score,
                              induction_scores=((0.01, 0.02), (0.03, min(1.0, -score))),
                              induction_max=min(1.0, -score), previous_token_max=0.2,
                              previous_token_scores=((0.2, 0.1), (0.05, 0.05))))  # fmt: skip
    writer.close()


def test_the_transition_is_marked_on_the_loss_curve_with_a_note(qtbot, tab, tmp_path):
    from tokenscope.gui.training.icl_charts import transition_note
    from tokenscope.lm.icl import transition

    charts = tab.icl.charts
    [loss_mark] = charts.loss_marks()
    assert loss_mark in tab.charts.loss_plot.getPlotItem().items
    # A fall of less than 0.3 nats is not a transition yet.
    small = {100: -0.05, 200: -0.1, 300: -0.2}
    write_evals(tmp_path / "a.jsonl", small)
    for event in read_events(tmp_path / "a.jsonl"):
        charts.add_event(event)
    qtbot.waitUntil(lambda: "No transition yet" in charts.note_text(), timeout=5_000)
    assert charts.transition_step is None and not loss_mark.isVisible()

    # Then the score drops, fastest between steps 300 and 400.
    more = {400: -0.9, 500: -1.1, 600: -1.2}
    write_evals(tmp_path / "b.jsonl", more)
    for event in read_events(tmp_path / "b.jsonl"):
        if isinstance(event, EvalEvent):
            charts.add_event(event)
    scores = {**small, **more}
    assert transition(list(scores), list(scores.values())) == 400
    assert charts.transition_step == 400
    qtbot.waitUntil(lambda: loss_mark.isVisible(), timeout=5_000)
    assert loss_mark.value() == 400
    assert all(m.isVisible() and m.value() == 400 for m in charts.icl_marks)
    assert charts.note_text() == transition_note(400)
    assert "around step 400" in charts.note_text()
    assert "started copying from its context" in charts.note_text()

    # Resuming from the checkpoint at step 300 drops what came after it, marker included.
    charts.add_event(StartEvent(resumed_from=300))
    assert charts.steps == [100, 200, 300] and charts.transition_step is None
    qtbot.waitUntil(lambda: not loss_mark.isVisible(), timeout=5_000)


def test_the_causal_test_at_a_real_checkpoint(qtbot, tab, induction_run):
    from tokenscope.lm import open_model
    from tokenscope.lm.icl import report
    from tokenscope.train import induction_corpus
    from tokenscope.train import run_folder as ckpt

    tab.open_run(str(induction_run))
    ablation = tab.icl.ablation
    folders = ckpt.list_checkpoints(induction_run)
    qtbot.waitUntil(lambda: ablation.checkpoint.count() == len(folders) + 1, timeout=15_000)
    # A chosen checkpoint (not the latest): step 20.
    ablation.checkpoint.setCurrentIndex(ablation.checkpoint.findData(str(folders[1])))
    assert ablation.chosen_checkpoint() == folders[1]
    qtbot.mouseClick(ablation.button, Qt.MouseButton.LeftButton)
    assert not ablation.button.isEnabled()  # while it measures
    qtbot.waitUntil(lambda: not ablation.measuring, timeout=RUN_TIMEOUT)
    assert ablation.last_error is None, ablation.last_error
    result = ablation.result
    assert result is not None and Path(result.checkpoint) == folders[1]

    # The same measurement made here, in this process, on the same held-out text.
    model = open_model(str(folders[1]))
    expected = report(model, induction_corpus.held_out())
    assert result.icl_score == pytest.approx(expected.icl_score, abs=1e-5)
    assert result.icl_without == pytest.approx(expected.icl_without_strongest, abs=1e-5)
    assert result.head == expected.strongest_head
    layer, head = expected.strongest_head
    text = ablation.label.text()
    assert f"L{layer} H{head} silenced" in text
    assert f"{expected.icl_score:+.3f} nats with every head" in text
    if expected.icl_score >= 0:
        assert "nothing for the head to undo" in text
    elif expected.icl_score > -0.05:
        assert "barely below 0" in text
    elif expected.undone is not None and expected.undone <= 1:
        assert f"undoes {100 * expected.undone:.0f} % of it" in text
    heights = ablation.bars.opts["height"]
    assert list(heights) == pytest.approx([expected.icl_score, expected.icl_without_strongest],
                                          abs=1e-5)  # fmt: skip
    assert ablation.button.isEnabled()


def test_the_causal_finding_in_words():
    from tokenscope.gui.training.icl_ablation import AblationResult

    def said(score: float, without: float) -> str:
        undone = None if score >= 0 else (score - without) / score
        return AblationResult("/r/checkpoints/step-006000", score, without, (1, 2), 0.62,
                              undone, "held-out text").summary()  # fmt: skip

    most = said(-0.8, -0.12)
    assert most.startswith("At step-006000 (held-out text): ICL score -0.800 nats with every")
    assert "-0.120 with L1 H2 silenced (its induction score 0.62)" in most
    assert "Silencing L1 H2 undoes 85 % of it." in most and "carries most" in most
    assert "undoes 25 % of it." in said(-0.8, -0.6) and "carries" not in said(-0.8, -0.6)
    assert "more than all of it (150 %;" in said(-0.8, 0.4)
    assert "barely below 0" in said(-0.02, 0.01) and "undoes" not in said(-0.02, 0.01)
    assert "nothing for the head to undo" in said(0.1, 0.2)


def test_the_induction_recipe_fills_the_settings_and_trains_live(
    qtbot, tab, private_home
):  # fmt: skip
    from tokenscope.gui.training.recipe_presets import load_recipe

    recipe = load_recipe("induction")
    tab.recipes.choose("induction")
    assert tab.recipes.choice.currentText() == "Induction heads (about 10 min)"
    plan, model = tab.plan, recipe["model"]
    assert (plan.layers.value(), plan.heads.value(), plan.width.value()) == (
        model["n_layer"], model["n_head"], model["d_model"])  # fmt: skip
    assert plan.context.value() == recipe["context"]
    assert plan.steps.value() == recipe["steps"] and plan.batch.value() == recipe["batch_size"]
    assert plan.lr.value() == pytest.approx(recipe["learning_rate"])
    assert plan.eval_every.value() == recipe["eval_every"]
    assert tab.data.tokenizer_kind() == recipe["tokenizer"]
    assert tab.options.sample_prompt.text() == recipe["sample_prompts"][0]
    assert tab.data.paths() == []  # the recipe brings its own text
    # Its vocabulary is counted on its own text, for the parameters and the time estimate.
    qtbot.waitUntil(lambda: plan.vocab_size < 100, timeout=15_000)

    # A shorter run than the recipe's, changed by hand; Start needs no files.
    plan.steps.setValue(30)
    plan.eval_every.setValue(10)
    plan.batch.setValue(8)
    qtbot.mouseClick(tab.start_button, Qt.MouseButton.LeftButton)
    assert not tab.error.isVisible(), tab.error.text()
    run_dir = private_home / "runs" / "induction"
    config = json.loads((run_dir / "run.json").read_text())
    assert config["corpus_recipe"] == "induction" and config["data"] == []
    assert config["steps"] == 30 and config["weight_decay"] == recipe["weight_decay"]
    assert config["eval_batches"] == recipe["eval_batches"]

    # The ICL charts fill as the eval events arrive from the running trainer.
    charts = tab.icl.charts
    qtbot.waitUntil(lambda: len(charts.steps) >= 2, timeout=RUN_TIMEOUT)
    assert tab.process.is_running() or tab.done_event is not None
    qtbot.waitUntil(lambda: not tab.process.is_running(), timeout=RUN_TIMEOUT)
    evals = eval_events(run_dir)
    [start] = [e for e in read_events(run_dir / "events.jsonl") if isinstance(e, StartEvent)]
    assert {k: start.model[k] for k in model} == model  # the recipe's model, d_ff and all
    assert start.model["vocab_size"] == plan.vocab_size
    assert charts.steps == [e.step for e in evals]
    assert charts.icl_points()[1] == [e.icl_score for e in evals]
    assert charts.heat_strip()[0].shape == (model["n_layer"] * model["n_head"], len(evals))
