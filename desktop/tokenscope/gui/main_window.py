"""The main window: composes the toolbar, the tabs and the status bar; owns the model thread."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui import background, heap
from tokenscope.gui.compile_watch import CompileWatch
from tokenscope.gui.compile_watch import compile_state as _compile_state
from tokenscope.gui.edit_menu import EditMenu
from tokenscope.gui.fewshot.fewshot_tab import FewShotTab
from tokenscope.gui.help_menu import HelpMenu
from tokenscope.gui.inside.inside_tab import InsideTab
from tokenscope.gui.models.models_tab import ModelsTab
from tokenscope.gui.models.picker_label import picker_label as target_label
from tokenscope.gui.playground.playground import Playground
from tokenscope.gui.scale.scale_tab import ScaleTab
from tokenscope.gui.service_bridge import JobHandle, ServiceBridge
from tokenscope.gui.settings_file import MAX_PROMPT_CHARS, int_setting, json_setting, open_settings
from tokenscope.gui.training.training_tab import TrainingTab
from tokenscope.gui.view_menu import ViewMenu
from tokenscope.gui.widgets.model_picker import picker_entries, picker_index, picker_label
from tokenscope.lm.threads import cpu_cores
from tokenscope.lm.weight_modes import DTYPE_CHOICES
from tokenscope.service.jobs import SetThreads
from tokenscope.service.records import ModelInfo, Progress

OPEN_OTHER = "Open file or folder…"
CONNECT = "Connect to a server…"
MESSAGE_MS = 12_000
POOL_WAIT_S = 30


def settings_store() -> tuple[QSettings, str | None]:
    """Settings in the data folder (TOKENSCOPE_HOME when set, as in tests), checked first:
    a damaged file is set aside and the note says so."""
    from tokenscope.paths import settings_file

    return open_settings(settings_file())


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("Tokenscope")
        self.setObjectName("mainWindow")
        self.settings, settings_note = settings_store()
        self.bridge = ServiceBridge(self)
        self.model_info: ModelInfo | None = None
        self.model_id = ""
        self._load: JobHandle | None = None
        self._loading_name = ""
        # (weights, compiled) of the model in use, and of the load in progress
        self._weights_in_use: tuple[str, bool] | None = None
        self._weights_asked: tuple[str, bool] = ("auto", False)
        self._banner_about_load = False
        self._scale_ticked: list[str] | None = None  # the Scale tab's ticks, until first listed
        self._build()
        self._connect()
        self._restore()
        if settings_note:
            self.show_error(settings_note)
        heap.freeze_start_up_objects()  # full collections would otherwise stall the window

    # ----- layout --------------------------------------------------------------------------

    def _build(self) -> None:
        toolbar = QToolBar("Model", objectName="modelToolbar", movable=False)
        self.addToolBar(toolbar)
        self.picker = QComboBox(objectName="modelPicker", minimumContentsLength=28)
        self.picker.setAccessibleName("Model")
        self.picker.setToolTip("The model to look inside")
        toolbar.addWidget(QLabel(" Model "))
        toolbar.addWidget(self.picker)
        self.threads = QSpinBox(objectName="threadsControl", minimum=0, maximum=max(4, cpu_cores()))
        self.threads.setSpecialValueText("auto")
        self.threads.setAccessibleName("CPU threads for the model")
        self.threads.setToolTip(
            "CPU threads the model runs on. auto: one for small models (a second thread only "
            "costs them time), all cores but one for larger ones, so the window keeps a core"
        )
        toolbar.addWidget(QLabel(" threads "))
        toolbar.addWidget(self.threads)
        self.weights = QComboBox(objectName="weightsControl")
        self.weights.addItems(DTYPE_CHOICES)
        self.weights.setAccessibleName("Weights in memory")
        self.weights.setToolTip(
            "How the model's weights are held in memory (the model reopens when you change it).\n"
            "auto: a GGUF file's 4-bit blocks stay 4-bit, other blocks and the output head "
            "float16 (about 3x less memory and ~1.5x faster than float32; probabilities within "
            "~0.01); other models float32.\nfloat32: the reference numbers. bfloat16, int8, "
            "int4: smaller, slightly different probabilities."
        )
        toolbar.addWidget(QLabel(" weights "))
        toolbar.addWidget(self.weights)
        self.compiled = QCheckBox("compiled", objectName="compiledControl")
        self.compiled.setAccessibleName("Compiled decoding")
        self.compiled.setToolTip(
            "Generate through a compiled decode step (torch.compile), ~1.3x faster per token "
            "on models of 50 M parameters and up. It is built in the background: the first time "
            "a model is used it takes minutes on a small CPU, later seconds from a disk cache; "
            "the model answers meanwhile. Needs a C++ compiler (without one, decoding stays "
            "eager and the status line says why)."
        )
        toolbar.addWidget(self.compiled)
        self.load_progress = QProgressBar(
            objectName="loadProgress", maximumWidth=160, visible=False
        )
        self.load_progress.setRange(0, 0)
        self.load_progress.setTextVisible(False)
        self.cancel_load = QPushButton("Cancel", objectName="cancelLoadButton", visible=False)
        self.load_label = QLabel(textFormat=Qt.TextFormat.PlainText, objectName="loadStatus")
        # A widget in a toolbar is shown and hidden through its action.
        self._loading_actions = [toolbar.addWidget(self.load_progress),
                                 toolbar.addWidget(self.cancel_load)]  # fmt: skip
        self._show_loading(False)
        toolbar.addWidget(self.load_label)

        self.banner = QLabel(objectName="errorBanner", wordWrap=True, visible=False)
        self.banner.setTextFormat(Qt.TextFormat.PlainText)  # (messages quote servers and files)
        self.banner.setStyleSheet("background:#fde2e1; color:#7a1212; padding:6px;")
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner_close = QPushButton("Dismiss", objectName="dismissErrorButton", visible=False)
        self.playground = Playground(self.bridge)
        self.fewshot = FewShotTab(self.bridge)
        self.models = ModelsTab()
        self.tabs = QTabWidget(objectName="tabs")
        self.tabs.addTab(self.playground, "Playground")
        self.tabs.addTab(self.fewshot, "Few-shot")
        self.inside = InsideTab(self.bridge)
        self.tabs.addTab(self.inside, "Inside")
        self.scale = ScaleTab(self.bridge)
        self.tabs.addTab(self.scale, "Scale")
        self.training = TrainingTab()
        self.tabs.addTab(self.training, "Training")
        self.tabs.addTab(self.models, "Models")
        central = QWidget()
        layout = QVBoxLayout(central)
        banner_row = QHBoxLayout()
        banner_row.addWidget(self.banner, 1)
        banner_row.addWidget(self.banner_close)
        layout.addLayout(banner_row)
        layout.addWidget(self.tabs)
        self.setCentralWidget(central)

        self.status_model = QLabel("no model", objectName="modelStatus")
        self.status_speed = QLabel("", objectName="speedStatus")
        self.statusBar().addPermanentWidget(self.status_model)
        self.statusBar().addPermanentWidget(self.status_speed)

        menu = self.menuBar().addMenu("&File")
        self._action(menu, "&Open model…", "Ctrl+O", self.browse_for_model)
        self._action(menu, "&Connect to a server…", "Ctrl+Shift+K", self.connect_to_server)
        self._action(menu, "Open &session…", "Ctrl+Shift+O", self.open_session_dialog)
        self._action(menu, "&Save session…", "Ctrl+S", self.save_session_dialog)
        self._action(menu, "&Export chart…", "Ctrl+E", self.export_chart_dialog)
        menu.addSeparator()
        self._action(menu, "&Quit", "Ctrl+Q", self.close)
        self.edit_menu, self.view_menu = EditMenu(self), ViewMenu(self, self.settings)
        self.help = HelpMenu(self)  # the course, keyboard shortcuts, About

    def _action(self, menu, text: str, shortcut: str, slot) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _connect(self) -> None:
        self.bridge.model_loaded.connect(self._on_bridge_model_loaded)
        self.compile_watch = CompileWatch(self.bridge, self._show_model_info, self)
        self.bridge.info_changed.connect(self._show_model_info)
        self.threads.valueChanged.connect(self._on_threads_changed)
        self.weights.currentTextChanged.connect(self._on_weights_changed)
        self.compiled.toggled.connect(self._on_weights_changed)
        self.picker.activated.connect(self._on_picker_activated)
        self.cancel_load.clicked.connect(self.cancel_loading)
        self.banner_close.clicked.connect(self.hide_error)
        self.models.open_requested.connect(self.load_model)
        self.models.browse_requested.connect(self.browse_for_model)
        self.models.connect_requested.connect(self.connect_to_server)
        self.models.catalog_refreshed.connect(self._fill_picker)
        self.playground.speed_changed.connect(
            lambda rate: self.status_speed.setText(f"{rate:.1f} tokens/s")
        )
        self.playground.message.connect(self.show_message)
        self.playground.session_opened.connect(self._on_playground_session_opened)
        self.playground.session_failed.connect(self._on_playground_session_failed)
        self.fewshot.message.connect(self.show_message)
        self.inside.message.connect(self.show_message)
        self.scale.message.connect(self.show_message)
        self.scale.editor_prompt_wanted.connect(
            lambda: self.scale.set_editor_prompt(self.fewshot.editor.prompt())
        )
        self.inside.ablation_changed.connect(self._on_ablation_changed)
        self.training.open_in_playground.connect(self._on_training_open_in_playground)

    # ----- settings ------------------------------------------------------------------------

    def _restore(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1280, 820)
        self._fit_screen()
        self.playground.sampling.set_values(json_setting(self.settings, "playground/sampling"))
        self.threads.blockSignals(True)
        self.threads.setValue(int_setting(self.settings.value("model/threads", 0)))
        self.threads.blockSignals(False)
        for widget in (self.weights, self.compiled):
            widget.blockSignals(True)
        dtype = str(self.settings.value("model/weights", "auto"))
        self.weights.setCurrentText(dtype if dtype in DTYPE_CHOICES else "auto")
        self.compiled.setChecked(str(self.settings.value("model/compiled", "true")) == "true")
        for widget in (self.weights, self.compiled):
            widget.blockSignals(False)
        prompt = self.settings.value("playground/prompt", "The capital of Indonesia is")
        self.playground.prompt.setPlainText(str(prompt))
        try:
            values = json_setting(self.settings, "scale/settings")
            self._scale_ticked = self.scale.restore_settings(values)
        except (ValueError, TypeError):
            self._scale_ticked = []

    def _fit_screen(self) -> None:
        """Never larger than the screen it opens on (a 1024 x 768 one included)."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        room = screen.availableGeometry()
        self.resize(min(self.width(), room.width()), min(self.height(), room.height()))

    def _save(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("playground/sampling", json.dumps(self.playground.sampling.values()))
        # The settings file keeps a prompt up to its limit (a longer one is a session's job).
        prompt = self.playground.prompt.toPlainText()[:MAX_PROMPT_CHARS]
        self.settings.setValue("playground/prompt", prompt)
        self.settings.setValue("scale/settings", json.dumps(self.scale.settings_values()))
        if self.model_id:
            self.settings.setValue("model/last", self.model_id)
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Save, then stop everything and wait for it: nothing is left running or destroyed."""
        self._save()
        self.hide()  # the person asked to close: the joins below are not theirs to watch
        self.models.shutdown()
        self.training.shutdown()
        self.bridge.shutdown()  # cancels every job and joins the model's thread
        self.settings.remove("model/opening")  # a load cut short by closing did end
        self.settings.sync()
        # Background reads of files finish first (they hold no model and no lock).
        background.wait_for_all(POOL_WAIT_S)
        super().closeEvent(event)

    # ----- models --------------------------------------------------------------------------

    def start(self) -> None:
        """After the first paint: list models and open the last one (or the bundled one).

        The last model is reopened only if its last load finished: a model whose loader hung
        or crashed the window would otherwise do it again at every start."""
        self.models.refresh()
        last = str(self.settings.value("model/last", "builtin"))
        unfinished = self.settings.value("model/opening")
        if unfinished and last != "builtin" and str(unfinished) == last:
            self.settings.remove("model/opening")
            self.show_error(
                f"Last time, opening {last} did not finish, so it was not opened again. "
                "Choose it in the model picker to try once more."
            )
            last = "builtin"
        self.load_model(last)

    def _fill_picker(self) -> None:
        self.picker.blockSignals(True)
        self.picker.clear()
        for e in picker_entries(self.models.entries):  # each model once, its variant said
            self.picker.addItem(picker_label(e), e.target)
        self.picker.addItem(OPEN_OTHER, OPEN_OTHER)
        self.picker.addItem(CONNECT, CONNECT)
        choices = [
            (self.picker.itemText(i), self.picker.itemData(i))
            for i in range(self.picker.count() - 2)
        ]
        self.fewshot.set_compare_choices(choices)
        self.inside.set_compare_choices(choices)
        # The ticks remembered from last time apply once the models have been listed.
        ticked = self._scale_ticked
        if choices:
            self._scale_ticked = None
        self.scale.set_models(choices, set(ticked) if ticked else None)
        loading = self._load is not None and not self._load.finished
        shown = self._loading_name if loading else self.model_id
        if shown:
            self._select_in_picker(shown)
        self.picker.blockSignals(False)

    def _select_in_picker(self, target: str) -> None:
        """Show `target` in the picker (adding it if the model list has not been read yet)."""
        index = picker_index(self.picker, self.models.entries, target)  # also by its file
        if index < 0:
            self.picker.insertItem(0, target_label(target), target)
            index = 0
        self.picker.setCurrentIndex(index)

    def _on_picker_activated(self, index: int) -> None:
        value = self.picker.itemData(index)
        if value == OPEN_OTHER:
            self.browse_for_model()
        elif value == CONNECT:
            self.connect_to_server()
        elif value:
            self.load_model(value)

    def browse_for_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open a model",
            str(Path.home()),
            "Models (*.gguf *.safetensors config.json);;All files (*)",
        )
        if path:
            p = Path(path)
            self.load_model(str(p.parent if p.name in ("config.json", "model.safetensors") else p))

    def connect_to_server(self) -> None:
        """Ask for a server and one of its models, then open it like any other model."""
        from tokenscope.gui.models.server_dialog import ServerDialog

        dialog = ServerDialog(self.settings, self)
        try:
            accepted = bool(dialog.exec())
            target, key = dialog.target(), dialog.api_key()
        finally:
            # Deleted now, not with the window: one dialog per connection would pile up
            # as the window's children until it closes.
            dialog.deleteLater()
        if accepted:
            self.load_model(target, api_key=key)
        else:
            self._fill_picker()  # the picker goes back to the model in use

    def load_model(self, name: str, *, api_key: str | None = None) -> None:
        """Switch to another model: whatever runs on the current one stops first."""
        self._loading_name = name
        self._weights_asked = (self.weights.currentText(), self.compiled.isChecked())
        # Written before the load starts and removed when it ends, however it ends: found at
        # the next start, it means this load never ended (a hang, a crash).
        self.settings.setValue("model/opening", name)
        self.settings.sync()
        self._select_in_picker(name)
        self._show_loading(True)
        self.load_progress.setRange(0, 0)
        self.load_label.setText(f"loading {name}…")
        self._load = self.bridge.load(
            name,
            threads=self.threads.value() or None,
            dtype=self.weights.currentText(),
            compile=self.compiled.isChecked(),
            api_key=api_key,
            on_yield=self._on_load_progress,
            on_done=self._on_load_done,
            on_error=self._on_load_failed,
        )

    def _show_loading(self, on: bool) -> None:
        for action in self._loading_actions:
            action.setVisible(on)

    def cancel_loading(self) -> None:
        """Stop the load in progress; the current model stays."""
        if self._load is not None:
            self._load.cancel()

    def _on_load_progress(self, p: Progress) -> None:
        if p.total:
            self.load_progress.setRange(0, p.total)
            self.load_progress.setValue(p.done)
        else:
            self.load_progress.setRange(0, 0)
        self.load_label.setText(f"{p.label}…")
        # The toolbar may be too narrow to show the label: the status bar always has room.
        self.load_progress.setToolTip(f"{p.label}…")
        self.statusBar().showMessage(f"{p.label}…")

    def _on_load_done(self, _info: ModelInfo | None, outcome: str) -> None:
        self.settings.remove("model/opening")
        self.settings.sync()
        self._show_loading(False)
        self.load_label.setText("")  # a cancel is said in the status bar, which expires
        if outcome == "cancelled":
            self.show_message("loading cancelled; the model in use stays")
        else:
            self.statusBar().clearMessage()
        if outcome != "completed" and self._weights_in_use is not None:
            self._show_weights(*self._weights_in_use)  # what the model in use was opened with
        if outcome != "completed":
            self._fill_picker()  # the picker goes back to the model still in use
        if outcome == "failed" and self.model_info is None and self._loading_name != "builtin":
            # Nothing is open (the last model, a server that is not running, failed at the
            # start): the bundled model, so that the window is never empty.
            self.load_model("builtin")

    def _on_bridge_model_loaded(self, info: ModelInfo) -> None:
        self.model_id = info.target
        self._weights_in_use = self._weights_asked  # (compiled: what was asked, see the status)
        self._show_weights(*self._weights_in_use)
        self.compile_watch.follow(info)
        if self._banner_about_load:  # "could not open X" is answered by a model that opened
            self.hide_error()
        self._show_model_info(info)
        self.setWindowTitle(f"Tokenscope — {info.name}")
        if self.model_id != "builtin" and Path(self.model_id).exists():
            from tokenscope.lm.registry import remember

            remember(self.model_id)
            QTimer.singleShot(0, self.models.refresh)
        self._fill_picker()
        self.models.set_loaded(self.model_id)
        self.playground.on_model_loaded(self.model_id)
        self.fewshot.on_model_loaded()
        if not self.inside.prompt.toPlainText():
            self.inside.prompt.setPlainText(self.playground.prompt.toPlainText())
        self.inside.on_model_loaded(info)

    def _on_ablation_changed(self) -> None:
        """Heads were silenced or restored: what the other tabs show came from the model as
        it was."""
        self.playground.request_prediction()
        self.fewshot.request_preview()

    def _show_model_info(self, info: ModelInfo) -> None:
        self.model_info = info
        c = info.capabilities
        for widget in (self.threads, self.weights, self.compiled):
            widget.setEnabled(c.local_weights)  # a server decides its own threads and weights
        if not c.full_vocabulary:
            size = f"{info.parameters / 1e6:,.0f} M parameters · " if info.parameters else ""
            window = f"context {info.context_length:,} · " if info.context_length else ""
            scores = (
                "scores given answers"
                if c.exact_scores
                else "scores given answers (bounds below its list)"
                if c.can_score
                else "no prompt log-probs"
            )
            self.status_model.setText(
                f"{info.name} · {size}{window}{c.kind} · {c.label} · {scores}"
            )
            self.status_model.setToolTip(
                "A model on a server: it returns its top tokens only (the rest is one grey bar)."
                + (
                    " It returns the log-probabilities of the prompt, so given answers are scored."
                    if c.exact_scores
                    else " It shows its tokens, so given answers are scored token by token "
                    "through its top tokens; one below its list makes the score an upper bound."
                    if c.can_score
                    else " It returns no log-probabilities of the prompt, so given answers "
                    "(few-shot sweeps, a watched continuation beyond its list) cannot be scored."
                )
            )
            if info.note:
                self.show_error(info.note)
            return
        weights = f" · {info.packing}" if info.packing else ""
        self.status_model.setText(
            f"{info.name} · {info.parameters / 1e6:,.2f} M parameters · {info.architecture} · "
            f"context {info.context_length}{weights}{_compile_state(info)} · "
            f"{info.device} · {info.threads} thread{'s' if info.threads != 1 else ''}"
        )
        if info.note:
            self.show_error(info.note)

    def _on_weights_changed(self, *_: object) -> None:
        """Weights or compiled decoding changed: remember, and reopen the model with them
        (the one being opened, if a load is under way)."""
        self.settings.setValue("model/weights", self.weights.currentText())
        self.settings.setValue("model/compiled", "true" if self.compiled.isChecked() else "false")
        loading = self._load is not None and not self._load.finished
        target = self._loading_name if loading else self.model_id
        if target:
            self.load_model(target)

    def _show_weights(self, weights: str, compiled: bool) -> None:
        for widget in (self.weights, self.compiled):
            widget.blockSignals(True)
        self.weights.setCurrentText(weights)
        self.compiled.setChecked(compiled)
        for widget in (self.weights, self.compiled):
            widget.blockSignals(False)
        self.settings.setValue("model/weights", weights)
        self.settings.setValue("model/compiled", "true" if compiled else "false")

    def _on_threads_changed(self, value: int) -> None:
        """Another thread count: the model switches at once, no reload needed."""
        self.settings.setValue("model/threads", value)
        if self.model_info is not None:
            self.bridge.submit(SetThreads(value or None), lane="threads",
                               on_error=self.show_message)  # fmt: skip

    def _on_load_failed(self, message: str) -> None:
        kept = f" Still using {self.model_info.name}." if self.model_info else ""
        self.show_error(f"Could not open {self._loading_name}: {message}{kept}", about_load=True)

    def _on_training_open_in_playground(self, checkpoint: str) -> None:
        self.load_model(checkpoint)
        self.tabs.setCurrentWidget(self.playground)

    def show_message(self, message: str) -> None:
        """A passing remark in the status bar; it goes away by itself so it cannot go stale."""
        self.statusBar().showMessage(message, MESSAGE_MS)

    def show_error(self, message: str, *, about_load: bool = False) -> None:
        """The red banner; it stays until closed, or (`about_load`) until a model opens."""
        self._banner_about_load = about_load
        self.banner.setText(message)
        self.banner.setVisible(True)
        self.banner_close.setVisible(True)

    def hide_error(self) -> None:
        self._banner_about_load = False
        self.banner.setVisible(False)
        self.banner_close.setVisible(False)

    # ----- sessions and exports ------------------------------------------------------------

    def save_session_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save session", "session.json", "JSON (*.json)")
        if path:
            try:
                self.playground.save_session(path)
            except (OSError, ValueError) as e:
                self.show_error(f"Could not save the session {path}: {e}")

    def open_session_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open session", "", "JSON (*.json)")
        if path:
            self.open_session(path)

    def open_session(self, path: str) -> None:
        """Read off the GUI thread (seconds for a large file): the status bar says so."""
        self.statusBar().showMessage(f"Opening the session {Path(path).name}…")
        self.playground.open_session(path)

    def _on_playground_session_opened(self, path: str, model_id: str) -> None:
        self.show_message(f"Opened the session {Path(path).name}")
        if model_id and model_id != self.model_id:
            self.load_model(model_id)

    def _on_playground_session_failed(self, path: str, message: str) -> None:
        self.statusBar().clearMessage()
        self.show_error(f"Could not open the session {path}: {message}")

    def export_chart_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export chart", "next-token.png", "PNG (*.png);;SVG (*.svg);;CSV (*.csv)"
        )
        if path:
            if path.lower().endswith(".csv"):
                self.playground.chart.export_csv(path)
            else:
                self.playground.chart.export_image(path, caption=self.chart_caption())

    def chart_caption(self) -> str:
        """What an exported chart says about itself: the model and the prompt."""
        prompt = self.playground.prompt.toPlainText()
        if len(prompt) > 120:
            prompt = "…" + prompt[-119:]
        name = self.model_info.name if self.model_info else "no model"
        return f"Tokenscope · model {name} · prompt {prompt!r}"
