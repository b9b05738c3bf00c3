"""The next-token chart: the top-K tokens as horizontal bars, raw and after sampling side by side.

Probabilities read as percentages, each bar carries its value, a log scale shows the small
ones, and the chart grows with the number of bars (it scrolls rather than piling labels up).
The legend and notes sit above the plot, so they never cover a bar. Plot items are made once
and updated with setOpts; new data is only stored, and a timer on the GUI thread repaints at
most ~30 times a second. `current_data()` returns exactly what is shown (the same rows the
CSV export writes), so tests and other views can read the chart.
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFontMetrics, QImage, QPainter
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from tokenscope.files import atomic_write_text
from tokenscope.gui.widgets.plots import ProbabilityAxis, format_probability, quiet_plot
from tokenscope.gui.widgets.theme import chart_font, chart_text, chart_widget, set_tone
from tokenscope.lm.tokens import GenerationStep, TokenProbability
from tokenscope.service.records import NextTokenView

REPAINT_MS = 33
RAW_COLOR = (70, 130, 200)
SAMPLED_COLOR = (240, 150, 40)
OTHER_COLOR = (160, 160, 160)  # the tokens without a bar of their own, as one
OTHER_SAMPLED_COLOR = (205, 205, 205)
OTHER_LABEL = "(all others)"
LABEL_CHARS = 22
ROW_PX = 22  # height of one token's pair of bars
LOG_FLOOR = -12  # log10 of the smallest probability the log scale shows

ChartRow = TokenProbability  # one bar: its token and raw and sampled probability


@dataclass(frozen=True)
class ChartData:
    title: str
    rows: tuple[ChartRow, ...]  # most likely first: rank = index + 1
    entropy_bits: float
    removed_mass: float  # raw probability the knobs made impossible
    watch_text: str = ""
    watch_probability: float | None = None
    # A model that lists only its top tokens (a server): the rest is one grey bar (`other`),
    # `source` says what it returned, `approximate` marks estimated sampled values, and the
    # entropy is only a lower bound.
    other: float | None = None
    other_sampled: float = 0.0
    source: str = ""
    approximate: bool = False
    watch_note: str = ""
    entropy_exact: bool = True

    def bars(self) -> tuple[ChartRow, ...]:
        """The rows drawn: the tokens, then the others as one row where there is one."""
        if self.other is None:
            return self.rows
        return (*self.rows, ChartRow(-1, "", OTHER_LABEL, self.other, self.other_sampled))

    @classmethod
    def of_view(cls, title: str, view: NextTokenView) -> ChartData:
        """The chart of a NextTokenView (tokenscope.service.records)."""
        return cls(
            title,
            view.rows,
            view.entropy_bits,
            view.removed_mass,
            view.watch_text,
            view.watch_probability,
            view.other,
            view.other_sampled,
            view.label if view.other is not None else "",
            view.approximate,
            view.watch_note,
            view.entropy_exact,
        )

    @classmethod
    def of_step(cls, index: int, step: GenerationStep, k: int) -> ChartData:
        """The distribution a generated token was drawn from (captured then), top `k`."""
        sampled = {a.token_id: a.sampled_probability for a in step.top_sampled}
        rows = tuple(
            replace(a, sampled_probability=sampled.get(a.token_id, 0.0)) for a in step.top_raw[:k]
        )
        title = f"token {index + 1} {step.display!r} (captured when generated)"
        if step.full_vocabulary:
            return cls(title, rows, step.entropy, step.removed_mass)
        return cls(  # from a server: only its top tokens are known
            title,
            rows,
            step.entropy,
            step.removed_mass,
            other=max(0.0, 1.0 - sum(r.probability for r in rows)),
            other_sampled=max(0.0, 1.0 - sum(r.sampled_probability for r in rows)),
            source=f"remote · kept top-{len(step.top_raw)}",
            entropy_exact=False,
        )


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def _swatch(color: tuple[int, int, int], text: str) -> str:
    r, g, b = color
    return f'<span style="color:rgb({r},{g},{b})">■</span>&nbsp;{text}'


class NextTokenChart(QWidget):
    #: () — the plot was drawn anew (at most ~30 times a second, whatever arrives); GUI thread
    repainted = Signal()

    # A name QWidget has as a method (scroll()); the attribute hides it from Python (Qt calls
    # the C++ one). Renaming it would change what tests and callers use.
    scroll: QScrollArea  # type: ignore[assignment]

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("nextTokenChart")
        self.setAccessibleName("Next-token probabilities")
        self.title = QLabel(objectName="chartTitle", wordWrap=True)
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.legend = QLabel(
            _swatch(RAW_COLOR, "model (raw)")
            + "&nbsp;&nbsp;"
            + _swatch(SAMPLED_COLOR, "after sampling"),
            objectName="chartLegend",
        )
        self.note = QLabel(objectName="chartNote", wordWrap=True)
        set_tone(self.note, "muted")
        self.log_scale = QCheckBox("log scale", objectName="chartLogScale")
        self.log_scale.setToolTip("Show small probabilities too: each grid step is 10x smaller")
        self.plot = chart_widget(axisItems={"bottom": ProbabilityAxis("bottom")})
        quiet_plot(self.plot)
        item = self.plot.getPlotItem()
        item.showGrid(x=True, y=False, alpha=0.2)
        item.setLabel("bottom", "probability")
        self.raw_bars = pg.BarGraphItem(x0=[], y=[], height=0.38, width=[], brush=RAW_COLOR)
        self.sampled_bars = pg.BarGraphItem(x0=[], y=[], height=0.38, width=[], brush=SAMPLED_COLOR)
        item.addItem(self.raw_bars)
        item.addItem(self.sampled_bars)
        self._values: list[pg.TextItem] = []  # value labels, made as needed and reused
        self.scroll = QScrollArea(widgetResizable=True, objectName="chartScroll")
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setWidget(self.plot)
        self.placeholder = QLabel(
            "The next-token chart appears here once a model is loaded.",
            alignment=Qt.AlignmentFlag.AlignCenter,
            objectName="chartPlaceholder",
        )
        set_tone(self.placeholder, "muted")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(self.scroll)

        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.log_scale)
        notes = QHBoxLayout()
        notes.addWidget(self.legend)
        notes.addWidget(self.note, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addLayout(notes)
        layout.addWidget(self.stack, 1)
        self.log_scale.toggled.connect(self._on_log_scale_toggled)

        self._shown: ChartData | None = None
        self._pending: ChartData | None = None
        self._timer = QTimer(self, singleShot=True, interval=REPAINT_MS)
        self._timer.timeout.connect(self._repaint)
        self._last_paint = 0.0
        self.clear()

    def show_data(self, data: ChartData) -> None:
        """Show `data`: at once if the chart has been idle, else at the next repaint tick.

        Cheap to call often: a burst of updates is drawn at most ~30 times a second, and the
        first one after a pause is not delayed (the keystroke-to-chart latency).
        """
        self._pending = data
        if self._timer.isActive():
            return
        if time.perf_counter() - self._last_paint >= REPAINT_MS / 1000:
            self._repaint()
        else:
            self._timer.start()

    def flush(self) -> None:
        """Repaint now if something is waiting (exports and tests want what was asked for)."""
        if self._pending is not None:
            self._timer.stop()
            self._repaint()

    def current_data(self) -> ChartData | None:
        self.flush()
        return self._shown

    def clear(self) -> None:
        """Back to the empty state (no model, or another model)."""
        self._pending = None
        self._shown = None
        self.raw_bars.setOpts(x0=[], y=[], width=[], brushes=None)
        self.sampled_bars.setOpts(x0=[], y=[], width=[], brushes=None)
        for t in self._values:
            t.setText("")
        self.title.setText("")
        self.note.setText("")
        self.legend.setVisible(False)
        self.stack.setCurrentWidget(self.placeholder)

    def changeEvent(self, event: QEvent) -> None:
        """Zoomed (the application's font changed): rows and labels take the new size."""
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange and self._shown is not None:
            self._pending = self._shown
            self._timer.start()

    def _on_log_scale_toggled(self, _on: bool) -> None:
        if self._shown is not None:
            self._pending = self._shown
            self._repaint()

    def _x(self, p: float, floor: float) -> float:
        """Where probability `p` ends on the x axis (log10 on the log scale)."""
        if not self.log_scale.isChecked():
            return p
        return max(floor, math.log10(p)) if p > 0 else floor

    def _value_label(self, i: int) -> pg.TextItem:
        while len(self._values) <= i:
            label = chart_text(anchor=(0, 0.5))
            self.plot.getPlotItem().addItem(label)
            self._values.append(label)
        return self._values[i]

    def _repaint(self) -> None:
        data, self._pending = self._pending, None
        if data is None:
            return
        self._shown = data
        self._last_paint = time.perf_counter()
        self.stack.setCurrentWidget(self.scroll)
        rows = data.bars()
        n = len(rows)
        grey = data.other is not None  # the last row is the others'

        log = self.log_scale.isChecked()
        axis = self.plot.getPlotItem().getAxis("bottom")
        axis.log = log
        values = [p for r in rows for p in (r.probability, r.sampled_probability) if p > 0]
        floor = 0.0
        if log:
            floor = max(LOG_FLOOR, math.floor(math.log10(min(values, default=1e-3))) - 0.5)
        ys = [n - i for i in range(n)]  # rank 1 on top
        raw_end = [self._x(r.probability, floor) for r in rows]
        sampled_end = [self._x(r.sampled_probability, floor) for r in rows]

        def brushes(color: tuple, other: tuple) -> list:
            return [pg.mkBrush(other if grey and i == n - 1 else color) for i in range(n)]

        self.raw_bars.setOpts(
            x0=[floor] * n,
            y=[y + 0.2 for y in ys],
            width=[e - floor for e in raw_end],
            brushes=brushes(RAW_COLOR, OTHER_COLOR),
        )
        self.sampled_bars.setOpts(
            x0=[floor] * n,
            y=[y - 0.2 for y in ys],
            width=[e - floor for e in sampled_end],
            brushes=brushes(SAMPLED_COLOR, OTHER_SAMPLED_COLOR),
        )
        knobs = any(abs(r.probability - r.sampled_probability) > 1e-9 for r in rows)
        used = 0
        for y, r, a, b in zip(ys, rows, raw_end, sampled_end, strict=True):
            label = self._value_label(used)
            label.setText(format_probability(r.probability))
            label.setPos(a, y + 0.2)
            used += 1
            if knobs:
                label = self._value_label(used)
                label.setText(format_probability(r.sampled_probability))
                label.setPos(b, y - 0.2)
                used += 1
        for label in self._values[used:]:
            label.setText("")
        item = self.plot.getPlotItem()
        item.getAxis("left").setTicks(
            [[(y, _short(r.display)) for y, r in zip(ys, rows, strict=True)]]
        )
        top = max([*raw_end, *sampled_end, floor + 0.05 if log else 0.05])
        span = top - floor
        item.setXRange(floor, top + 0.22 * span, padding=0)  # room for the value labels
        item.setYRange(0.4, n + 0.6, padding=0)
        # More bars: taller, and it scrolls; a row grows with the zoom.
        row = max(ROW_PX, round(1.6 * QFontMetrics(chart_font()).height()))
        self.plot.setMinimumHeight(n * row + 50)
        # A top-k list hides the spread of the rest: its entropy is only a lower bound.
        at_least = "" if data.entropy_exact else "≥ "
        title = data.title + (f" · {data.source}" if data.source else "")
        title += f" · entropy {at_least}{data.entropy_bits:.2f} bits"
        if data.watch_text and data.watch_probability is not None:
            title += f" · P({data.watch_text!r}) = {format_probability(data.watch_probability)}"
        elif data.watch_text and data.watch_note:
            title += f" · P({data.watch_text!r}) unknown"
        self.title.setText(title)
        self.legend.setVisible(knobs or data.removed_mass > 0)
        notes = []
        if data.removed_mass > 0:
            notes.append(f"the knobs removed {data.removed_mass:.1%} of the probability")
        if grey:
            listed = data.source.split("top-")[-1].split(" ")[0] if "top-" in data.source else ""
            lists = f" (of {listed} listed)" if listed else ""
            notes.append(f"grey: every token without a bar{lists}")
        if data.approximate and knobs:
            notes.append("after sampling: approximate (estimated from the listed tokens)")
        if data.watch_note:
            notes.append(f"P({data.watch_text!r}): {data.watch_note}")
        self.note.setText("; ".join(notes))
        self.repainted.emit()

    # ----- export --------------------------------------------------------------------------

    def export_csv(self, path: str | Path) -> None:
        """The bars as a table, in the engine's words (the others' row has token id -1)."""
        data = self.current_data()
        fields = ["rank", "token_id", "text", "display", "probability", "sampled_probability"]
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        for rank, row in enumerate(data.bars() if data else (), start=1):
            writer.writerow({"rank": rank, **asdict(row)})
        atomic_write_text(path, buffer.getvalue())

    def export_image(self, path: str | Path, caption: str = "") -> None:
        """PNG or SVG (by the file's suffix): the chart with its title and legend, and
        `caption` above them (the model and the prompt, so the picture says what it shows)."""
        self.flush()
        lines = [line for line in (caption, self.title.text()) if line]
        if self.legend.isVisible():
            lines.append("blue: model (raw) · orange: after sampling")
        if self.note.text():
            lines.append(self.note.text())
        line_height = self.fontMetrics().height() + 4
        header = line_height * len(lines) + 8
        width, plot_height = max(400, self.plot.width()), max(200, self.plot.height())
        height = header + plot_height

        def paint(painter: QPainter) -> None:
            painter.fillRect(QRectF(0, 0, width, height), QColor("white"))
            painter.setPen(QColor("#222222"))
            for i, line in enumerate(lines):
                painter.drawText(QRectF(8, 4 + i * line_height, width - 16, line_height),
                                 Qt.AlignmentFlag.AlignLeft, line)  # fmt: skip
            self.plot.render(painter, QRectF(0, header, width, plot_height))

        if str(path).lower().endswith(".svg"):
            # pyqtgraph's SVG exporter fails on the paths Qt 6.11 writes; Qt's own generator
            # draws the widgets as they are on screen.
            from PySide6.QtSvg import QSvgGenerator

            generator = QSvgGenerator()
            generator.setFileName(str(path))
            generator.setSize(QSize(width, height))
            generator.setViewBox(QRectF(0, 0, width, height))
            generator.setTitle(caption or "Tokenscope next-token chart")
            painter = QPainter(generator)
            paint(painter)
            painter.end()
        else:
            image = QImage(width, height, QImage.Format.Format_RGB32)
            painter = QPainter(image)
            paint(painter)
            painter.end()
            if not image.save(str(path)):
                raise OSError(f"could not write {path}")
