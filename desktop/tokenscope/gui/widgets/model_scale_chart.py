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
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QVBoxLayout, QWidget

from tokenscope.files import resource_path
from tokenscope.gui.widgets.theme import ACCENT, chart_text, chart_widget
from tokenscope.units import format_count

KNOWN_COLOR = (70, 130, 200)
PLANNED_COLOR = (220, 60, 40)
POINT_SIZE = 8
# Where a name may go around its point, tried in turn: (horizontal, vertical) with -1 left
# or above, 0 centred, 1 right or below.
LABEL_SPOTS = ((1, 0), (-1, 0), (1, -1), (1, 1), (-1, -1), (-1, 1), (0, -1), (0, 1))


@dataclass(frozen=True)
class ReferenceModel:
    """A well-known model: its name, parameter count, year and where the count comes from."""

    name: str
    parameters: int
    year: int
    source: str


def _spread(references: list[ReferenceModel]) -> list[ReferenceModel]:
    """The order names claim room in: the smallest of each decade of sizes first, then the
    second of each, and so on, so that when room runs out every decade keeps a name."""
    seen: dict[int, int] = {}
    keyed = []
    for ref in sorted(references, key=lambda r: r.parameters):
        decade = int(math.log10(ref.parameters))
        keyed.append((seen.get(decade, 0), ref.parameters, ref))
        seen[decade] = seen.get(decade, 0) + 1
    return [ref for _n, _p, ref in sorted(keyed, key=lambda k: (k[0], k[1]))]


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
            size=POINT_SIZE, brush=pg.mkBrush(*KNOWN_COLOR), pen=pg.mkPen(None),
            hoverable=True, tip=self._tip,
        )  # fmt: skip
        self.unlabelled: list[str] = []  # names with no room beside their point
        item.addItem(self._scatter)
        self._labels: dict[str, pg.TextItem] = {}
        for ref in self.references:
            label = chart_text(ref.name, anchor=(0, 0))
            label.textItem.document().setDocumentMargin(1)
            label.setToolTip(
                f"{ref.name}: {ref.parameters:,} parameters ({ref.year})\n{ref.source}"
            )
            item.addItem(label)
            self._labels[ref.name] = label
        item.vb.sigResized.connect(self._place_labels)
        # (the Scale tab links its own plot's axis to this one: a range set there moves these)
        item.vb.sigXRangeChanged.connect(self._place_labels)
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

    def _tip(self, x: float, y: float, data: object) -> str:
        """A point's tooltip: its name, count, year and source."""
        ref = next((r for r in self.references if r.name == data), None)
        if ref is None:
            return str(data)
        return f"{ref.name}: {ref.parameters:,} parameters ({ref.year})\n{ref.source}"

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

    def _place_labels(self) -> None:
        """Put each name beside its point where, measured in pixels at the chart's present
        size, it covers no other name, no other point and does not leave the plot: to the
        right, else to the left, else above or below on either side. A name with no room is
        hidden (its point answers on hover) and listed in `unlabelled`."""
        item = self.plot.getPlotItem()
        vb = item.vb
        spots = [
            {"pos": (math.log10(r.parameters), r.year), "data": r.name} for r in self.references
        ]
        self._scatter.setData(spots=spots)
        self.unlabelled = []
        (x0, x1), (y0, y1) = vb.viewRange()
        width, height = vb.width(), vb.height()
        if width < 2 or height < 2 or x1 <= x0 or y1 <= y0:
            return
        sx, sy = width / (x1 - x0), height / (y1 - y0)

        def pixel(x: float, y: float) -> tuple[float, float]:
            return (x - x0) * sx, (y1 - y) * sy  # y grows downwards on the screen

        area = QRectF(0, 0, width, height)
        taken: list[QRectF] = []
        if self._planned_label.isVisible():
            taken.append(self._view_rect(self._planned_label))
        dots = {r.name: pixel(math.log10(r.parameters), r.year) for r in self.references}
        half = POINT_SIZE / 2 + 1
        for ref in _spread(self.references):
            label = self._labels[ref.name]
            px, py = dots[ref.name]
            box = label.boundingRect()
            w, h = box.width(), box.height()
            others = [
                QRectF(x - half, y - half, 2 * half, 2 * half)
                for name, (x, y) in dots.items()
                if name != ref.name
            ]
            chosen = None
            for ax, ay in LABEL_SPOTS:
                left = px + ax * (half + 1) - (w if ax < 0 else 0 if ax > 0 else w / 2)
                top = py - h / 2 + ay * (h / 2 + half)
                rect = QRectF(left, top, w, h)
                if not area.contains(rect):
                    continue
                if any(rect.intersects(t) for t in taken + others):
                    continue
                chosen = rect
                break
            if chosen is None:
                label.setVisible(False)
                self.unlabelled.append(ref.name)
                continue
            taken.append(chosen)
            label.setAnchor((0, 0))
            label.setPos(x0 + chosen.left() / sx, y1 - chosen.top() / sy)
            label.setVisible(True)
            label.updateTransform(force=True)  # (else it takes the view's scale at paint)

    def _view_rect(self, label: pg.TextItem) -> QRectF:
        """A label's rectangle in the plot's pixels (0, 0: the plot's top left)."""
        vb = self.plot.getPlotItem().vb
        label.updateTransform(force=True)
        scene = label.sceneBoundingRect()
        return vb.mapRectFromScene(scene)

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
