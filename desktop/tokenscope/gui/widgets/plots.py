"""What the charts share: a quiet pyqtgraph plot, probabilities written as percentages, log
axes in plain units, and one colour per model size."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyqtgraph as pg

from tokenscope.units import format_count


def quiet_plot(plot: pg.PlotWidget) -> pg.PlotItem:
    """A plot for reading, not exploring: no context menu, no mouse zoom, no 'A' button."""
    item = plot.getPlotItem()
    item.setMenuEnabled(False)
    item.setMouseEnabled(x=False, y=False)
    item.hideButtons()
    return item


def titled_plot(title: str, bottom: str, left: str) -> pg.PlotWidget:
    """A quiet plot with a grid, a small title and both axes named (on the window's palette
    and zoom)."""
    from tokenscope.gui.widgets.theme import chart_widget, style_chart

    plot = chart_widget()
    item = quiet_plot(plot)
    item.showGrid(x=True, y=True, alpha=0.25)
    item.setTitle(title, size="9pt")
    item.setLabel("bottom", bottom)
    item.setLabel("left", left)
    style_chart(plot)  # the title and names just set
    return plot


def size_colors(count: int) -> list[tuple[int, int, int]]:
    """One colour per model, smallest first: light to dark along viridis, so that "from some
    size on" reads as a change of colour."""
    cmap = pg.colormap.get("viridis")

    def rgb(at: float) -> tuple[int, int, int]:
        r, g, b = cmap.map(at, mode="byte")[:3]
        return int(r), int(g), int(b)

    if count <= 0:
        return []
    if count == 1:
        return [rgb(0.35)]
    return [rgb(0.9 - 0.85 * i / (count - 1)) for i in range(count)]


def log_ticks(values: Sequence[float]) -> list[tuple[float, str]]:
    """Ticks for a log10 axis in plain units (1M, 2M, 5M, 10M, ...) around `values`."""
    values = [v for v in values if v > 0]
    if not values:
        return []
    low, high = min(values) / 1.5, max(values) * 1.5
    ticks = []
    for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for m in (1, 2, 5):
            v = m * 10**e
            if low <= v <= high:
                ticks.append((math.log10(v), format_count(v)))
    return ticks


def format_probability(p: float) -> str:
    """54.7%, 3.2%, 0.041%, 0; below 0.01% a plain probability in scientific notation
    (2.5e-07), where a percent sign would only add confusion."""
    if p <= 0:
        return "0"
    if p >= 0.01:
        return f"{p:.1%}"
    if p >= 1e-4:
        return f"{p * 100:.2g}%"
    return f"{p:.1e}"


class ProbabilityAxis(pg.AxisItem):
    """Ticks in percent (never '×0.001'); on a log scale the values are log10 of p."""

    def __init__(self, orientation: str, **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self.log = False
        self.enableAutoSIPrefix(False)

    def tickValues(self, minVal: float, maxVal: float, size: float):
        if not self.log:
            return super().tickValues(minVal, maxVal, size)
        # One tick per power of ten: 100%, 10%, 1%, 0.1%, ...
        first, last = math.ceil(minVal), math.floor(maxVal)
        return [(1.0, [float(e) for e in range(first, last + 1)])]

    def tickStrings(self, values, scale, spacing):
        if self.log:
            return [format_probability(10**v) if v <= 0 else "" for v in values]
        digits = 0 if spacing >= 0.01 else 1 if spacing >= 0.001 else 2
        return [f"{v * 100:.{digits}f}%" if 0 <= v <= 1 + 1e-9 else "" for v in values]
