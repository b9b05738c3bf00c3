"""The Scale tab's third mode: in-context learning across sizes and across training.

Each ticked model reads a text (by default the bundled Shakespeare sample; held-out text of the
induction corpus; or a text
file the person opens); its ICL score is its loss on late tokens minus its loss on early
tokens (nats: negative means it uses what it read), with its strongest induction head and the
score again with that head silenced (tokenscope.lm.scale.measure_icl). The size chart shows the
score against parameters, the training chart a run's score at each checkpoint against training
tokens. "Hub checkpoints…" lists a Hub repository's training checkpoints (stepN revisions) and
adds some of them to the models, downloaded before they are measured.
"""

from __future__ import annotations

import codecs
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.background import run_in_background
from tokenscope.gui.scale.scale_charts import _CurvesChart, size_plot
from tokenscope.gui.widgets.plots import log_ticks
from tokenscope.gui.widgets.theme import chart_colors, chart_text
from tokenscope.service.jobs import ScaleRun
from tokenscope.units import format_count

if TYPE_CHECKING:
    from tokenscope.lm.scale import ScaleICL
    from tokenscope.service.records import ScaleResult

SHAKESPEARE = "Shakespeare (the bundled sample)"
HELD_OUT = "Held-out induction text"
OPEN_FILE = "Open text file…"
#: a text file is read up to this many bytes (the score needs a few thousand tokens at most)
MAX_TEXT_BYTES = 2_000_000
SCORE_AXIS = "ICL score (nats; lower learns more from context)"
EXPLANATION = (
    "ICL score = loss on late tokens minus loss on early tokens of the same text. Negative = "
    "the model uses what it read earlier to predict what comes next; about 0 = it does not. "
    "The last column silences the strongest induction head: a score that rises toward 0 "
    "without it shows that head doing much of the work."
)
COLUMNS = ["model", "parameters", "ICL score", "strongest induction head", "its score",
           "ICL score without it"]  # fmt: skip
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


def _message(error: str) -> str:
    """The person-facing part of a background error ("ValueError: ...")."""
    kind, _, text = error.partition(": ")
    return text if kind.endswith("Error") and text else error


def read_text_file(path: str | Path) -> tuple[str, bool]:
    """A text file's text (its first MAX_TEXT_BYTES), and whether it was cut there;
    ValueError for a binary, non-UTF-8 or empty file."""
    name = Path(path).name
    with open(path, "rb") as f:
        data = f.read(MAX_TEXT_BYTES + 1)
    cut = len(data) > MAX_TEXT_BYTES
    data = data[:MAX_TEXT_BYTES]
    if b"\0" in data:
        raise ValueError(f"{name} looks like a binary file, not text.")
    try:  # (a cut may fall inside a character: the incremental decoder leaves it out)
        text = codecs.getincrementaldecoder("utf-8")().decode(data, final=not cut)
    except UnicodeDecodeError:
        raise ValueError(f"{name} is not UTF-8 text.") from None
    if not text.strip():
        raise ValueError(f"{name} has no text to read.")
    return text, cut


def _note() -> QLabel:
    label = QLabel(EXPLANATION, textFormat=Qt.TextFormat.PlainText, wordWrap=True)
    label.setObjectName("scaleIclNote")
    return label


class IclSizeChart(QWidget):
    """Each model's ICL score against its parameters (log scale)."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("scaleIclSizeChart")
        self.scores: list[ScaleICL] = []  # smallest first
        self.plot, self._curve, self.empty = size_plot(
            "In-context learning by size", SCORE_AXIS,
            "Press Run: each ticked model's ICL score appears here, against its size",
        )  # fmt: skip
        self.plot.getPlotItem().getAxis("left").enableAutoSIPrefix(False)
        self.plot.addLine(y=0, pen=pg.mkPen(chart_colors()[2], style=Qt.PenStyle.DashLine))
        self._labels: list[pg.TextItem] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(_note())
        self.set_scores([])

    def set_scores(self, scores: list[ScaleICL]) -> None:
        self.scores = sorted((s for s in scores if s.parameters > 0), key=lambda s: s.parameters)
        item = self.plot.getPlotItem()
        for label in self._labels:
            item.removeItem(label)
        self._labels = []
        data = self.data()
        xs, ys = [x for _n, x, _y in data], [y for _n, _x, y in data]
        self._curve.setData(xs, ys)
        self.empty.setVisible(not data)
        for n, (s, x, y) in enumerate(zip(self.scores, xs, ys, strict=True)):
            label = chart_text(f"{s.name}\n{y:+.3f}", anchor=(0, 1 if n % 2 == 0 else 0))
            label.setPos(x + 0.05, y)
            item.addItem(label)
            self._labels.append(label)
        low, high = min([*ys, -0.5]), max([*ys, 0.1])
        item.setYRange(low - 0.15 * (high - low), high + 0.25 * (high - low), padding=0)
        if xs:
            item.setXRange(min(xs) - 0.3, max(xs) + 1.2, padding=0)  # (room for labels)
        else:
            item.setXRange(5, 10, padding=0)
            self.empty.setPos(7.5, (low + high) / 2)

    def data(self) -> list[tuple[str, float, float]]:
        """(name, log10 parameters, ICL score) of each point drawn."""
        return [(s.name, math.log10(s.parameters), s.icl_score) for s in self.scores]

    def rows(self) -> list[list[Any]]:
        head = ["model", "target", "parameters", "icl_score", "induction_max",
                "previous_token_max", "strongest_head", "icl_without_strongest"]  # fmt: skip
        return [head] + [
            [s.name, s.model, s.parameters, s.icl_score, s.induction_max, s.previous_token_max,
             f"L{s.strongest_head[0]}H{s.strongest_head[1]}", s.icl_without_strongest]
            for s in self.scores
        ]  # fmt: skip


class IclTrainingChart(_CurvesChart):
    """A run's ICL score at each checkpoint against training tokens (log scale)."""

    def __init__(self) -> None:
        super().__init__(
            "scaleIclTrainingChart",
            "In-context learning as training goes on (one curve per run)",
            "training tokens (log scale)",
            SCORE_AXIS,
            "Add a training run's folder (Add run…) or Pythia's Hub checkpoints: each "
            "checkpoint's ICL score appears here.",
        )
        self.curves: list[tuple[ScaleICL, list[int], list[float]]] = []
        self.legend.setOffset((-10, 10))  # top right: the scores lie low, below 0
        layout = self.layout()
        assert isinstance(layout, QVBoxLayout)
        layout.addWidget(_note())
        self.plot.getPlotItem().setLogMode(x=True, y=False)
        for side in ("left", "bottom"):  # (plain numbers, no "x0.001" beside the axis name)
            self.plot.getPlotItem().getAxis(side).enableAutoSIPrefix(False)
        self.plot.addLine(y=0, pen=pg.mkPen(chart_colors()[2], style=Qt.PenStyle.DashLine))
        self.set_results([])

    def set_results(self, results: list[ScaleResult]) -> None:
        self.curves = []
        for r in results:
            points = [p for p in r.icl_curve if p.tokens > 0]  # (a log axis has no 0)
            if r.icl is not None and points:
                self.curves.append((r.icl, [p.tokens for p in points],
                                    [p.icl_score for p in points]))  # fmt: skip
        self.curves += _hub_curves(results)
        self.curves.sort(key=lambda c: c[0].parameters)
        self._draw([(f"{s.name} ({format_count(s.parameters)})", xs, ys)
                    for s, xs, ys in self.curves])  # fmt: skip
        item = self.plot.getPlotItem()
        tokens = [t for _s, xs, _ys in self.curves for t in xs]
        scores = [y for _s, _xs, ys in self.curves for y in ys]
        self.empty.setVisible(not tokens)
        low, high = min([*scores, -0.5]), max([*scores, 0.1])
        item.setYRange(low - 0.1 * (high - low), high + 0.1 * (high - low), padding=0)
        if tokens:
            item.getAxis("bottom").setTicks([log_ticks(tokens)])
            item.setXRange(math.log10(min(tokens)) - 0.1, math.log10(max(tokens)) + 0.1,
                           padding=0)  # fmt: skip
        else:
            item.getAxis("bottom").setTicks(None)
            item.setXRange(3, 7, padding=0)
            self.empty.setPos(5, (low + high) / 2)

    def data(self) -> list[tuple[str, list[int], list[float]]]:
        return [(s.name, xs, ys) for s, xs, ys in self.curves]

    def rows(self) -> list[list[Any]]:
        out: list[list[Any]] = [["run", "parameters", "training tokens", "icl_score"]]
        for s, xs, ys in self.curves:
            out += [[s.model, s.parameters, x, y] for x, y in zip(xs, ys, strict=True)]
        return out


def _hub_curves(results: list[ScaleResult]) -> list[tuple[ScaleICL, list[int], list[float]]]:
    """Hub training checkpoints (`hf:REPO@stepN`) of a family whose tokens per step are
    known, one curve per repository."""
    import dataclasses
    import re

    from tokenscope.lm import hub

    found: dict[str, list[tuple[int, ScaleICL]]] = {}
    for r in results:
        got = re.fullmatch(r"([^@]+)@step(\d+)", r.target.removeprefix(hub.PREFIX))
        if r.icl is not None and got and hub.is_hub_ref(r.target) and int(got[2]) > 0:
            per_step = _tokens_per_step(got[1])
            if per_step:
                found.setdefault(got[1], []).append((int(got[2]) * per_step, r.icl))
    curves = []
    for repo, points in found.items():
        points.sort(key=lambda p: p[0])
        first = dataclasses.replace(points[0][1], name=repo, model=hub.PREFIX + repo)
        curves.append((first, [t for t, _s in points], [s.icl_score for _t, s in points]))
    return curves


def _tokens_per_step(repo: str) -> int:
    """Training tokens per step of a model family, where known (Pythia: 1,024 sequences of
    2,048 tokens a step); 0 otherwise."""
    return 1024 * 2048 if repo.lower().startswith("eleutherai/pythia") else 0


class HubCheckpointsDialog(QDialog):
    """Type a Hub repository, list its training checkpoints (stepN revisions, off the GUI
    thread), choose how many; `chosen()` are the `hf:REPO@stepN` refs to add."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("scaleHubDialog")
        self.setWindowTitle("Training checkpoints from the Hub")
        self.setMinimumWidth(520)
        self._names: list[str] = []
        self._repo = ""
        self.repo = QLineEdit("EleutherAI/pythia-14m", objectName="scaleHubRepo")
        self.repo.setAccessibleName("Hub repository")
        self.list_button = QPushButton("List checkpoints", objectName="scaleHubList")
        self.count = QSpinBox(objectName="scaleHubCount")
        self.count.setRange(2, 200)
        self.count.setValue(6)
        self.count.setToolTip("Spread evenly on a log scale of the step: most change is early")
        self.message = QLabel(textFormat=Qt.TextFormat.PlainText, wordWrap=True,
                              objectName="scaleHubMessage")  # fmt: skip
        self.choice = QListWidget(objectName="scaleHubChoice")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.add_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.add_button.setText("Add to models")
        self.add_button.setEnabled(False)
        form = QFormLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.repo, 1)
        row.addWidget(self.list_button)
        form.addRow("Repository", row)
        form.addRow("How many", self.count)
        form.addRow(self.message)
        form.addRow(self.choice)
        form.addRow(QLabel("They are downloaded when measured (each is a whole model).",
                           wordWrap=True))  # fmt: skip
        form.addRow(self.buttons)
        self.list_button.clicked.connect(self.list_checkpoints)
        self.repo.returnPressed.connect(self.list_checkpoints)
        self.count.valueChanged.connect(lambda _v: self._show_choice())
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

    def list_checkpoints(self) -> None:
        from tokenscope.lm import hub

        repo = self.repo.text().strip().removeprefix(hub.PREFIX)
        if repo.count("/") != 1 or "@" in repo:
            self.message.setText("Type a repository as OWNER/NAME, e.g. EleutherAI/pythia-14m.")
            return
        self.list_button.setEnabled(False)
        self.add_button.setEnabled(False)
        self.message.setText(f"Listing the revisions of {repo}…")
        run_in_background(lambda: hub.training_checkpoints(repo),
                          lambda names, error: self._on_listed(repo, names, error),
                          self)  # fmt: skip

    def _on_listed(self, repo: str, names: list[str] | None, error: str | None) -> None:
        self.list_button.setEnabled(True)
        if error is not None or names is None:
            self._names = []
            self.message.setText(f"Could not list {repo}: {_message(error or '')}")
        elif not names:
            self._names = []
            self.message.setText(f"{repo} has no training checkpoints (revisions named stepN).")
        else:
            self._repo, self._names = repo, names
            self.message.setText(f"{repo}: {len(names)} training checkpoints.")
        self._show_choice()

    def _show_choice(self) -> None:
        self.choice.clear()
        self.choice.addItems(self.chosen())
        self.add_button.setEnabled(bool(self._names))

    def chosen(self) -> list[str]:
        """The refs to add: `count` of the checkpoints listed, first and last among them."""
        from tokenscope.lm import hub

        if not self._names:
            return []
        names = hub.spread_checkpoints(self._names, self.count.value())
        return [f"{hub.PREFIX}{self._repo}@{name}" for name in names]


class IclMode(QObject):
    """The mode's widgets (placed by the tab), its job, its charts and its table."""

    def __init__(self, tab: QWidget) -> None:
        super().__init__(tab)
        self.tab = tab
        self._texts: dict[str, str] = {}  # file path -> its text
        self.radio = QRadioButton("In-context learning", objectName="scaleModeIcl")
        self.radio.setToolTip("How much each model learns from the text it reads (ICL score)")
        self.text_choice = QComboBox(objectName="scaleIclText")
        self.text_choice.setAccessibleName("Text to measure in-context learning on")
        self.text_choice.addItem(SHAKESPEARE, "")
        self.text_choice.addItem(HELD_OUT, "induction")
        self.text_choice.addItem(OPEN_FILE, OPEN_FILE)
        self.text_choice.setToolTip("Natural prose (the fair text across sizes), held-out text "
                                    "of the induction corpus (random strings said twice: only "
                                    "copying helps), or a text file of your own")  # fmt: skip
        self.hub_button = QPushButton("Hub checkpoints…", objectName="scaleHubCheckpoints")
        self.hub_button.setToolTip("A model family's training checkpoints from the Hub "
                                   "(e.g. Pythia's stepN revisions)")  # fmt: skip
        self.message = QLabel(textFormat=Qt.TextFormat.PlainText, wordWrap=True,
                              objectName="scaleIclMessage")  # fmt: skip
        self.message.setVisible(False)
        self.size_chart = IclSizeChart()
        self.training_chart = IclTrainingChart()
        self.dialog: HubCheckpointsDialog | None = None
        self._previous = 0
        self.text_choice.activated.connect(self._on_text_chosen)
        self.hub_button.clicked.connect(lambda: self.open_hub_dialog())

    # ----- the text ------------------------------------------------------------------------

    def _on_text_chosen(self, index: int) -> None:
        if self.text_choice.itemData(index) != OPEN_FILE:
            self._previous = index
            return
        self.text_choice.setCurrentIndex(self._previous)
        path, _ = QFileDialog.getOpenFileName(self.tab, "A text to measure in-context "
                                              "learning on", str(Path.cwd()))  # fmt: skip
        if path:
            self.open_text(path)

    def open_text(self, path: str) -> None:
        """Read a text file off the GUI thread; it becomes the text chosen."""
        self._say(f"Reading {Path(path).name}…")
        run_in_background(lambda: read_text_file(path),
                          lambda got, error: self._on_read(path, got, error),
                          self.tab)  # fmt: skip

    def _on_read(self, path: str, got: tuple[str, bool] | None, error: str | None) -> None:
        if error is not None or got is None:
            self._say(f"Could not use {Path(path).name}: {_message(error or '')}")
            return
        text, cut = got
        self._texts[path] = text
        index = self.text_choice.findData(path)
        if index < 0:
            self.text_choice.insertItem(self.text_choice.count() - 1, Path(path).name, path)
            index = self.text_choice.findData(path)
        self.text_choice.setItemData(index, path, Qt.ItemDataRole.ToolTipRole)
        self.text_choice.setCurrentIndex(index)
        self._previous = index
        mb = MAX_TEXT_BYTES // 1_000_000
        self._say(f"{Path(path).name}: its first {mb} MB are used." if cut else "")

    def _say(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def text(self) -> str:
        path = self.text_choice.currentData()
        if path and path in self._texts:
            return self._texts[path]
        from tokenscope.train.icl_texts import icl_text

        return icl_text(path if path == "induction" else "shakespeare")[0]

    # ----- the job -------------------------------------------------------------------------

    def job(self, targets: list[str], use_cache: bool) -> ScaleRun:
        from tokenscope.lm import hub

        pull = any(hub.is_hub_ref(t) for t in targets)
        return ScaleRun(tuple(targets), icl_text=self.text(), use_cache=use_cache, pull=pull)

    def open_hub_dialog(self) -> HubCheckpointsDialog:
        """The Hub checkpoints dialog (not modal); what it chooses is added to the models."""
        if self.dialog is None:
            self.dialog = HubCheckpointsDialog(self.tab)
            self.dialog.accepted.connect(self._add_chosen)
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def _add_chosen(self) -> None:
        assert self.dialog is not None
        for ref in self.dialog.chosen():
            label = f"{ref.split(':', 1)[1]}  (Hub checkpoint)"
            self.tab.add_target(ref, label)  # type: ignore[attr-defined]
        self.radio.setChecked(True)

    # ----- showing -------------------------------------------------------------------------

    def show(self, results: list[ScaleResult], table: QTableWidget) -> None:
        self.size_chart.set_scores([r.icl for r in results if r.icl is not None])
        self.training_chart.set_results(results)
        rows: list[list[str]] = []
        for r in results:
            if r.error:
                rows.append([Path(r.target).name or r.target, "", "", "", "", r.error])
            elif (s := r.icl) is not None:
                layer, head = s.strongest_head
                name = s.name + ("  (cached)" if s.cached else "")
                size = f"{s.parameters:,}" if s.parameters else "?"
                head_name = f"layer {layer}, head {head}"
                without = f"{s.icl_without_strongest:+.4f}"
                rows.append([name, size, f"{s.icl_score:+.4f}", head_name,
                             f"{s.induction_max:.3f}", without])  # fmt: skip
        table.setColumnCount(len(COLUMNS))
        table.setHorizontalHeaderLabels(COLUMNS)
        table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                cell = QTableWidgetItem(text)
                if j in (1, 2, 4, 5):
                    cell.setTextAlignment(RIGHT)
                table.setItem(i, j, cell)
        table.resizeColumnsToContents()
