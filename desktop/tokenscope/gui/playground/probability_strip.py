"""A strip along the generated text: each token's probability (bars) and entropy (line)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyqtgraph as pg
from PySide6.QtWidgets import QWidget


class ProbabilityStrip(pg.PlotWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="w")
        self.setObjectName("probabilityStrip")
        self.setAccessibleName("Probability and entropy of each generated token")
        self.setMaximumHeight(110)
        item = self.getPlotItem()
        item.setMenuEnabled(False)
        item.hideButtons()
        item.setMouseEnabled(x=False, y=False)
        item.setLabel("left", "p / bits")
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=(70, 130, 200))
        self.entropy = pg.PlotDataItem(pen=pg.mkPen((200, 60, 60), width=1.5))
        item.addItem(self.bars)
        item.addItem(self.entropy)
        self.shown = 0

    def set_steps(self, steps: Sequence[Any]) -> None:
        xs = list(range(len(steps)))
        self.bars.setOpts(x=xs, height=[s.probability for s in steps])
        # Entropy in bits, scaled into [0, 1] against the largest seen so both fit one axis.
        entropies = [s.entropy for s in steps]
        top = max(entropies, default=1.0) or 1.0
        self.entropy.setData(xs, [e / top for e in entropies])
        self.getPlotItem().setYRange(0, 1.05, padding=0)
        if xs:
            self.getPlotItem().setXRange(-0.5, max(20, len(xs)) - 0.5, padding=0)
        self.shown = len(steps)
