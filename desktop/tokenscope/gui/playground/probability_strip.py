"""A strip along the generated text: each token's probability (bars, left axis) and the
entropy of the distribution it was drawn from (a line, right axis, in bits).

Tokens are numbered from 1, as the chart's title numbers them ("token 7 ..."). Two view
boxes share the x axis, so each quantity keeps its own honest scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyqtgraph as pg
from PySide6.QtCore import QEvent
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from tokenscope.gui.widgets.plots import quiet_plot
from tokenscope.gui.widgets.theme import chart_widget

if TYPE_CHECKING:
    from tokenscope.lm.tokens import GenerationStep

BAR_COLOR = (70, 130, 200)
ENTROPY_COLOR = (200, 60, 60)
MIN_PLOT_HEIGHT = 90  # px at 100%
MAX_HEIGHT = 130  # px at 100%: the generated text above keeps the room


class ProbabilityStrip(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("probabilityStrip")
        self.setAccessibleName("Probability and entropy of each generated token")
        r, g, b = BAR_COLOR
        er, eg, eb = ENTROPY_COLOR
        self.legend = QLabel(
            f'<span style="color:rgb({r},{g},{b})">■</span> probability of each token (left)'
            f'&nbsp;&nbsp;<span style="color:rgb({er},{eg},{eb})">━</span> entropy of its '
            "distribution, bits (right)",
            objectName="stripLegend",
        )
        self.plot = chart_widget()
        item = quiet_plot(self.plot)
        item.setLabel("bottom", "token")
        item.setLabel("left", "p")
        item.showAxis("right")
        item.setLabel("right", "bits")
        item.getAxis("left").enableAutoSIPrefix(False)
        # Three ticks: a short strip has room for no more at a large zoom.
        item.getAxis("left").setTicks([[(0.0, "0"), (0.5, "0.5"), (1.0, "1")]])
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=BAR_COLOR)
        item.addItem(self.bars)
        self.entropy_box = pg.ViewBox()
        self.entropy_box.setMouseEnabled(x=False, y=False)
        item.scene().addItem(self.entropy_box)
        item.getAxis("right").linkToView(self.entropy_box)
        self.entropy_box.setXLink(item)
        self.entropy = pg.PlotDataItem(pen=pg.mkPen(ENTROPY_COLOR, width=1.5))
        self.entropy_box.addItem(self.entropy)
        item.vb.sigResized.connect(self._on_plot_resized)
        item.setYRange(0, 1.05, padding=0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.legend)
        layout.addWidget(self.plot, 1)
        self.shown = 0
        self.set_steps([])
        self._fit_height()

    def changeEvent(self, event: QEvent) -> None:
        """Zoomed: the strip's height keeps room for its labels (about 8 lines of text)."""
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit_height()

    def _fit_height(self) -> None:
        line = QFontMetrics(self.font()).height()
        self.plot.setMinimumHeight(max(MIN_PLOT_HEIGHT, round(5 * line)))
        self.setMaximumHeight(max(MAX_HEIGHT, round(8 * line)))

    def _on_plot_resized(self) -> None:
        self.entropy_box.setGeometry(self.plot.getPlotItem().vb.sceneBoundingRect())

    def set_steps(self, steps: Sequence[GenerationStep]) -> None:
        xs = list(range(1, len(steps) + 1))
        self.bars.setOpts(x=xs, height=[s.probability for s in steps])
        entropies = [s.entropy for s in steps]
        self.entropy.setData(xs, entropies)
        self.entropy_box.setYRange(0, max(1.0, max(entropies, default=1.0)) * 1.05, padding=0)
        item = self.plot.getPlotItem()
        item.setXRange(0.5, max(20, len(xs)) + 0.5, padding=0)
        self.shown = len(steps)
