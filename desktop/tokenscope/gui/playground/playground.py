"""The Playground tab: type a prompt, watch the next-token chart, turn knobs, generate.

The tab never touches the model: it sends jobs to the model service through the bridge and
shows the records that come back. Each kind of request has its lane, so a newer prediction
supersedes an older one and a stale answer never reaches the chart.
"""

from __future__ import annotations

import dataclasses
import random
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.playground.generated_text import GeneratedTextView
from tokenscope.gui.playground.probability_strip import ProbabilityStrip
from tokenscope.gui.playground.sampling_panel import SamplingPanel
from tokenscope.gui.playground.session import Branch, write_session
from tokenscope.gui.playground.session_opener import OpenedSession, SessionOpener
from tokenscope.gui.playground.token_view import TokenView
from tokenscope.gui.service_bridge import JobHandle, ServiceBridge
from tokenscope.gui.widgets.long_text import PlainTextEditor
from tokenscope.gui.widgets.next_token_chart import ChartData, NextTokenChart
from tokenscope.gui.widgets.theme import set_tone
from tokenscope.service.jobs import Generate, Predict, Tokenize
from tokenscope.service.records import GenerationDone, GenerationStarted, NextTokenView

if TYPE_CHECKING:
    from tokenscope.lm.sampling import SamplingSettings
    from tokenscope.lm.tokens import GenerationStep, Token

DEBOUNCE_MS = 15  # coalesces a burst of keys; superseded requests are dropped anyway
REFRESH_MS = 33


class Playground(QWidget):
    #: (tokens per second) — generation speed, for the status bar; GUI thread
    speed_changed = Signal(float)
    #: (message) — something the person should read (shown in the status bar); GUI thread
    message = Signal(str)
    #: (NextTokenView) — a live prediction arrived (its `recomputed` says whether the model
    #: ran or only the knobs were applied again); GUI thread
    prediction_arrived = Signal(object)
    #: (path, model id) — a session file was read, checked and is now shown; GUI thread
    session_opened = Signal(str, str)
    #: (path, message) — a session file could not be opened; nothing changed; GUI thread
    session_failed = Signal(str, str)

    def __init__(self, bridge: ServiceBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("playground")
        self.bridge = bridge
        self.model_ready = False
        self.model_id = ""  # what the loaded model was opened as (a name or a path)
        self.predicted_text: str | None = None  # the prompt the live chart belongs to
        self._prediction: NextTokenView | None = None
        self.branches: list[Branch] = []
        self.current = -1
        self.selected: int | None = None  # index of the clicked token in the current branch
        self._generation: JobHandle | None = None
        self._gen_branch = -1
        self._follow = False
        self._gen_started = 0.0
        self._gen_count = 0
        self._build()
        self._connect()

    # ----- layout --------------------------------------------------------------------------

    def _build(self) -> None:
        self.prompt = PlainTextEditor(objectName="promptEditor")
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
        self.context_info = QLabel(objectName="contextInfo", wordWrap=True)
        self.context_info.setAccessibleName("How much of the prompt the model sees")
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
        self.session_opener = SessionOpener(self)
        self.strip = ProbabilityStrip()
        self.alternatives = QListWidget(objectName="alternativesList")
        self.alternatives.setAccessibleName("Alternatives for the selected token")
        self.alternatives.setMaximumHeight(140)
        self.branch_button = QPushButton(
            "Continue with this alternative", objectName="branchButton"
        )
        for b in (self.generate_button, self.step_button, self.stop_button, self.branch_button):
            b.setAccessibleName(b.text())

        self.branch_picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.branch_picker.setMinimumContentsLength(18)
        self.tokens.setMaximumHeight(96)

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 4, 0)
        lv.addWidget(QLabel("Prompt"))
        lv.addWidget(self.prompt, 2)
        row = QHBoxLayout()
        row.addWidget(self.watch, 1)
        row.addWidget(QLabel("bars"))
        row.addWidget(self.chart_k)
        lv.addLayout(row)
        lv.addWidget(self.tokens, 1)
        lv.addWidget(self.context_info)
        lv.addWidget(self.sampling)

        generation = QWidget()
        gv = QVBoxLayout(generation)
        gv.setContentsMargins(0, 4, 0, 0)
        controls = QHBoxLayout()
        for w in (
            self.generate_button,
            self.step_button,
            self.stop_button,
            QLabel("tokens"),
            self.max_tokens,
            QLabel("branch"),
        ):
            controls.addWidget(w)
        controls.addWidget(self.branch_picker, 1)
        gv.addLayout(controls)
        gv.addWidget(self.text, 3)
        gv.addWidget(self.strip, 1)
        alt_row = QHBoxLayout()
        alt_row.addWidget(self.alternatives, 1)
        alt_row.addWidget(self.branch_button, 0, Qt.AlignmentFlag.AlignTop)
        gv.addLayout(alt_row, 1)
        self.alternatives.setMaximumHeight(110)

        right = QSplitter(Qt.Orientation.Vertical, objectName="playgroundRight")
        right.addWidget(self.chart)
        right.addWidget(generation)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        right.setChildrenCollapsible(False)
        right.setSizes([560, 440])

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 3)
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        self._update_buttons()

    def _connect(self) -> None:
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._debounce.timeout.connect(self.request_prediction)
        self._refresh = QTimer(self, singleShot=True, interval=REFRESH_MS)
        self._refresh.timeout.connect(self._refresh_generation)
        self.prompt.textChanged.connect(self._debounce.start)
        self.prompt.textChanged.connect(self._on_prompt_edited)
        self.watch.textChanged.connect(self._debounce.start)
        self.chart_k.valueChanged.connect(self._on_view_changed)
        self.sampling.settings_changed.connect(self._on_view_changed)
        self.generate_button.clicked.connect(self.generate)
        self.step_button.clicked.connect(self.step)
        self.stop_button.clicked.connect(self.stop)
        self.branch_button.clicked.connect(self.continue_with_alternative)
        self.branch_picker.activated.connect(self._on_branch_picked)
        self.session_opener.opened.connect(self._on_session_opener_opened)
        self.session_opener.failed.connect(self.session_failed)
        self.text.token_clicked.connect(self.select_token)
        self.alternatives.currentRowChanged.connect(self._update_buttons)
        QShortcut(QKeySequence("Ctrl+Return"), self, self.generate)
        QShortcut(QKeySequence("Ctrl+Enter"), self, self.generate)
        QShortcut(QKeySequence("Ctrl+Right"), self, self.step)
        # The editor takes Ctrl+Right as "next word" before any shortcut sees it; here it
        # steps, as everywhere else in the tab.
        self.prompt.installEventFilter(self)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.stop)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.prompt
            and event.type() == QEvent.Type.ShortcutOverride
            and isinstance(event, QKeyEvent)  # what PySide6 hands over for this type
            and event.key() == Qt.Key.Key_Right
            and event.modifiers() == Qt.KeyboardModifier.ControlModifier
        ):
            event.ignore()  # not the editor's: the Ctrl+Right shortcut runs instead
            return True
        return super().eventFilter(watched, event)

    # ----- predictions ---------------------------------------------------------------------

    def on_model_loaded(self, model_id: str) -> None:
        """Another model is in place: what was shown belongs to the old one."""
        self.model_ready = True
        self.model_id = model_id
        self._prediction = None
        self._show_context(None)
        self.selected = None
        self.alternatives.clear()
        self.chart.clear()
        for i, branch in enumerate(self.branches):
            self.branch_picker.setItemText(i, branch.label(i, model_id))
        self._update_buttons()
        self.request_prediction()
        self._refresh_generation()

    def request_prediction(self) -> None:
        """Ask for the live chart of the prompt as it is (and its tokens)."""
        if not self.model_ready:
            return
        text = self.prompt.toPlainText()
        self.bridge.submit(
            Predict(text, self._settings(), top_k=self.chart_k.value(), watch=self.watch.text()),
            lane="playground.predict",
            on_done=partial(self._on_prediction_done, text),
            on_error=self.message.emit,
        )
        self.bridge.submit(
            Tokenize(text),
            lane="playground.tokenize",
            on_done=self._on_tokens_done,
            on_error=self._on_tokens_failed,
        )

    @property
    def by_text(self) -> bool:
        """The model continues a branch from its text, not its token ids (a server, which
        gives no ids of its own prompt)."""
        info = self.bridge.info
        return info is not None and not info.capabilities.continues_token_ids

    def _settings(self) -> SamplingSettings:
        from tokenscope.lm.sampling import SamplingSettings

        try:
            return self.sampling.settings()
        except ValueError as e:
            self.message.emit(str(e))
            return SamplingSettings()

    def _on_prediction_done(self, text: str, view: NextTokenView | None, outcome: str) -> None:
        if outcome != "completed" or view is None:
            return
        self._prediction, self.predicted_text = view, text
        self.prediction_arrived.emit(view)
        self._show_context(view)
        self.refresh_chart()

    def _show_context(self, view: NextTokenView | None) -> None:
        """How much of the prompt the model sees; the warning goes when it stops being true."""
        info = self.bridge.info
        if view is None or info is None:
            self.context_info.setText("")
            return
        if not view.context_ids:  # a server does not say what it saw
            c = info.capabilities
            n = len(self.tokens.spans)
            window = f"{info.context_length:,}" if info.context_length else "its"
            used = f"{n:,} of {window}" if n else f"up to {window}"
            set_tone(self.context_info, "muted")
            self.context_info.setText(
                f"On a server ({c.kind} · {c.label}): {used} context tokens; the server cuts "
                "nothing and refuses a longer prompt."
            )
            return
        seen = len(view.context_ids)
        if view.dropped_tokens:
            set_tone(self.context_info, "warning")
            self.context_info.setText(
                f"The prompt is longer than the context ({info.context_length} tokens): its "
                f"first {view.dropped_tokens:,} tokens are not seen by the model."
            )
        else:
            set_tone(self.context_info, "muted")
            self.context_info.setText(f"{seen} of {info.context_length} context tokens used")

    def _on_tokens_done(self, tokens: tuple[Token, ...] | None, outcome: str) -> None:
        if outcome == "completed" and tokens is not None:
            self.tokens.set_tokens(tokens)
            if self._prediction is not None and not self._prediction.context_ids:
                self._show_context(self._prediction)  # the count comes from these tokens

    def _on_tokens_failed(self, message: str) -> None:
        self.tokens.show_note(f"The tokens are not shown: {message}")

    def _on_prompt_edited(self) -> None:
        """Typing brings the chart back to the live prediction for the prompt."""
        if self.selected is not None:
            self.selected = None
            self.alternatives.clear()
            self._refresh_generation()

    def refresh_chart(self) -> None:
        """Redraw the chart from what is known: the clicked token's captured distribution, or
        the live prediction. Never runs the model."""
        if self.selected is not None and 0 <= self.current < len(self.branches):
            steps = self.branches[self.current].steps
            if self.selected < len(steps):
                self.chart.show_data(
                    ChartData.of_step(self.selected, steps[self.selected], self.chart_k.value())
                )
                return
        view = self._prediction
        if view is not None:
            self.chart.show_data(ChartData.of_view("next token", view))

    def _on_view_changed(self) -> None:
        """Knobs or the number of bars changed: the service re-applies them to the logits it
        kept for this prompt, without running the model again."""
        self.refresh_chart()
        if self.selected is None:
            self.request_prediction()

    # ----- generation ----------------------------------------------------------------------

    @property
    def generating(self) -> bool:
        return self._generation is not None and not self._generation.finished

    def _update_buttons(self) -> None:
        ready = self.model_ready and not self.generating
        self.generate_button.setEnabled(ready)
        self.step_button.setEnabled(ready)
        self.stop_button.setEnabled(self.generating)
        self.branch_button.setEnabled(ready and self.alternatives.currentRow() >= 0)

    def generate(self) -> None:
        """A new branch from the prompt, max-tokens long."""
        if not self.model_ready or self.generating:
            return
        self._start_branch(Branch(self.prompt.toPlainText(), model=self.model_id))
        self._request(self.prompt.toPlainText(), self.max_tokens.value(), None)

    def step(self) -> None:
        """One more token on the current branch (or the first token of a new one)."""
        if not self.model_ready or self.generating:
            return
        branch = self.branches[self.current] if self.current >= 0 else None
        prompt = self.prompt.toPlainText()
        if branch is not None and branch.model != self.model_id and branch.prompt == prompt:
            self.message.emit(
                f"Branch #{self.current + 1} was made by {branch.model}; stepping with "
                f"{self.model_id} starts a new branch."
            )
        if (
            branch is None
            or branch.prompt != prompt
            or (not branch.prompt_ids and not self.by_text)
            or (branch.model != self.model_id)
        ):
            self._start_branch(Branch(prompt, model=self.model_id))
            self._request(prompt, 1, None)
        else:
            self._request(self._continuation(branch), 1, None)

    def stop(self) -> None:
        """Stop the generation in progress; no token drawn after this reaches the text."""
        if self._generation is not None and self.generating:
            self._generation.cancel()

    def continue_with_alternative(self) -> None:
        """Branch at the selected token with the chosen alternative, then keep generating."""
        row = self.alternatives.currentRow()
        if self.selected is None or row < 0 or self.generating:
            return
        source = self.branches[self.current]
        if source.model != self.model_id:
            self.message.emit(
                f"Branch #{self.current + 1} was made by {source.model}, not by the loaded "
                f"model ({self.model_id}): its tokens are ids in another vocabulary, so "
                f"{self.model_id} cannot continue it. Open {source.model} again to continue "
                "this branch, or generate a new one."
            )
            return
        step = source.steps[self.selected]
        alternative = step.top_raw[row]
        branch = Branch(
            source.prompt,
            list(source.prompt_ids),
            list(source.steps[: self.selected]),
            parent=self.current,
            fork_at=self.selected,
            model=self.model_id,
        )
        self._start_branch(branch)
        self._request(self._continuation(branch), self.max_tokens.value(),
                      (step, alternative.token_id))  # fmt: skip

    def _continuation(self, branch: Branch) -> str | tuple[int, ...]:
        """What the model continues from: the branch's token ids, or its text for a model on
        a server (which takes text and gives no ids of its own prompt)."""
        if self.by_text:
            return branch.prompt + "".join(s.text for s in branch.steps)
        return tuple(branch.prompt_ids + [s.token_id for s in branch.steps])

    def _start_branch(self, branch: Branch) -> None:
        self.branches.append(branch)
        self.current = len(self.branches) - 1
        self.selected = None
        self.alternatives.clear()
        self.branch_picker.addItem(branch.label(self.current, self.model_id))
        self.branch_picker.setCurrentIndex(self.current)
        self._refresh_generation()
        self.refresh_chart()  # the live prediction again, not a token of the old branch

    def _request(
        self,
        prompt: str | tuple[int, ...],
        max_tokens: int,
        forced: tuple[GenerationStep, int] | None,
    ) -> None:
        branch = self.branches[self.current]
        try:
            settings = self.sampling.settings(seed_offset=len(branch.steps))
        except ValueError as e:
            self.message.emit(str(e))
            return
        if settings.seed is None:
            # Not fixed: a fresh seed each time, still written down so that the branch can be
            # drawn again (tick "fixed seed" and type it in).
            settings = dataclasses.replace(settings, seed=random.randrange(2**31))
        if branch.seed is None:
            branch.seed = settings.seed
        self._follow = max_tokens == 1  # Step: the chart shows what the new token came from
        self._gen_branch = self.current
        self._gen_started, self._gen_count = time.perf_counter(), 0
        self._generation = self.bridge.submit(
            Generate(prompt, max_tokens, settings, forced),
            lane="playground.generate",
            on_yield=self._on_generation_record,
            on_done=self._on_generation_done,
            on_error=self._on_generation_failed,
        )
        self._update_buttons()

    def _on_generation_record(self, record: GenerationStarted | GenerationStep) -> None:
        branch = self.branches[self._gen_branch]
        if isinstance(record, GenerationStarted):
            if not branch.prompt_ids:
                branch.prompt_ids = list(record.prompt_ids)
            return
        branch.steps.append(record)
        self._gen_count += 1
        if not self._refresh.isActive():
            self._refresh.start()

    def _on_generation_done(self, result: GenerationDone | None, outcome: str) -> None:
        self._update_buttons()
        if not 0 <= self._gen_branch < len(self.branches):
            return  # its branch went with a session opened meanwhile
        steps = self.branches[self._gen_branch].steps
        if self._follow and outcome == "completed" and self.current == self._gen_branch and steps:
            self.select_token(len(steps) - 1)
        else:
            self._refresh_generation()
        if isinstance(result, GenerationDone):
            if result.tokens > 1:  # one token says nothing about speed
                self.speed_changed.emit(result.tokens_per_second)
            if result.reason == "eos":
                self.message.emit("The model ended the text (end-of-text token).")

    def _on_generation_failed(self, message: str) -> None:
        self.message.emit(f"Generation failed: {message}")

    def _refresh_generation(self) -> None:
        if self.current < 0:
            self.text.set_content(self.prompt.toPlainText(), [])
            self.strip.set_steps([])
            return
        branch = self.branches[self.current]
        self.text.set_content(branch.prompt, branch.steps, self.selected)
        self.strip.set_steps(branch.steps)
        self.branch_picker.setItemText(self.current, branch.label(self.current, self.model_id))
        if self.generating and self._gen_count > 1:
            elapsed = time.perf_counter() - self._gen_started
            if elapsed > 0:
                self.speed_changed.emit(self._gen_count / elapsed)

    def _on_branch_picked(self, index: int) -> None:
        if self.generating or not 0 <= index < len(self.branches):
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

    def save_session(self, path: str | Path) -> None:
        """Save the prompt, knobs, model and every branch (with captured distributions)."""
        fields = {
            "model": self.model_id,
            "prompt": self.prompt.toPlainText(),
            "watch": self.watch.text(),
            "sampling": self.sampling.values(),
            "current": self.current,
        }
        write_session(path, fields, self.branches)

    def open_session(self, path: str | Path) -> None:
        """Open a saved session: read and checked in the background (a large file takes
        seconds), then shown; `session_opened` or `session_failed` follows."""
        self.session_opener.open(path)

    def _on_session_opener_opened(self, path: str, session: OpenedSession) -> None:
        self.show_session(session)
        self.session_opened.emit(path, str(session.fields.get("model", "")))

    def set_prompt(self, text: str) -> None:
        """Put `text` in the prompt as one edit: Ctrl+Z brings back what was there."""
        self.prompt.replace_text(text)

    def show_session(self, session: OpenedSession) -> None:
        """Show a session read by the opener. A generation in progress stops: its branch
        goes with the old session."""
        data, branches = session.fields, session.branches
        self.stop()
        self._gen_branch = -1
        # The old branches go first: setting the prompt redraws, and must not reach for a
        # token of a branch the opened session does not have.
        self.selected, self.current = None, -1
        self.alternatives.clear()
        self.set_prompt(data["prompt"])
        self.watch.setText(data.get("watch", ""))
        self.sampling.set_values(session.knobs)
        self.branches = branches
        self.branch_picker.clear()
        for i, b in enumerate(self.branches):
            self.branch_picker.addItem(b.label(i, self.model_id))
        self.current = min(int(data.get("current", -1)), len(self.branches) - 1)
        self.branch_picker.setCurrentIndex(self.current)
        self.selected = None
        self._refresh_generation()
