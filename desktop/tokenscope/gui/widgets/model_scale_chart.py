"""Where the planned model sits among well-known language models: parameters on a log scale.

The reference points come from resources/reference/model_sizes.json, which names a source
for each count. Positions are plotted as log10(parameters), with tick labels in plain units
(1K ... 1T), so a factor of ten is the same distance anywhere on the axis.
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QVBoxLayout, QWidget

from tokenscope.files import resource_path
from tokenscope.gui.widgets.theme import ACCENT, chart_text, chart_widget
from tokenscope.units import format_count

KNOWN_COLOR = (70, 130, 200)
PLANNED_COLOR = (220, 60, 40)
# Labels of one year are spread over these offsets from the year (in years).
LANES = (0.0, 0.25, -0.25, 0.5, -0.5)
LABEL_GAP_PX = 6  # free space kept between two labels of one lane


@dataclass(frozen=True)
class ReferenceModel:
    """A well-known model: its name, parameter count, year and where the count comes from."""

    name: str
    parameters: int
    year: int
    source: str


def reference_path() -> Path:
    """The bundled data file of model sizes."""
    return resource_path("reference", "model_sizes.json")


def load_reference_models(path: Path | None = None) -> list[ReferenceModel]:
    """The reference models in the data file (an unreadable file gives an empty list)."""
    try:
        data = json.loads((path or reference_path()).read_text(encoding="utf-8"))
        return [ReferenceModel(**entry) for entry in data["models"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


class ModelScaleChart(QWidget):
    """A scatter of reference models (x: parameters, log scale; y: year) plus the planned one."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelScaleChart")
        self.setAccessibleName("Model size compared with well-known models")
        self.references = load_reference_models()
        self.planned_parameters: int | None = None
        self.marks: list[tuple[str, int]] = []  # models measured elsewhere (the Scale tab)
        self._mark_lines: list[pg.InfiniteLine] = []
        self.plot = chart_widget()
        self.plot.setMinimumHeight(300)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        item = self.plot.getPlotItem()
        item.setMenuEnabled(False)
        item.setMouseEnabled(x=False, y=False)
        item.hideButtons()
        item.showGrid(x=True, y=False, alpha=0.25)
        item.setLabel("bottom", "parameters (log scale)")
        item.setLabel("left", "year")
        item.setTitle("Your model among well-known language models", size="9pt")
        ticks = [(e, format_count(10**e)) for e in range(3, 13)]
        item.getAxis("bottom").setTicks([ticks])
        self._scatter = pg.ScatterPlotItem(
            size=8, brush=pg.mkBrush(*KNOWN_COLOR), pen=pg.mkPen(None)
        )
        item.addItem(self._scatter)
        self._labels: dict[str, pg.TextItem] = {}
        for ref in self.references:
            label = chart_text(ref.name, anchor=(0, 0.5))
            label.setToolTip(
                f"{ref.name}: {ref.parameters:,} parameters ({ref.year})\n{ref.source}"
            )
            item.addItem(label)
            self._labels[ref.name] = label
        item.vb.sigResized.connect(self._place_labels)
        self._planned_line = pg.InfiniteLine(angle=90, pen=pg.mkPen(PLANNED_COLOR, width=2))
        self._planned_dot = pg.ScatterPlotItem(
            size=14, symbol="star", brush=pg.mkBrush(*PLANNED_COLOR), pen=pg.mkPen(None)
        )
        self._planned_label = chart_text("", ACCENT, color=PLANNED_COLOR, anchor=(0, 1))
        for thing in (self._planned_line, self._planned_dot, self._planned_label):
            thing.setVisible(False)
            item.addItem(thing)
        years = [r.year for r in self.references] or [datetime.date.today().year]
        self._year_range = (min(years) - 1, max(max(years), datetime.date.today().year) + 1)
        self._fit_view()

    def set_planned(self, parameters: int | None) -> None:
        """Show the planned model at `parameters` (None hides it)."""
        self.planned_parameters = parameters
        visible = bool(parameters and parameters > 0)
        for thing in (self._planned_line, self._planned_dot, self._planned_label):
            thing.setVisible(visible)
        if parameters is not None and parameters > 0:  # visible
            x = math.log10(parameters)
            year = datetime.date.today().year
            self._planned_line.setValue(x)
            self._planned_dot.setData([x], [year])
            self._planned_label.setText(f"your model: {format_count(parameters)}")
            self._planned_label.setPos(x + 0.05, year)
        self._fit_view()

    def set_marks(self, marks: list[tuple[str, int]]) -> None:
        """Mark these (name, parameters) with a thin vertical line each, e.g. the models a
        probe was run on, so they sit among the well-known ones."""
        item = self.plot.getPlotItem()
        for line in self._mark_lines:
            item.removeItem(line)
        self.marks = [(name, n) for name, n in marks if n > 0]
        self._mark_lines = []
        for name, n in self.marks:
            line = pg.InfiniteLine(
                math.log10(n), angle=90, pen=pg.mkPen(PLANNED_COLOR, width=1.5), movable=False
            )
            line.setToolTip(f"{name}: {n:,} parameters")
            item.addItem(line)
            self._mark_lines.append(line)
        self._fit_view()

    def points(self) -> list[tuple[str, int]]:
        """(name, parameters) of every point shown, reference models first, then the planned one."""
        shown = [(r.name, r.parameters) for r in self.references]
        if self.planned_parameters:
            shown.append(("your model", self.planned_parameters))
        return shown

    def _decades_per_pixel(self) -> float:
        vb = self.plot.getPlotItem().vb
        (x0, x1), width = vb.viewRange()[0], max(1.0, vb.width())
        return (x1 - x0) / width if width > 1 else 0.01

    def _place_labels(self) -> None:
        """Put each label in a lane near its year where it overlaps no other, measured in
        pixels at the chart's present size; a label with no free lane is hidden (its point
        keeps a tooltip)."""
        spots = []
        for ref, y, show in self._layout():
            x = math.log10(ref.parameters)
            spots.append({"pos": (x, y), "data": ref.name})
            label = self._labels[ref.name]
            label.setPos(x + 0.04, y)
            label.setVisible(show)
        self._scatter.setData(spots=spots)

    def _layout(self) -> list[tuple[ReferenceModel, float, bool]]:
        """A y position near its year for each model, so that labels of one year do not overlap;
        a label with no free lane is hidden."""
        per_pixel = self._decades_per_pixel()
        metrics = QFontMetrics(self.font())
        placed = []
        for year in sorted({r.year for r in self.references}):
            lane_end = dict.fromkeys(LANES, -math.inf)  # where each lane's last label ends
            for ref in sorted(
                (r for r in self.references if r.year == year), key=lambda r: r.parameters
            ):
                x = math.log10(ref.parameters)
                lane = next((lane for lane in LANES if lane_end[lane] < x), None)
                if lane is not None:
                    width_px = metrics.horizontalAdvance(ref.name) + LABEL_GAP_PX + 8
                    lane_end[lane] = x + 0.04 + per_pixel * width_px
                placed.append((ref, year + (lane or 0.0), lane is not None))
        return placed

    def _fit_view(self) -> None:
        xs = [math.log10(r.parameters) for r in self.references]
        if self.planned_parameters:
            xs.append(math.log10(self.planned_parameters))
        xs += [math.log10(n) for _name, n in self.marks]
        low, high = (min(xs), max(xs)) if xs else (3.0, 12.0)
        # Room on the right for the labels of the largest models.
        self.plot.setXRange(math.floor(low) - 0.3, math.ceil(high) + 1.5, padding=0)
        self.plot.setYRange(*self._year_range, padding=0)
        self._place_labels()
