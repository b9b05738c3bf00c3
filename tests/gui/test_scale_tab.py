"""The Scale tab on the real window, over real models: the size chart's numbers are each
model's own next-token probabilities, the few-shot chart each model's own sweep, a training
run is measured at each checkpoint against its training tokens, a model that cannot be opened
is reported while the others are measured, Cancel stops a run, results are cached, and every
chart exports PNG, SVG and CSV."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys

import pytest
from PySide6.QtCore import Qt

import tokenscope
from tokenscope.gui.scale.scale_tab import EDITOR_TASK
from tokenscope.lm.fewshot import Example, FewShotPrompt, sweep

PROMPT = "The capital of Indonesia is"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def bigger_checkpoint(tmp_path, make_model):
    """A tiny model with one more layer: another size on the chart."""
    from tokenscope.lm import preset

    layers = preset("tiny", vocab_size=300).n_layer + 1
    return make_model("tiny", seed=7, n_layer=layers).save(tmp_path / "bigger-checkpoint")


def _scale(qtbot, window, *targets):
    tab = window.scale
    window.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: tab.models.count() > 0)  # the window has listed its models
    for i in range(tab.models.count()):
        tab.models.item(i).setCheckState(Qt.CheckState.Unchecked)
    for t in targets:
        tab.add_target(str(t))
    tab.mode_probe.setChecked(True)  # (the tab opens on the few-shot task)
    return tab


def _run(qtbot, tab, timeout=60_000):
    tab.run()
    assert tab.running and not tab.run_button.isEnabled()
    qtbot.waitUntil(lambda: not tab.running, timeout=timeout)


def test_the_size_chart_is_each_models_next_token_probability(
    qtbot, window, checkpoint, bigger_checkpoint
):
    tab = _scale(qtbot, window, checkpoint, bigger_checkpoint)
    models = [tokenscope.load_model(str(c)) for c in (checkpoint, bigger_checkpoint)]
    # A one-token answer: P(answer) is then exactly the next-token distribution's value.
    answer = models[0].get_most_likely_token(models[0].predict_next_token_probabilities(PROMPT))
    tab.prompt.setText(PROMPT)
    tab.answer.setText(answer)
    _run(qtbot, tab)
    assert tab.status.text().startswith("2 model(s) measured"), tab.status.text()
    expected = sorted(
        ((m.parameter_count, m.predict_next_token_probabilities(PROMPT)) for m in models),
        key=lambda e: e[0],
    )
    assert expected[0][0] < expected[1][0]
    data = tab.size_chart.data()
    assert len(data) == 2
    for (_name, x, p), (n, dist) in zip(data, expected, strict=True):
        assert x == pytest.approx(math.log10(n))
        assert p == pytest.approx(dist.probability_of(answer), rel=1e-5)
    # The rank view: the answer's place in each model's own distribution.
    tab.metric_picker.setCurrentIndex(tab.metric_picker.findData("rank"))
    for (_name, _x, rank), (_n, dist) in zip(tab.size_chart.data(), expected, strict=True):
        p = dist.probability_of(answer)
        assert rank == 1 + sum(q > p for q in dist.vector())
    # The probed sizes are marked on the reference chart of well-known models.
    assert sorted(n for _name, n in tab.size_chart.reference.marks) == [e[0] for e in expected]
    assert tab.table.rowCount() == 2
    # Asked again, the answers come from the cache, unchanged.
    tab.metric_picker.setCurrentIndex(tab.metric_picker.findData("probability"))
    _run(qtbot, tab)
    assert "2 from the cache" in tab.status.text()
    assert [d[2] for d in tab.size_chart.data()] == pytest.approx([d[2] for d in data])


def test_the_few_shot_chart_is_each_models_own_sweep(qtbot, window, checkpoint, bigger_checkpoint):
    tab = _scale(qtbot, window, checkpoint, bigger_checkpoint)
    prompt = FewShotPrompt(
        examples=(Example("France", "Paris"), Example("Japan", "Tokyo"), Example("Peru", "Lima")),
        query="Indonesia",
        expected="Jakarta",
        template="The capital of {input} is {output}.",
    )
    window.fewshot.editor.set_prompt(prompt)
    tab.mode_task.setChecked(True)
    tab.task.setCurrentIndex(tab.task.findData(EDITOR_TASK))
    _run(qtbot, tab)
    assert tab.charts.currentWidget() is tab.sweep_chart
    curves = tab.sweep_chart.data()
    assert len(curves) == 2
    models = sorted(
        (tokenscope.load_model(str(c)) for c in (checkpoint, bigger_checkpoint)),
        key=lambda m: m.parameter_count,
    )
    for (_name, shots, ps), model in zip(curves, models, strict=True):
        mine = sweep(model, window.fewshot.editor.prompt())
        assert shots == [0, 1, 2, 3]
        assert ps == pytest.approx([p.probability for p in mine], rel=1e-5)


def _train_tiny_run(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "capitals.txt").write_text(
        "".join(f"The capital of {c} is {k}.\n" for c, k in
                [("Indonesia", "Jakarta"), ("France", "Paris"), ("Japan", "Tokyo")] * 300),
        encoding="utf-8",
    )  # fmt: skip
    config = {
        "data": [str(corpus)], "out_dir": str(tmp_path / "run"), "preset": "tiny",
        "tokenizer": "bpe", "vocab_size": 300, "steps": 12, "batch_size": 8, "context": 32,
        "learning_rate": 0.01, "warmup_steps": 2, "log_every": 1, "eval_every": 6,
        "eval_batches": 1, "sample_every": 100, "checkpoint_every": 4, "threads": 1,
    }  # fmt: skip
    (tmp_path / "run.json").write_text(json.dumps(config))
    subprocess.run(
        [sys.executable, "-m", "tokenscope.train", "--config", str(tmp_path / "run.json")],
        check=True, capture_output=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    return tmp_path / "run"


def test_a_run_is_measured_at_each_checkpoint_against_training_tokens(qtbot, window, tmp_path):
    run = _train_tiny_run(tmp_path)
    tab = _scale(qtbot, window, run, tmp_path / "no such model")
    tab.answer.setText(" Jakarta")
    _run(qtbot, tab)
    # The missing model is reported; the run is measured anyway.
    rows = [tab.table.item(i, 4).text() for i in range(tab.table.rowCount())]
    assert any("no such model" in r or "not found" in r.lower() for r in rows), rows
    assert "1 could not be measured" in tab.status.text()
    [(_name, tokens, ps)] = tab.training_chart.data()
    checkpoints = sorted((run / "checkpoints").glob("step-*"))
    assert len(tokens) == len(checkpoints) >= 2
    steps = [int(f.name.split("-")[1]) for f in checkpoints]
    assert tokens == [step * 8 * 32 for step in steps]  # steps x batch x context
    for folder, p in zip(checkpoints, ps, strict=True):
        model = tokenscope.load_model(str(folder))
        from tokenscope.lm.fewshot import score_answer

        assert p == pytest.approx(score_answer(model, PROMPT, " Jakarta").probability, rel=1e-5)
    # The size chart holds the run's last checkpoint.
    [(_n, _x, last)] = tab.size_chart.data()
    assert last == pytest.approx(ps[-1])
    # Exports: the chart shown as PNG and SVG, its numbers as CSV.
    tab.charts.setCurrentWidget(tab.training_chart)
    for suffix in ("png", "svg"):
        tab.export(tmp_path / f"chart.{suffix}")
        assert (tmp_path / f"chart.{suffix}").stat().st_size > 1000
    tab.export(tmp_path / "chart.csv")
    with open(tmp_path / "chart.csv", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[0][:4] == ["run", "parameters", "step", "training tokens"]
    assert [float(r[4]) for r in table[1:]] == pytest.approx(ps)


def test_cancel_stops_a_run_and_the_tab_is_ready_again(qtbot, window, checkpoint, tmp_path):
    copies = []
    for n in range(6):  # several models, measured anew: time enough to cancel
        folder = tmp_path / f"copy-{n}"
        folder.mkdir()
        for f in checkpoint.iterdir():
            (folder / f.name).write_bytes(f.read_bytes())
        copies.append(folder)
    tab = _scale(qtbot, window, *copies)
    tab.fresh.setChecked(True)
    tab.prompt.setFocus()
    qtbot.keyClick(tab.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert tab.running  # Ctrl+Enter runs (the Playground's own Ctrl+Enter is not in the way)
    started = lambda: tab.progress.maximum() > 0 and tab.progress.value() >= 1  # noqa: E731
    qtbot.waitUntil(started, timeout=20_000)
    qtbot.keyClick(tab.prompt, Qt.Key.Key_Escape)  # as the Cancel button does
    qtbot.waitUntil(lambda: not tab.running, timeout=20_000)
    assert tab.status.text().startswith("Cancelled after")
    assert len(tab.results) < len(copies)
    assert tab.run_button.isEnabled() and not tab.cancel_button.isEnabled()
    # No model ticked: the tab says so instead of running.
    for i in range(tab.models.count()):
        tab.models.item(i).setCheckState(Qt.CheckState.Unchecked)
    tab.run()
    assert not tab.running and "Tick at least one model" in tab.status.text()


def test_the_tab_remembers_its_probe_and_models(qtbot, make_window, checkpoint, bigger_checkpoint):
    first = make_window(checkpoint)
    tab = _scale(qtbot, first, bigger_checkpoint)
    tab.prompt.setText("The capital of France is")
    tab.answer.setText(" Paris")
    tab.mode_task.setChecked(True)
    tab.task.setCurrentIndex(tab.task.findData("capitals"))
    first.close()
    again = make_window(checkpoint).scale
    qtbot.waitUntil(lambda: again.models.count() > 1)
    assert again.prompt.text() == "The capital of France is" and again.answer.text() == " Paris"
    assert again.mode_task.isChecked() and again.task.currentData() == "capitals"
    assert again.targets() == [str(bigger_checkpoint)]  # the one ticked, and only it
