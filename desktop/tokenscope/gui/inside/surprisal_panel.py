"""The surprisal view: a text coloured by each token's surprisal, its statistics, and where
two models disagree."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from tokenscope.files import FileReadError, open_regular_file
from tokenscope.gui.inside.common import Exportable, surprise_color
from tokenscope.gui.widgets.long_text import PlainTextEditor
from tokenscope.service.records import Progress, SurprisalView

# ----- surprisal ----------------------------------------------------------------------------


#: the longest text the view opens (characters)
MAX_SURPRISAL_CHARS = 2_000_000
#: tokens coloured at most (the figures cover the whole text)
MAX_COLORED = 20_000


class SurprisalPanel(Exportable):
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
            # A FIFO would block the window (open() waits for a writer), /dev/zero never ends,
            # and a huge file needs reading only as far as the limit.
            with open_regular_file(p, "a text file") as f:
                data = f.read(MAX_SURPRISAL_CHARS * 4 + 1)
        except FileReadError as e:
            self.message.emit(str(e))
            return
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

    def on_progress(self, p: Progress) -> None:
        if p.total:
            self.progress.setRange(0, p.total)
            self.progress.setValue(p.done)
            self.progress.setFormat(f"{p.label}: window {p.done} of {p.total}")
        else:
            self.progress.setRange(0, 0)
            self.progress.setFormat(f"opening {p.label}…")

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
        # Coloured up to MAX_COLORED tokens: laying out one anchor per token of a book would
        # hold the window for seconds; the statistics above cover the whole text.
        shown_tokens = a.tokens[:MAX_COLORED]
        cells, position = [], 0
        for i, t in enumerate(shown_tokens):
            cells.append(html.escape(a.text[position : t.start]))
            piece = a.text[t.start : t.end] if t.end > position else ""
            cells.append(
                f'<a href="tok:{i}" style="color:#111;text-decoration:none;'
                f'background-color:{surprise_color(t.bits)}">'
                f"{html.escape(piece).replace(chr(10), '↵<br>')}</a>"
            )
            position = max(position, t.end)
        if len(a.tokens) > MAX_COLORED:
            cells.append(
                f"<p><i>… the first {MAX_COLORED:,} of {len(a.tokens):,} tokens are coloured; "
                "the figures above cover them all.</i></p>"
            )
        else:
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
        out: list[list[Any]] = [["model", "token", "start", "end", "bits", "probability", "rank"]]
        for r in self.view.results:
            for t in r.tokens:
                out.append([r.model, t.display, t.start, t.end, t.bits, t.probability, t.rank])
        return out

    def picture(self) -> QWidget:
        return self.result
