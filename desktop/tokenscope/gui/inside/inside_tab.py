"""The Inside tab: why the model predicts what it predicts.

Three views of the loaded model's own forward pass, each asked of the model service:
- Logit lens: every layer's guess of the token after the cursor (the next token by default),
  read through the model's own final norm and output head; live as you type for models up to
  LIVE_PARAMETERS, on demand (Update) for larger ones.
- Attention: a layer's attention (one head, or the heads averaged) as a token x token heat
  map, the last token's attention as a strip, every head's induction score, and a click on a
  head to silence it (ablation) — the next-token chart and the few-shot sweeps follow.
- Surprisal: a text's tokens coloured by their surprisal in bits, with tooltips, its
  perplexity and bits per byte; with a second model, where the two disagree most.
Each view exports PNG, SVG or CSV.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QLabel,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.inside.attention_panel import AttentionPanel
from tokenscope.gui.inside.lens_panel import LensPanel
from tokenscope.gui.inside.surprisal_panel import SurprisalPanel
from tokenscope.gui.service_bridge import JobHandle, ServiceBridge
from tokenscope.gui.widgets.long_text import PlainTextEditor
from tokenscope.gui.widgets.theme import set_tone
from tokenscope.service.jobs import AttentionMap, Induction, Lens, SetAblation, Surprisal
from tokenscope.service.records import AttentionView, LensView, ModelInfo, Progress, SurprisalView

if TYPE_CHECKING:
    import numpy as np

#: models up to this size follow every keystroke; larger ones update on demand
LIVE_PARAMETERS = 150_000_000
DEBOUNCE_MS = 40


# ----- the tab ------------------------------------------------------------------------------


class InsideTab(QWidget):
    #: (message) — for the status bar; GUI thread
    message = Signal(str)
    #: () — heads were silenced or restored: other views should ask the model again
    ablation_changed = Signal()

    def __init__(self, bridge: ServiceBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("insideTab")
        self.bridge = bridge
        self.model_ready = False
        self.live = True
        # views whose picture is not of the present model, prompt and heads: drawn when shown,
        # even for a large model (else the Attention view stayed empty until a layer changed)
        self._stale: set[QWidget] = set()
        self._surprisal: JobHandle | None = None
        self.prompt = PlainTextEditor(objectName="insidePrompt")
        self.prompt.setAccessibleName("Prompt to look inside")
        self.prompt.setPlaceholderText("A prompt: the views show how the model reads it")
        self.prompt.setMaximumHeight(90)
        self.note = QLabel(objectName="insideNote", wordWrap=True)
        set_tone(self.note, "warning")
        self.lens = LensPanel()
        self.attention = AttentionPanel()
        self.surprisal = SurprisalPanel()
        self.views = QTabWidget(objectName="insideViews")
        self.views.addTab(self.lens, "Logit lens")
        self.views.addTab(self.attention, "Attention")
        self.views.addTab(self.surprisal, "Surprisal")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Prompt (the logit lens and attention views)"))
        layout.addWidget(self.prompt)
        layout.addWidget(self.note)
        layout.addWidget(self.views, 1)
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._debounce.timeout.connect(self._on_prompt_settled)
        self.prompt.textChanged.connect(self._debounce.start)
        self.prompt.cursorPositionChanged.connect(self._on_cursor_moved)
        self.views.currentChanged.connect(lambda _i: self.refresh())
        self.lens.update_button.clicked.connect(lambda: self.refresh(force=True))
        self.attention.update_button.clicked.connect(lambda: self.refresh(force=True))
        update = QShortcut(QKeySequence("Ctrl+L"), self)  # (the Update buttons' tooltips say so)
        update.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        update.activated.connect(lambda: self.refresh(force=True))
        self.lens.follow.toggled.connect(lambda _on: self.refresh(force=True))
        self.attention.layer.valueChanged.connect(lambda _v: self.request_attention())
        self.attention.head.currentIndexChanged.connect(lambda _i: self.request_attention())
        self.attention.induction_requested.connect(self.request_induction)
        self.attention.ablation_requested.connect(self.set_ablation)
        self.surprisal.run_requested.connect(self.run_surprisal)
        self.surprisal.cancel_button.clicked.connect(self.cancel_surprisal)
        for panel in (self.lens, self.attention, self.surprisal):
            panel.message.connect(self.message)

    # ----- model --------------------------------------------------------------------------

    def on_model_loaded(self, info: ModelInfo) -> None:
        """Another model is in place: its shape, whether it follows every keystroke."""
        self.model_ready = info.capabilities.internals
        self.live = info.parameters <= LIVE_PARAMETERS
        self.attention.set_shape(info.layers, self._heads(info))
        self.attention.show_ablation(frozenset())
        if not info.capabilities.internals:
            self.note.setText(
                "A model on a server returns only its top tokens: these views need the model's "
                "own forward pass. Open the model locally to look inside it."
            )
        elif not self.live:
            self.note.setText(
                f"{info.parameters / 1e6:,.0f} M parameters: the views update on demand "
                "(Update), not at every keystroke."
            )
        else:
            self.note.setText("")
        for w in (self.lens, self.attention, self.surprisal):
            w.setEnabled(self.model_ready)
        self._stale = {self.lens, self.attention}
        self.refresh(force=True)

    def _heads(self, info: ModelInfo) -> int:
        return info.heads

    # ----- requests -----------------------------------------------------------------------

    def _on_prompt_settled(self) -> None:
        self._stale = {self.lens, self.attention}
        if self.live:
            self.refresh()

    def _on_cursor_moved(self) -> None:
        if self.live and self.lens.follow.isChecked() and self.views.currentWidget() is self.lens:
            self._debounce.start()

    def refresh(self, force: bool = False) -> None:
        """Ask for the view on show (the one the person is looking at): always when `force`
        (Update) or for a small model, else when it has not been drawn for this model, prompt
        and heads yet."""
        current = self.views.currentWidget()
        if not self.model_ready or (not self.live and not force and current not in self._stale):
            return
        if current is self.lens:
            self.request_lens()
        elif current is self.attention:
            self.request_attention()

    def request_lens(self) -> None:
        text = self.prompt.toPlainText()
        self._stale.discard(self.lens)
        if not self.live:  # a large model: say it is working (one forward pass, seconds)
            self.lens.summary.setText("computing the lens (one forward pass of the model)…")
        cursor = self.prompt.textCursor().position() if self.lens.follow.isChecked() else None
        if cursor == 0:  # no token before it (a prompt put there, not typed): the next token,
            cursor = None  # rather than a start-of-text token's guess, which means nothing
        self.bridge.submit(
            Lens(text, cursor=cursor, top_k=8),
            lane="inside.lens",
            on_done=self._on_lens,
            on_error=self.message.emit,
        )

    def _on_lens(self, view: LensView | None, outcome: str) -> None:
        if outcome == "completed" and view is not None:
            self.lens.show_view(view)

    def request_attention(self) -> None:
        if not self.model_ready:
            return
        self._stale.discard(self.attention)
        if not self.live:
            self.attention.caption.setText("computing the attention weights…")
        self.bridge.submit(
            AttentionMap(self.prompt.toPlainText(), self.attention.layer.value(),
                         self.attention.head.currentData()),
            lane="inside.attention",
            on_done=self._on_attention,
            on_error=self.message.emit,
        )  # fmt: skip

    def _on_attention(self, view: AttentionView | None, outcome: str) -> None:
        if outcome == "completed" and view is not None:
            if view.heads != self.attention.head.count() - 1:
                self.attention.set_shape(view.layers, view.heads)
            self.attention.show_view(view)

    def request_induction(self) -> None:
        self.attention.heads_note.setText("computing the induction scores…")
        self.bridge.submit(
            Induction(), lane="inside.induction", on_done=self._on_induction,
            on_error=self.message.emit,
        )  # fmt: skip

    def _on_induction(self, scores: np.ndarray | None, outcome: str) -> None:
        if outcome == "completed" and scores is not None:
            self.attention.show_scores(scores)

    def set_ablation(self, heads: frozenset[tuple[int, int]]) -> None:
        """Silence exactly `heads`; every view asks again once the model has them."""
        self.bridge.submit(
            SetAblation(frozenset(heads)), lane="inside.ablation",
            on_done=self._on_ablation, on_error=self.message.emit,
        )  # fmt: skip

    def _on_ablation(self, heads: frozenset[tuple[int, int]] | None, outcome: str) -> None:
        if outcome != "completed" or heads is None:
            return
        self.attention.show_ablation(heads)
        self.ablation_changed.emit()
        self._stale = {self.lens, self.attention}
        self.refresh(force=True)
        n = len(heads)
        self.message.emit(
            f"{n} head{'s' if n != 1 else ''} silenced" if n else "all heads restored"
        )

    # ----- surprisal ----------------------------------------------------------------------

    def set_compare_choices(self, choices: list[tuple[str, str]]) -> None:
        combo = self.surprisal.other
        chosen = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("(no second model)", "")
        for label, target in choices:
            if not str(target).startswith(("http://", "https://")):
                combo.addItem(label, target)
        index = combo.findData(chosen)
        combo.setCurrentIndex(max(0, index))
        combo.blockSignals(False)

    def run_surprisal(self) -> None:
        text = self.surprisal.text.toPlainText()
        if not self.model_ready:
            return
        if not text.strip():
            self.message.emit("Paste or open a text to score first.")
            return
        self.surprisal.set_running(True)
        self._surprisal = self.bridge.submit(
            Surprisal(text, other=self.surprisal.other.currentData() or ""),
            lane="inside.surprisal",
            on_yield=self._on_surprisal_record,
            on_done=self._on_surprisal_done,
            on_error=partial(self._on_surprisal_failed),
        )

    def cancel_surprisal(self) -> None:
        if self._surprisal is not None:
            self._surprisal.cancel()

    def _on_surprisal_record(self, record: object) -> None:
        if isinstance(record, Progress):
            self.surprisal.on_progress(record)

    def _on_surprisal_failed(self, message: str) -> None:
        self.message.emit(f"Surprisal could not run: {message}")

    def _on_surprisal_done(self, view: SurprisalView | None, outcome: str) -> None:
        self.surprisal.set_running(False)
        self.surprisal.progress.setRange(0, 1)
        self.surprisal.progress.setValue(1 if outcome == "completed" else 0)
        self.surprisal.progress.setFormat(outcome)
        if outcome == "completed" and view is not None:
            self.surprisal.show_view(view)

    def sizeHint(self) -> QSize:
        return QSize(900, 600)
