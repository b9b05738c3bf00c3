"""The Scale tab tells the lesson it is there for: it opens on the in-context task, a probe
whose P falls with size is explained in words, the table is in size order, and the names on
the chart of well-known models never cover one another in the real window at 1024x768 and
1920x1080."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QRectF, Qt


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _label_boxes(chart) -> tuple[list[QRectF], QRectF]:
    """The scene rectangles of the names shown on a ModelScaleChart, as painted, and the
    rectangle of its plot area."""
    chart.plot.grab()  # paints: each name takes its on-screen transform
    shown = [t for t in chart._labels.values() if t.isVisible()]
    if chart._planned_label.isVisible():
        shown.append(chart._planned_label)
    return [t.sceneBoundingRect() for t in shown], chart.plot.getPlotItem().vb.sceneBoundingRect()


@pytest.mark.parametrize("size", [(1024, 768), (1920, 1080)])
def test_names_on_the_reference_chart_never_overlap_in_the_window(qtbot, window, size):
    window.resize(*size)
    charts = {
        "scale": (window.scale, window.scale.size_chart.reference),
        "training": (window.training, window.training.scale_chart),
    }
    window.scale.size_chart.reference.set_marks([("a", 1_000_000), ("b", 135_000_000)])
    window.training.scale_chart.set_planned(30_000_000)
    for name, (tab, chart) in charts.items():
        window.tabs.setCurrentWidget(tab)
        qtbot.waitUntil(lambda c=chart: c.plot.getPlotItem().vb.height() > 40, timeout=5_000)
        qtbot.wait(50)
        boxes, area = _label_boxes(chart)
        assert len(boxes) >= 6, (name, size, len(boxes))  # names are shown where there is room
        for i, a in enumerate(boxes):
            assert area.contains(a), (name, size, a, area)  # none is cut by the plot's edge
            for b in boxes[i + 1 :]:
                assert not a.intersects(b), (name, size, a, b)
        # Every model without a name on the chart answers on hover instead.
        hidden = [n for n, t in chart._labels.items() if not t.isVisible()]
        assert sorted(hidden) == sorted(chart.unlabelled)
        for ref in chart.references:
            assert ref.name in chart._tip(x=0, y=0, data=ref.name)


def test_a_short_chart_hides_names_rather_than_stacking_them(qtbot):
    from tokenscope.gui.widgets.model_scale_chart import ModelScaleChart

    chart = ModelScaleChart()
    qtbot.addWidget(chart)
    chart.plot.setMinimumHeight(10)
    chart.resize(500, 120)
    chart.show()
    qtbot.waitUntil(lambda: chart.plot.getPlotItem().vb.width() > 100, timeout=5_000)
    boxes, area = _label_boxes(chart)
    for i, a in enumerate(boxes):
        assert area.contains(a)
        for b in boxes[i + 1 :]:
            assert not a.intersects(b), (a, b)
    assert chart.unlabelled  # too little room for all 24 names: some wait for a hover
    chart.resize(1400, 600)
    qtbot.waitUntil(lambda: chart.plot.getPlotItem().vb.width() > 1000, timeout=5_000)
    assert len(chart.unlabelled) < len(chart.references) // 3


@pytest.fixture
def big_random_checkpoint(tmp_path, make_model):
    """An untrained model with more parameters than the bundled one: it knows nothing."""
    model = make_model("tiny", seed=3, d_model=256, n_head=4)
    assert model.parameter_count > 1_100_000
    return model.save(tmp_path / "big-random")


def _tick_only(qtbot, window, *targets):
    tab = window.scale
    window.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: tab.models.count() > 0)
    for i in range(tab.models.count()):
        tab.models.item(i).setCheckState(Qt.CheckState.Unchecked)
    for t in targets:
        tab.add_target(str(t))
    return tab


def _run(qtbot, tab):
    tab.run()
    qtbot.waitUntil(lambda: not tab.running, timeout=120_000)


def test_the_tab_opens_on_the_in_context_task(qtbot, window, checkpoint, big_random_checkpoint):
    tab = window.scale
    assert tab.mode_task.isChecked() and not tab.prompt.isEnabled()
    assert tab.task.currentData() == "invented-language"
    assert tab.max_shots.value() == 4
    assert not tab.explanation.isVisible()
    assert tab.size_chart.empty.isVisible()  # the empty chart says what Run will put there
    # Run as it opens: each model's sweep, and on the size chart its P with four examples.
    tab = _tick_only(qtbot, window, big_random_checkpoint, checkpoint)
    tab.mode_task.setChecked(True)
    _run(qtbot, tab)
    assert tab.status.text().startswith("2 model(s) measured"), tab.status.text()
    sweeps = {name: ps for name, _shots, ps in tab.sweep_chart.data()}
    assert all(len(ps) == 5 for ps in sweeps.values())  # 0..4 examples
    size = tab.size_chart.data()
    assert [x for _n, x, _p in size] == sorted(x for _n, x, _p in size)
    for name, _x, p in size:
        assert p == pytest.approx(sweeps[name][-1])
    title = tab.size_chart.plot.getPlotItem().titleLabel.text
    assert "4 example" in title
    assert not tab.size_chart.empty.isVisible()


def test_a_probe_whose_p_falls_with_size_is_explained(qtbot, window, big_random_checkpoint):
    # The bundled model learned " Jakarta" by heart; an untrained bigger model has not.
    tab = _tick_only(qtbot, window, big_random_checkpoint, "builtin")
    tab.mode_probe.setChecked(True)
    tab.prompt.setText("The capital of Indonesia is")
    tab.answer.setText(" Jakarta")
    _run(qtbot, tab)
    points = {p.model: p for p in tab.size_chart.points}
    small, big = points["builtin"], points[str(big_random_checkpoint)]
    assert small.parameters < big.parameters and small.probability > 0.5 > big.probability
    assert tab.explanation.isVisible()
    text = tab.explanation.text()
    assert "falls with size" in text and "memory, not ability" in text
    assert f"{small.probability:.3f}" in text and f"{big.probability:.3f}" in text
    assert small.name in text and big.name in text
    # Rows in size order (the bigger model was ticked, and came back, first).
    names = [tab.table.item(r, 0).text() for r in range(tab.table.rowCount())]
    sizes = [int(tab.table.item(r, 1).text().replace(",", "")) for r in range(len(names))]
    assert sizes == sorted(sizes) and names[0] == small.name
    # An answer the bigger model ranks no lower: nothing to explain.
    tab.answer.setText(big.top_prediction)
    _run(qtbot, tab)
    got = {p.model: p.probability for p in tab.size_chart.points}
    if got[str(big_random_checkpoint)] >= 0.75 * got["builtin"]:
        assert not tab.explanation.isVisible()


def test_the_explanation_comes_from_the_numbers():
    from tokenscope.lm.scale import ScalePoint, falls_with_size

    def point(name, n, p, model=None):
        return ScalePoint(model or name, name, n, p, 1, " x", p)

    rising = [point("a", 10**6, 0.1), point("b", 10**8, 0.5), point("c", 3 * 10**8, 0.9)]
    assert falls_with_size(rising) == ""
    small_drop = [point("a", 10**6, 0.50), point("b", 10**8, 0.45)]
    assert falls_with_size(small_drop) == ""
    unsure = [point("a", 10**6, 0.2), point("b", 10**8, 0.01)]  # never sure of it: no lesson
    assert falls_with_size(unsure) == ""
    falling = [point("big", 10**8, 0.35), point("small", 10**6, 0.99, "builtin")]
    text = falls_with_size(falling)
    assert "small (1M) 0.990, big (100M) 0.350" in text and "bundled" in text
    assert "Few-shot" in text  # a probe: points to the task where size shows
    task = falls_with_size([point("x", 10**6, 0.99), point("y", 10**8, 0.1)], shots=4)
    assert "with 4 examples" in task and "bundled" not in task
