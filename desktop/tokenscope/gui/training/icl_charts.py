"""In-context learning as a run trains: the ICL score, the strongest induction and
previous-token heads, and every head's score at every evaluation as a heat strip (heads x
evaluations), from the `eval` events (tokenscope.lm.icl measures them in the trainer).

    charts.add_event(event)            # any event; eval events carry the measures
    charts.attach_loss_plot(plot)      # the transition marker goes on this loss chart too
    charts.transition_step             # where the ICL score fell fastest (None: not yet)

Like the run's other charts, events only append to lists; a timer repaints at most ~30 times
a second. The transition is marked only once the ICL score has fallen by TRANSITION_FALL
nats from its first value: before that, the steepest drop is noise.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QTimer
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.widgets.plots import quiet_plot
from tokenscope.gui.widgets.theme import chart_widget
from tokenscope.train.events import EvalEvent, Event, StartEvent

REPAINT_MS = 33
TRANSITION_FALL = 0.3  # nats: how far the ICL score must fall before a transition is marked
ICL_COLOR = (200, 60, 60)
INDUCTION_COLOR = (40, 110, 190)
PREVIOUS_COLOR = (230, 140, 30)
MARK_COLOR = (120, 40, 160)
STRIP_KINDS = (
    ("induction", "Induction heads", "copies the token that followed the current one before"),
    ("previous_token", "Previous-token heads", "looks at the token just before"),
)
ICL_TIP = (
    "The in-context learning score: the loss late in the window minus the loss early in it, "
    "in nats. Negative = learns from context: the model predicts better once it has read more."
)


def head_labels(layers: int, heads: int) -> list[str]:
    """Row names of the heat strip: L0 H0, L0 H1, ..., one per head, layer by layer."""
    return [f"L{layer} H{head}" for layer in range(layers) for head in range(heads)]


def transition_note(step: int) -> str:
    """The marker's note, in plain words."""
    return (
        f"Induction heads formed around step {step:,}: the loss late in the window fell below "
        "the loss early in it — the model started copying from its context."
    )


def _find_transition(steps: list[int], scores: list[float]) -> int | None:
    # tokenscope.lm.icl imports torch; the trainer's tab has it loaded by the time a run
    # evaluates (the plan measures the device), and it is imported once.
    from tokenscope.lm.icl import transition

    return transition(steps, scores)


class _TickAxis(pg.AxisItem):
    """An axis whose ticks are given labels (head names, evaluation steps)."""

    def __init__(self, orientation: str) -> None:
        super().__init__(orientation)
        self.labels: list[tuple[float, str]] = []

    def set_labels(self, labels: list[tuple[float, str]]) -> None:
        self.labels = labels
        self.setTicks([labels])


class ICLCharts(QWidget):
    """The ICL score, the head maxima and the heads' heat strip of one run, live."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("iclCharts")
        self.steps: list[int] = []  # evaluations that carried an ICL score or head scores
        self.icl: list[float | None] = []
        self.induction_max: list[float | None] = []
        self.previous_max: list[float | None] = []
        self.tables: dict[str, list[np.ndarray | None]] = {"induction": [],
                                                           "previous_token": []}  # fmt: skip
        self.transition_step: int | None = None
        self._loss_plots: list[pg.PlotWidget] = []
        self._loss_marks: list[pg.InfiniteLine] = []
        self._dirty = False
        self._build()
        self.timer = QTimer(self, interval=REPAINT_MS)
        self.timer.timeout.connect(self._on_timer_timeout)
        self.timer.start()

    # ----- layout ------------------------------------------------------------------------------

    def _build(self) -> None:
        self.note = QLabel(objectName="iclNote", wordWrap=True)
        self.note.setText("The in-context learning measures appear at the run's evaluations.")
        self.icl_plot = self._line_plot("ICL score (negative = learns from context)",
                                        "late − early (nats)", "iclScoreChart")  # fmt: skip
        self.icl_plot.setToolTip(ICL_TIP)
        self.icl_plot.addItem(pg.InfiniteLine(pos=0, angle=0, pen=pg.mkPen((90, 90, 90))))
        self.icl_curve = self.icl_plot.plot(pen=pg.mkPen(ICL_COLOR, width=2), symbol="o",
                                            symbolSize=5, symbolBrush=ICL_COLOR)  # fmt: skip
        self.max_plot = self._line_plot(
            f'Strongest head: <span style="color:{_hex(INDUCTION_COLOR)}">induction</span>, '
            f'<span style="color:{_hex(PREVIOUS_COLOR)}">previous-token</span>',
            "score (0 to 1)",
            "headMaxChart",
        )
        self.max_plot.setToolTip(
            "The highest induction score of any head (attention to the token after the earlier "
            "occurrence of the current one) and the highest previous-token score (attention to "
            "the token just before), on repeated random tokens; 1 = always, 0 = never"
        )
        self.max_plot.setYRange(0, 1)
        self.induction_curve = self.max_plot.plot(name="induction", symbol="o", symbolSize=4,
                                                  pen=pg.mkPen(INDUCTION_COLOR, width=2),
                                                  symbolBrush=INDUCTION_COLOR)  # fmt: skip
        self.previous_curve = self.max_plot.plot(name="previous token", symbol="o", symbolSize=4,
                                                 pen=pg.mkPen(PREVIOUS_COLOR, width=2),
                                                 symbolBrush=PREVIOUS_COLOR)  # fmt: skip
        self.icl_marks = [self._mark_line() for _ in range(2)]
        self.icl_plot.addItem(self.icl_marks[0])
        self.max_plot.addItem(self.icl_marks[1])

        self.row_axis, self.column_axis = _TickAxis("left"), _TickAxis("bottom")
        self.strip = chart_widget(objectName="headStrip",
                                   axisItems={"left": self.row_axis,
                                              "bottom": self.column_axis})  # fmt: skip
        self.strip.setAccessibleName("Heads by evaluation: each head's score, 0 to 1")
        item = quiet_plot(self.strip)
        item.invertY(True)
        font = self.row_axis.font()
        font.setPointSize(8)
        for axis in (self.row_axis, self.column_axis):
            axis.setStyle(tickFont=font)
        self.image = pg.ImageItem(axisOrder="row-major")
        cmap = pg.colormap.get("viridis")
        self.image.setColorMap(cmap)
        self.image.setLevels((0.0, 1.0))
        self.strip.addItem(self.image)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=cmap, interactive=False,
                                        width=12, label="score")  # fmt: skip
        self.colorbar.setImageItem(self.image, insert_in=item)
        self.strip.setMinimumHeight(130)
        self.strip.scene().sigMouseMoved.connect(self._on_strip_mouse_moved)

        self.kind_group = QButtonGroup(self)
        kinds = QHBoxLayout()
        self.strip_title = QLabel("Every head at every evaluation (step):",
                                  objectName="headStripTitle")  # fmt: skip
        kinds.addWidget(self.strip_title)
        self.kind_buttons: dict[str, QRadioButton] = {}
        for i, (kind, label, what) in enumerate(STRIP_KINDS):
            button = QRadioButton(label, objectName=f"{kind}StripChoice")
            button.setToolTip(f"Colour: how often each head {what} (0 to 1)")
            self.kind_group.addButton(button, i)
            self.kind_buttons[kind] = button
            kinds.addWidget(button)
        kinds.addStretch(1)
        self.kind_buttons["induction"].setChecked(True)
        self.kind_group.idToggled.connect(self._on_kind_toggled)

        lines = QHBoxLayout()
        lines.addWidget(self.icl_plot)
        lines.addWidget(self.max_plot)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.note)
        layout.addLayout(lines, 3)
        layout.addLayout(kinds)
        layout.addWidget(self.strip, 2)

    def _line_plot(self, title: str, left: str, name: str) -> pg.PlotWidget:
        plot = chart_widget(objectName=name)
        plot.setAccessibleName(title)
        item = quiet_plot(plot)
        item.setTitle(title, size="9pt")
        item.setLabel("bottom", "step")
        item.setLabel("left", left)
        item.showGrid(x=True, y=True, alpha=0.2)
        item.getAxis("left").enableAutoSIPrefix(False)  # nats as they are, not "x0.001"
        plot.setMinimumHeight(100)
        return plot

    def _mark_line(self, label: str | None = None) -> pg.InfiniteLine:
        line = pg.InfiniteLine(
            angle=90, pen=pg.mkPen(MARK_COLOR, width=2, style=pg.QtCore.Qt.DashLine),
            label=label, labelOpts={"position": 0.95, "color": MARK_COLOR, "anchors": [(1, 0),
                                                                                     (1, 0)]},
        )  # fmt: skip
        line.setVisible(False)
        return line

    def attach_loss_plot(self, plot: pg.PlotWidget) -> None:
        """Mark the transition on this chart too (the run's loss curve)."""
        line = self._mark_line("induction heads form (step {value:,.0f}) ")
        plot.addItem(line)
        self._loss_plots.append(plot)
        self._loss_marks.append(line)
        self._dirty = True

    def loss_marks(self) -> list[pg.InfiniteLine]:
        """The transition markers on the attached loss charts."""
        return list(self._loss_marks)

    # ----- data in ---------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget the run shown (another one is about to be)."""
        self.steps.clear()
        self.icl.clear()
        self.induction_max.clear()
        self.previous_max.clear()
        for table in self.tables.values():
            table.clear()
        self.transition_step = None
        self._dirty = True

    def add_event(self, event: Event) -> None:
        """Keep what an eval event says about in-context learning; the repaint follows."""
        match event:
            case StartEvent(resumed_from=int() as resumed_from):
                self._trim_after(resumed_from)
            case StartEvent():
                self.clear()  # trained from scratch (a ladder's next size, a new start)
            case EvalEvent():
                if event.icl_score is None and not event.induction_scores:
                    return  # not measured (an older trainer, a window too short)
                self.steps.append(event.step)
                self.icl.append(event.icl_score)
                self.induction_max.append(event.induction_max)
                self.previous_max.append(event.previous_token_max)
                self.tables["induction"].append(_array(event.induction_scores))
                self.tables["previous_token"].append(_array(event.previous_token_scores))
                self._update_transition()
                self._dirty = True

    def _trim_after(self, step: int) -> None:
        while self.steps and self.steps[-1] > step:
            self.steps.pop()
            for values in (self.icl, self.induction_max, self.previous_max):
                values.pop()
            for table in self.tables.values():
                table.pop()
        self._update_transition()
        self._dirty = True

    def _update_transition(self) -> None:
        steps, scores = self.icl_points()
        self.transition_step = None
        if len(scores) >= 2 and scores[0] - min(scores) >= TRANSITION_FALL:
            found = _find_transition([int(s) for s in steps], scores)
            self.transition_step = found

    # ----- data out ----------------------------------------------------------------------------

    def icl_points(self) -> tuple[list[float], list[float]]:
        """(steps, ICL scores) of the evaluations that measured one."""
        pairs = [(float(s), v) for s, v in zip(self.steps, self.icl, strict=True) if v is not None]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def max_points(self, kind: str) -> tuple[list[float], list[float]]:
        """(steps, strongest head's score): kind "induction" or "previous_token"."""
        values = self.induction_max if kind == "induction" else self.previous_max
        pairs = [(float(s), v) for s, v in zip(self.steps, values, strict=True) if v is not None]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def strip_kind(self) -> str:
        """What the heat strip shows: "induction" or "previous_token"."""
        return STRIP_KINDS[max(0, self.kind_group.checkedId())][0]

    def heat_strip(self, kind: str | None = None) -> tuple[np.ndarray, list[str], list[int]]:
        """(heads x evaluations array, row labels, column steps) of the heat strip; an
        evaluation without head scores is a column of NaN."""
        tables = self.tables[kind or self.strip_kind()]
        shaped = [t for t in tables if t is not None]
        if not shaped:
            return np.zeros((0, 0)), [], []
        layers, heads = shaped[-1].shape
        columns = []
        for t in tables:
            same = t is not None and t.shape == (layers, heads)
            columns.append(t.reshape(-1) if same else np.full(layers * heads, np.nan))  # type: ignore[union-attr]
        return np.stack(columns, axis=1), head_labels(layers, heads), list(self.steps)

    def note_text(self) -> str:
        return self.note.text()

    # ----- painting ----------------------------------------------------------------------------

    def _on_kind_toggled(self, _id: int, checked: bool) -> None:
        if checked:
            self._dirty = True

    def _on_timer_timeout(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.icl_curve.setData(*self.icl_points())
        self.induction_curve.setData(*self.max_points("induction"))
        self.previous_curve.setData(*self.max_points("previous_token"))
        self._paint_strip()
        self._paint_transition()

    def _paint_strip(self) -> None:
        values, rows, steps = self.heat_strip()
        kind = self.strip_kind()
        what = {k: text for k, _label, text in STRIP_KINDS}[kind]
        self.strip.setAccessibleName(f"Heads by evaluation: how often each head {what}, 0 to 1")
        if values.size == 0:
            self.image.clear()
            self.row_axis.set_labels([])
            self.column_axis.set_labels([])
            return
        self.image.setImage(np.nan_to_num(values, nan=0.0), levels=(0.0, 1.0))
        self.image.setRect(0, 0, values.shape[1], values.shape[0])
        self.row_axis.set_labels([(i + 0.5, name) for i, name in enumerate(rows)])
        every = max(1, len(steps) // 6)
        self.column_axis.set_labels([(i + 0.5, f"{s:,}") for i, s in enumerate(steps)
                                     if i % every == 0 or i == len(steps) - 1])  # fmt: skip
        self.strip.getPlotItem().setRange(xRange=(0, values.shape[1]),
                                          yRange=(0, values.shape[0]), padding=0)  # fmt: skip

    def _paint_transition(self) -> None:
        step = self.transition_step
        for line in (*self.icl_marks, *self._loss_marks):
            line.setVisible(step is not None)
            if step is not None:
                line.setValue(step)
        if step is not None:
            self.note.setText(transition_note(step))
        elif self.steps:
            _steps, scores = self.icl_points()
            fall = (scores[0] - min(scores)) if scores else 0.0
            self.note.setText(
                f"No transition yet: the ICL score has fallen {max(0.0, fall):.2f} nats from its "
                f"first value (a transition is marked once it falls {TRANSITION_FALL} nats)."
            )

    def _on_strip_mouse_moved(self, pos: QPointF) -> None:
        item = self.strip.getPlotItem()
        if not item.sceneBoundingRect().contains(pos):
            return
        point = item.vb.mapSceneToView(pos)
        values, rows, steps = self.heat_strip()
        col, row = int(point.x()), int(point.y())
        if values.size and 0 <= row < len(rows) and 0 <= col < len(steps):
            value = values[row, col]
            shown = "not measured" if np.isnan(value) else f"{value:.2f}"
            self.strip.setToolTip(f"{rows[row]} at step {steps[col]:,}: {shown}")
        else:
            self.strip.setToolTip("")

    def shutdown(self) -> None:
        """Stop repainting (the tab is closing)."""
        self.timer.stop()


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _array(table: tuple[tuple[float, ...], ...]) -> np.ndarray | None:
    if not table or not table[0]:
        return None
    return np.array(table, dtype=float)
