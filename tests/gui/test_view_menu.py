"""View menu: zoom scales the window's font and its charts; the theme follows the system or
the person's choice, charts included; both survive a new window."""

from __future__ import annotations

import pyqtgraph as pg
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication


@pytest.fixture(autouse=True)
def back_to_defaults():
    """The application's font and palette are shared by every test in the process."""
    yield
    from tokenscope.gui.view_menu import BASE_SIZE_PROPERTY

    app = QApplication.instance()
    base = app.property(BASE_SIZE_PROPERTY)
    if base is not None:
        font = app.font()
        font.setPointSizeF(float(base))
        app.setFont(font)
    app.setPalette(QPalette())
    from tokenscope.gui.widgets.theme import restyle_all

    restyle_all()


def _tick_size(plot: pg.PlotWidget, axis: str = "bottom") -> float:
    return plot.getPlotItem().getAxis(axis).style["tickFont"].pointSizeF()


def _label_size(plot: pg.PlotWidget, axis: str = "bottom") -> float:
    return float(plot.getPlotItem().getAxis(axis).labelStyle["font-size"].removesuffix("pt"))


def _lightness(color: QColor) -> int:
    return color.lightness()


def test_zoom_keys_scale_the_font_and_the_charts_and_are_remembered(qtbot, window):
    from tokenscope.gui.main_window import MainWindow

    app = QApplication.instance()
    next_token = window.playground.chart.plot
    loss = window.training.charts.loss_plot
    font0, tick0, label0 = app.font().pointSizeF(), _tick_size(next_token), _label_size(loss)
    assert window.view_menu.appearance.zoom == 100

    window.playground.prompt.setFocus()
    qtbot.keyClick(window.playground.prompt, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(window.playground.prompt, Qt.Key.Key_Plus, Qt.KeyboardModifier.ControlModifier)
    assert window.view_menu.appearance.zoom == 125
    assert app.font().pointSizeF() == pytest.approx(font0 * 1.25)
    assert _tick_size(next_token) == pytest.approx(tick0 * 1.25)
    assert _label_size(loss) == pytest.approx(label0 * 1.25, abs=0.1)
    # Text inside a chart (a reference model's name on the scale chart) grows as well.
    names = [t for t in window.scale.size_chart.reference.plot.scene().items()
             if isinstance(t, pg.TextItem) and t.toPlainText()]  # fmt: skip
    assert names and names[0].textItem.font().pointSizeF() == pytest.approx(tick0 * 1.25)

    qtbot.keyClick(window.playground.prompt, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert window.view_menu.appearance.zoom == 110
    qtbot.keyClick(window.playground.prompt, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert app.font().pointSizeF() == pytest.approx(font0)
    assert _tick_size(next_token) == pytest.approx(tick0)

    for _ in range(10):  # past the largest step: it stays there
        window.view_menu.zoom_in.trigger()
    assert window.view_menu.appearance.zoom == 200
    assert not window.view_menu.zoom_in.isEnabled()
    window.view_menu.appearance.set_zoom(150)
    window.close()

    again = MainWindow()
    qtbot.addWidget(again)
    assert again.view_menu.appearance.zoom == 150
    assert app.font().pointSizeF() == pytest.approx(font0 * 1.5)
    assert _tick_size(again.playground.chart.plot) == pytest.approx(tick0 * 1.5)
    again.close()


def _chart_is_dark(plot: pg.PlotWidget) -> bool:
    background = plot.backgroundBrush().color()
    text = plot.getPlotItem().getAxis("bottom").textPen().color()
    return _lightness(background) < 80 and _lightness(text) > 180


def _chart_is_light(plot: pg.PlotWidget) -> bool:
    background = plot.backgroundBrush().color()
    text = plot.getPlotItem().getAxis("bottom").textPen().color()
    return _lightness(background) > 200 and _lightness(text) < 80


def test_the_dark_theme_reaches_the_window_and_every_chart(qtbot, window):
    from tokenscope.gui.main_window import MainWindow

    app = QApplication.instance()
    plots = [w for w in app.allWidgets() if isinstance(w, pg.PlotWidget) and w.window() is window]
    assert len(plots) >= 8  # next-token, few-shot, inside, scale, training charts
    assert all(_chart_is_light(p) for p in plots)

    window.view_menu.theme_actions["dark"].trigger()
    assert app.palette().color(QPalette.ColorRole.Window).lightness() < 80
    assert [p for p in plots if not _chart_is_dark(p)] == []
    # Text inside charts, legends and coloured notes turn light too.
    names = [t for t in window.scale.size_chart.reference.plot.scene().items()
             if isinstance(t, pg.TextItem) and t.toPlainText()]  # fmt: skip
    assert _lightness(names[0].color) > 180
    legend = window.training.charts.loss_plot.getPlotItem().legend
    assert _lightness(QColor(legend.opts["labelTextColor"])) > 180
    note = window.playground.chart.note
    assert note.property("tone") == "muted" and "#b4b4b4" in note.styleSheet()

    window.close()
    again = MainWindow()  # remembered
    qtbot.addWidget(again)
    assert again.view_menu.theme_actions["dark"].isChecked()
    assert _chart_is_dark(again.playground.chart.plot)
    again.view_menu.theme_actions["light"].trigger()
    assert _chart_is_light(again.playground.chart.plot)
    assert app.palette().color(QPalette.ColorRole.Window).lightness() > 200
    again.close()


def test_system_theme_follows_a_palette_that_goes_dark_and_back(qtbot, window):
    from tokenscope.gui.widgets.theme import dark_palette

    app = QApplication.instance()
    assert window.view_menu.theme_actions["system"].isChecked()
    chart = window.fewshot.sweep_chart.plot
    assert _chart_is_light(chart)
    app.setPalette(dark_palette())  # what a platform theme does when the system goes dark
    qtbot.waitUntil(lambda: _chart_is_dark(chart), timeout=5000)  # (the change is posted)
    assert _chart_is_dark(window.inside.attention.plot)
    app.setPalette(QPalette())
    qtbot.waitUntil(lambda: _chart_is_light(chart), timeout=5000)
    # Chosen Light, a dark system palette is not followed.
    window.view_menu.set_theme("light")
    app.setPalette(dark_palette())
    app.processEvents()  # the posted palette change is delivered, and not followed
    assert _chart_is_light(chart)
