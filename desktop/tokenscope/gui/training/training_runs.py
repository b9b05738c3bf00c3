"""Past runs: the folders under data_dir()/runs, newest first, each with how far it got.

Listing reads only the tail of each run's events file (a long run's file can hold many
thousands of lines) and happens in the thread pool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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
from tokenscope.train.events import parse_event

TAIL_BYTES = 64 * 1024


def runs_root() -> Path:
    """Where runs started from the window go (see tokenscope.paths)."""
    from tokenscope.paths import runs_dir

    return runs_dir()


@dataclass(frozen=True)
class RunInfo:
    """A run folder and what its events file says about it."""

    path: str
    name: str
    status: str  # completed, stopped, failed, or "running or interrupted"
    step: int
    steps: int | None
    best_val_loss: float | None
    modified: float

    def label(self) -> str:
        if self.status.startswith("size ladder"):
            return f"{self.name} — {self.status}"
        of = f"/{self.steps}" if self.steps else ""
        best = f", best validation loss {self.best_val_loss:.3f}" if self.best_val_loss else ""
        return f"{self.name} — step {self.step}{of}, {self.status}{best}"


def read_run_info(folder: Path) -> RunInfo:
    """Summarise a run folder from its run.json and the last lines of its events.jsonl."""
    steps = None
    try:
        steps = int(json.loads((folder / "run.json").read_text(encoding="utf-8"))["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    events_file = folder / "events.jsonl"
    status, step, best = "not started", 0, None
    try:
        size = events_file.stat().st_size
        with open(events_file, "rb") as f:
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read().splitlines()
        events = [e for line in tail if (e := parse_event(line)) is not None]
        modified = events_file.stat().st_mtime
    except OSError:
        events, modified = [], folder.stat().st_mtime
    if events:
        status = "running or interrupted"
    for e in events:
        if isinstance(e.get("step"), int):
            step = e["step"]
        if e["event"] == "eval" and isinstance(e.get("val_loss"), (int, float)):
            best = e["val_loss"] if best is None else min(best, e["val_loss"])
        if e["event"] == "done":
            status = str(e.get("status", "done"))
            if isinstance(e.get("best_val_loss"), (int, float)):
                best = e["best_val_loss"]
        elif e["event"] == "start":
            status = "running or interrupted"
    return RunInfo(str(folder), folder.name, status, step, steps, best, modified)


def read_ladder_info(folder: Path) -> RunInfo:
    """Summarise a ladder's folder: how many sizes, and whether its fit was made."""
    from tokenscope.gui.training.ladder_chart import SUMMARY_FILE, ladder_sizes

    sizes = ladder_sizes(folder)
    done = (folder / SUMMARY_FILE).is_file()
    status = f"size ladder, {len(sizes)} sizes" + (", fitted" if done else ", unfinished")
    stamp = max([folder.stat().st_mtime] + [p.stat().st_mtime for p in sizes])
    return RunInfo(str(folder), folder.name, status, 0, None, None, stamp)


def list_runs(root: Path) -> list[RunInfo]:
    """Every run folder under root, newest first."""
    if not root.is_dir():
        return []
    from tokenscope.gui.training.ladder_chart import is_ladder_folder

    found = [
        read_ladder_info(p) if is_ladder_folder(p) else read_run_info(p)
        for p in root.iterdir()
        if p.is_dir()
        and any((p / name).is_file() for name in ("events.jsonl", "run.json", "ladder.json"))
    ]
    return sorted(found, key=lambda r: r.modified, reverse=True)


class TrainingRuns(QGroupBox):
    """The list of past runs; choosing one reopens it with its curves."""

    #: (run folder) — the person chose this run to look at; GUI thread
    run_chosen = Signal(str)

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
