"""What the charts share: a quiet pyqtgraph plot, and probabilities written as percentages."""

from __future__ import annotations

import math

import pyqtgraph as pg


def quiet_plot(plot: pg.PlotWidget) -> pg.PlotItem:
    """A plot for reading, not exploring: no context menu, no mouse zoom, no 'A' button."""
    item = plot.getPlotItem()
    item.setMenuEnabled(False)
    item.setMouseEnabled(x=False, y=False)
    item.hideButtons()
    return item


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
