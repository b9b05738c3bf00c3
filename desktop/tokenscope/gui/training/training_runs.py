"""Past runs: the folders under data_dir()/runs, newest first, each with how far it got.

What a run folder holds is read by tokenscope.train.runs (list_runs), in the thread pool.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.background import run_in_background
from tokenscope.train.runs import RunInfo, list_runs, runs_root


class TrainingRuns(QGroupBox):
    """The list of past runs; choosing one reopens it with its curves."""

    #: (run folder) — the person chose this run to look at; GUI thread
    run_chosen = Signal(str)
    #: (list of RunInfo, newest first) — the runs folder was read; GUI thread
    listed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Runs", parent)
        self.setObjectName("trainingRuns")
        self.runs: list[RunInfo] = []
        self._list_id = 0
        self.list = QListWidget(objectName="runsList")
        self.list.setAccessibleName("Past training runs")
        self.refresh_button = QPushButton("Refresh", objectName="refreshRunsButton")
        self.refresh_button.setAccessibleName("Refresh the list of runs")
        self.open_button = QPushButton("Open run", objectName="openRunButton")
        self.open_button.setAccessibleName("Open the selected run")
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.refresh_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        self.refresh_button.clicked.connect(self.refresh)
        self.open_button.clicked.connect(self._on_open_clicked)
        self.list.itemDoubleClicked.connect(self._on_list_double_clicked)

    def refresh(self) -> None:
        """Read the runs folder again (in the background)."""
        self._list_id += 1
        request, root = self._list_id, runs_root()
        run_in_background(
            lambda: list_runs(root),
            lambda result, error: self._on_runs_read(request, result, error),
            self,
        )

    def _on_runs_read(self, request: int, runs: list[RunInfo] | None, error: str | None) -> None:
        if request != self._list_id:
            return
        selected = self.selected_path()
        self.runs = runs or []
        self.list.clear()
        for run in self.runs:
            item = QListWidgetItem(run.label())
            item.setData(Qt.ItemDataRole.UserRole, run.path)
            item.setToolTip(run.path)
            self.list.addItem(item)
            if run.path == selected:
                self.list.setCurrentItem(item)
        if error:
            self.list.addItem(f"(cannot list the runs: {error})")
        self.listed.emit(self.runs)

    def selected_path(self) -> str | None:
        """The folder of the selected run, if any."""
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def select(self, path: str) -> bool:
        """Select the run in `path` (True if it is in the list)."""
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == path:
                self.list.setCurrentRow(i)
                return True
        return False

    def _on_open_clicked(self) -> None:
        path = self.selected_path()
        if path:
            self.run_chosen.emit(path)

    def _on_list_double_clicked(self, item: QListWidgetItem) -> None:
        path = item.data(Qt.ItemDataRole.UserRole)
        if path:
            self.run_chosen.emit(path)
