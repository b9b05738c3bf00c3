"""The Inside tab: why the model predicts what it predicts.

Three views of the loaded model's own forward pass, each asked of the model service:
- Logit lens: every layer's guess of the token after the cursor (the next token by default),
  read through the model's own final norm and output head; live as you type for models up to
  LIVE_PARAMETERS, on demand (Update) for larger ones.
- Attention: a layer's attention (one head, or the heads averaged) as a token x token heat
  map, the last token's attention as a strip, every head's induction score, and a click on a
  head to silence it (ablation) — the next-token chart and the few-shot sweeps follow.
- Surprisal: a text's tokens coloured by their surprisal in bits, with tooltips, its
  perplexity and bits per byte; with a second model, where the two disagree most.
Each view exports PNG, SVG or CSV.
"""

from __future__ import annotations

import csv
import html
import math
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QRectF, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QColor, QCursor, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGraphicsView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTextBrowser,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.service_bridge import JobHandle, ServiceBridge
from tokenscope.gui.widgets.long_text import PlainTextEditor
from tokenscope.gui.widgets.plots import quiet_plot
from tokenscope.service.jobs import AttentionMap, Induction, Lens, SetAblation, Surprisal
from tokenscope.service.records import AttentionView, LensView, SurprisalProgress, SurprisalView

#: models up to this size follow every keystroke; larger ones update on demand
LIVE_PARAMETERS = 150_000_000
DEBOUNCE_MS = 40
MAX_SURPRISAL_CHARS = 2_000_000


def heat(p: float) -> QColor:
    """White for 0, deep blue for 1 (light enough for dark text up to ~0.6)."""
    p = max(0.0, min(1.0, p))
    return QColor.fromRgbF(1 - 0.75 * p, 1 - 0.55 * p, 1.0)


def surprise_color(bits: float | None) -> str:
    """Green for unsurprising tokens, through yellow, to red at 12 bits and more."""
    if bits is None:
        return "#eeeeee"
    share = max(0.0, min(1.0, bits / 12))
    return QColor.fromHslF((1 - share) * 120 / 360, 0.75, 0.82).name()


def export_widget(widget: QWidget, path: str | Path) -> None:
    """The widget as drawn, to PNG or SVG (by the suffix)."""
    if str(path).lower().endswith(".svg"):
        from PySide6.QtSvg import QSvgGenerator

        generator = QSvgGenerator()
        generator.setFileName(str(path))
        generator.setSize(widget.size())
        generator.setViewBox(QRectF(0, 0, widget.width(), widget.height()))
        painter = QPainter(generator)
        try:
            if isinstance(widget, QGraphicsView):  # (a plot: its scene, drawn into the page)
                widget.render(painter, QRectF(0, 0, widget.width(), widget.height()))
            else:
                widget.render(painter, QPoint(0, 0))
        finally:
            painter.end()
    elif not widget.grab().save(str(path)):
        raise OSError(f"could not write {path}")


class _Exportable(QWidget):
    """A view with an Export… button: PNG, SVG or CSV."""

    message = Signal(str)

    def _export_button(self, name: str) -> QPushButton:
        button = QPushButton("Export…", objectName=f"{name}ExportButton")
        button.setToolTip("Save this view as PNG or SVG, or its numbers as CSV")
        button.clicked.connect(self._export_dialog)
        return button

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export", str(Path.home()), "PNG (*.png);;SVG (*.svg);;CSV (*.csv)"
        )
        if path:
            try:
                self.export(path)
            except OSError as e:
                self.message.emit(f"Could not export: {e}")

    def export(self, path: str | Path) -> None:
        if str(path).lower().endswith(".csv"):
            with open(path, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows(self.rows())
        else:
            export_widget(self.picture(), path)

    def rows(self) -> list[list[Any]]:  # overridden
        return []

    def picture(self) -> QWidget:  # overridden
        return self


# ----- the logit lens ---------------------------------------------------------------------------


class LensPanel(_Exportable):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view: LensView | None = None
        self.summary = QLabel(objectName="lensSummary", wordWrap=True)
        self.follow = QCheckBox("follow the cursor", objectName="lensFollowCursor")
        self.follow.setChecked(True)
        self.follow.setToolTip(
            "Look at the token just before the cursor in the prompt; off: the next token"
        )
        self.update_button = QPushButton("Update", objectName="lensUpdateButton")
        self.update_button.setToolTip("Run the lens on the prompt as it is (Ctrl+L)")
        self.table = QTableWidget(0, 0, objectName="lensTable")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAccessibleName("Logit lens: layers by top tokens")
        self.table.verticalHeader().setDefaultSectionSize(22)
        row = QHBoxLayout()
        row.addWidget(self.follow)
        row.addWidget(self.update_button)
        row.addStretch(1)
        row.addWidget(self._export_button("lens"))
        note = QLabel(
            "Each row applies the model's own final norm and output head to the residual "
            "stream after that layer ('emb': before the first). Darker: more probable. The "
            "last row is the model's prediction.",
            wordWrap=True,
        )
        note.setStyleSheet("color:#555")
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addLayout(row)
        layout.addWidget(self.table, 1)
        layout.addWidget(note)

    def show_view(self, view: LensView) -> None:
        self.view = view
        k = max((len(r.top) for r in view.rows), default=0)
        headers = ["P(final)", "rank"] + [f"#{i + 1}" for i in range(k)]
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(view.rows))
        self.table.setVerticalHeaderLabels(
            ["emb" if r.layer == 0 else f"layer {r.layer}" for r in view.rows]
        )
        for i, r in enumerate(view.rows):
            cells = [(f"{r.target_probability:.3f}", r.target_probability),
                     (str(r.target_rank), 1.0 if r.target_rank == 1 else 0.0)]  # fmt: skip
            cells += [(f"{label}  {p:.3f}", p) for _id, label, p in r.top]
            for j, (text, p) in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setBackground(heat(p))
                if j >= 2 and r.top[j - 2][1] == view.target_label:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(i, j, item)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        at = view.labels[view.position] if view.labels else ""
        first = view.first_top_layer
        when = (
            "the embeddings already rank it first"
            if first == 0
            else f"it becomes the top token at layer {first}"
            if first is not None
            else "no layer ranks it first"
        )
        self.summary.setText(
            f"After {at!r} (token {view.position + 1} of {len(view.labels)}) the model "
            f"predicts {view.target_label!r}; {when}. ({view.seconds * 1000:.0f} ms)"
        )

    def rows(self) -> list[list[Any]]:
        if self.view is None:
            return []
        out = [["layer", "target", "target_rank", "target_probability", "rank", "token", "p"]]
        for r in self.view.rows:
            for rank, (_i, label, p) in enumerate(r.top, 1):
                out.append([r.layer, self.view.target_label, r.target_rank,
                            r.target_probability, rank, label, p])  # fmt: skip
        return out

    def picture(self) -> QWidget:
        return self.table


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


class AttentionPanel(_Exportable):
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
        self.caption = QLabel(objectName="attentionCaption", wordWrap=True)
        self.left_axis, self.bottom_axis = _LabelAxis("left"), _LabelAxis("bottom")
        self.plot = pg.PlotWidget(
            background="w", axisItems={"left": self.left_axis, "bottom": self.bottom_axis}
        )
        quiet_plot(self.plot)
        self.plot.setObjectName("attentionMap")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setColorMap(pg.colormap.get("CET-L12"))
        self.plot.addItem(self.image)
        self.plot.getPlotItem().invertY(True)
        self.plot.getPlotItem().setLabel("left", "query (attends from)")
        self.plot.getPlotItem().setLabel("bottom", "key (attends to)")
        self.strip_axis = _LabelAxis("bottom")
        self.strip = pg.PlotWidget(background="w", axisItems={"bottom": self.strip_axis})
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
        self.heads_note.setStyleSheet("color:#555")
        controls = QHBoxLayout()
        controls.addWidget(QLabel("layer"))
        controls.addWidget(self.layer)
        controls.addWidget(QLabel("head"))
        controls.addWidget(self.head)
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
                self.heads_table.setItem(layer, h, item)
        best = ""
        if self.scores is not None and self.scores.size:
            layer, h = np.unravel_index(int(self.scores.argmax()), self.scores.shape)
            best = (
                f"Highest induction score: layer {layer}, head {h} ({self.scores[layer, h]:.2f}). "
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


# ----- surprisal ----------------------------------------------------------------------------


class SurprisalPanel(_Exportable):
    run_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view: SurprisalView | None = None
        self.text = PlainTextEditor(objectName="surprisalText")
        self.text.setPlaceholderText("Paste a text here (or open a file) and press Score")
        self.text.setAccessibleName("Text to score")
        self.open_button = QPushButton("Open text…", objectName="surprisalOpenButton")
        self.other = QComboBox(objectName="surprisalCompare")
        self.other.setAccessibleName("Compare with")
        self.other.addItem("(no second model)", "")
        self.run_button = QPushButton("Score", objectName="surprisalRunButton")
        self.cancel_button = QPushButton("Cancel", objectName="surprisalCancelButton")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar(objectName="surprisalProgress")
        self.progress.setTextVisible(True)
        self.stats = QLabel(objectName="surprisalStats", wordWrap=True)
        self.result = QTextBrowser(objectName="surprisalView")
        self.result.setOpenLinks(False)
        self.result.setMouseTracking(True)
        self.result.setAccessibleName("The text coloured by surprisal")
        self.differences = QListWidget(objectName="surprisalDifferences")
        self.differences.setAccessibleName("Where the two models disagree most")
        self.differences.setMaximumHeight(150)
        top = QHBoxLayout()
        for w in (self.open_button, QLabel("compare with"), self.other, self.run_button,
                  self.cancel_button):  # fmt: skip
            top.addWidget(w)
        top.addWidget(self.progress, 1)
        top.addWidget(self._export_button("surprisal"))
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.text)
        shown = QWidget()
        sv = QVBoxLayout(shown)
        sv.setContentsMargins(0, 0, 0, 0)
        sv.addWidget(self.stats)
        sv.addWidget(self.result, 1)
        sv.addWidget(self.differences)
        split.addWidget(shown)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 3)
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        self.open_button.clicked.connect(self._open_file)
        self.run_button.clicked.connect(self.run_requested)
        self.result.highlighted.connect(self._on_hover)
        self.result.anchorClicked.connect(lambda url: self._on_hover(url))
        self.differences.currentRowChanged.connect(self._on_difference_picked)
        self._spans: list[tuple[int, int]] = []  # document positions of each token (model A)

    def _open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a text", str(Path.home()), "Text (*.txt *.md);;All files (*)"
        )
        if path:
            self.load_file(path)

    def load_file(self, path: str | Path) -> None:
        """Put a UTF-8 text file in the editor; a binary or huge one is refused, saying why."""
        p = Path(path)
        try:
            data = p.read_bytes()[: MAX_SURPRISAL_CHARS * 4 + 1]
        except OSError as e:
            self.message.emit(f"Could not read {p.name}: {e.strerror or e}")
            return
        if b"\x00" in data[:65536]:
            self.message.emit(f"{p.name} is not text (it has NUL bytes)")
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            self.message.emit(f"{p.name} is not UTF-8 text ({e.reason} at byte {e.start})")
            return
        if len(text) > MAX_SURPRISAL_CHARS:
            self.message.emit(f"{p.name} is longer than {MAX_SURPRISAL_CHARS:,} characters")
            return
        self.text.setPlainText(text)

    def set_running(self, on: bool) -> None:
        self.run_button.setEnabled(not on)
        self.cancel_button.setEnabled(on)
        if on:
            self.progress.setRange(0, 0)
            self.progress.setFormat("scoring…")

    def on_progress(self, p: SurprisalProgress) -> None:
        if p.total:
            self.progress.setRange(0, p.total)
            self.progress.setValue(p.done)
            self.progress.setFormat(f"{p.model}: window {p.done} of {p.total}")
        else:
            self.progress.setRange(0, 0)
            self.progress.setFormat(f"opening {p.model}…")

    def show_view(self, view: SurprisalView) -> None:
        self.view = view
        a = view.results[0]
        lines = [
            f"{r.model}: {len(r.scored):,} tokens, {r.bits_per_token:.2f} bits per token, "
            f"{r.bits_per_byte:.3f} bits per byte, perplexity {r.perplexity:,.2f}"
            + (f" ({r.windows} windows)" if r.windows > 1 else "")
            for r in view.results
        ]
        legend = (
            "Green: expected (near 0 bits); yellow; red: surprising (12 bits and more). Hover "
            "a token for its probability, rank and the model's alternatives."
        )
        if len(view.results) == 2:
            legend += (
                " The list: where the first model is more surprised (+) or less (-) than the "
                "second, on the same bytes of text; click one to find it."
            )
        lines.append(legend)
        self.stats.setText("\n".join(lines))
        cells, position = [], 0
        self._spans = []
        for i, t in enumerate(a.tokens):
            cells.append(html.escape(a.text[position : t.start]))
            piece = a.text[t.start : t.end] if t.end > position else ""
            shown = html.escape(max(piece, "")).replace("\n", "↵<br>")
            cells.append(
                f'<a href="tok:{i}" style="color:#111;text-decoration:none;'
                f'background-color:{surprise_color(t.bits)}">{shown}</a>'
            )
            position = max(position, t.end)
        cells.append(html.escape(a.text[position:]))
        self.result.setHtml('<div style="white-space: pre-wrap">' + "".join(cells) + "</div>")
        self.differences.clear()
        text = a.text
        for s, e, x, y in sorted(view.disagreements, key=lambda d: -abs(d[2] - d[3]))[:50]:
            item = QListWidgetItem(f"{x - y:+6.2f} bits  {text[s:e]!r}  (at {s})")
            item.setData(Qt.ItemDataRole.UserRole, (s, e))
            self.differences.addItem(item)
        self.differences.setVisible(len(view.results) == 2)

    def _on_hover(self, url: QUrl | str) -> None:
        target = url.toString() if isinstance(url, QUrl) else str(url)
        if not target.startswith("tok:") or self.view is None:
            QToolTip.hideText()
            return
        lines = []
        i = int(target[4:])
        for r in self.view.results[:1]:
            t = r.tokens[i]
            if t.bits is None:
                lines.append(f"{t.display}: the first token (nothing before it)")
                continue
            alts = ", ".join(f"{label} {p:.3f}" for label, p in t.top)
            lines.append(
                f"{t.display}: P = {t.probability:.4f}, {t.bits:.2f} bits, rank {t.rank}\n"
                f"the model's top: {alts}"
            )
        QToolTip.showText(QCursor.pos(), "\n".join(lines), self.result)

    def _on_difference_picked(self, row: int) -> None:
        item = self.differences.item(row)
        if item is None or self.view is None:
            return
        start, end = item.data(Qt.ItemDataRole.UserRole)
        found = self.result.document().find(self.view.results[0].text[start:end])
        if not found.isNull():
            self.result.setTextCursor(found)
            self.result.ensureCursorVisible()

    def rows(self) -> list[list[Any]]:
        if self.view is None:
            return []
        out = [["model", "token", "start", "end", "bits", "probability", "rank"]]
        for r in self.view.results:
            for t in r.tokens:
                out.append([r.model, t.display, t.start, t.end, t.bits, t.probability, t.rank])
        return out

    def picture(self) -> QWidget:
        return self.result


# ----- the tab ------------------------------------------------------------------------------


class InsideTab(QWidget):
    #: (message) — for the status bar; GUI thread
    message = Signal(str)
    #: () — heads were silenced or restored: other views should ask the model again
    ablation_changed = Signal()

    def __init__(self, bridge: ServiceBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("insideTab")
        self.bridge = bridge
        self.model_ready = False
        self.live = True
        self._surprisal: JobHandle | None = None
        self.prompt = PlainTextEditor(objectName="insidePrompt")
        self.prompt.setAccessibleName("Prompt to look inside")
        self.prompt.setPlaceholderText("A prompt: the views show how the model reads it")
        self.prompt.setMaximumHeight(90)
        self.note = QLabel(objectName="insideNote", wordWrap=True)
        self.note.setStyleSheet("color:#9a3412")
        self.lens = LensPanel()
        self.attention = AttentionPanel()
        self.surprisal = SurprisalPanel()
        self.views = QTabWidget(objectName="insideViews")
        self.views.addTab(self.lens, "Logit lens")
        self.views.addTab(self.attention, "Attention")
        self.views.addTab(self.surprisal, "Surprisal")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Prompt (the logit lens and attention views)"))
        layout.addWidget(self.prompt)
        layout.addWidget(self.note)
        layout.addWidget(self.views, 1)
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._debounce.timeout.connect(self._on_prompt_settled)
        self.prompt.textChanged.connect(self._debounce.start)
        self.prompt.cursorPositionChanged.connect(self._on_cursor_moved)
        self.views.currentChanged.connect(lambda _i: self.refresh())
        self.lens.update_button.clicked.connect(lambda: self.refresh(force=True))
        self.lens.follow.toggled.connect(lambda _on: self.refresh(force=True))
        self.attention.layer.valueChanged.connect(lambda _v: self.request_attention())
        self.attention.head.currentIndexChanged.connect(lambda _i: self.request_attention())
        self.attention.induction_requested.connect(self.request_induction)
        self.attention.ablation_requested.connect(self.set_ablation)
        self.surprisal.run_requested.connect(self.run_surprisal)
        self.surprisal.cancel_button.clicked.connect(self.cancel_surprisal)
        for panel in (self.lens, self.attention, self.surprisal):
            panel.message.connect(self.message)

    # ----- model --------------------------------------------------------------------------

    def on_model_loaded(self, info: Any) -> None:
        """Another model is in place: its shape, whether it follows every keystroke."""
        self.model_ready = not info.remote
        self.live = info.parameters <= LIVE_PARAMETERS
        self.attention.set_shape(info.layers, self._heads(info))
        self.attention.show_ablation(frozenset())
        if info.remote:
            self.note.setText(
                "A model on a server returns only its top tokens: these views need the model's "
                "own forward pass. Open the model locally to look inside it."
            )
        elif not self.live:
            self.note.setText(
                f"{info.parameters / 1e6:,.0f} M parameters: the views update on demand "
                "(Update), not at every keystroke."
            )
        else:
            self.note.setText("")
        for w in (self.lens, self.attention, self.surprisal):
            w.setEnabled(self.model_ready)
        self.refresh(force=True)

    def _heads(self, info: Any) -> int:
        return info.heads

    # ----- requests -----------------------------------------------------------------------

    def _on_prompt_settled(self) -> None:
        if self.live:
            self.refresh()

    def _on_cursor_moved(self) -> None:
        if self.live and self.lens.follow.isChecked() and self.views.currentWidget() is self.lens:
            self._debounce.start()

    def refresh(self, force: bool = False) -> None:
        """Ask for the view on show (the one the person is looking at)."""
        if not self.model_ready or (not self.live and not force):
            return
        current = self.views.currentWidget()
        if current is self.lens:
            self.request_lens()
        elif current is self.attention:
            self.request_attention()

    def request_lens(self) -> None:
        text = self.prompt.toPlainText()
        if not self.live:  # a large model: say it is working (one forward pass, seconds)
            self.lens.summary.setText("computing the lens (one forward pass of the model)…")
        cursor = self.prompt.textCursor().position() if self.lens.follow.isChecked() else None
        self.bridge.submit(
            Lens(text, cursor=cursor, top_k=8),
            lane="inside.lens",
            on_done=self._on_lens,
            on_error=self.message.emit,
        )

    def _on_lens(self, view: LensView | None, outcome: str) -> None:
        if outcome == "completed" and view is not None:
            self.lens.show_view(view)

    def request_attention(self) -> None:
        if not self.model_ready:
            return
        if not self.live:
            self.attention.caption.setText("computing the attention weights…")
        self.bridge.submit(
            AttentionMap(self.prompt.toPlainText(), self.attention.layer.value(),
                         self.attention.head.currentData()),
            lane="inside.attention",
            on_done=self._on_attention,
            on_error=self.message.emit,
        )  # fmt: skip

    def _on_attention(self, view: AttentionView | None, outcome: str) -> None:
        if outcome == "completed" and view is not None:
            if view.heads != self.attention.head.count() - 1:
                self.attention.set_shape(view.layers, view.heads)
            self.attention.show_view(view)

    def request_induction(self) -> None:
        self.attention.heads_note.setText("computing the induction scores…")
        self.bridge.submit(
            Induction(), lane="inside.induction", on_done=self._on_induction,
            on_error=self.message.emit,
        )  # fmt: skip

    def _on_induction(self, scores: Any, outcome: str) -> None:
        if outcome == "completed" and scores is not None:
            self.attention.show_scores(scores)

    def set_ablation(self, heads: frozenset[tuple[int, int]]) -> None:
        """Silence exactly `heads`; every view asks again once the model has them."""
        self.bridge.submit(
            SetAblation(frozenset(heads)), lane="inside.ablation",
            on_done=self._on_ablation, on_error=self.message.emit,
        )  # fmt: skip

    def _on_ablation(self, heads: Any, outcome: str) -> None:
        if outcome != "completed" or heads is None:
            return
        self.attention.show_ablation(heads)
        self.ablation_changed.emit()
        self.refresh(force=True)
        n = len(heads)
        self.message.emit(
            f"{n} head{'s' if n != 1 else ''} silenced" if n else "all heads restored"
        )

    # ----- surprisal ----------------------------------------------------------------------

    def set_compare_choices(self, choices: list[tuple[str, str]]) -> None:
        combo = self.surprisal.other
        chosen = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("(no second model)", "")
        for label, target in choices:
            if not str(target).startswith(("http://", "https://")):
                combo.addItem(label, target)
        index = combo.findData(chosen)
        combo.setCurrentIndex(max(0, index))
        combo.blockSignals(False)

    def run_surprisal(self) -> None:
        text = self.surprisal.text.toPlainText()
        if not self.model_ready:
            return
        if not text.strip():
            self.message.emit("Paste or open a text to score first.")
            return
        self.surprisal.set_running(True)
        self._surprisal = self.bridge.submit(
            Surprisal(text, other=self.surprisal.other.currentData() or ""),
            lane="inside.surprisal",
            on_yield=self._on_surprisal_record,
            on_done=self._on_surprisal_done,
            on_error=partial(self._on_surprisal_failed),
        )

    def cancel_surprisal(self) -> None:
        if self._surprisal is not None:
            self._surprisal.cancel()

    def _on_surprisal_record(self, record: Any) -> None:
        if isinstance(record, SurprisalProgress):
            self.surprisal.on_progress(record)

    def _on_surprisal_failed(self, message: str) -> None:
        self.message.emit(f"Surprisal could not run: {message}")

    def _on_surprisal_done(self, view: SurprisalView | None, outcome: str) -> None:
        self.surprisal.set_running(False)
        self.surprisal.progress.setRange(0, 1)
        self.surprisal.progress.setValue(1 if outcome == "completed" else 0)
        self.surprisal.progress.setFormat(outcome)
        if outcome == "completed" and view is not None:
            self.surprisal.show_view(view)

    def sizeHint(self) -> QSize:
        return QSize(900, 600)
