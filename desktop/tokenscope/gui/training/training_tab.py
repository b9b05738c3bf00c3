"""The Training tab: set up a run, start / stop / resume it as a separate process, watch it learn.

The trainer runs as `python -m tokenscope.train` (under torchrun for several processes) in a
QProcess; this tab only reads its events and plots them. Whatever happens to that process,
the window stays up: a failure is an error message here, with the trainer's log beside it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QLabel,
    QListWidget,
    QPlainTextEdit,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui import background
from tokenscope.gui.background import run_in_background
from tokenscope.gui.training.icl_panel import ICLPanel
from tokenscope.gui.training.ladder_chart import LadderChart
from tokenscope.gui.training.learning_notes import LearningNotes
from tokenscope.gui.training.recipe_presets import RecipeChoice
from tokenscope.gui.training.run_options import RunOptions
from tokenscope.gui.training.training_charts import TrainingCharts
from tokenscope.gui.training.training_controls import TrainingControls, progress_text
from tokenscope.gui.training.training_data import TrainingData
from tokenscope.gui.training.training_plan import TrainingPlan
from tokenscope.gui.training.training_process import TrainingProcess, train_command, trainer_threads
from tokenscope.gui.training.training_runs import TrainingRuns
from tokenscope.gui.widgets.model_scale_chart import ModelScaleChart
from tokenscope.train import run_folder as ckpt
from tokenscope.train.events import (
    BaselineEvent,
    CheckpointEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    LadderEvent,
    ProgressEvent,
    SampleEvent,
    StartEvent,
    StepEvent,
    WarningEvent,
)
from tokenscope.train.runs import (
    create_run,
    is_ladder_folder,
    planned_steps,
    read_run_events,
    unique_run_dir,
)
from tokenscope.units import format_duration

if TYPE_CHECKING:
    from tokenscope.lm.config import ModelConfig

STATUS_MS = 33
NO_DATA = "Add some text to train on first (files or folders), or click Sample text."
LOG_LINES = 5000
SETTINGS_MIN_WIDTH = 340  # the settings column, in pixels, beside the charts
SETTINGS_MAX_WIDTH = 560


class TrainingTab(QWidget):
    """Train small models from the window and watch them learn."""

    #: (checkpoint folder) — the person asked to open this checkpoint in the playground;
    #: GUI thread
    open_in_playground = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingTab")
        self.run_dir: Path | None = None  # the run shown (and trained, when a process runs)
        self.mode: str | None = None  # "train" or "baselines" while a process runs
        self.done_event: DoneEvent | None = None  # the running process's `done`
        self.last_error: str | None = None
        self.notes = LearningNotes()
        self._last_step: StepEvent | None = None
        self._status_dirty = False
        self._shown_once = False
        self._plan_valid = True
        self._read_id = 0
        self._steps_total: int | None = None
        self._baseline_ppl: dict[str, float] = {}
        self._logged_decile: dict[str, int] = {}
        self._ladder_replay = False  # the run shown is a ladder's folder
        self._last_run_shown = False  # the newest run was shown when the tab was made
        self.process = TrainingProcess(self)
        self._build()
        self._connect()
        self._update_buttons()
        self.runs.refresh()

    # ----- layout ------------------------------------------------------------------------------

    def _build(self) -> None:
        self.data = TrainingData()
        self.plan = TrainingPlan()
        self.scale_chart = ModelScaleChart()
        self.options = RunOptions()
        self.recipes = RecipeChoice(self.plan, self.data, self.options)
        setup = QWidget()
        column = QVBoxLayout(setup)
        for w in (self.recipes, self.data, self.plan, self.options, self.scale_chart):
            column.addWidget(w)
        scroll = QScrollArea(widgetResizable=True, objectName="trainingSettings")
        scroll.setWidget(setup)
        # Only up and down: the settings wrap to the panel's width rather than hide beyond it.
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(SETTINGS_MIN_WIDTH)
        self.settings_scroll = scroll

        self.controls = TrainingControls()
        self.start_button = self.controls.start
        self.stop_button = self.controls.stop
        self.resume_button = self.controls.resume
        self.checkpoint_choice = self.controls.checkpoint_choice
        self.playground_button = self.controls.playground
        self.baselines_button = self.controls.baselines
        self.ladder_button = self.controls.ladder
        self.ladder_chart = LadderChart()
        self.status = QLabel("No run yet.", objectName="trainingStatus", wordWrap=True)
        self.error = QLabel(
            textFormat=Qt.TextFormat.PlainText,
            objectName="trainingError",
            wordWrap=True,
            visible=False,
        )
        self.error.setStyleSheet("background:#fde2e1; color:#7a1212; padding:6px;")
        self.baselines_label = QLabel(objectName="baselinesResult", wordWrap=True)
        self.charts = TrainingCharts()
        self.notes_view = QListWidget(objectName="trainingNotes")
        self.notes_view.setAccessibleName("Notes on what to notice")
        self.notes_view.setWordWrap(True)
        self.samples = QPlainTextEdit(objectName="trainingSamples", readOnly=True)
        self.samples.setAccessibleName("Samples")
        self.log = QPlainTextEdit(objectName="trainingLog", readOnly=True)
        self.log.setAccessibleName("Trainer log")
        self.log.setMaximumBlockCount(LOG_LINES)
        self.runs = TrainingRuns()
        self.bottom = QTabWidget(objectName="trainingDetails")
        self.bottom.addTab(self.notes_view, "Notes")
        self.bottom.addTab(self.samples, "Samples")
        self.bottom.addTab(self.log, "Log")
        self.bottom.addTab(self.runs, "Runs")
        self.bottom.addTab(self.ladder_chart, "Ladder")
        self.icl = ICLPanel()  # in-context learning: its pane takes the charts' place too
        self.icl.charts.attach_loss_plot(self.charts.loss_plot)
        self.bottom.addTab(self.icl, "In-context learning")
        right = QWidget()
        rlayout = QVBoxLayout(right)
        rlayout.addWidget(self.controls)
        for label in (self.status, self.error, self.baselines_label):
            rlayout.addWidget(label)
        inner = QSplitter(Qt.Orientation.Vertical)
        inner.addWidget(self.charts)
        inner.addWidget(self.bottom)
        inner.setStretchFactor(0, 3)
        inner.setStretchFactor(1, 2)
        rlayout.addWidget(inner, 1)
        splitter = self.splitter = QSplitter(objectName="trainingSplitter")
        splitter.addWidget(scroll)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        self.status_timer = QTimer(self, interval=STATUS_MS)
        self.status_timer.timeout.connect(self._on_status_timer_timeout)
        self.status_timer.start()

    def _connect(self) -> None:
        self.data.vocabulary_estimated.connect(self.plan.set_vocabulary)
        self.data.corpus_changed.connect(self._on_data_corpus_changed)
        self.data.corpus_summarized.connect(self.plan.set_corpus_tokens)
        self.data.corpus_summarized.connect(self._on_corpus_summarized)
        self.plan.plan_changed.connect(self._on_plan_changed)
        self.plan.set_vocabulary(self.data.estimated_vocabulary())
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.resume_button.clicked.connect(self.resume)
        self.playground_button.clicked.connect(self._on_playground_clicked)
        self.baselines_button.clicked.connect(self.run_baselines)
        self.ladder_button.clicked.connect(self.start_ladder)
        self.bottom.currentChanged.connect(self._on_details_tab_changed)
        self.process.event_received.connect(self._on_process_event)
        self.process.log_received.connect(self._on_process_log)
        self.process.process_finished.connect(self._on_process_finished)
        self.process.start_failed.connect(self._on_process_start_failed)
        self.runs.run_chosen.connect(self.open_run)
        self.runs.listed.connect(self._on_runs_listed)

    def _on_runs_listed(self, runs: list) -> None:
        """The first time the runs are listed, the newest is shown (not "No run yet." after a
        restart while runs exist)."""
        if self._last_run_shown:
            return
        self._last_run_shown = True
        if runs and self.run_dir is None and not self.process.is_running():
            self.open_run(runs[0].path)
            self.runs.select(runs[0].path)

    def _on_details_tab_changed(self, _index: int) -> None:
        """The Ladder and In-context learning panes hold charts of their own: while one is
        shown it takes the place of the run's charts (which come back with any other pane),
        so that it is readable on a 768-pixel screen too."""
        self.charts.setVisible(self.bottom.currentWidget() not in (self.ladder_chart, self.icl))

    def showEvent(self, event: QShowEvent) -> None:  # Qt's name
        super().showEvent(event)
        if not self._shown_once:  # torch is imported for this: only once someone looks
            self._shown_once = True
            left = max(SETTINGS_MIN_WIDTH, min(SETTINGS_MAX_WIDTH, int(self.width() * 0.38)))
            self.splitter.setSizes([left, max(1, self.width() - left)])
            self.plan.detect_device()

    # ----- actions -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start a new run from the settings on the left."""
        prepared = self._new_run()
        if prepared is not None:
            run_dir, processes = prepared
            self._launch("train", ["--config", str(run_dir / "run.json")], processes)

    def start_ladder(self) -> None:
        """Train the settings on the left at four model sizes (the ladder's own, ~0.1 M to
        ~3 M parameters) on the chosen token budget, one after the other, in one process; the
        Ladder tab below shows loss against size with the fit as sizes finish."""
        prepared = self._new_run(suffix="-ladder")
        if prepared is None:
            return
        run_dir, _processes = prepared
        budget = self.controls.ladder_budget.currentData()
        args = ["--config", str(run_dir / "run.json"), "--ladder"]
        args += ["--ladder-tokens", str(budget)] if budget else ["--compute-optimal"]
        self.ladder_chart.clear()
        self.bottom.setCurrentWidget(self.ladder_chart)
        self._launch("ladder", args, 1)

    def _new_run(self, suffix: str = "") -> tuple[Path, int] | None:
        """A new run folder with its run.json from the settings on the left, or None (the
        reason shown)."""
        from tokenscope.train.config import TrainConfig

        if self.process.is_running():
            return None
        paths = self.data.paths()
        if not paths and not self.recipes.provides_text():
            self.show_error(NO_DATA)
            return None
        processes = self.plan.processes.value()
        run_dir = unique_run_dir(self.options.run_name() + suffix)
        fields: dict[str, Any] = {
            "data": paths,
            "out_dir": str(run_dir),
            "tokenizer": self.data.tokenizer_kind(),
            "vocab_size": self.data.vocab.value(),
            **self.options.config_fields(),
            "name": run_dir.name,
            **self.plan.config_fields(),
        }
        fields = self.recipes.merged(fields)  # a ready-made run's other settings
        if fields["tokenizer"] == "model":
            fields["init_from"] = self.data.init_from.text().strip() or "builtin"
        try:
            config = TrainConfig.from_dict(fields)
            self.plan.model_config()
            if (config.batch_size // config.grad_accum) % processes:
                raise ValueError(f"the batch ({config.batch_size}) must divide evenly over "
                                 f"{processes} processes")  # fmt: skip
        except (ValueError, TypeError) as e:
            self.show_error(f"Cannot start: {e}")
            return None
        try:
            create_run(config)
        except OSError as e:
            self.show_error(f"Cannot start: cannot make the run's folder {run_dir}: {e}")
            return None
        self._show_run(run_dir)
        return run_dir, processes

    def stop(self) -> None:
        """Ask the run to save a checkpoint and stop (a second click ends it at once)."""
        if not self.process.is_running():
            return
        if self.mode == "baselines":
            self.process.kill()
            return
        if self.mode == "ladder":
            # Each size trains in its own folder, and the one in training is not known while
            # data is prepared or between sizes: SIGTERM reaches whichever size runs (it
            # saves a checkpoint and stops), and a stopped size ends the ladder.
            self.process.run_dir = None
        self.status.setText("Stopping: saving a checkpoint… (click Stop again to end it now)")
        self.process.request_stop()

    def resume(self) -> None:
        """Continue the shown run from its last checkpoint, adding to its curves.

        When the Steps box asks for more steps than the run had, the run trains on to that
        step (the learning-rate schedule is stretched to the new end).
        """
        if self.process.is_running() or self.run_dir is None:
            return
        processes = self.plan.processes.value()
        threads = trainer_threads(processes)
        args = ["--run", str(self.run_dir), "--resume", "--set", f"threads={threads}"]
        planned = planned_steps(self.run_dir) or 0
        if self.plan.steps.value() > planned > 0:
            args += ["--set", f"steps={self.plan.steps.value()}"]
        self._launch("train", args, processes)

    def run_baselines(self) -> None:
        """Train the n-gram and LSTM baselines on the shown run's tokens."""
        if self.process.is_running() or self.run_dir is None:
            return
        self.baselines_label.setText("Training the baselines (n-gram, then LSTM)…")
        self._logged_decile = {}
        self._launch("baselines", ["--run", str(self.run_dir), "--baselines"], 1)

    def checkpoint_to_open(self) -> Path | None:
        """The best or latest checkpoint of the shown run, as chosen beside the button."""
        if self.run_dir is None:
            return None
        best = ckpt.best_checkpoint(self.run_dir)
        latest = ckpt.latest_checkpoint(self.run_dir)
        return (best or latest) if self.checkpoint_choice.currentData() == "best" else latest

    def _on_playground_clicked(self) -> None:
        path = self.checkpoint_to_open()
        if path is not None:
            self.open_in_playground.emit(str(path))

    def _launch(self, mode: str, args: list[str], processes: int) -> None:
        assert self.run_dir is not None
        self.mode, self.done_event, self._last_step = mode, None, None
        self.hide_error()
        command = train_command(args, processes)
        self.log.appendPlainText("$ " + " ".join(command))
        self.plan.set_training(True)  # no measurement competes with the run for the cores
        self.process.start(command, self.run_dir, trainer_threads(processes))
        starting = "Starting the trainer…" if mode in ("train", "ladder") else self.status.text()
        self.status.setText(starting)
        self._update_buttons()

    def shutdown(self) -> None:
        """Stop any run (it saves a checkpoint) and background work; the window is closing."""
        self.process.shutdown()
        self.plan.measurer.stop()
        self.status_timer.stop()
        self.charts.shutdown()
        self.icl.shutdown()
        background.wait_for_all(10)

    # ----- showing a run -----------------------------------------------------------------------

    def _show_run(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.plan.set_run_config(run_dir / "run.json")  # its command for several machines
        self.charts.clear()
        self.icl.set_run(run_dir)
        self.notes.reset()
        self.notes_view.clear()
        self.samples.clear()
        self.baselines_label.clear()
        self._baseline_ppl = {}
        self._last_step = self.done_event = None
        self.hide_error()

    def open_run(self, path: str) -> None:
        """Show a past run: its curves, samples and notes from its events file. A ladder's
        folder shows every size's events in turn, and its fit in the Ladder tab."""
        if self.process.is_running():
            self.status.setText("A process is running: stop it before opening another run.")
            return
        self._show_run(Path(path))
        self.status.setText(f"Reading {Path(path).name}…")
        self._read_id += 1
        request, folder = self._read_id, Path(path)
        self._ladder_replay = is_ladder_folder(folder)
        if self._ladder_replay:
            self.ladder_chart.clear()
            self.bottom.setCurrentWidget(self.ladder_chart)
        run_in_background(
            lambda: read_run_events(folder),
            lambda result, error: self._on_events_read(request, result, error),
            self,
        )

    def _on_events_read(self, request: int, events: list[Event] | None, error: str | None) -> None:
        if request != self._read_id:
            return
        if error:
            self.show_error(f"Cannot read the run's events: {error}")
            return
        for event in events or []:
            if self._ladder_replay:
                if isinstance(event, StartEvent):
                    self.charts.clear()  # the last size's curves stay
                self.ladder_chart.add_event(event)
            self._handle_event(event, live=False)
        name = self.run_dir.name if self.run_dir else ""
        if self._ladder_replay:
            sizes = len(self.ladder_chart.loss_points())
            self.status.setText(f"Ladder {name}: {sizes} size(s); the Ladder tab below shows "
                                "the fit, the charts the last size")  # fmt: skip
        else:
            self.status.setText(f"Run {name}: {self._describe_end()}")
        self._update_buttons()

    def _describe_end(self) -> str:
        step = self._last_step.step if self._last_step is not None else 0
        status = self.done_event.status if self.done_event is not None else None
        return f"step {step}, {status or 'interrupted or never finished'}"

    # ----- events ------------------------------------------------------------------------------

    def _on_process_event(self, event: Event) -> None:
        self._handle_event(event, live=True)

    def _handle_event(self, event: Event, *, live: bool) -> None:
        if self.mode == "ladder" and live:
            if isinstance(event, StartEvent):
                self.charts.clear()  # each size's curves on their own
            self.ladder_chart.add_event(event)
        self.charts.add_event(event)
        self.icl.add_event(event)
        for note in self.notes.feed(event):
            self.notes_view.addItem(note)
            self.notes_view.scrollToBottom()
        match event:
            case StepEvent():
                self._last_step = event
                self._status_dirty = True
            case StartEvent():
                self.done_event = None
                self.last_error = None
                self._steps_total = event.config.get("steps")
                self.log.appendPlainText(
                    f"start: {event.parameters:,} parameters on {event.device} "
                    f"({event.world_size} process(es), {event.threads} threads)"
                )
                if live:
                    self.status.setText(
                        f"Training: the first step of {event.parameters:,} parameters is "
                        "running (the first is the slowest)…"
                    )
            case ProgressEvent() if live:
                self._show_progress(event)
            case SampleEvent():
                self.samples.appendPlainText(f"step {event.step}: {event.prompt}{event.text}")
            case CheckpointEvent():
                self.log.appendPlainText(f"checkpoint (step {event.step}): {event.path}")
                if live:
                    self._update_buttons()
            case WarningEvent():
                step = "-" if event.step is None else event.step
                self.log.appendPlainText(f"warning (step {step}): {event.message}")
            case ErrorEvent():
                self.show_error(f"The trainer reported an error: {event.message}")
            case BaselineEvent():
                self._show_baseline(event)
            case DoneEvent():
                self.done_event = event
                self.log.appendPlainText(f"done: {event.status} at step {event.step}")
            case LadderEvent():
                self.log.appendPlainText(self.ladder_chart.summary.text())

    def _show_progress(self, event: ProgressEvent) -> None:
        stage, done, total = event.stage, event.done, event.total or 1
        text = progress_text(event)
        self.status.setText(text)
        if stage in ("ngram", "lstm"):
            self.baselines_label.setText(text)
            decile = int(10 * done / total)
            if decile != self._logged_decile.get(stage):  # the log gets one line per 10%
                self._logged_decile[stage] = decile
                self.log.appendPlainText(text)

    def _show_baseline(self, event: BaselineEvent) -> None:
        ppl = self._baseline_ppl
        ppl[event.model] = event.val_perplexity if event.val_perplexity is not None else math.nan
        val = [p for _, p in self.charts.curve_points("val")]
        parts = [f"{model}: {p:,.2f}" for model, p in ppl.items()]
        if val:
            parts.append(f"this run (best): {math.exp(min(val)):,.2f}")
        self.baselines_label.setText("Validation perplexity (lower is better) — "
                                     + "; ".join(parts))  # fmt: skip
        self.log.appendPlainText(
            f"baseline {event.model}: validation perplexity "
            f"{ppl[event.model]:,.2f} in {format_duration(event.seconds or 0)}"
        )

    def _on_process_log(self, line: str) -> None:
        self.log.appendPlainText(line)

    def _on_process_finished(self, code: int, crashed: bool) -> None:
        mode, self.mode = self.mode, None
        self.plan.set_training(False)
        done = self.done_event
        if mode == "train" and (done is None or crashed):
            tail = "\n".join(self.log.toPlainText().splitlines()[-8:])
            how = "was killed" if crashed else f"ended with exit code {code}"
            self.show_error(f"The trainer {how} before finishing. Its last output:\n{tail}")
        elif mode == "train" and done is not None and done.status == "failed":
            if not self.error.isVisible():
                self.show_error(f"The run failed: {done.message or 'see the log'}")
        elif mode == "ladder" and code != 0 and not self.error.isVisible():
            tail = "\n".join(self.log.toPlainText().splitlines()[-8:])
            self.show_error(f"The ladder did not finish (exit code {code}). Its last output:\n"
                            + tail)  # fmt: skip
        elif mode == "baselines" and code != 0 and not self.error.isVisible():
            self.show_error(f"The baselines ended with exit code {code}; see the log.")
        if mode == "train":
            self.status.setText(f"Run {self.run_dir.name if self.run_dir else ''}: "
                                + self._describe_end())  # fmt: skip
        elif mode == "ladder":
            sizes = len(self.ladder_chart.loss_points())
            self.status.setText(f"Ladder {self.run_dir.name if self.run_dir else ''}: {sizes} "
                                "size(s) trained; see the Ladder tab below")  # fmt: skip
        self._update_buttons()
        self.runs.refresh()

    def _on_process_start_failed(self, message: str) -> None:
        self.mode = None
        self.plan.set_training(False)
        self.show_error(f"Could not start the trainer: {message}")
        self._update_buttons()

    def show_error(self, message: str) -> None:
        """Show an error above the charts (kept until the next start)."""
        self.last_error = message
        self.error.setText(message)
        self.error.setVisible(True)

    def hide_error(self) -> None:
        self.error.setVisible(False)

    # ----- repainting --------------------------------------------------------------------------

    def _on_status_timer_timeout(self) -> None:
        if not self._status_dirty or self._last_step is None or not self.process.is_running():
            return
        self._status_dirty = False
        e = self._last_step
        total = self._steps_total
        of = f"/{total:,}" if total else ""
        eta = format_duration(e.eta_s or 0)
        self.status.setText(
            f"Step {e.step:,}{of} · loss {e.loss or float('nan'):.3f} · "
            f"{e.tokens_per_s or 0:,.0f} tokens/s · ETA {eta}"
        )

    def _update_buttons(self) -> None:
        running = self.process.is_running()
        has_checkpoint = self.run_dir is not None and ckpt.latest_checkpoint(self.run_dir)
        has_tokens = self.run_dir is not None and (self.run_dir / "data" / "val.bin").is_file()
        self.start_button.setEnabled(not running and self._plan_valid)
        self.stop_button.setEnabled(running)
        self.resume_button.setEnabled(not running and bool(has_checkpoint))
        self.playground_button.setEnabled(bool(has_checkpoint))
        self.baselines_button.setEnabled(not running and bool(has_tokens))
        self.ladder_button.setEnabled(not running and self._plan_valid)

    def _on_data_corpus_changed(self) -> None:
        if self.error.isVisible() and self.last_error == NO_DATA and self.data.paths():
            self.hide_error()  # it is no longer true

    def _on_corpus_summarized(self, _tokens: int | None) -> None:
        summary = self.data.summary
        chars = summary.characters if summary is not None else None
        self.plan.set_corpus_text(self.data.paths(), chars, self.data.tokenizer_kind())

    def _on_plan_changed(self, config: ModelConfig | None) -> None:
        self._plan_valid = config is not None
        self.scale_chart.set_planned(config.parameter_count() if config is not None else None)
        self._update_buttons()
