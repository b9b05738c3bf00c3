"""The Hugging Face Hub in the Models tab: search, choose what to download, watch it come.

Searching and listing a repository's files run in the thread pool; the download runs as
`tokenscope models pull hf:... --progress-json` (see pull_process) with a progress bar, speed,
time left and Cancel. Everything lands in the standard Hugging Face cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.background import run_in_background
from tokenscope.gui.models.pull_process import PullProcess
from tokenscope.units import format_bytes

if TYPE_CHECKING:
    from tokenscope.lm.hub import Choice
    from tokenscope.lm.hub_listing import HubModel

RESULT_COLUMNS = ("Model", "Parameters", "Size", "Format", "Licence", "Downloads")


def _message(error: str) -> str:
    """The person-facing part of a background error ("ModelNotFoundError: ...")."""
    kind, _, text = error.partition(": ")
    return text if kind.endswith("Error") and text else error


def _duration(seconds: float) -> str:
    if seconds < 0:
        return ""
    if seconds < 90:
        return f"{seconds:.0f} s left"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min left"
    return f"{seconds / 3600:.1f} h left"


class HubPanel(QGroupBox):
    #: (hf:... reference) — a download finished; the tab lists it and may open it
    downloaded = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Hugging Face Hub", parent)
        self.setObjectName("hubPanel")
        self.results: list[HubModel] = []
        self.choices: list[Choice] = []
        self._asked = 0  # which listing of files the combo box waits for
        self.query = QLineEdit(objectName="hubQuery", clearButtonEnabled=True)
        self.query.setPlaceholderText("Search models, e.g. pythia, SmolLM2, Qwen2.5 GGUF")
        self.query.setAccessibleName("Search the Hub")
        self.search_button = QPushButton("Search", objectName="hubSearchButton")
        self.table = QTableWidget(0, len(RESULT_COLUMNS), objectName="hubResults")
        self.table.setHorizontalHeaderLabels(RESULT_COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setAccessibleName("Hub search results")
        self.table.verticalHeader().setVisible(False)
        # Editable: a commit can be typed; the list holds the repository's branches and tags
        # (Pythia's training checkpoints: step0 ... step143000).
        self.revision = QComboBox(objectName="hubRevision", editable=True)
        revision_text = self.revision.lineEdit()
        assert revision_text is not None  # an editable combo box has one
        revision_text.setPlaceholderText("main")
        self.revision.setToolTip(
            "A branch, tag or commit, e.g. step3000 for one of Pythia's training checkpoints"
        )
        self.revision.setMinimumWidth(140)
        self.revision.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.choice = QComboBox(objectName="hubChoice")
        self.choice.setAccessibleName("What to download")
        self.choice.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.download_button = QPushButton("Download", objectName="hubDownloadButton")
        self.cancel_button = QPushButton("Cancel", objectName="hubCancelButton")
        self.progress = QProgressBar(objectName="hubProgress", visible=False)
        self.progress.setTextVisible(True)
        self.status = QLabel(
            textFormat=Qt.TextFormat.PlainText, objectName="hubStatus", wordWrap=True
        )
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setText(
            "Downloads go to the Hugging Face cache, shared with other tools. Set HF_TOKEN or run "
            "`hf auth login` for gated models."
        )

        search_row = QHBoxLayout()
        search_row.addWidget(self.query, 1)
        search_row.addWidget(self.search_button)
        pick_row = QHBoxLayout()
        pick_row.addWidget(QLabel("Revision:"))
        pick_row.addWidget(self.revision)
        pick_row.addWidget(QLabel("Download:"))
        pick_row.addWidget(self.choice, 1)
        pick_row.addWidget(self.download_button)
        pick_row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(search_row)
        layout.addWidget(self.table, 1)
        layout.addLayout(pick_row)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)

        self.pull = PullProcess(self)
        self.pull.progressed.connect(self._on_progress)
        self.pull.said.connect(self._on_said)
        self.pull.finished.connect(self._on_finished)
        self.search_button.clicked.connect(self.search)
        self.query.returnPressed.connect(self.search)
        self.table.itemSelectionChanged.connect(self._on_model_chosen)
        revision_text.editingFinished.connect(self._list_choices)
        self.revision.activated.connect(lambda _index: self._list_choices())
        self.download_button.clicked.connect(self.download)
        self.cancel_button.clicked.connect(self.pull.cancel)
        self._update_buttons()

    # ----- searching ---------------------------------------------------------------------------

    def search(self) -> None:
        from tokenscope.lm.hub_listing import search

        words = self.query.text().strip()
        self.search_button.setEnabled(False)
        self.status.setText(f"Searching the Hub for {words!r}…" if words else "Searching…")
        run_in_background(lambda: search(words), self._on_results, self)

    def _on_results(self, results: list[HubModel] | None, error: str | None) -> None:
        self.search_button.setEnabled(True)
        if error:
            self.status.setText(f"Cannot search the Hub: {_message(error)}")
            return
        self.results = results or []
        self.table.setRowCount(len(self.results))
        for row, m in enumerate(self.results):
            values = (
                m.id + ("  (gated)" if m.gated else ""),
                f"{m.parameters / 1e6:,.0f} M" if m.parameters else "",
                format_bytes(m.size_bytes),
                " + ".join(m.formats),
                m.license or "",
                f"{m.downloads:,}" if m.downloads is not None else "",
            )
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)
                if col == 0 and m.gated:
                    item.setToolTip("Gated: accept its licence on its Hub page first")
                self.table.setItem(row, col, item)
        self.status.setText(
            f"{len(self.results)} models found. Pick one to see what it offers."
            if self.results
            else "No models found."
        )
        self._update_buttons()

    def selected(self) -> HubModel | None:
        row = self.table.currentRow()
        return self.results[row] if 0 <= row < len(self.results) else None

    def _on_model_chosen(self) -> None:
        """A new model: its revisions (in the background), then what it offers at main."""
        from tokenscope.lm.hub import revisions

        m = self.selected()
        self.revision.blockSignals(True)
        self.revision.clear()
        self.revision.blockSignals(False)
        if m is not None:
            run_in_background(
                lambda: revisions(m.id), lambda r, e: self._on_revisions(m.id, r, e), self
            )
        self._list_choices()

    def _on_revisions(self, repo: str, found: list[str] | None, error: str | None) -> None:
        current = self.selected()
        if error or current is None or current.id != repo:
            return  # (the listing of files says what is wrong, if anything)
        typed = self.revision.currentText()
        self.revision.blockSignals(True)
        self.revision.addItems(found or [])
        self.revision.setEditText(typed)
        self.revision.blockSignals(False)

    def _list_choices(self) -> None:
        from tokenscope.lm.hub import choices

        m = self.selected()
        self.choice.clear()
        self.choices = []
        self._update_buttons()
        if m is None:
            return
        revision = self.revision.currentText().strip() or None
        self.status.setText(f"Reading the files of {m.id}…")
        self._asked += 1
        asked = self._asked
        run_in_background(
            lambda: choices(m.id, revision), lambda r, e: self._on_choices(asked, r, e), self
        )

    def _on_choices(self, asked: int, found: list[Choice] | None, error: str | None) -> None:
        if asked != self._asked:
            return  # the person moved on (another model, another revision)
        current = self.selected()
        if current is None:
            return
        repo = current.id
        if error:
            self.status.setText(_message(error))
            return
        self.choice.clear()
        self.choices = found or []
        for c in self.choices:
            self.choice.addItem(f"{c.label} ({format_bytes(c.size_bytes)})", c.ref)
        gated = " It is gated: accept its licence on its Hub page first." if current.gated else ""
        self.status.setText(f"{repo}: choose what to download.{gated}")
        self._update_buttons()

    # ----- downloading -------------------------------------------------------------------------

    def download(self) -> None:
        ref = self.choice.currentData()
        if not ref or self.pull.running:
            return
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.status.setText(f"Starting the download of {ref}…")
        self.pull.start(ref, "--progress-json")
        self._update_buttons()

    def _on_progress(self, file: str, done: int, total: int, speed: float, left: float) -> None:
        if total > 0:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * done / total))
            self.progress.setFormat(f"{100 * done / total:.0f} %")
        eta = _duration(left)
        rate = f", {format_bytes(int(speed))}/s" if speed > 0 else ""
        self.status.setText(
            f"{file}: {format_bytes(done)} of {format_bytes(total)}{rate}"
            + (f", {eta}" if eta else "")
        )

    def _on_said(self, line: str) -> None:
        if not line.startswith(("running", "{")):
            self.status.setText(line)

    def _on_finished(self, ok: bool, message: str, offline: bool) -> None:
        self.progress.setVisible(False)
        ref = self.pull.target
        if ok:
            self.status.setText(f"{ref} is downloaded. It is listed above; open it from there.")
            self.downloaded.emit(ref)
        elif message == "cancelled":
            self.status.setText(
                f"Download of {ref} cancelled. What came is kept; Download again to resume."
            )
        elif offline:
            self.status.setText(f"The Hub cannot be reached now: {message}")
        else:
            self.status.setText(message)
        self._update_buttons()

    def _update_buttons(self) -> None:
        busy = self.pull.running
        self.download_button.setEnabled(bool(self.choices) and not busy)
        self.cancel_button.setEnabled(busy)
        self.choice.setEnabled(bool(self.choices) and not busy)
        self.revision.setEnabled(not busy)

    def shutdown(self) -> None:
        self.pull.shutdown()
