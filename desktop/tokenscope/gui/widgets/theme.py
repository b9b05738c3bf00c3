"""Colours and sizes that follow the window: light or dark palette, and the zoom.

Charts and coloured notes read the application's palette and font when they are drawn or
restyled, so one change of palette (the system going dark, View > Theme) or of font (View >
Zoom) reaches them all through `restyle_all()`:

    plot = chart_widget()           # a pyqtgraph plot styled for the current palette and zoom
    label = chart_text("0.5%")      # a text item inside a chart that follows them too
    set_tone(note, "muted")         # a grey note that stays readable on a dark window
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QHeaderView, QTableView, QWidget

#: where a chart's text item keeps its role (QGraphicsItem.data key)
ROLE_KEY = 0x7453
#: a text item that is plain ink: its colour follows the palette
INK = "ink"
#: a text item that is secondary: a lighter ink
MUTED = "muted"
#: a text item with a colour of its own (a highlighted point): only its size follows the zoom
ACCENT = "accent"

#: what the coloured notes mean, and their colour on a light and on a dark window
TONES: dict[str, tuple[str, str]] = {
    "muted": ("#555555", "#b4b4b4"),
    "warning": ("#9a3412", "#fdba74"),
    "error": ("#9a1b1b", "#fca5a5"),
    "info": ("#1f3b57", "#a8cdf0"),
}

TITLE_SCALE = 1.0  # a chart's title: the window's font size
TICK_SCALE = 0.9  # tick labels and text inside a chart: a little smaller


def is_dark(palette: QPalette | None = None) -> bool:
    """Whether the palette (the application's by default) is light text on a dark window."""
    p = palette if palette is not None else QGuiApplication.palette()
    return p.color(QPalette.ColorRole.Window).lightness() < 128


def dark_palette() -> QPalette:
    """A dark palette for the Fusion style: light text on dark grey, blue selection."""
    p = QPalette()
    roles = QPalette.ColorRole
    colors = {
        roles.Window: (45, 45, 48),
        roles.WindowText: (230, 230, 230),
        roles.Base: (30, 30, 32),
        roles.AlternateBase: (48, 48, 52),
        roles.ToolTipBase: (60, 60, 64),
        roles.ToolTipText: (240, 240, 240),
        roles.PlaceholderText: (150, 150, 150),
        roles.Text: (230, 230, 230),
        roles.Button: (55, 55, 58),
        roles.ButtonText: (230, 230, 230),
        roles.BrightText: (255, 110, 110),
        roles.Light: (80, 80, 84),
        roles.Midlight: (65, 65, 68),
        roles.Mid: (40, 40, 42),
        roles.Dark: (25, 25, 26),
        roles.Shadow: (0, 0, 0),
        roles.Highlight: (42, 110, 200),
        roles.HighlightedText: (255, 255, 255),
        roles.Link: (120, 175, 255),
        roles.LinkVisited: (190, 150, 255),
    }
    for role, rgb in colors.items():
        p.setColor(role, QColor(*rgb))
    for role in (roles.WindowText, roles.Text, roles.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(125, 125, 125))
    p.setColor(QPalette.ColorGroup.Disabled, roles.Base, QColor(40, 40, 42))
    return p


def tone_color(tone: str) -> str:
    light, dark = TONES[tone]
    return dark if is_dark() else light


def set_tone(widget: QWidget, tone: str | None) -> None:
    """Colour a label's text by what it means (see TONES); None: the palette's own text.
    The tone is kept on the widget, so that `restyle_all` recolours it with the palette."""
    widget.setProperty("tone", tone or "")
    widget.setStyleSheet(f"color:{tone_color(tone)}" if tone else "")


def _font(scale: float) -> QFont:
    font = QFont(QApplication.font())
    font.setPointSizeF(max(5.0, font.pointSizeF() * scale))
    return font


def chart_font() -> QFont:
    """Text inside charts (ticks, value labels): the window's font, slightly smaller."""
    return _font(TICK_SCALE)


def chart_colors() -> tuple[QColor, QColor, QColor]:
    """(background, ink, muted ink) of charts on the current palette."""
    p = QGuiApplication.palette()
    background = p.color(QPalette.ColorRole.Base)
    ink = p.color(QPalette.ColorRole.Text)
    muted = QColor(ink)
    muted.setAlpha(170)
    return background, ink, muted


def chart_text(text: str = "", role: str = INK, **kwargs: Any) -> pg.TextItem:
    """A text item for a chart whose colour (unless `role` is ACCENT and `color` is given)
    and size follow the palette and the zoom."""
    if role != ACCENT:
        _, ink, muted = chart_colors()
        kwargs["color"] = ink if role == INK else muted
    item = pg.TextItem(text, **kwargs)
    item.setData(ROLE_KEY, role)
    item.setFont(chart_font())
    return item


def chart_widget(**kwargs: Any) -> pg.PlotWidget:
    """A pyqtgraph plot widget on the current palette and zoom (restyled with them later)."""
    plot = pg.PlotWidget(**kwargs)
    style_chart(plot)
    return plot


def style_chart(plot: pg.PlotWidget) -> None:
    """Background, axes (lines, ticks, labels), title, legend and text items of one chart,
    from the application's palette and font."""
    background, ink, muted = chart_colors()
    plot.setBackground(background)
    ticks = chart_font()
    size = f"{_font(1.0).pointSizeF():.1f}pt"
    item = plot.getPlotItem()
    for entry in item.axes.values():
        axis = entry["item"]
        axis.setPen(ink)
        axis.setTextPen(ink)
        axis.setTickFont(ticks)
        axis.labelStyle = {**axis.labelStyle, "color": ink.name(), "font-size": size}
        axis._updateLabel()  # (pyqtgraph redraws a label's HTML only from here)
        axis._updateWidth() if axis.orientation in ("left", "right") else axis._updateHeight()
    title = item.titleLabel
    if title.text:
        title.setText(title.text, size=f"{_font(TITLE_SCALE).pointSizeF():.1f}pt", color=ink)
    legend = item.legend
    if legend is not None:
        legend.setLabelTextColor(ink)
        legend.setLabelTextSize(f"{ticks.pointSizeF():.1f}pt")
        fill = QColor(background)
        fill.setAlpha(200)
        legend.setBrush(fill)
        for _, label in legend.items:
            label.setText(label.text, color=ink, size=f"{ticks.pointSizeF():.1f}pt")
    for child in plot.scene().items():
        if isinstance(child, pg.TextItem):
            role = child.data(ROLE_KEY)
            if role in (INK, MUTED):
                child.setColor(ink if role == INK else muted)
            if role in (INK, MUTED, ACCENT):
                child.setFont(ticks)


def restyle_all(*, fit_columns: bool = False) -> None:
    """Every chart and every toned label of the application, after a change of palette or
    font; `fit_columns` (the font changed): tables whose columns are sized once (interactive
    columns) fit them to the new text again, so that headers are not cut."""
    background, ink, _ = chart_colors()
    # Items made later without chart_widget (a plot's own defaults) start from these.
    pg.setConfigOptions(background=background, foreground=ink)
    for widget in QApplication.allWidgets():
        if isinstance(widget, pg.PlotWidget):
            style_chart(widget)
        else:
            tone = widget.property("tone")
            if isinstance(tone, str) and tone in TONES:
                widget.setStyleSheet(f"color:{tone_color(tone)}")
        if fit_columns and isinstance(widget, QTableView):
            header = widget.horizontalHeader()
            if header.count() and header.sectionResizeMode(0) == QHeaderView.ResizeMode.Interactive:
                # After the new font has reached the header (its size hints follow it).
                QTimer.singleShot(0, widget, widget.resizeColumnsToContents)
        if widget.isVisible():
            widget.update()
