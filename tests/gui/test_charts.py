"""Charts a learner can read: percentages, values on the bars, a log scale, room for every
label, legends off the bars, honest axes, exports that say what they show."""

from __future__ import annotations

import itertools
import math

import pyqtgraph as pg


def _shown_values(chart):
    return [t.toPlainText() for t in chart._values if t.toPlainText()]


def test_before_a_model_loads_the_chart_shows_no_axis(qtbot):
    from tokenscope.gui.widgets.next_token_chart import NextTokenChart

    chart = NextTokenChart()
    qtbot.addWidget(chart)
    chart.show()
    assert chart.stack.currentWidget() is chart.placeholder
    assert "once a model is loaded" in chart.placeholder.text()
    assert not chart.legend.isVisible()


def test_probabilities_read_as_percentages_with_values_on_the_bars(qtbot, window):
    pg_tab = window.playground
    qtbot.waitUntil(lambda: pg_tab.chart.current_data() is not None, timeout=10_000)
    chart = pg_tab.chart
    assert chart.stack.currentWidget() is chart.scroll
    data = chart.current_data()
    axis = chart.plot.getPlotItem().getAxis("bottom")
    ticks = axis.tickStrings([0.0, 0.002, 0.004], 1, 0.002)
    assert ticks == ["0.0%", "0.2%", "0.4%"]  # never "probability (x0.001)"
    assert axis.labelUnits == "" and "x0.001" not in axis.labelString()
    from tokenscope.gui.widgets.plots import format_probability

    assert [format_probability(p) for p in (0.547, 0.0053, 0.00041, 2.5e-7, 0)] == [
        "54.7%", "0.53%", "0.041%", "2.5e-07", "0"
    ]  # fmt: skip
    assert _shown_values(chart) == [format_probability(r.probability) for r in data.rows]
    # The legend and the notes are above the plot, not on it.
    assert chart.legend.parent() is chart and chart.note.parent() is chart
    # Knobs: the sampled bars get their own values, and the legend appears.
    pg_tab.sampling.top_k.setValue(2)
    qtbot.waitUntil(lambda: chart.current_data().removed_mass > 0, timeout=10_000)
    assert len(_shown_values(chart)) == 2 * len(chart.current_data().rows)
    assert chart.legend.isVisible() and "removed" in chart.note.text()


def test_the_log_scale_shows_small_probabilities(qtbot, window):
    chart = window.playground.chart
    qtbot.waitUntil(lambda: chart.current_data() is not None, timeout=10_000)
    rows = chart.current_data().rows
    chart.log_scale.setChecked(True)
    chart.flush()
    widths = chart.raw_bars.opts["width"]
    x0 = chart.raw_bars.opts["x0"][0]
    for r, w in zip(rows, widths, strict=True):  # bar ends at log10(p)
        assert math.isclose(x0 + w, math.log10(r.probability), abs_tol=1e-6)
    axis = chart.plot.getPlotItem().getAxis("bottom")
    assert axis.tickStrings([-3.0, -2.0, -1.0, 0.0], 1, 1) == ["0.1%", "1.0%", "10.0%", "100.0%"]


def test_many_bars_make_the_chart_taller_instead_of_piling_labels(qtbot, window):
    pg_tab = window.playground
    chart = pg_tab.chart
    qtbot.waitUntil(lambda: chart.current_data() is not None, timeout=10_000)
    pg_tab.chart_k.setValue(10)
    qtbot.waitUntil(lambda: len(chart.current_data().rows) == 10, timeout=10_000)
    short = chart.plot.minimumHeight()
    pg_tab.chart_k.setValue(40)
    qtbot.waitUntil(lambda: len(chart.current_data().rows) == 40, timeout=10_000)
    assert chart.plot.minimumHeight() >= 4 * short - 200  # room per bar stays the same
    assert chart.scroll.verticalScrollBar().maximum() > 0  # and it scrolls


def test_the_strip_numbers_tokens_like_the_chart_and_shows_entropy_in_bits(qtbot, window):
    pg_tab = window.playground
    pg_tab.max_tokens.setValue(6)
    pg_tab.generate()
    qtbot.waitUntil(lambda: pg_tab.generate_button.isEnabled(), timeout=20_000)
    steps = pg_tab.branches[pg_tab.current].steps
    strip = pg_tab.strip
    assert list(strip.bars.opts["x"]) == list(range(1, len(steps) + 1))
    xs, ys = strip.entropy.getData()
    assert list(xs) == list(range(1, len(steps) + 1))
    assert list(ys) == [s.entropy for s in steps]  # bits, not scaled into [0, 1]
    right = strip.plot.getPlotItem().getAxis("right")
    assert right.labelText == "bits" and right.linkedView() is strip.entropy_box
    assert "entropy" in strip.legend.text() and "bits" in strip.legend.text()
    pg_tab.select_token(len(steps) - 1)
    assert pg_tab.chart.current_data().title.startswith(f"token {len(steps)} ")


def test_sweep_labels_do_not_overlap_and_a_log_scale_shows_small_ones(qtbot, window, tmp_path):
    tab = window.fewshot
    window.resize(1024, 768)
    window.tabs.setCurrentWidget(tab)
    tab.load_preset("english-indonesian")
    tab.max_shots.setValue(4)
    tab.run_sweep()
    qtbot.waitUntil(lambda: tab.progress.format() == "completed", timeout=60_000)
    chart = tab.sweep_chart
    labels = [i for i in chart.plot.getPlotItem().items if isinstance(i, pg.TextItem)]
    assert len(labels) == 5
    # No label covers another or is cut by the plot's edge (measured as painted), even as
    # short as the chart gets at 1024x768 under a long reading.
    chart.plot.setMaximumHeight(130)
    qtbot.waitUntil(lambda: 40 < chart.plot.getPlotItem().vb.height() < 130, timeout=5_000)
    chart.plot.grab()
    for label in labels:
        label.updateTransform(force=True)
    area = chart.plot.getPlotItem().vb.sceneBoundingRect()
    boxes = [label.sceneBoundingRect() for label in labels]
    for a, b in itertools.pairwise(boxes):
        assert not a.intersects(b), (a, b)
    assert all(area.contains(box) for box in boxes), (area, boxes)
    view = chart.plot.getPlotItem().viewRange()
    assert view[1][0] < 0 and view[1][1] > 1  # room under 0% and over 100%
    chart.log_scale.setChecked(True)
    (line,) = chart.plot.getPlotItem().listDataItems()
    _, ys = line.getData()
    points = chart.series[next(iter(chart.series))]
    assert list(ys) == [math.log10(p.probability) for p in points]
    assert "━●" in chart.legend.text()  # the legend is above the plot, not inside it


def test_an_exported_chart_says_which_model_and_prompt(qtbot, window, tmp_path):
    chart = window.playground.chart
    window.playground.prompt.setPlainText("The capital of")
    qtbot.waitUntil(lambda: window.playground.predicted_text == "The capital of", timeout=10_000)
    caption = window.chart_caption()
    assert window.model_info.name in caption and "'The capital of'" in caption
    chart.export_image(tmp_path / "chart.svg", caption=caption)
    svg = (tmp_path / "chart.svg").read_text()
    assert window.model_info.name in svg and "The capital of" in svg
    chart.export_image(tmp_path / "chart.png", caption=caption)
    from PySide6.QtGui import QImage

    image = QImage(str(tmp_path / "chart.png"))
    assert image.width() >= 400 and image.height() > chart.plot.height()


def test_the_few_shot_tab_keeps_the_window_narrow_whatever_the_preset(qtbot, window):
    tab = window.fewshot
    window.tabs.setCurrentWidget(tab)
    for name in ("sentiment", "english-indonesian", "capitals", "sentiment"):
        tab.load_preset(name)
        text = tab.editor.prompt().assemble().text
        qtbot.waitUntil(
            lambda text=text: tab.preview is not None and tab.preview.text == text, timeout=10_000
        )
        assert window.minimumSizeHint().width() <= 1000, name
    window.tabs.setCurrentWidget(window.training)
    assert window.minimumSizeHint().width() <= 1000


def test_every_tab_fits_a_1024_by_768_screen(qtbot, window):
    window.resize(1024, 768)
    for i in range(window.tabs.count()):
        window.tabs.setCurrentIndex(i)
        hint = window.tabs.currentWidget().minimumSizeHint()
        assert hint.width() <= 1000 and hint.height() <= 700, window.tabs.tabText(i)
    assert window.width() <= 1024 and window.height() <= 768


def test_the_model_size_chart_never_draws_one_name_over_another(qtbot):
    from tokenscope.gui.widgets.model_scale_chart import ModelScaleChart

    chart = ModelScaleChart()
    qtbot.addWidget(chart)
    vb = chart.plot.getPlotItem().vb
    for width in (470, 900):
        chart.resize(width, 480)
        chart.show()
        qtbot.waitUntil(lambda w=width: vb.width() > w * 0.7, timeout=5_000)
        chart.plot.grab()  # painted: each name as on screen
        shown = [t for t in chart._labels.values() if t.isVisible()]
        assert len(shown) >= len(chart._labels) * 2 // 3  # most names are readable
        boxes = [t.sceneBoundingRect() for t in shown]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert not a.intersects(b), (width, a, b)
