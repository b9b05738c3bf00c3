"""The sweep chart: P(expected answer) against the number of examples, one line per model.

Each point of the examples' given order is labelled with what it shows: P of the whole
expected answer, and the model's top next token where that is not the answer's first token
(its first token may rank first while the answer as a whole is improbable: " cloud" before an
ending the model has to guess). A point whose prompt did not fit the model's context (its start
cut off) is drawn hollow and labelled "cut": it does not measure that many examples. Labels
alternate above and below their points (and between models), so neighbours do not
overlap, and the axes leave room so none is cut. A log scale shows small probabilities that
a linear axis would draw as zero. The legend sits above the plot, never on the lines; a table
under it lists every point.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QTextBrowser, QVBoxLayout, QWidget

from tokenscope.gui.widgets.plots import ProbabilityAxis, format_probability, quiet_plot
from tokenscope.gui.widgets.theme import ACCENT, chart_text, chart_widget
from tokenscope.units import bound_mark, format_rank

if TYPE_CHECKING:
    from tokenscope.lm.fewshot.scoring import SweepPoint

LINE_COLORS = ((30, 100, 200), (220, 100, 30), (40, 160, 80), (160, 60, 160))
LABEL_CHARS = 10
LOG_FLOOR = -12


def _short(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= LABEL_CHARS else shown[: LABEL_CHARS - 1] + "…"


def point_label(pt: SweepPoint) -> str:
    """A point's label: P(whole expected answer); the model's top next token too where the
    answer's first token is not it; "cut" where the prompt lost its start to the context."""
    text = f"{bound_mark(pt.upper_bound)}{format_probability(pt.probability)}"
    if pt.rank != 1:
        text += f"\ntop {_short(pt.top_prediction)}"
    if pt.dropped_tokens:
        text += "\ncut"
    return text


class SweepChart(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sweepChartPanel")
        self.legend = QLabel(objectName="sweepLegend", wordWrap=True)
        self.log_scale = QCheckBox("log scale", objectName="sweepLogScale")
        self.log_scale.setToolTip("Show small probabilities too: each grid step is 10x smaller")
        self.plot = chart_widget(axisItems={"left": ProbabilityAxis("left")})
        self.plot.setObjectName("sweepChart")
        self.plot.setAccessibleName("Probability of the expected answer against shots")
        item = quiet_plot(self.plot)
        item.showGrid(x=False, y=True, alpha=0.2)
        item.setLabel("bottom", "examples in the prompt (shots)")
        item.setLabel("left", "P(expected answer)")
        self.table = QTextBrowser(objectName="sweepTable")
        self.table.setAccessibleName("Every point of the sweep")
        header = QHBoxLayout()
        header.addWidget(self.legend, 1)
        header.addWidget(self.log_scale, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.plot, 3)
        layout.addWidget(self.table, 1)
        self.series: dict[str, list[SweepPoint]] = {}  # by model name
        self.labels: list[tuple[str, int, str]] = []  # (model, shots, label shown)
        self.cut: dict[str, list[int]] = {}  # by model: the shots whose prompt was cut
        self.log_scale.toggled.connect(self._redraw)
        self._redraw()

    def clear(self) -> None:
        self.series.clear()
        self._redraw()

    def add_series(self, name: str, points: list[SweepPoint]) -> str:
        """Draw one model's points; returns the name it is shown under (made unique)."""
        while name in self.series:  # the same model twice still gets two lines
            name += " (2)"
        self.series[name] = list(points)
        self._redraw()
        return name

    def _y(self, p: float) -> float:
        if not self.log_scale.isChecked():
            return p
        return max(LOG_FLOOR, math.log10(p)) if p > 0 else LOG_FLOOR

    def _redraw(self) -> None:
        item = self.plot.getPlotItem()
        item.clear()
        self.labels = []
        self.cut = {}
        log = self.log_scale.isChecked()
        axis = item.getAxis("left")
        axis.log = log
        swatches, lowest, widest = [], 1.0, 0
        any_cut = False
        for n, (name, points) in enumerate(self.series.items()):
            color = LINE_COLORS[n % len(LINE_COLORS)]
            by_shots: dict[int, list[float]] = {}
            for pt in points:
                by_shots.setdefault(pt.shots, []).append(pt.probability)
            xs = sorted(by_shots)
            means = [sum(by_shots[x]) / len(by_shots[x]) for x in xs]
            lowest = min([lowest, *[p for p in means if p > 0]])
            widest = max([widest, *xs])
            # Hollow where the prompt did not fit: those shots were not all seen.
            cut = sorted({pt.shots for pt in points if pt.order == 0 and pt.dropped_tokens})
            self.cut[name] = cut
            any_cut = any_cut or bool(cut)
            item.addItem(
                pg.PlotDataItem(
                    xs,
                    [self._y(p) for p in means],
                    pen=pg.mkPen(color, width=2),
                    symbol="o",
                    symbolSize=[11 if x in cut else 10 for x in xs],
                    symbolBrush=[pg.mkBrush("w" if x in cut else color) for x in xs],
                    symbolPen=[
                        pg.mkPen(color, width=2) if x in cut else pg.mkPen(None) for x in xs
                    ],
                )
            )
            for pt in points:
                if pt.order != 0:
                    continue
                # Neighbours and models take turns, except near the top (the label goes under
                # its point) and the bottom (over it): a label is never cut by the plot's edge.
                above = (pt.shots + n) % 2 == 0
                if pt.probability > (0.5 if log else 0.85):
                    above = False
                elif not log and pt.probability < 0.15:
                    above = True
                text = point_label(pt)
                label = chart_text(text, ACCENT, color=color,
                                   anchor=(0.5, 1.15 if above else -0.15))  # fmt: skip
                label.setPos(pt.shots, self._y(pt.probability))
                item.addItem(label)
                self.labels.append((name, pt.shots, text))
            r, g, b = color
            swatches.append(
                f'<span style="color:rgb({r},{g},{b})">━●</span>&nbsp;{html.escape(name)}'
            )
        note = "labels: P(whole answer); “top”: the model's next token, where not the answer's"
        if any_cut:
            note += "; hollow: prompt cut to fit the context"
        self.legend.setText(" &nbsp; ".join(swatches) + (f"<br><i>{note}</i>" if swatches else ""))
        item.setXRange(-0.6, max(1, widest) + 0.6, padding=0)
        step = max(1, math.ceil(max(1, widest) / 12))  # whole numbers of shots only
        item.getAxis("bottom").setTickSpacing(step, step)
        if log:
            floor = max(LOG_FLOOR, math.floor(math.log10(lowest)) - 0.5)
            item.setYRange(floor, 0.45, padding=0)
        else:
            item.setYRange(-0.12, 1.15, padding=0)
        self._fill_table()

    def _fill_table(self) -> None:
        rows = "".join(
            f"<tr><td>{html.escape(n)}</td><td>{p.order}</td><td>{p.shots}</td>"
            f"<td>{bound_mark(p.upper_bound)}{format_probability(p.probability)}</td>"
            f"<td>{html.escape(format_rank(p.rank, p.rank_above))}</td>"
            f"<td>{html.escape(repr(p.top_prediction))}</td>"
            f"<td>{p.dropped_tokens or ''}</td></tr>"
            for n, pts in self.series.items()
            for p in pts
        )
        self.table.setHtml(
            "<table cellspacing=4><tr><th>model</th><th title='0: the examples in the order "
            "given; 1 and up: shuffled'>order</th><th>shots</th><th>P(whole answer)</th>"
            "<th title='1: the model's most likely next token'>rank of its first token</th>"
            "<th>model's top next token</th>"
            "<th title='tokens cut from the start to fit the context'>cut</th></tr>"
            f"{rows}</table>"
            if rows
            else ""
        )
