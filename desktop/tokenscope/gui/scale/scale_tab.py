"""The Scale tab: one probe across many models, to see abilities appear as models grow.

The person picks models (the bundled one, installed and downloaded ones, models on servers,
their own training runs and ladders) and a probe: a prompt and the answer expected after it,
or a few-shot task. The model service measures each model in turn, in the background (a
ScaleRun job: Cancel stops it; each result is cached per model as it is on disk), and three
charts show:
- By size: P(answer), or its rank, against parameters on a log axis, drawn under the
  reference chart of well-known models with the same axis;
- During training: for runs, P(answer) on each checkpoint against training tokens, one curve
  per run (a ladder: one per size);
- Few-shot: the 0..k sweep of the task on every model, one curve each.
Every chart exports PNG, SVG or CSV.

It opens on the lesson: the invented-language task (a language no training text holds) at
0..4 examples, each model's P with four examples on the size chart. Whenever P falls from a
smaller model to a larger one, a paragraph says why in plain words (memory, not ability:
lm.scale.falls_with_size, from the numbers). The table lists the models smallest first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.scale.icl_mode import IclMode, IclSizeChart, IclTrainingChart
from tokenscope.gui.scale.scale_charts import SizeChart, SweepChart, TrainingChart
from tokenscope.gui.service_bridge import JobHandle, ServiceBridge
from tokenscope.gui.widgets.exporting import Exportable
from tokenscope.service.jobs import ScaleRun
from tokenscope.service.records import Progress, ScaleResult
from tokenscope.units import bound_mark, format_rank

if TYPE_CHECKING:
    from tokenscope.lm.fewshot.prompt import FewShotPrompt

DEFAULT_PROMPT = "The capital of Indonesia is"
DEFAULT_ANSWER = " Jakarta"
#: the few-shot task list's entry for the Few-shot tab's current prompt
EDITOR_TASK = "(the Few-shot tab's prompt)"
DEFAULT_TASK = "invented-language"
#: the tab opens on the task at this many examples: where size shows (README: Gemma 3 270M
#: reads the invented ending off four examples, SmolLM2-135M hardly)
DEFAULT_SHOTS = 4
TARGET_ROLE = Qt.ItemDataRole.UserRole
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
COLUMNS = ["model", "parameters", "P(answer)", "rank", "top prediction / note"]
MODES = ("probe", "task", "icl")
Charts = SizeChart | TrainingChart | SweepChart | IclSizeChart | IclTrainingChart


class ScaleTab(Exportable):
    """Run a probe on the models picked and chart the answers against size and training."""

    #: the person asked for the Few-shot tab's current prompt; the window answers with
    #: set_editor_prompt (GUI thread)
    editor_prompt_wanted = Signal()

    def __init__(self, bridge: ServiceBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("scaleTab")
        self.bridge = bridge
        self.results: list[ScaleResult] = []
        self._job: JobHandle | None = None
        self._editor_prompt: FewShotPrompt | None = None
        self._error = ""  # the job's error, if it failed
        self._build()
        self._connect()
        self._on_mode_changed()
        self._set_running(False)

    # ----- building ------------------------------------------------------------------------

    def _build(self) -> None:
        self.models = QListWidget(objectName="scaleModels")
        self.models.setAccessibleName("Models to measure")
        self.models.setToolTip("Tick the models to measure; a run is measured at each checkpoint")
        self.add_path_button = QPushButton("Add run or file…", objectName="scaleAddPath")
        self.add_path_button.setToolTip(
            "A training run's folder (each checkpoint is measured), a ladder's folder (each "
            "size), a model folder or a GGUF / safetensors file"
        )
        self.add_server_button = QPushButton("Add server…", objectName="scaleAddServer")
        self.add_server_button.setToolTip("A model on a server: http://HOST:PORT/v1#MODEL")

        self.mode_probe = QRadioButton("Prompt and answer", objectName="scaleModeProbe")
        self.mode_task = QRadioButton("Few-shot task", objectName="scaleModeTask")
        self.mode_task.setChecked(True)  # the lesson: an ability that appears with size
        self._modes = QButtonGroup(self)
        self._modes.addButton(self.mode_probe)
        self._modes.addButton(self.mode_task)
        self.icl = IclMode(self)  # the third mode: in-context learning (gui/scale/icl_mode.py)
        self._modes.addButton(self.icl.radio)
        self.prompt = QLineEdit(DEFAULT_PROMPT, objectName="scalePrompt")
        self.prompt.setAccessibleName("Probe prompt")
        self.answer = QLineEdit(DEFAULT_ANSWER, objectName="scaleAnswer")
        self.answer.setAccessibleName("Expected answer")
        self.answer.setToolTip("The continuation whose probability is measured (mind the space)")
        self.task = QComboBox(objectName="scaleTask")
        self.task.setAccessibleName("Few-shot task")
        from tokenscope.lm.fewshot import list_presets

        for name in list_presets():
            self.task.addItem(name, name)
        self.task.addItem(EDITOR_TASK, EDITOR_TASK)
        if self.task.findData(DEFAULT_TASK) >= 0:
            self.task.setCurrentIndex(self.task.findData(DEFAULT_TASK))
        self.max_shots = QSpinBox(objectName="scaleMaxShots")
        self.max_shots.setRange(0, 64)
        self.max_shots.setSpecialValueText("all")
        self.max_shots.setValue(DEFAULT_SHOTS)
        self.max_shots.setToolTip("Sweep 0..k examples (all: every example of the task)")
        self.fresh = QCheckBox("Measure anew", objectName="scaleFresh")
        self.fresh.setToolTip("Ignore cached results (they are kept per model as it is on disk)")

        self.run_button = QPushButton("Run", objectName="scaleRunButton")
        self.run_button.setToolTip("Measure every ticked model (Ctrl+Return)")
        self.cancel_button = QPushButton("Cancel", objectName="scaleCancelButton")
        self.cancel_button.setToolTip("Stop measuring (Esc)")
        self.progress = QProgressBar(objectName="scaleProgress")
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.status = QLabel(
            textFormat=Qt.TextFormat.PlainText, objectName="scaleStatus", wordWrap=True
        )
        self.metric_picker = QComboBox(objectName="scaleMetric")
        self.metric_picker.addItem("P(answer)", "probability")
        self.metric_picker.addItem("rank of the answer", "rank")
        self.metric_picker.setAccessibleName("What the size chart shows")

        self.size_chart = SizeChart()
        self.training_chart = TrainingChart()
        self.sweep_chart = SweepChart()
        self.charts = QTabWidget(objectName="scaleCharts")
        self.charts.addTab(self.size_chart, "By size")
        self.charts.addTab(self.training_chart, "During training")
        self.charts.addTab(self.sweep_chart, "Few-shot by size")
        self.charts.addTab(self.icl.size_chart, "By size")
        self.charts.addTab(self.icl.training_chart, "During training")
        self.explanation = QLabel(
            textFormat=Qt.TextFormat.PlainText, objectName="scaleExplanation", wordWrap=True
        )
        self.explanation.setAccessibleName("What the numbers say")
        self.explanation.setFrameShape(QFrame.Shape.StyledPanel)
        self.explanation.setMargin(4)
        self.explanation.setVisible(False)
        self.table = QTableWidget(0, len(COLUMNS), objectName="scaleTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setMinimumHeight(90)

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        probe = QFormLayout()
        probe.addRow(self.mode_probe)
        probe.addRow("Prompt", self.prompt)
        probe.addRow("Answer", self.answer)
        probe.addRow(self.mode_task)
        task_row = QHBoxLayout()
        task_row.addWidget(self.task, 1)
        task_row.addWidget(QLabel("up to"))
        task_row.addWidget(self.max_shots)
        probe.addRow("Task", task_row)
        probe.addRow(self.icl.radio)
        probe.addRow("Text", self.icl.text_choice)
        probe.addRow(self.icl.message)
        lv.addLayout(probe)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.fresh)
        lv.addLayout(buttons)
        lv.addWidget(self.progress)
        lv.addWidget(self.status)
        lv.addWidget(self.explanation)
        lv.addWidget(QLabel("Models (ticked ones are measured, smallest first in the results)",
                            wordWrap=True))  # fmt: skip
        lv.addWidget(self.models, 1)
        adds = QHBoxLayout()
        adds.addWidget(self.add_path_button)
        adds.addWidget(self.add_server_button)
        adds.addWidget(self.icl.hub_button)
        lv.addLayout(adds)

        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(QLabel("Size chart shows"))
        top.addWidget(self.metric_picker)
        top.addStretch(1)
        top.addWidget(self._export_button("scale"))
        rv.addLayout(top)
        inner = QSplitter(Qt.Orientation.Vertical)
        inner.addWidget(self.charts)
        inner.addWidget(self.table)
        inner.setStretchFactor(0, 4)
        inner.setStretchFactor(1, 1)
        inner.setChildrenCollapsible(False)
        rv.addWidget(inner, 1)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 3)
        split.setChildrenCollapsible(False)
        split.setSizes([300, 900])
        layout = QVBoxLayout(self)
        layout.addWidget(split)

    def _connect(self) -> None:
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.add_path_button.clicked.connect(self._browse)
        self.add_server_button.clicked.connect(self._ask_server)
        for mode in (self.mode_probe, self.mode_task, self.icl.radio):
            mode.toggled.connect(lambda _on: self._on_mode_changed())
        self.metric_picker.currentIndexChanged.connect(
            lambda _i: self.size_chart.set_metric(self.metric_picker.currentData())
        )
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(self.run)
        escape = QShortcut(QKeySequence("Escape"), self)
        escape.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        escape.activated.connect(self.cancel)

    def _on_mode_changed(self) -> None:
        probe, icl = self.mode_probe.isChecked(), self.icl.radio.isChecked()
        self.prompt.setEnabled(probe)
        self.answer.setEnabled(probe)
        self.task.setEnabled(self.mode_task.isChecked())
        self.max_shots.setEnabled(self.mode_task.isChecked())
        self.icl.text_choice.setEnabled(icl)
        self.metric_picker.setEnabled(not icl)
        shown = self.charts.currentIndex() % 3  # the same place among the mode's charts
        for i in range(self.charts.count()):
            self.charts.setTabVisible(i, (i >= 3) == icl)
        self.charts.setCurrentIndex(3 + (shown == 1) if icl else shown)
        self._show_results()  # (the table's columns are the mode's)

    # ----- models --------------------------------------------------------------------------

    def set_models(self, choices: list[tuple[str, str]], checked: set[str] | None = None) -> None:
        """The models on this machine, as (label, target) pairs; a checkpoint of a training
        run stands for its whole run. Ticks are kept for models already listed; new ones are
        ticked when in `checked` (default: the bundled and installed models)."""
        if checked is None and self.models.count():
            checked = set(self.targets())
        added = [
            (self.models.item(i).text(), self.models.item(i).data(TARGET_ROLE))
            for i in range(self.models.count())
            if self.models.item(i).data(Qt.ItemDataRole.UserRole + 1)
        ]
        self.models.clear()
        seen: set[str] = set()
        from tokenscope.train.runs import run_of_checkpoint

        for label, target in [*choices, *added]:
            target = run_of_checkpoint(target)
            if target in seen:
                continue
            seen.add(target)
            manual = (label, target) in added
            self._add_item(label, target, manual)
        for i in range(self.models.count()):
            item = self.models.item(i)
            target = item.data(TARGET_ROLE)
            if checked is not None:
                on = target in checked
            else:
                on = "(bundled)" in item.text() or "(installed)" in item.text()
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def _add_item(self, label: str, target: str, manual: bool) -> QListWidgetItem:
        item = QListWidgetItem(label)
        item.setData(TARGET_ROLE, target)
        item.setData(Qt.ItemDataRole.UserRole + 1, manual)
        item.setToolTip(target)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Unchecked)
        self.models.addItem(item)
        return item

    def add_target(self, target: str, label: str | None = None) -> None:
        """Add a model (a path or a server) to the list, ticked."""
        from tokenscope.lm.backend import is_server
        from tokenscope.train.runs import is_run_folder, run_of_checkpoint

        target = run_of_checkpoint(target)
        for i in range(self.models.count()):
            item = self.models.item(i)
            if item.data(TARGET_ROLE) == target:
                item.setCheckState(Qt.CheckState.Checked)
                return
        if label is None:
            kind = "run" if is_run_folder(target) else "server" if is_server(target) else "file"
            label = f"{Path(target).name or target}  ({kind})"
        self._add_item(label, target, True).setCheckState(Qt.CheckState.Checked)

    def targets(self) -> list[str]:
        """The ticked models, in list order."""
        return [
            self.models.item(i).data(TARGET_ROLE)
            for i in range(self.models.count())
            if self.models.item(i).checkState() == Qt.CheckState.Checked
        ]

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "A training run, a ladder or a model folder", str(Path.cwd())
        )
        if path:
            self.add_target(path)

    def _ask_server(self) -> None:
        text, ok = QInputDialog.getText(
            self, "Add a model on a server", "Address and model (http://HOST:PORT/v1#MODEL):"
        )
        if ok and text.strip():
            self.add_target(text.strip())

    # ----- running -------------------------------------------------------------------------

    def set_editor_prompt(self, prompt: FewShotPrompt) -> None:
        """The Few-shot tab's prompt, for the task entry EDITOR_TASK."""
        self._editor_prompt = prompt

    def job(self) -> ScaleRun:
        """The job the present settings ask for; ValueError says what is missing."""
        targets = self.targets()
        if not targets:
            raise ValueError("Tick at least one model to measure.")
        use_cache = not self.fresh.isChecked()
        if self.icl.radio.isChecked():
            return self.icl.job(targets, use_cache)
        if self.mode_probe.isChecked():
            from tokenscope.lm.scale import Probe

            if not self.answer.text():
                raise ValueError("Give the answer whose probability to measure.")
            probe = Probe(self.prompt.text(), self.answer.text())
            return ScaleRun(tuple(targets), probe=probe, use_cache=use_cache)
        name = self.task.currentData()
        if name == EDITOR_TASK:
            self._editor_prompt = None  # (an editor whose prompt is invalid leaves it None)
            self.editor_prompt_wanted.emit()
            prompt = self._editor_prompt
            if prompt is None or not prompt.expected:
                raise ValueError("The Few-shot tab's prompt has no expected answer to measure.")
        else:
            from tokenscope.lm.fewshot import load_prompt

            prompt = load_prompt(name)
        shots = self.max_shots.value() or None
        if shots is not None:
            shots = min(shots, len(prompt.examples))
        return ScaleRun(tuple(targets), prompt=prompt, max_shots=shots, use_cache=use_cache)

    def run(self) -> None:
        if self.running:
            return
        try:
            job = self.job()
        except (ValueError, OSError) as e:
            self.status.setText(str(e))
            return
        self.results = []
        self._error = ""
        self._show_results()
        self.status.setText("")
        if job.icl_text is not None:
            if self.charts.currentWidget() is not self.icl.training_chart:
                self.charts.setCurrentWidget(self.icl.size_chart)
        elif job.prompt is not None:
            self.charts.setCurrentWidget(self.sweep_chart)
        elif self.charts.currentWidget() is self.sweep_chart:
            self.charts.setCurrentWidget(self.size_chart)
        self._job = self.bridge.submit(
            job,
            lane="scale",
            on_yield=self._on_record,
            on_done=self._on_done,
            on_error=self._on_error,
        )
        self._set_running(self._job is not None)

    def _on_error(self, message: str) -> None:
        self._error = message
        self.status.setText(message)

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()

    @property
    def running(self) -> bool:
        return self._job is not None and not self._job.finished

    def _set_running(self, on: bool) -> None:
        self.run_button.setEnabled(not on)
        self.cancel_button.setEnabled(on)
        if on:
            self.progress.setRange(0, 0)
            self.progress.setFormat("starting…")

    def _on_record(self, record: Progress | ScaleResult) -> None:
        if isinstance(record, Progress):
            self.progress.setRange(0, max(1, record.total))
            self.progress.setValue(record.done)
            label = record.label  # (a download says how far it is: shown whole)
            name = label if label.startswith("downloading") else Path(label).name or label
            self.progress.setFormat(
                f"{record.done} of {record.total}: {name}" if record.label else "done"
            )
        elif isinstance(record, ScaleResult):
            self.results.append(record)
            self._show_results()

    def _on_done(self, _result: str | None, outcome: str) -> None:
        self._job = None
        self._set_running(False)
        errors = [r for r in self.results if r.error]
        measured = len(self.results) - len(errors)
        cached = sum(bool(s.cached) for r in self.results if (s := r.point or r.sweep or r.icl))
        if outcome == "completed":
            self.progress.setRange(0, 1)
            self.progress.setValue(1)
            self.progress.setFormat("done")
            text = f"{measured} model(s) measured"
            text += f" ({cached} from the cache)" if cached else ""
        else:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat(outcome)
            text = f"{outcome.capitalize()} after {measured} model(s)"
            if self._error:
                text += f": {self._error}"
        if errors:
            text += f"; {len(errors)} could not be measured (see the table)"
        self.status.setText(text + ".")

    # ----- showing -------------------------------------------------------------------------

    def _show_results(self) -> None:
        if self.icl.radio.isChecked() or any(r.icl for r in self.results):
            self.explanation.setVisible(False)
            self.icl.show(sorted(self.results, key=_size_order), self.table)
            return
        points = [r.point for r in self.results if r.point is not None]
        sweeps = [r.sweep for r in self.results if r.sweep is not None and r.sweep.points]
        from tokenscope.lm.scale import falls_with_size, sweep_end

        if sweeps and not points:  # a task: each model at its last point (k examples)
            points = [sweep_end(s) for s in sweeps]
            shots = max(s.points[-1].shots for s in sweeps)
            self.size_chart.set_title(f"P(expected answer) with {shots} example(s), by size")
            text = falls_with_size(points, shots=shots)
        else:
            self.size_chart.set_title("P(answer) by size")
            text = falls_with_size(points)
        self.size_chart.set_points(points)
        self.explanation.setText(text)
        self.explanation.setVisible(bool(text))
        self.training_chart.set_curves([r.curve for r in self.results if r.curve is not None])
        self.sweep_chart.set_sweeps([r.sweep for r in self.results if r.sweep is not None])
        self._fill_table()

    def _fill_table(self) -> None:
        """One row per model, smallest first (models of unknown size, and those that could
        not be measured, after them; ties keep the order they came in)."""
        rows: list[list[str]] = []
        for r in sorted(self.results, key=_size_order):
            if r.error:
                rows.append([Path(r.target).name or r.target, "", "", "", r.error])
            elif r.point is not None:
                p = r.point
                note = f"{p.top_prediction!r} {p.top_probability:.3f}"
                rows.append([p.name, f"{p.parameters:,}" if p.parameters else "?",
                             f"{bound_mark(p.upper_bound)}{p.probability:.4f}",
                             format_rank(p.rank, p.rank_above),
                             note + ("  (cached)" if p.cached else "")])  # fmt: skip
            elif r.sweep is not None:
                s = r.sweep
                values = " → ".join(
                    f"{bound_mark(pt.upper_bound)}{pt.probability:.3f}" for pt in s.points
                )
                first, last = s.points[0], s.points[-1]
                rows.append([s.name, f"{s.parameters:,}" if s.parameters else "?",
                             f"{first.probability:.3f} → {last.probability:.3f}",
                             format_rank(last.rank, last.rank_above),
                             f"0..{last.shots} shots: {values}"])  # fmt: skip
        self.table.setColumnCount(len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                cell = QTableWidgetItem(text)
                if j in (1, 2, 3):
                    cell.setTextAlignment(RIGHT)
                self.table.setItem(i, j, cell)
        self.table.resizeColumnsToContents()

    # ----- export --------------------------------------------------------------------------

    def current_chart(self) -> Charts:
        return cast("Charts", self.charts.currentWidget())

    def rows(self) -> list[list[Any]]:
        return self.current_chart().rows()

    def picture(self) -> QWidget:
        return self.current_chart()

    # ----- remembered settings -------------------------------------------------------------

    def settings_values(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt.text()[:2000],
            "answer": self.answer.text()[:500],
            "mode": MODES[
                [self.mode_probe, self.mode_task, self.icl.radio].index(
                    cast("QRadioButton", self._modes.checkedButton())
                )
            ],
            "task": self.task.currentData(),
            "max_shots": self.max_shots.value(),
            "models": self.targets(),
        }

    def restore_settings(self, values: dict[str, Any]) -> list[str]:
        """Put back what settings_values gave (unknown or damaged values keep the defaults);
        returns the models that were ticked, to tick again once they are listed."""
        if isinstance(values.get("prompt"), str):
            self.prompt.setText(values["prompt"])
        if isinstance(values.get("answer"), str) and values["answer"]:
            self.answer.setText(values["answer"])
        if values.get("mode") in MODES:  # (none saved: the tab opens on the task)
            [self.mode_probe, self.mode_task, self.icl.radio][MODES.index(values["mode"])
                                                              ].setChecked(True)  # fmt: skip
        index = self.task.findData(values.get("task"))
        if index >= 0:
            self.task.setCurrentIndex(index)
        if isinstance(values.get("max_shots"), int):
            self.max_shots.setValue(values["max_shots"])
        models = values.get("models")
        models = [m for m in models if isinstance(m, str)] if isinstance(models, list) else []
        for target in models:  # paths and servers added by hand come back as they were
            if "://" in target or Path(target).expanduser().exists():
                self.add_target(target)
        return models


def _size_order(result: ScaleResult) -> tuple[int, int]:
    """Smallest model first; unknown sizes and errors last."""
    shown = result.point or result.sweep or result.curve or result.icl
    n = shown.parameters if shown is not None and not result.error else 0
    return (0, n) if n > 0 else (1, 0)
