"""The next-token chart: the top-K tokens as horizontal bars, raw and after sampling side by side.

Plot items are made once and updated with setOpts; new data is only stored, and a timer on
the GUI thread repaints at most ~30 times a second. `current_data()` returns exactly what is
shown (the same rows the CSV export writes), so tests and other views can read the chart.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QVBoxLayout, QWidget

from tokenscope.service.records import TokenRow

REPAINT_MS = 33
RAW_COLOR = (70, 130, 200)
SAMPLED_COLOR = (240, 150, 40)
LABEL_CHARS = 22


ChartRow = TokenRow  # one bar: rank, token id, label, raw and sampled probability


@dataclass(frozen=True)
class ChartData:
    title: str
    rows: tuple[ChartRow, ...]
    entropy_bits: float
    removed_mass: float  # raw probability the knobs made impossible
    watch_text: str = ""
    watch_probability: float | None = None


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


class NextTokenChart(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("nextTokenChart")
        self.setAccessibleName("Next-token probabilities")
        self.plot = pg.PlotWidget(background="w")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        item = self.plot.getPlotItem()
        item.setMenuEnabled(False)
        item.setMouseEnabled(x=False, y=False)
        item.hideButtons()
        item.showGrid(x=True, y=False, alpha=0.2)
        item.setLabel("bottom", "probability")
        self.legend = item.addLegend(offset=(-10, 10))
        self.raw_bars = pg.BarGraphItem(
            x0=[], y=[], height=0.38, width=[], brush=RAW_COLOR, name="model (raw)"
        )
        self.sampled_bars = pg.BarGraphItem(
            x0=[], y=[], height=0.38, width=[], brush=SAMPLED_COLOR, name="after sampling"
        )
        item.addItem(self.raw_bars)
        item.addItem(self.sampled_bars)
        self.note = pg.TextItem(anchor=(1, 1), color=(90, 90, 90))
        item.addItem(self.note)
        self._shown: ChartData | None = None
        self._pending: ChartData | None = None
        self._timer = QTimer(self, singleShot=True, interval=REPAINT_MS)
        self._timer.timeout.connect(self._repaint)
        self.repaints = 0  # how often the plot was actually redrawn (for the UI benchmark)
        self._last_paint = 0.0

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
        self._pending = None
        self._shown = None
        self.raw_bars.setOpts(x0=[], y=[], width=[])
        self.sampled_bars.setOpts(x0=[], y=[], width=[])
        self.note.setText("")
        self.plot.getPlotItem().setTitle("")

    def _repaint(self) -> None:
        data, self._pending = self._pending, None
        if data is None:
            return
        self._shown = data
        self._last_paint = time.perf_counter()
        n = len(data.rows)
        ys = [n - i for i in range(n)]  # rank 1 on top
        self.raw_bars.setOpts(x0=[0] * n, y=[y + 0.2 for y in ys], width=[r.raw for r in data.rows])
        self.sampled_bars.setOpts(
            x0=[0] * n, y=[y - 0.2 for y in ys], width=[r.sampled for r in data.rows]
        )
        item = self.plot.getPlotItem()
        item.getAxis("left").setTicks(
            [[(y, _short(r.label)) for y, r in zip(ys, data.rows, strict=True)]]
        )
        top = max([r.raw for r in data.rows] + [r.sampled for r in data.rows] + [0.05])
        item.setXRange(0, min(1.0, top * 1.1), padding=0)
        item.setYRange(0.4, n + 0.6, padding=0)
        title = f"{data.title}   entropy {data.entropy_bits:.2f} bits"
        if data.watch_text and data.watch_probability is not None:
            title += f"   P({data.watch_text!r}) = {data.watch_probability:.4f}"
        item.setTitle(title)
        self.note.setText(
            f"removed by the knobs: {data.removed_mass:.1%}" if data.removed_mass > 0 else ""
        )
        self.note.setPos(min(1.0, top * 1.1), 0.45)
        self.repaints += 1

    # ----- export --------------------------------------------------------------------------

    def export_csv(self, path: str | Path) -> None:
        data = self.current_data()
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["rank", "token_id", "label", "raw", "sampled"])
            writer.writeheader()
            for row in data.rows if data else ():
                writer.writerow(asdict(row))

    def export_image(self, path: str | Path) -> None:
        """PNG or SVG, chosen by the file's suffix."""
        import pyqtgraph.exporters as exporters

        self.flush()
        item = self.plot.getPlotItem()
        if str(path).lower().endswith(".svg"):
            # pyqtgraph's SVG exporter fails on the paths Qt 6.11 writes; Qt's own generator
            # draws the widget as it is on screen.
            from PySide6.QtGui import QPainter
            from PySide6.QtSvg import QSvgGenerator

            generator = QSvgGenerator()
            generator.setFileName(str(path))
            generator.setSize(self.plot.size())
            generator.setViewBox(self.plot.rect())
            generator.setTitle("Tokenscope next-token chart")
            painter = QPainter(generator)
            self.plot.render(painter)
            painter.end()
        else:
            exporter = exporters.ImageExporter(item)
            exporter.parameters()["width"] = max(800, self.plot.width())
            exporter.export(str(path))
