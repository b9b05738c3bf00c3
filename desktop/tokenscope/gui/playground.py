"""The Playground tab: type a prompt, watch the next-token chart, turn knobs, generate.

The tab never touches the model: it sends requests to the ModelWorker (through the signals
below, queued into the worker's thread) and shows what comes back. Requests carry ids; only
the latest prediction and the current generation are shown.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.generated_text import GeneratedTextView
from tokenscope.gui.model_worker import ModelWorker, Prediction
from tokenscope.gui.next_token_chart import ChartData, ChartRow, NextTokenChart
from tokenscope.gui.probability_strip import ProbabilityStrip
from tokenscope.gui.sampling_panel import SamplingPanel
from tokenscope.gui.session import Branch, read_session, write_session
from tokenscope.gui.token_view import TokenView

DEBOUNCE_MS = 15  # coalesces a burst of keys; stale requests are skipped anyway
REFRESH_MS = 33


class Playground(QWidget):
    #: (request id, prompt text, watch text) — asks the worker for a prediction
    predict_requested = Signal(int, str, str)
    #: (request id, text) — asks the worker for the prompt's tokens
    tokenize_requested = Signal(int, str)
    #: (request id, prompt text or ids, max tokens, SamplingSettings, forced step or None)
    generate_requested = Signal(int, object, int, object, object)
    #: (tokens per second) — live generation speed, for the status bar
    speed_changed = Signal(float)
    #: (message) — something the person should read (shown in the status bar)
    message = Signal(str)

    def __init__(self, worker: ModelWorker, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("playground")
        self.worker = worker
        self.model_ready = False
        self._predict_id = 0
        self._generate_id = 0
        self._prediction: Prediction | None = None
        self._prediction_id_shown = 0
        self.branches: list[Branch] = []
        self.current = -1
        self.selected: int | None = None  # index of the clicked token in the current branch
        self._generating = False
        self._gen_started = 0.0
        self._gen_count = 0
        self._build()
        self._connect()

    # ----- layout --------------------------------------------------------------------------

    def _build(self) -> None:
        self.prompt = QPlainTextEdit(objectName="promptEditor")
        self.prompt.setAccessibleName("Prompt")
        self.prompt.setPlaceholderText(
            "Type a prompt: the chart shows what the model predicts next"
        )
        self.watch = QLineEdit(objectName="watchField")
        self.watch.setAccessibleName("Watch a continuation")
        self.watch.setPlaceholderText('watch a continuation, e.g. " Jakarta"')
        self.chart_k = QSpinBox(objectName="chartTopK", minimum=3, maximum=50, value=10)
        self.chart_k.setAccessibleName("Tokens shown in the chart")
        self.tokens = TokenView()
        self.sampling = SamplingPanel()
        self.chart = NextTokenChart()
        self.generate_button = QPushButton("Generate", objectName="generateButton")
        self.generate_button.setToolTip("Generate tokens from the prompt (Ctrl+Enter)")
        self.step_button = QPushButton("Step", objectName="stepButton")
        self.step_button.setToolTip("Generate one more token (Ctrl+Right)")
        self.stop_button = QPushButton("Stop", objectName="stopButton")
        self.stop_button.setToolTip("Stop generating (Esc)")
        self.max_tokens = QSpinBox(objectName="maxTokensControl", minimum=1, maximum=4096, value=64)
        self.max_tokens.setAccessibleName("Tokens to generate")
        self.branch_picker = QComboBox(objectName="branchPicker")
        self.branch_picker.setAccessibleName("Branch")
        self.text = GeneratedTextView()
        self.strip = ProbabilityStrip()
        self.alternatives = QListWidget(objectName="alternativesList")
        self.alternatives.setAccessibleName("Alternatives for the selected token")
        self.alternatives.setMaximumHeight(140)
        self.branch_button = QPushButton(
            "Continue with this alternative", objectName="branchButton"
        )
        for b in (self.generate_button, self.step_button, self.stop_button, self.branch_button):
            b.setAccessibleName(b.text())

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.addWidget(QLabel("Prompt"))
        lv.addWidget(self.prompt, 3)
        row = QHBoxLayout()
        row.addWidget(self.watch, 1)
        row.addWidget(QLabel("show"))
        row.addWidget(self.chart_k)
        lv.addLayout(row)
        lv.addWidget(self.tokens)
        lv.addWidget(self.sampling)

        right = QWidget()
        rv = QVBoxLayout(right)
        rv.addWidget(self.chart, 3)
        controls = QHBoxLayout()
        for w in (
            self.generate_button,
            self.step_button,
            self.stop_button,
            QLabel("tokens"),
            self.max_tokens,
            QLabel("branch"),
            self.branch_picker,
        ):
            controls.addWidget(w)
        controls.addStretch(1)
        rv.addLayout(controls)
        rv.addWidget(self.text, 3)
        rv.addWidget(self.strip)
        alt_row = QHBoxLayout()
        alt_row.addWidget(self.alternatives, 1)
        alt_row.addWidget(self.branch_button)
        rv.addLayout(alt_row)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        self._set_generating(False)

    def _connect(self) -> None:
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._debounce.timeout.connect(self.request_prediction)
        self._refresh = QTimer(self, singleShot=True, interval=REFRESH_MS)
        self._refresh.timeout.connect(self._refresh_generation)
        self.prompt.textChanged.connect(self._debounce.start)
        self.prompt.textChanged.connect(self._on_prompt_edited)
        self.watch.textChanged.connect(self._debounce.start)
        self.chart_k.valueChanged.connect(self.refresh_chart)
        self.sampling.settings_changed.connect(self.refresh_chart)
        self.generate_button.clicked.connect(self.generate)
        self.step_button.clicked.connect(self.step)
        self.stop_button.clicked.connect(self.stop)
        self.branch_button.clicked.connect(self.continue_with_alternative)
        self.branch_picker.activated.connect(self._on_branch_picked)
        self.text.token_clicked.connect(self.select_token)
        self.alternatives.currentRowChanged.connect(lambda _row: self._set_generating(False))
        QShortcut(QKeySequence("Ctrl+Return"), self, self.generate)
        QShortcut(QKeySequence("Ctrl+Enter"), self, self.generate)
        QShortcut(QKeySequence("Ctrl+Right"), self, self.step)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.stop)
        w = self.worker
        self.predict_requested.connect(w.predict)
        self.tokenize_requested.connect(w.tokenize)
        self.generate_requested.connect(w.generate)
        w.prediction_ready.connect(self._on_worker_prediction_ready)
        w.tokens_ready.connect(self._on_worker_tokens_ready)
        w.token_generated.connect(self._on_worker_token_generated)
        w.generation_started.connect(self._on_worker_generation_started)
        w.generation_finished.connect(self._on_worker_generation_finished)
        w.request_failed.connect(self._on_worker_request_failed)

    # ----- predictions ---------------------------------------------------------------------

    def on_model_loaded(self) -> None:
        self.model_ready = True
        self._prediction = None
        self.selected = None
        self.chart.clear()
        self._set_generating(False)
        self.request_prediction()

    def request_prediction(self) -> None:
        if not self.model_ready:
            return
        self._predict_id += 1
        self.worker.latest_predict = self._predict_id  # lets the worker skip stale requests
        self.predict_requested.emit(self._predict_id, self.prompt.toPlainText(), self.watch.text())
        self.tokenize_requested.emit(self._predict_id, self.prompt.toPlainText())

    def _on_worker_prediction_ready(self, request_id: int, prediction: Prediction) -> None:
        if request_id != self._predict_id:
            return  # a newer request is on its way
        self._prediction = prediction
        self._prediction_id_shown = request_id
        if prediction.dropped_tokens:
            self.message.emit(
                f"The prompt is longer than the context: its first {prediction.dropped_tokens} "
                "tokens are not seen by the model."
            )
        self.refresh_chart()  # a clicked token keeps the chart until the prompt is edited

    def _on_worker_tokens_ready(self, request_id: int, spans: list) -> None:
        if request_id == self._predict_id:
            self.tokens.set_tokens(spans)

    def _on_prompt_edited(self) -> None:
        """Typing brings the chart back to the live prediction for the prompt."""
        if self.selected is not None:
            self.selected = None
            self.alternatives.clear()
            self._refresh_generation()

    def refresh_chart(self) -> None:
        """Redraw the chart from what is known; never runs the model."""
        if self.selected is not None and 0 <= self.current < len(self.branches):
            steps = self.branches[self.current].steps
            if self.selected < len(steps):
                data = self._captured_chart(self.selected, steps[self.selected])
                rows = data.rows[: self.chart_k.value()]
                self.chart.show_data(dataclasses.replace(data, rows=rows))
                return
        if self._prediction is None:
            return
        self.chart.show_data(self._live_chart(self._prediction))

    def _live_chart(self, p: Prediction) -> ChartData:
        import torch

        from tokenscope.lm.sampling import entropy_bits, sampling_distribution

        logits = torch.from_numpy(p.logits)
        try:
            settings = self.sampling.settings()
        except ValueError as e:
            self.message.emit(str(e))
            from tokenscope.lm.sampling import SamplingSettings

            settings = SamplingSettings()
        raw, sampled = sampling_distribution(logits, settings, p.context_ids)
        k = min(self.chart_k.value(), raw.numel())
        top = torch.topk(raw, k).indices.tolist()
        rows = tuple(
            ChartRow(
                rank + 1,
                i,
                p.labels[i] if i < len(p.labels) else f"<{i}>",
                float(raw[i]),
                float(sampled[i]),
            )
            for rank, i in enumerate(top)
        )
        removed = float(raw[sampled == 0].sum())
        return ChartData(
            "next token", rows, entropy_bits(raw), removed, p.watch_text, p.watch_probability
        )

    @staticmethod
    def _captured_chart(index: int, step: Any) -> ChartData:
        sampled = {a.token_id: a.probability for a in step.top_sampled}
        rows = tuple(
            ChartRow(rank + 1, a.token_id, a.display, a.probability, sampled.get(a.token_id, 0.0))
            for rank, a in enumerate(step.top_raw)
        )
        kept = sum(a.probability for a in step.top_raw if a.token_id in sampled)
        removed = max(0.0, 1.0 - kept) if len(sampled) < len(step.top_raw) else 0.0
        title = f"token {index + 1} {step.piece!r} (captured when generated)"
        return ChartData(title, rows, step.entropy, removed)

    # ----- generation ----------------------------------------------------------------------

    def _set_generating(self, on: bool) -> None:
        self._generating = on
        ready = self.model_ready and not on
        self.generate_button.setEnabled(ready)
        self.step_button.setEnabled(ready)
        self.stop_button.setEnabled(on)
        self.branch_button.setEnabled(ready and self.alternatives.currentRow() >= 0)

    def generate(self) -> None:
        """A new branch from the prompt, max-tokens long."""
        if not self.model_ready or self._generating:
            return
        self._start_branch(Branch(self.prompt.toPlainText()))
        self._request(self.prompt.toPlainText(), self.max_tokens.value(), None)

    def step(self) -> None:
        """One more token on the current branch (or the first token of a new one)."""
        if not self.model_ready or self._generating:
            return
        branch = self.branches[self.current] if self.current >= 0 else None
        if branch is None or branch.prompt != self.prompt.toPlainText() or not branch.prompt_ids:
            self._start_branch(Branch(self.prompt.toPlainText()))
            self._request(self.prompt.toPlainText(), 1, None)
        else:
            ids = branch.prompt_ids + [s.token_id for s in branch.steps]
            self._request(ids, 1, None)

    def stop(self) -> None:
        if self._generating:
            self.worker.stop_generation.set()  # a threading.Event: safe from this thread

    def continue_with_alternative(self) -> None:
        """Branch at the selected token with the chosen alternative, then keep generating."""
        row = self.alternatives.currentRow()
        if self.selected is None or row < 0 or self._generating:
            return
        source = self.branches[self.current]
        step = source.steps[self.selected]
        alternative = step.top_raw[row]
        branch = Branch(
            source.prompt,
            list(source.prompt_ids),
            list(source.steps[: self.selected]),
            parent=self.current,
            fork_at=self.selected,
        )
        self._start_branch(branch)
        ids = branch.prompt_ids + [s.token_id for s in branch.steps]
        self._request(ids, self.max_tokens.value(), (step, alternative.token_id))

    def _start_branch(self, branch: Branch) -> None:
        self.branches.append(branch)
        self.current = len(self.branches) - 1
        self.selected = None
        self.alternatives.clear()
        self.branch_picker.addItem(branch.label(self.current))
        self.branch_picker.setCurrentIndex(self.current)
        self._refresh_generation()

    def _request(self, prompt: Any, max_tokens: int, forced: Any) -> None:
        try:
            settings = self.sampling.settings(seed_offset=len(self.branches[self.current].steps))
        except ValueError as e:
            self.message.emit(str(e))
            return
        self._generate_id += 1
        self._gen_started, self._gen_count = time.perf_counter(), 0
        self._set_generating(True)
        # Cleared here, before the request is queued, so Esc right after Generate still stops it.
        self.worker.stop_generation.clear()
        self.generate_requested.emit(self._generate_id, prompt, max_tokens, settings, forced)

    def _on_worker_generation_started(self, request_id: int, prompt_ids: list) -> None:
        if request_id == self._generate_id and self.current >= 0:
            branch = self.branches[self.current]
            if not branch.prompt_ids:
                branch.prompt_ids = list(prompt_ids)

    def _on_worker_token_generated(self, request_id: int, step: Any) -> None:
        if request_id != self._generate_id or self.current < 0:
            return
        self.branches[self.current].steps.append(step)
        self._gen_count += 1
        if not self._refresh.isActive():
            self._refresh.start()

    def _on_worker_generation_finished(self, request_id: int, reason: str, rate: float) -> None:
        if request_id != self._generate_id:
            return
        self._set_generating(False)
        self._refresh_generation()
        self.speed_changed.emit(rate)
        if reason == "eos":
            self.message.emit("The model ended the text (end-of-text token).")

    def _on_worker_request_failed(self, request_id: int, message: str) -> None:
        if request_id == self._generate_id and self._generating:
            self._set_generating(False)
        self.message.emit(message)

    def _refresh_generation(self) -> None:
        if self.current < 0:
            self.text.set_content(self.prompt.toPlainText(), [])
            self.strip.set_steps([])
            return
        branch = self.branches[self.current]
        self.text.set_content(branch.prompt, branch.steps, self.selected)
        self.strip.set_steps(branch.steps)
        self.branch_picker.setItemText(self.current, branch.label(self.current))
        if self._generating:
            elapsed = time.perf_counter() - self._gen_started
            if elapsed > 0:
                self.speed_changed.emit(self._gen_count / elapsed)

    def _on_branch_picked(self, index: int) -> None:
        if self._generating or not 0 <= index < len(self.branches):
            return
        self.current = index
        self.selected = None
        self.alternatives.clear()
        self._refresh_generation()
        self.refresh_chart()

    def select_token(self, index: int) -> None:
        """Show the distribution token `index` was drawn from, and its alternatives."""
        if self.current < 0 or index >= len(self.branches[self.current].steps):
            return
        self.selected = index
        step = self.branches[self.current].steps[index]
        self.alternatives.clear()
        for a in step.top_raw:
            mark = "  (chosen)" if a.token_id == step.token_id else ""
            QListWidgetItem(f"{a.display}   {a.probability:.4f}{mark}", self.alternatives)
        self.alternatives.setCurrentRow(-1)
        self._refresh_generation()
        self.refresh_chart()

    # ----- sessions ------------------------------------------------------------------------

    def save_session(self, path: str | Path, model_id: str) -> None:
        """Save the prompt, knobs, model and every branch (with captured distributions)."""
        fields = {
            "model": model_id,
            "prompt": self.prompt.toPlainText(),
            "watch": self.watch.text(),
            "sampling": self.sampling.values(),
            "current": self.current,
        }
        write_session(path, fields, self.branches)

    def open_session(self, path: str | Path) -> str:
        """Restore a saved session; returns the model id it was made with."""
        data, branches = read_session(path)
        self.prompt.setPlainText(data["prompt"])
        self.watch.setText(data.get("watch", ""))
        self.sampling.set_values(data.get("sampling", {}))
        self.branches = branches
        self.branch_picker.clear()
        for i, b in enumerate(self.branches):
            self.branch_picker.addItem(b.label(i))
        self.current = min(int(data.get("current", -1)), len(self.branches) - 1)
        self.branch_picker.setCurrentIndex(self.current)
        self.selected = None
        self._refresh_generation()
        return str(data.get("model", ""))
