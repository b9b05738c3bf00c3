"""The Scale tab's three charts: one probe against model size (over the reference chart of
well-known models), against training tokens (one curve per run), and a few-shot sweep per
model. Each one's numbers are what it plots (`data()`), and its CSV rows (`rows()`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from tokenscope.gui.widgets.model_scale_chart import ModelScaleChart
from tokenscope.gui.widgets.plots import log_ticks, size_colors, titled_plot
from tokenscope.gui.widgets.theme import MUTED, chart_text
from tokenscope.units import bound_mark, format_count, format_rank

if TYPE_CHECKING:
    from tokenscope.lm.scale import ScalePoint, ScaleSweep
    from tokenscope.train.probe_runs import TrainingCurve

POINT_COLOR = (220, 60, 40)


def size_plot(title: str, y_label: str, empty: str) -> tuple[pg.PlotWidget, pg.PlotDataItem,
                                                               pg.TextItem]:  # fmt: skip
    """A chart of one value per model against parameters (log scale): the plot, its curve of
    points and the line it shows before a run."""
    plot = titled_plot(title, "parameters (log scale)", y_label)
    ticks = [(e, format_count(10**e)) for e in range(3, 13)]
    plot.getPlotItem().getAxis("bottom").setTicks([ticks])
    curve = pg.PlotDataItem(
        pen=pg.mkPen(POINT_COLOR, width=2), symbol="o", symbolSize=10,
        symbolBrush=pg.mkBrush(*POINT_COLOR), symbolPen=pg.mkPen(None),
    )  # fmt: skip
    plot.addItem(curve)
    text = chart_text(empty, MUTED, anchor=(0.5, 0.5))
    plot.addItem(text, ignoreBounds=True)
    return plot, curve, text


def _label(p: ScalePoint | TrainingCurve | ScaleSweep) -> str:
    return f"{p.name} ({format_count(p.parameters)})" if p.parameters else p.name


class SizeChart(QWidget):
    """P(answer), or its rank, against parameters (log scale), under the reference chart of
    well-known models with the same axis: the probed models are marked on it too."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("scaleSizeChart")
        self.shown_metric = "probability"
        self.points: list[ScalePoint] = []  # smallest first
        self.reference = ModelScaleChart()
        self.reference.plot.setMinimumHeight(140)
        self.reference.plot.getPlotItem().setTitle(
            "Well-known language models (red lines: the models measured here; hover a dot for its "
            "name)",
            size="9pt",
        )
        self.plot, self._curve, self.empty = size_plot(
            "", "P(answer)",
            "Press Run: each ticked model's P(answer) appears here, against its size",
        )  # fmt: skip
        self.plot.setMinimumHeight(160)
        self.plot.setXLink(self.reference.plot)
        self.empty.setPos(9.5, 0.5)  # (about the middle of the axis the reference sets)
        self._labels: list[pg.TextItem] = []
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.reference)
        split.addWidget(self.plot)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        self._draw()

    def set_points(self, points: list[ScalePoint]) -> None:
        self.points = sorted((p for p in points if p.parameters > 0), key=lambda p: p.parameters)
        self.reference.set_marks([(p.name, p.parameters) for p in self.points])
        self._draw()

    def set_title(self, title: str) -> None:
        """What the lower plot shows (a probe's P(answer), or a task's at k examples)."""
        self.plot.getPlotItem().setTitle(title, size="9pt")

    def set_metric(self, metric: str) -> None:
        """ "probability" or "rank" (of the answer's first token; 1 at the top, log scale)."""
        self.shown_metric = metric
        self._draw()

    def data(self) -> list[tuple[str, float, float]]:
        """(name, log10 parameters, P(answer) or rank) of each point drawn."""
        return [(p.name, math.log10(p.parameters), self._value(p)) for p in self.points]

    def rows(self) -> list[list[Any]]:
        head = ["model", "target", "parameters", "probability", "rank", "top prediction"]
        return [head] + [
            [p.name, p.model, p.parameters, p.probability, format_rank(p.rank, p.rank_above),
             p.top_prediction]
            for p in self.points
        ]  # fmt: skip

    def _value(self, p: ScalePoint) -> float:
        """P, or the rank (below a server's list: the first rank it could have)."""
        if self.shown_metric != "rank":
            return p.probability
        return float(p.rank if p.rank is not None else p.rank_above + 1)

    def _draw(self) -> None:
        item = self.plot.getPlotItem()
        for label in self._labels:
            item.removeItem(label)
        self._labels = []
        rank = self.shown_metric == "rank"
        item.setLogMode(x=False, y=rank)
        item.invertY(rank)
        item.setLabel("left", "rank of the answer (1 = top)" if rank else "P(answer)")
        xs = [math.log10(p.parameters) for p in self.points]
        ys = [self._value(p) for p in self.points]
        self._curve.setData(xs, ys)
        self.empty.setVisible(not self.points and not rank)
        for n, (p, x, y) in enumerate(zip(self.points, xs, ys, strict=True)):
            shown = (
                "#" + format_rank(p.rank, p.rank_above)
                if rank
                else f"{bound_mark(p.upper_bound)}{p.probability:.3f}"
            )
            text = f"{p.name}\n{shown}"
            # Neighbours alternate above and below their point, so close sizes stay legible.
            label = chart_text(text, anchor=(0, 1 if n % 2 == 0 else 0))
            label.setPos(x + 0.05, math.log10(max(y, 1)) if rank else y)
            item.addItem(label)
            self._labels.append(label)
        if rank:
            top = max([math.log10(max(y, 1)) for y in ys] + [1.0])
            item.setYRange(0, top + 0.3, padding=0)
        else:
            item.setYRange(0, 1.18, padding=0)  # room above 1 for the labels, no tick there
        probability_ticks = [[(v / 5, f"{v / 5:.1f}") for v in range(6)]]
        item.getAxis("left").setTicks(None if rank else probability_ticks)


class _CurvesChart(QWidget):
    """A plot of one curve per model (or run), coloured by size, with a hint while empty."""

    def __init__(self, name: str, title: str, bottom: str, left: str, hint: str) -> None:
        super().__init__()
        self.setObjectName(name)
        self.plot = titled_plot(title, bottom, left)
        self.legend = self.plot.getPlotItem().addLegend(offset=(-10, -10))
        self.empty = chart_text(hint, MUTED, anchor=(0.5, 0.5))
        self.plot.addItem(self.empty)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

    def _draw(self, curves: list[tuple[str, list, list]]) -> None:
        """Replace the lines with one per (name, xs, ys), smallest model first."""
        item = self.plot.getPlotItem()
        for thing in list(item.listDataItems()):
            item.removeItem(thing)
        self.legend.clear()
        for (name, xs, ys), color in zip(curves, size_colors(len(curves)), strict=True):
            item.addItem(pg.PlotDataItem(
                xs, ys, pen=pg.mkPen(color, width=2), symbol="o", symbolSize=8,
                symbolBrush=pg.mkBrush(*color), symbolPen=pg.mkPen(None), name=name,
            ))  # fmt: skip


class TrainingChart(_CurvesChart):
    """P(answer) against training tokens (log scale): one curve per run, e.g. per size of a
    ladder, from the probe measured on each checkpoint."""

    def __init__(self) -> None:
        super().__init__(
            "scaleTrainingChart",
            "P(answer) as training goes on (one curve per run)",
            "training tokens (log scale)",
            "P(answer)",
            "Add a training run or a ladder's folder to the models (Add run…): each of its "
            "checkpoints is measured.",
        )
        self.curves: list[TrainingCurve] = []  # smallest first
        self.plot.getPlotItem().setLogMode(x=True, y=False)
        self.set_curves([])

    def set_curves(self, curves: list[TrainingCurve]) -> None:
        self.curves = sorted((c for c in curves if c.points), key=lambda c: c.parameters)
        item = self.plot.getPlotItem()
        self._draw([(_label(c), *self._xy(c)) for c in self.curves])
        tokens = [t for c in self.curves for t in self._xy(c)[0]]
        self.empty.setVisible(not tokens)
        if tokens:
            item.getAxis("bottom").setTicks([log_ticks(tokens)])
            low, high = math.log10(min(tokens)), math.log10(max(tokens))
            item.setXRange(low - 0.1, high + 0.1, padding=0)
        else:
            item.getAxis("bottom").setTicks(None)
            item.setXRange(3, 7, padding=0)
            self.empty.setPos(5, 0.5)
        item.setYRange(0, 1.05, padding=0)

    @staticmethod
    def _xy(curve: TrainingCurve) -> tuple[list[int], list[float]]:
        points = [p for p in curve.points if p.tokens > 0]  # (a log axis has no 0)
        return [p.tokens for p in points], [p.probability for p in points]

    def data(self) -> list[tuple[str, list[int], list[float]]]:
        return [(c.name, *self._xy(c)) for c in self.curves]

    def rows(self) -> list[list[Any]]:
        out: list[list[Any]] = [["run", "parameters", "step", "training tokens", "probability",
                                 "rank"]]  # fmt: skip
        for c in self.curves:
            out += [[c.run_dir, c.parameters, p.step, p.tokens, p.probability, p.rank]
                    for p in c.points]  # fmt: skip
        return out


class SweepChart(_CurvesChart):
    """A few-shot task's P(expected answer) against the number of examples, one curve per
    model, smallest model lightest."""

    def __init__(self) -> None:
        super().__init__(
            "scaleSweepChart",
            "Few-shot: P(expected answer) by number of examples, one curve per model",
            "examples in the prompt (shots)",
            "P(expected answer)",
            "Choose “Few-shot task” above and Run: every model's sweep appears here.",
        )
        self.sweeps: list[ScaleSweep] = []  # smallest first
        self.set_sweeps([])

    def set_sweeps(self, sweeps: list[ScaleSweep]) -> None:
        self.sweeps = sorted((s for s in sweeps if s.points), key=lambda s: s.parameters)
        item = self.plot.getPlotItem()
        self._draw([(_label(s), *self._xy(s)) for s in self.sweeps])
        self.empty.setVisible(not self.sweeps)
        shots = max((len(s.points) for s in self.sweeps), default=5)
        item.setXRange(-0.2, max(1, shots - 1) + 0.2, padding=0)
        item.getAxis("bottom").setTicks([[(k, str(k)) for k in range(max(2, shots))]])
        item.setYRange(0, 1.05, padding=0)
        self.empty.setPos((shots - 1) / 2, 0.5)

    @staticmethod
    def _xy(s: ScaleSweep) -> tuple[list[int], list[float]]:
        return [p.shots for p in s.points], [p.probability for p in s.points]

    def data(self) -> list[tuple[str, list[int], list[float]]]:
        return [(s.name, *self._xy(s)) for s in self.sweeps]

    def rows(self) -> list[list[Any]]:
        out: list[list[Any]] = [["model", "target", "parameters", "shots", "probability"]]
        for s in self.sweeps:
            out += [[s.name, s.model, s.parameters, p.shots, p.probability] for p in s.points]
        return out
