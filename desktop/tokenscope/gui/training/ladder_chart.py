"""A size ladder as it trains: final validation loss against parameters (log-log) with the
fitted power law L(N) = a N^-alpha + c and its prediction for the next size up, and each
size's probes against training tokens.

It reads the trainer's events: each size's `start` (its parameters), `step` (training tokens
so far), `eval` and `probe`, then the ladder's own `ladder` event (every size and the fit).
Which folders make a ladder, and reading them back, is tokenscope.train.runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from tokenscope.gui.widgets.plots import log_ticks, size_colors, titled_plot
from tokenscope.gui.widgets.theme import ACCENT, chart_text, set_tone
from tokenscope.train.events import (
    EvalEvent,
    Event,
    LadderEvent,
    LadderFit,
    ProbeEvent,
    StartEvent,
    StepEvent,
)
from tokenscope.train.ladder import PowerLaw
from tokenscope.units import format_count

FIT_COLOR = (220, 60, 40)


@dataclass
class LadderSize:
    """What the events told of one size so far."""

    parameters: int
    tokens_per_step: float = 0.0
    val_loss: float | None = None  # the last evaluation's
    probes: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # (tokens, P)


def probe_name(event: ProbeEvent) -> str:
    """A short name for a probe: its continuation, and the end of its prompt (two probes may
    ask for the same continuation after different prompts)."""
    prompt = event.prompt.replace("\n", "↵")
    tail = prompt if len(prompt) <= 18 else "…" + prompt[-17:]
    return f"{event.continuation!r} after {tail!r}"


class LadderChart(QWidget):
    """Loss against size with the fit (top), probes against training tokens (bottom)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ladderChart")
        self.sizes: list[LadderSize] = []
        self.fit: LadderFit | None = None
        self.summary = QLabel(objectName="ladderSummary", wordWrap=True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.loss_plot = titled_plot(
            "Final validation loss by model size (log-log) and the power-law fit",
            "parameters (log scale)",
            "validation loss (log scale)",
        )
        self.probe_plot = titled_plot(
            "Probes by training tokens: one colour per size, one line style per probe",
            "training tokens (log scale)",
            "P(continuation)",
        )
        for plot in (self.loss_plot, self.probe_plot):
            plot.setMinimumHeight(50)  # it shares the tab's lower pane with the notes and log
        self.probe_plot.getPlotItem().setLogMode(x=True, y=False)
        self.loss_plot.getPlotItem().getAxis("left").enableAutoSIPrefix(False)
        self.probe_legend = self.probe_plot.getPlotItem().addLegend(offset=(-10, -10))
        self._points = pg.ScatterPlotItem(size=11, pen=pg.mkPen(None))
        dashed = pg.mkPen(FIT_COLOR, width=2, style=Qt.PenStyle.DashLine)
        self._fit_line = pg.PlotDataItem(pen=dashed)
        self._next = pg.ScatterPlotItem(
            size=14, symbol="star", brush=pg.mkBrush(*FIT_COLOR), pen=pg.mkPen(None)
        )
        self._next_label = chart_text("", ACCENT, color=FIT_COLOR, anchor=(1, 1))
        for thing in (self._points, self._fit_line, self._next, self._next_label):
            self.loss_plot.addItem(thing)
        self.probe_key = QLabel(objectName="ladderProbeKey", wordWrap=True)
        set_tone(self.probe_key, "muted")
        probes = QWidget()
        pv = QVBoxLayout(probes)
        pv.setContentsMargins(0, 0, 0, 0)
        pv.setSpacing(0)
        pv.addWidget(self.probe_key)
        pv.addWidget(self.probe_plot, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.loss_plot)
        split.addWidget(probes)
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(split, 1)
        self.clear()

    def clear(self) -> None:
        self.sizes = []
        self.fit = None
        self.summary.setText(
            "A size ladder trains the same data at several model sizes, one after the other; "
            "each size's final validation loss appears here as it finishes."
        )
        self._draw()

    # ----- events --------------------------------------------------------------------------

    def add_event(self, event: Event) -> None:
        match event:
            case StartEvent() if event.parameters:
                if event.resumed_from is None or not self.sizes:
                    per_step = float(event.tokens_per_step)
                    self.sizes.append(LadderSize(event.parameters, tokens_per_step=per_step))
            case _ if not self.sizes:
                return
            case StepEvent() if event.step and event.tokens:
                self.sizes[-1].tokens_per_step = float(event.tokens) / float(event.step)
            case EvalEvent() if event.val_loss is not None:
                self.sizes[-1].val_loss = event.val_loss
                self._draw()
            case ProbeEvent() if event.probability is not None:
                size = self.sizes[-1]
                tokens = int(event.step * size.tokens_per_step)
                name = probe_name(event)
                size.probes.setdefault(name, []).append((tokens, event.probability))
                self._draw()
            case LadderEvent():
                self._take_ladder(event)
                self._draw()

    def _take_ladder(self, event: LadderEvent) -> None:
        """The ladder's summary is the truth for each size's loss (a resumed size included)."""
        for n, row in enumerate(event.sizes):
            if n < len(self.sizes):
                self.sizes[n].parameters = row.parameters or self.sizes[n].parameters
                if row.val_loss is not None:
                    self.sizes[n].val_loss = row.val_loss
            elif row.parameters:
                self.sizes.append(LadderSize(row.parameters, val_loss=row.val_loss))
        self.fit = event.fit

    def _law(self) -> PowerLaw:
        f = self.fit
        assert f is not None
        return PowerLaw(f.a, f.alpha, f.c, f.rms)

    def _next_size(self) -> float:
        """The size the fit predicts for: the ladder's own choice, else 4x the largest."""
        largest = max((n for n, _v in self.loss_points()), default=1)
        return float((self.fit.next_parameters if self.fit else None) or 4 * largest)

    # ----- what is drawn -------------------------------------------------------------------

    def loss_points(self) -> list[tuple[int, float]]:
        """(parameters, final validation loss) of every size with an evaluation."""
        return [(s.parameters, s.val_loss) for s in self.sizes if s.val_loss is not None]

    def _draw(self) -> None:
        points = self.loss_points()
        colors = size_colors(len(self.sizes))
        spots = [
            {"pos": (math.log10(n), math.log10(v)), "brush": pg.mkBrush(*colors[i]),
             "data": f"{n:,} parameters: validation loss {v:.3f}"}
            for i, (n, v) in enumerate((s.parameters, s.val_loss) for s in self.sizes)
            if v is not None and v > 0
        ]  # fmt: skip
        self._points.setData(spots=spots)
        xs = [math.log10(n) for n, _v in points]
        visible = self.fit is not None and bool(points)
        self._fit_line.setVisible(visible)
        self._next.setVisible(visible)
        self._next_label.setVisible(visible)
        if visible:
            law, n_next = self._law(), self._next_size()
            lo, hi = min(xs) - 0.15, math.log10(n_next) + 0.05
            grid = [lo + (hi - lo) * i / 60 for i in range(61)]
            self._fit_line.setData(grid, [math.log10(law.predict(10**x)) for x in grid])
            predicted = law.predict(n_next)
            self._next.setData([math.log10(n_next)], [math.log10(predicted)])
            self._next_label.setText(f"next size ({format_count(n_next)}): {predicted:.2f}?")
            self._next_label.setPos(math.log10(n_next), math.log10(predicted))
            xs.append(math.log10(n_next))
        item = self.loss_plot.getPlotItem()
        if xs:
            item.getAxis("bottom").setTicks([log_ticks([10**x for x in xs])])
            item.setXRange(min(xs) - 0.3, max(xs) + 0.3, padding=0)
            losses = [v for _n, v in points if v > 0]
            if visible:
                losses.append(self._law().predict(self._next_size()))
            low, high = math.log10(min(losses)), math.log10(max(losses))
            item.setYRange(low - 0.05, high + 0.05, padding=0)
            ticks = _loss_ticks(min(losses), max(losses))
            item.getAxis("left").setTicks([[(math.log10(v), f"{v:.2f}") for v in ticks]])
        self._draw_probes()
        self._summarise()

    def _draw_probes(self) -> None:
        item = self.probe_plot.getPlotItem()
        for thing in list(item.listDataItems()):
            item.removeItem(thing)
        self.probe_legend.clear()
        colors = size_colors(len(self.sizes))
        styles = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine)
        names = sorted({name for s in self.sizes for name in s.probes})
        for i, s in enumerate(self.sizes):
            named = False
            for j, name in enumerate(names):
                pts = [(t, p) for t, p in s.probes.get(name, []) if t > 0]
                if not pts:
                    continue
                pen = pg.mkPen(colors[i], width=2, style=styles[j % len(styles)])
                # One legend entry per size (its colour); the line style tells the probes.
                label = None if named else f"{format_count(s.parameters)} parameters"
                named = True
                xs, ys = [t for t, _p in pts], [p for _t, p in pts]
                item.addItem(pg.PlotDataItem(xs, ys, pen=pen, name=label))
        marks = ("—", "– –", "···")
        # (A label that wraps, not the plot's title: a long title would widen the plot past
        # the pane.)
        self.probe_key.setText(";  ".join(f"{marks[j % 3]} {n}" for j, n in enumerate(names[:3])))
        tokens = [t for s in self.sizes for pts in s.probes.values() for t, _p in pts if t > 0]
        item.getAxis("bottom").setTicks([log_ticks(tokens)] if tokens else None)
        item.setYRange(0, 1.05, padding=0)

    def _summarise(self) -> None:
        done = self.loss_points()
        if not done:
            return
        parts = [f"{format_count(n)}: {v:.3f}" for n, v in done]
        text = "Final validation loss — " + ", ".join(parts)
        if self.fit is not None:
            law, n_next = self._law(), self._next_size()
            text += (
                f".  Fit: L(N) = {law.a:.3g} · N^−{law.alpha:.3f} + {law.c:.3g} "
                f"(rms {law.rms:.3f}); predicted for {format_count(n_next)}: "
                f"{law.predict(n_next):.3f}"
            )
        self.summary.setText(text)


def _loss_ticks(low: float, high: float) -> list[float]:
    """A few round loss values between low and high, for a log axis."""
    step = 0.1 if high - low < 0.5 else 0.25 if high - low < 1.5 else 0.5 if high - low < 3 else 1.0
    start = math.floor(low / step) * step
    ticks, v = [], start
    while v <= high + step:
        if v > 0:
            ticks.append(round(v, 2))
        v += step
    return ticks
