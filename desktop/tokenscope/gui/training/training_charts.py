"""Live charts of a run: loss (train and validation), learning rate, gradient norm, tokens/s,
and the probability of each probe continuation over steps.

Events only append to plain lists; a timer on the GUI thread pushes them into the plot items
(made once, updated with setData) at most ~30 times a second, so a fast trainer cannot flood
the window with repaints. `curve_points(name)` returns what a curve holds, for tests and export.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.widgets.theme import chart_widget, style_chart
from tokenscope.train.events import (
    BaselineEvent,
    EvalEvent,
    Event,
    ProbeEvent,
    StartEvent,
    StepEvent,
)

REPAINT_MS = 33
COLORS = {
    "train": (70, 130, 200),
    "val": (230, 120, 30),
    "lr": (90, 160, 90),
    "grad_norm": (160, 90, 160),
    "tokens_per_s": (120, 120, 120),
}
PROBE_COLORS = [(200, 60, 60), (60, 140, 200), (60, 160, 90), (180, 120, 30), (130, 80, 170)]
BASELINE_COLORS = {"ngram": (150, 150, 150), "lstm": (110, 80, 60)}
LEGEND_BRUSH = (255, 255, 255, 210)
LEGEND_CHARS = 18  # a probe's legend entry: its continuation, cut to this (the tooltip: all)
SMOOTHING = (("none", 0.0), ("light (0.6)", 0.6), ("medium (0.9)", 0.9), ("heavy (0.99)", 0.99))


def smooth(values: list[float], weight: float) -> list[float]:
    """Exponential moving average with bias correction (TensorBoard's smoothing)."""
    if weight <= 0.0:
        return list(values)
    out, average = [], 0.0
    for i, v in enumerate(values, start=1):
        average = weight * average + (1 - weight) * v
        out.append(average / (1 - weight**i))
    return out


def _plot(title: str, left: str, object_name: str) -> pg.PlotWidget:
    plot = chart_widget(objectName=object_name)
    plot.setAccessibleName(title)
    item = plot.getPlotItem()
    item.setTitle(title, size="9pt")
    item.setLabel("bottom", "step")
    item.setLabel("left", left)
    item.showGrid(x=True, y=True, alpha=0.2)
    item.setMenuEnabled(False)
    plot.setMinimumHeight(140)
    style_chart(plot)  # the title and names just set
    return plot


class TrainingCharts(QWidget):
    """Loss, learning rate, gradient norm, throughput and probe charts for one run."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingCharts")
        self._series: dict[str, tuple[list[float], list[float]]] = {}
        self._probe_names: list[str] = []
        self._baselines: dict[str, float] = {}
        self._dirty = False
        self._build()
        self.timer = QTimer(self, interval=REPAINT_MS)
        self.timer.timeout.connect(self._on_timer_timeout)
        self.timer.start()

    def _build(self) -> None:
        # Axis titles stay short (the chart's title says the rest): long ones are cut off on
        # a 1024-pixel screen. Legends get a backing so that curves under them stay apart.
        self.loss_plot = _plot("Loss (cross-entropy)", "nats/token", "lossChart")
        self.loss_plot.addLegend(offset=(-10, 10), brush=LEGEND_BRUSH, colCount=2)  # one row
        self.lr_plot = _plot("Learning rate", "lr", "learningRateChart")
        self.grad_plot = _plot("Gradient norm", "before clipping", "gradNormChart")
        self.speed_plot = _plot("Throughput", "tokens/s", "throughputChart")
        self.probe_plot = _plot("Probe probabilities", "P(continuation)", "probeChart")
        self.probe_plot.addLegend(offset=(10, 10), brush=LEGEND_BRUSH)
        self.probe_plot.setYRange(0, 1)
        self.curves: dict[str, pg.PlotDataItem] = {
            "train": self.loss_plot.plot(name="train", pen=pg.mkPen(COLORS["train"], width=2)),
            "val": self.loss_plot.plot(
                name="validation",
                pen=pg.mkPen(COLORS["val"], width=2),
                symbol="o",
                symbolSize=5,
                symbolBrush=COLORS["val"],
            ),
            "lr": self.lr_plot.plot(pen=pg.mkPen(COLORS["lr"], width=2)),
            "grad_norm": self.grad_plot.plot(pen=pg.mkPen(COLORS["grad_norm"], width=1)),
            "tokens_per_s": self.speed_plot.plot(pen=pg.mkPen(COLORS["tokens_per_s"], width=1)),
        }
        self._baseline_lines: dict[str, pg.InfiniteLine] = {}

        self.log_scale = QCheckBox("Log scale", objectName="logScaleControl")
        self.log_scale.setAccessibleName("Loss on a log scale")
        self.log_scale.toggled.connect(self._on_log_scale_toggled)
        self.smoothing = QComboBox(objectName="smoothingControl")
        self.smoothing.setAccessibleName("Smoothing of the training loss")
        for label, weight in SMOOTHING:
            self.smoothing.addItem(label, weight)
        self.smoothing.setCurrentIndex(1)
        self.smoothing.currentIndexChanged.connect(self._on_smoothing_changed)
        options = QHBoxLayout()
        options.addWidget(self.log_scale)
        options.addWidget(QLabel("Smoothing"))
        options.addWidget(self.smoothing)
        options.addStretch(1)

        grid = QGridLayout()
        grid.addWidget(self.loss_plot, 0, 0, 1, 2)
        grid.addWidget(self.probe_plot, 0, 2)
        grid.addWidget(self.lr_plot, 1, 0)
        grid.addWidget(self.grad_plot, 1, 1)
        grid.addWidget(self.speed_plot, 1, 2)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(options)
        layout.addLayout(grid)

    # ----- data in ---------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget all points (another run is about to be shown)."""
        self._series.clear()
        for name in self._probe_names:
            self.probe_plot.removeItem(self.curves.pop(name))
        self._probe_names.clear()
        for line in self._baseline_lines.values():
            self.loss_plot.removeItem(line)
        self._baseline_lines.clear()
        self._baselines.clear()
        self._dirty = True

    def add_event(self, event: Event) -> None:
        """Store what this event adds to a curve; the repaint happens on the timer."""
        match event:
            case StartEvent(resumed_from=int() as resumed_from):
                # Steps after the checkpoint are trained again: drop their old points.
                self._trim_after(resumed_from)
            case StepEvent():
                self._append("train", event.step, event.loss)
                self._append("lr", event.step, event.lr)
                self._append("grad_norm", event.step, event.grad_norm)
                self._append("tokens_per_s", event.step, event.tokens_per_s)
            case EvalEvent():
                self._append("val", event.step, event.val_loss)
            case ProbeEvent():
                self._append(self._probe_curve(event), event.step, event.probability)
            case BaselineEvent(val_loss=float() as val_loss):
                self._baselines[event.model] = val_loss
                self._dirty = True

    def _append(self, name: str, step: int, value: float | None) -> None:
        if value is None:
            return  # null: the trainer wrote a NaN or infinity there
        xs, ys = self._series.setdefault(name, ([], []))
        xs.append(float(step))
        ys.append(float(value))
        self._dirty = True

    def _trim_after(self, step: int) -> None:
        for xs, ys in self._series.values():
            while xs and xs[-1] > step:
                xs.pop()
                ys.pop()
        self._dirty = True

    def _probe_curve(self, event: ProbeEvent) -> str:
        name = f"{event.continuation!r} after {event.prompt!r}"
        if name not in self._probe_names:
            color = PROBE_COLORS[len(self._probe_names) % len(PROBE_COLORS)]
            self._probe_names.append(name)
            short = repr(event.continuation)
            if len(short) > LEGEND_CHARS:
                short = short[: LEGEND_CHARS - 1] + "…"
            self.curves[name] = self.probe_plot.plot(
                name=short, pen=pg.mkPen(color, width=2), symbol="o", symbolSize=4
            )
            self.probe_plot.setToolTip("\n".join(self._probe_names))
        return name

    # ----- data out ---------------------------------------------------------------------------

    def curve_points(self, name: str) -> list[tuple[float, float]]:
        """(step, value) points of a curve: train, val, lr, grad_norm, tokens_per_s, or a probe
        named as in probe_names()."""
        xs, ys = self._series.get(name, ([], []))
        return list(zip(xs, ys, strict=True))

    def probe_names(self) -> list[str]:
        """Names of the probe curves, in the order they appeared."""
        return list(self._probe_names)

    def baselines(self) -> dict[str, float]:
        """Validation loss of each baseline shown beside the run (model name -> nats/token)."""
        return dict(self._baselines)

    # ----- painting ---------------------------------------------------------------------------

    def _on_timer_timeout(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        weight = float(self.smoothing.currentData() or 0.0)
        for name, curve in self.curves.items():
            xs, ys = self._series.get(name, ([], []))
            if name == "train":
                ys = smooth(ys, weight)
            curve.setData(xs, ys)
        for model, value in self._baselines.items():
            line = self._baseline_lines.get(model)
            if line is None:
                line = pg.InfiniteLine(
                    angle=0,
                    pen=pg.mkPen(
                        BASELINE_COLORS.get(model, (0, 0, 0)), style=pg.QtCore.Qt.DashLine
                    ),
                    label=f"{model} baseline (validation)",
                    labelOpts={"position": 0.85, "color": (60, 60, 60)},
                )
                self.loss_plot.addItem(line)
                self._baseline_lines[model] = line
            # In log mode pyqtgraph plots log10 of the data; a line's value is in view units.
            line.setValue(math.log10(value) if self.log_scale.isChecked() else value)

    def _on_log_scale_toggled(self, on: bool) -> None:
        self.loss_plot.getPlotItem().setLogMode(y=on)
        self._dirty = True

    def _on_smoothing_changed(self, _index: int) -> None:
        self._dirty = True

    def shutdown(self) -> None:
        """Stop repainting (the tab is closing)."""
        self.timer.stop()
