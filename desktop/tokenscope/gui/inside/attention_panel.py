"""The attention view: a layer's (or head's) token x token map, the last token's strip,
and the heads table (induction scores; a click silences a head)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.inside.common import HEAT_INK, Exportable, heat
from tokenscope.gui.widgets.plots import quiet_plot
from tokenscope.gui.widgets.theme import chart_widget, set_tone
from tokenscope.service.records import AttentionView

# ----- attention ----------------------------------------------------------------------------


class _LabelAxis(pg.AxisItem):
    """Token labels at integer positions, thinned to what fits."""

    def __init__(self, orientation: str) -> None:
        super().__init__(orientation)
        self.labels: tuple[str, ...] = ()

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list:
        n = len(self.labels)
        if not n:
            return []
        room = max(1, int(size // 14))
        step = max(1, math.ceil(n / room))
        return [(step, [i + 0.5 for i in range(0, n, step)])]

    def tickStrings(self, values: list, scale: float, spacing: float) -> list[str]:
        out = []
        for v in values:
            i = int(v)
            label = self.labels[i] if 0 <= i < len(self.labels) else ""
            out.append(label if len(label) <= 12 else label[:11] + "…")
        return out


class AttentionPanel(Exportable):
    #: (frozenset of (layer, head)) — the person asked for these heads silenced; GUI thread
    ablation_requested = Signal(object)
    #: () — the induction scores were asked for
    induction_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view: AttentionView | None = None
        self.scores: np.ndarray | None = None
        self.ablated: frozenset[tuple[int, int]] = frozenset()
        self.layer = QSpinBox(objectName="attentionLayer", minimum=0, maximum=0)
        self.layer.setAccessibleName("Layer")
        self.head = QComboBox(objectName="attentionHead")
        self.head.setAccessibleName("Head")
        self.head.addItem("heads averaged", None)
        self.update_button = QPushButton("Update", objectName="attentionUpdateButton")
        self.update_button.setToolTip("Compute the attention on the prompt as it is (Ctrl+L)")
        self.caption = QLabel(objectName="attentionCaption", wordWrap=True)
        self.left_axis, self.bottom_axis = _LabelAxis("left"), _LabelAxis("bottom")
        self.plot = chart_widget(axisItems={"left": self.left_axis, "bottom": self.bottom_axis})
        quiet_plot(self.plot)
        self.plot.setObjectName("attentionMap")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setColorMap(pg.colormap.get("CET-L12"))
        self.plot.addItem(self.image)
        self.plot.getPlotItem().invertY(True)
        self.plot.getPlotItem().setLabel("left", "query (attends from)")
        self.plot.getPlotItem().setLabel("bottom", "key (attends to)")
        self.strip_axis = _LabelAxis("bottom")
        self.strip = chart_widget(axisItems={"bottom": self.strip_axis})
        quiet_plot(self.strip)
        self.strip.setObjectName("lastTokenStrip")
        self.strip.setMaximumHeight(120)
        self.strip.getPlotItem().setLabel("left", "last token")
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=(70, 130, 200))
        self.strip.addItem(self.bars)
        self.induction_button = QPushButton("Induction scores", objectName="inductionButton")
        self.induction_button.setToolTip(
            "Find the heads that copy patterns: attention, on a repeated random sequence, to "
            "the token after the earlier occurrence of the current one (1: copies, 0: not)"
        )
        self.restore_button = QPushButton("Restore all heads", objectName="restoreHeadsButton")
        self.heads_table = QTableWidget(0, 0, objectName="headsTable")
        self.heads_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.heads_table.setAccessibleName("Heads: induction score; click to silence a head")
        self.heads_table.setToolTip("Click a head to silence it (ablation); click again to restore")
        self.heads_table.horizontalHeader().setDefaultSectionSize(54)
        self.heads_note = QLabel(objectName="headsNote", wordWrap=True)
        set_tone(self.heads_note, "muted")
        controls = QHBoxLayout()
        controls.addWidget(QLabel("layer"))
        controls.addWidget(self.layer)
        controls.addWidget(QLabel("head"))
        controls.addWidget(self.head)
        controls.addWidget(self.update_button)
        controls.addStretch(1)
        controls.addWidget(self._export_button("attention"))
        maps = QWidget()
        mv = QVBoxLayout(maps)
        mv.setContentsMargins(0, 0, 0, 0)
        mv.addLayout(controls)
        mv.addWidget(self.caption)
        mv.addWidget(self.plot, 1)
        mv.addWidget(self.strip)
        heads = QWidget()
        hv = QVBoxLayout(heads)
        hv.setContentsMargins(0, 0, 0, 0)
        buttons = QHBoxLayout()
        buttons.addWidget(self.induction_button)
        buttons.addWidget(self.restore_button)
        buttons.addStretch(1)
        hv.addLayout(buttons)
        hv.addWidget(self.heads_table, 1)
        hv.addWidget(self.heads_note)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(maps)
        split.addWidget(heads)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(split)
        self.heads_table.cellClicked.connect(self._on_head_clicked)
        self.induction_button.clicked.connect(self.induction_requested)
        self.restore_button.clicked.connect(lambda: self.ablation_requested.emit(frozenset()))

    def set_shape(self, layers: int, heads: int) -> None:
        self.layer.setMaximum(max(0, layers - 1))
        self.head.blockSignals(True)
        self.head.clear()
        self.head.addItem("heads averaged", None)
        for h in range(heads):
            self.head.addItem(f"head {h}", h)
        self.head.blockSignals(False)
        self.heads_table.setRowCount(layers)
        self.heads_table.setColumnCount(heads)
        self.heads_table.setHorizontalHeaderLabels([f"h{h}" for h in range(heads)])
        self.heads_table.setVerticalHeaderLabels([f"layer {i}" for i in range(layers)])
        self.scores = None
        self._fill_heads()

    def show_view(self, view: AttentionView) -> None:
        self.view = view
        n = len(view.labels)
        self.left_axis.labels = self.bottom_axis.labels = self.strip_axis.labels = view.labels
        self.image.setImage(np.asarray(view.weights, dtype=np.float32), levels=(0.0, 1.0))
        self.image.setRect(QRectF(0, 0, n, n))
        self.plot.getPlotItem().setRange(xRange=(0, n), yRange=(0, n), padding=0)
        last = np.asarray(view.weights)[-1] if n else np.zeros(0)
        self.bars.setOpts(x=np.arange(n) + 0.5, height=last, width=0.8)
        self.strip.getPlotItem().setRange(xRange=(0, max(1, n)), yRange=(0, 1), padding=0.02)
        which = "heads averaged" if view.head is None else f"head {view.head}"
        off = (
            f"; silenced: {', '.join(f'{a}.{b}' for a, b in sorted(view.ablated))}"
            if view.ablated
            else ""
        )
        self.caption.setText(
            f"Layer {view.layer}, {which}: row i shows how much token i attends to each earlier "
            f"token (rows sum to 1){off}."
        )
        self.left_axis.picture = self.bottom_axis.picture = self.strip_axis.picture = None
        for axis in (self.left_axis, self.bottom_axis, self.strip_axis):
            axis.update()

    def show_scores(self, scores: np.ndarray) -> None:
        self.scores = np.asarray(scores)
        self._fill_heads()

    def show_ablation(self, heads: frozenset[tuple[int, int]]) -> None:
        self.ablated = frozenset(heads)
        self._fill_heads()

    def _fill_heads(self) -> None:
        rows, cols = self.heads_table.rowCount(), self.heads_table.columnCount()
        for layer in range(rows):
            for h in range(cols):
                score = None if self.scores is None else float(self.scores[layer, h])
                text = "—" if score is None else f"{score:.2f}"
                off = (layer, h) in self.ablated
                item = QTableWidgetItem(f"{text} off" if off else text)
                item.setBackground(QColor("#f3b8b8") if off else heat(score or 0.0))
                item.setForeground(HEAT_INK)
                self.heads_table.setItem(layer, h, item)
        best = ""
        if self.scores is not None and self.scores.size:
            top_layer, top_head = np.unravel_index(int(self.scores.argmax()), self.scores.shape)
            best = (
                f"Highest induction score: layer {top_layer}, head {top_head} "
                f"({self.scores[top_layer, top_head]:.2f}). "
            )
        silenced = len(self.ablated)
        note = best
        if silenced:
            plural = "s" if silenced != 1 else ""
            note += f"{silenced} head{plural} silenced: every chart and sweep runs without them. "
        self.heads_note.setText(note + "Click a head to silence it.")

    def _on_head_clicked(self, layer: int, head: int) -> None:
        self.ablation_requested.emit(self.ablated ^ {(layer, head)})

    def rows(self) -> list[list[Any]]:
        if self.view is None:
            return []
        labels = list(self.view.labels)
        return [["query \\ key", *labels]] + [
            [labels[i], *[float(w) for w in row]] for i, row in enumerate(self.view.weights)
        ]

    def picture(self) -> QWidget:
        return self.plot
