"""The Scale tab tells the lesson it is there for: it opens on the in-context task, a probe
whose P falls with size is explained in words, the table is in size order, and the names on
the chart of well-known models never cover one another in the real window at 1024x768 and
1920x1080."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QRectF


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
