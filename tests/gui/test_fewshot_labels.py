"""The few-shot sweep says what its points are: each label is P of the whole expected answer
(the model's top next token only where the answer's first token is not it), so labels differ
where the values do; and a prompt longer than the model's context is said to be cut, at which
shot counts, its points drawn hollow and left out of the reading."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt

import tokenscope
from tokenscope.gui.fewshot.sweep_chart import point_label
from tokenscope.lm.fewshot import Example, FewShotPrompt, sweep
from tokenscope.lm.fewshot.scoring import SweepPoint


def _sweep(qtbot, window, prompt, shots):
    tab = window.fewshot
    window.tabs.setCurrentWidget(tab)
    tab._set_prompt(prompt)
    tab.max_shots.setValue(shots)
    qtbot.mouseClick(tab.sweep_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.progress.format() == "completed", timeout=60_000)
    return tab


def test_a_label_is_the_points_probability_not_the_first_token():
    # The bundled model on the invented language: " cloud" ranks first at 0 and 4 shots, but
    # the whole answer " cloudvek" is improbable at 0 and likely at 4.
    at0 = SweepPoint(0, 0, 0.00055, 1, " cloud", 0.999)
    at4 = SweepPoint(4, 0, 0.992, 1, " cloud", 0.998)
    assert point_label(at0) == "0.055%" and point_label(at4) == "99.2%"
    wrong = SweepPoint(1, 0, 0.01, 5, " the", 0.4)
    assert point_label(wrong) == "1.0%\ntop ' the'"
    cut = SweepPoint(3, 0, 0.2, 1, " x", 0.5, dropped_tokens=12)
    assert point_label(cut).endswith("\ncut")


def test_the_chart_labels_each_point_with_its_own_value(qtbot, window, checkpoint):
    prompt = FewShotPrompt(
        examples=(Example("France", "Paris"), Example("Japan", "Tokyo"), Example("Peru", "Lima")),
        query="Chile", expected="Santiago", template="{input} => {output}",
    )  # fmt: skip
    tab = _sweep(qtbot, window, prompt, 3)
    ((_name, points),) = tab.sweep_points().items()
    expected = sweep(tokenscope.load_model(str(checkpoint)), prompt, max_shots=3)
    assert [p.probability for p in points] == [p.probability for p in expected]
    labels = {shots: text for _n, shots, text in tab.sweep_labels}
    shown = [i.toPlainText() for i in tab.sweep_plot.getPlotItem().items
             if isinstance(i, pg.TextItem)]  # fmt: skip
    assert sorted(shown) == sorted(labels.values())
    for p in expected:
        assert labels[p.shots].split("\n")[0] in tab.sweep_chart.table.toPlainText()
    values = {p.shots: f"{p.probability:.3g}" for p in expected}
    for a in expected:
        for b in expected:
            if values[a.shots] != values[b.shots]:
                assert labels[a.shots] != labels[b.shots]
    assert "P(whole answer)" in tab.sweep_chart.legend.text()


def test_a_prompt_longer_than_the_context_is_said_to_be_cut(qtbot, window, checkpoint):
    model = tokenscope.load_model(str(checkpoint))
    context = model.config.context_length
    words = ["alpha beta gamma delta", "epsilon zeta eta theta", "iota kappa lambda mu",
             "nu xi omicron pi", "rho sigma tau upsilon", "phi chi psi omega"]  # fmt: skip
    prompt = FewShotPrompt(
        examples=tuple(Example(w, w.upper()) for w in words),
        query="one two three four", expected="ONE TWO THREE FOUR",
        template="Words: {input}\nLoud: {output}", separator="\n\n",
    )  # fmt: skip
    expected = sweep(model, prompt, max_shots=len(words))
    cut = [p.shots for p in expected if p.dropped_tokens]
    assert cut and cut[0] > 0 and cut[-1] == len(words)  # some fit, the longest do not
    tab = _sweep(qtbot, window, prompt, len(words))
    reading = tab.sweep_reading.text()
    assert f"With {cut[0]} to {cut[-1]} example(s)" in reading, reading
    assert f"context ({context:,} tokens)" in reading and "cut off" in reading
    (line,) = tab.sweep_plot.getPlotItem().listDataItems()
    (name,) = tab.sweep_chart.cut
    assert tab.sweep_chart.cut[name] == cut
    spots = line.scatter.points()
    hollow = sorted(int(s.pos().x()) for s in spots if s.brush().color().name() == "#ffffff")
    assert hollow == cut  # drawn hollow: white inside
    labels = {shots: text for _n, shots, text in tab.sweep_labels}
    assert all(labels[k].endswith("cut") == (k in cut) for k in labels)
    # The reading speaks of the points that fit only: its last k is below the first cut.
    if "with no example to" in reading:
        assert f"with {cut[0] - 1}:" in reading or f"with {cut[0] - 1}." in reading


def _assert_labels_fit(qtbot, tab):
    chart = tab.sweep_chart
    chart.plot.setMaximumHeight(130)  # as short as it gets at 1024x768 under a long reading
    vb = chart.plot.getPlotItem().vb
    qtbot.waitUntil(lambda: 40 < vb.height() < 130, timeout=5_000)
    chart.plot.grab()
    labels = [i for i in chart.plot.getPlotItem().items if isinstance(i, pg.TextItem)]
    for label in labels:
        label.updateTransform(force=True)
    boxes = [label.sceneBoundingRect() for label in labels]
    area = vb.sceneBoundingRect()
    for i, a in enumerate(boxes):
        assert area.contains(a), (a, area)  # not cut by the top or bottom edge
        for b in boxes[i + 1 :]:
            assert not a.intersects(b), (a, b)
    return labels


def test_labels_near_100_and_0_percent_stay_inside_a_short_chart(qtbot, make_window):
    window = make_window("builtin")  # the bundled model: 0.055 % with no example, ~99 % after
    window.resize(1024, 768)
    tab = window.fewshot
    window.tabs.setCurrentWidget(tab)
    tab.load_preset("invented-language")
    tab.max_shots.setValue(4)
    qtbot.mouseClick(tab.sweep_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.progress.format() == "completed", timeout=60_000)
    (points,) = tab.sweep_points().values()
    assert points[0].probability < 0.01 < 0.9 < min(p.probability for p in points[1:])
    labels = _assert_labels_fit(qtbot, tab)
    assert len(labels) == 5
    assert "the answer's first token" in tab.sweep_reading.text()  # rank 1, P 0.055 %
