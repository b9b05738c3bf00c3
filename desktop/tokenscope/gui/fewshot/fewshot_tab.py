"""The Few-shot tab: edit a prompt from parts, watch the answer's probability, sweep 0..k shots."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.fewshot.fewshot_editor import FewShotEditor
from tokenscope.gui.fewshot.sweep_chart import SweepChart
from tokenscope.gui.service_bridge import JobHandle, ServiceBridge
from tokenscope.gui.widgets.next_token_chart import ChartData, NextTokenChart
from tokenscope.gui.widgets.plots import format_probability
from tokenscope.gui.widgets.theme import set_tone, tone_color
from tokenscope.service.jobs import FewShotPreview, Sweep
from tokenscope.service.records import FewShotView, Progress, SweepSeries
from tokenscope.units import bound_mark, format_rank

if TYPE_CHECKING:
    from tokenscope.lm.fewshot.prompt import FewShotPrompt
    from tokenscope.lm.fewshot.scoring import SweepPoint

PART_COLORS = {
    "instruction": "#ede9fe",
    "example": "#dbeafe",
    "header": "#ede9fe",
    "query": "#fde68a",
}


class FewShotTab(QWidget):
    #: (message) — for the status bar; GUI thread
    message = Signal(str)

    def __init__(self, bridge: ServiceBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("fewshotTab")
        self.bridge = bridge
        self.model_ready = False
        self.preview: FewShotView | None = None
        self._notes: list[str] = []  # what the last sweep's models said about their points
        self._sweep: JobHandle | None = None
        self._build()
        self._connect()

    def _build(self) -> None:
        self.presets = QComboBox(objectName="presetPicker")
        self.presets.setAccessibleName("Preset")
        self.open_button = QPushButton("Open…", objectName="openPresetButton")
        self.save_button = QPushButton("Save…", objectName="savePresetButton")
        self.editor = FewShotEditor()
        self.assembled = QTextBrowser(objectName="assembledPrompt")
        self.assembled.setAccessibleName("Assembled prompt")
        self.token_info = QLabel(objectName="promptTokenInfo", wordWrap=True)
        self.answers = QLabel(objectName="answerProbabilities", wordWrap=True)
        self.answers.setTextFormat(Qt.TextFormat.RichText)
        self.chart = NextTokenChart()
        self.chart.setObjectName("fewshotChart")
        self.max_shots = QSpinBox(objectName="maxShotsControl", minimum=0, maximum=64, value=8)
        self.orders = QSpinBox(objectName="ordersControl", minimum=1, maximum=20, value=1)
        self.orders.setToolTip("1: the examples in the order given; more: also random orders")
        self.compare = QComboBox(objectName="compareModel")
        self.compare.setAccessibleName("Compare with model")
        self.sweep_button = QPushButton("Run sweep", objectName="sweepButton")
        self.cancel_button = QPushButton("Cancel", objectName="cancelSweepButton", enabled=False)
        self.progress = QProgressBar(objectName="sweepProgress")
        self.sweep_status = QLabel(
            textFormat=Qt.TextFormat.PlainText, objectName="sweepStatus", wordWrap=True
        )
        self.task_notes = QLabel(objectName="fewshotTaskNotes", wordWrap=True, visible=False)
        self.task_notes.setStyleSheet("background:#eef4fb; color:#1f3b57; padding:4px;")
        self.task_notes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.sweep_reading = QLabel(objectName="sweepReading", wordWrap=True)
        set_tone(self.sweep_reading, "info")
        self.sweep_chart = SweepChart()
        self.sweep_plot = self.sweep_chart.plot
        for b in (self.open_button, self.save_button, self.sweep_button, self.cancel_button):
            b.setAccessibleName(b.text())

        top = QHBoxLayout()
        top.addWidget(QLabel("Preset"))
        top.addWidget(self.presets, 1)
        top.addWidget(self.open_button)
        top.addWidget(self.save_button)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.addLayout(top)
        lv.addWidget(self.task_notes)
        lv.addWidget(self.editor, 1)

        prompt_view = QWidget()
        mv = QVBoxLayout(prompt_view)
        mv.setContentsMargins(0, 0, 0, 0)
        mv.addWidget(QLabel("Assembled prompt"))
        mv.addWidget(self.assembled, 1)
        mv.addWidget(self.token_info)
        mv.addWidget(self.answers)
        preview = QSplitter(Qt.Orientation.Horizontal, objectName="fewshotPreview")
        preview.addWidget(prompt_view)
        preview.addWidget(self.chart)
        preview.setChildrenCollapsible(False)

        sweep = QWidget()
        sv = QVBoxLayout(sweep)
        sv.setContentsMargins(0, 4, 0, 0)
        controls = QHBoxLayout()
        for w in (
            QLabel("Sweep: up to"),
            self.max_shots,
            QLabel("shots,"),
            self.orders,
            QLabel("orders; compare with"),
        ):
            controls.addWidget(w)
        controls.addWidget(self.compare, 1)
        sv.addLayout(controls)
        run_row = QHBoxLayout()
        run_row.addWidget(self.sweep_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.progress, 1)
        sv.addLayout(run_row)
        sv.addWidget(self.sweep_status)
        sv.addWidget(self.sweep_reading)
        sv.addWidget(self.sweep_chart, 1)

        right = QSplitter(Qt.Orientation.Vertical, objectName="fewshotRight")
        right.addWidget(preview)
        right.addWidget(sweep)
        right.setChildrenCollapsible(False)
        # The sweep, its reading and its chart need the larger share on a 768-pixel screen.
        right.setStretchFactor(0, 2)
        right.setStretchFactor(1, 3)
        right.setSizes([400, 600])

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 3)
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

    def _connect(self) -> None:
        self._debounce = QTimer(self, singleShot=True, interval=60)
        self._debounce.timeout.connect(self.request_preview)
        self.editor.prompt_changed.connect(self._debounce.start)
        self.editor.prompt_changed.connect(self._on_examples_changed)
        self.presets.activated.connect(self._on_preset_picked)
        self.open_button.clicked.connect(self.open_dialog)
        self.save_button.clicked.connect(self.save_dialog)
        self.sweep_button.clicked.connect(self.run_sweep)
        self.cancel_button.clicked.connect(self.cancel_sweep)
        from tokenscope.lm.fewshot import list_presets

        for name in list_presets():
            self.presets.addItem(name)
        if self.presets.count():
            self.load_preset(self.presets.itemText(0))
        self.editor.history.clear()  # the first preset is where the history starts
        self.editor.prompt_changed.connect(self._show_task_notes)

    # ----- presets -------------------------------------------------------------------------

    def load_preset(self, name: str) -> None:
        from tokenscope.lm.fewshot import FewShotPrompt, preset_path

        self._set_prompt(FewShotPrompt.load(preset_path(name)))
        self.presets.setCurrentText(name)

    def _set_prompt(self, prompt: FewShotPrompt) -> None:
        """Another task: its own examples, and no sweep of the one before."""
        self.cancel_sweep()
        self.clear_sweep()
        self.editor.set_prompt(prompt)
        self.task_notes.setText(prompt.notes)
        self.task_notes.setVisible(bool(prompt.notes))
        self.max_shots.setMaximum(len(prompt.examples))
        self.max_shots.setValue(len(prompt.examples))

    def _show_task_notes(self) -> None:
        """The notes of the task in the editor (they change back when a preset is undone)."""
        if self.task_notes.text() != self.editor.notes:
            self.task_notes.setText(self.editor.notes)
            self.task_notes.setVisible(bool(self.editor.notes))

    def _on_preset_picked(self, index: int) -> None:
        self.load_preset(self.presets.itemText(index))

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open few-shot prompt", "", "JSON (*.json)")
        if path:
            self.open_file(path)

    def open_file(self, path: str) -> None:
        from tokenscope.lm.fewshot import FewShotPrompt

        try:
            self._set_prompt(FewShotPrompt.load(path))
        except (OSError, ValueError) as e:
            self.message.emit(str(e))

    def save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save few-shot prompt", "fewshot.json", "JSON (*.json)"
        )
        if path:
            self.editor.prompt().save(path)

    def set_compare_choices(self, entries: list[tuple[str, str]]) -> None:
        """(label, model id) pairs offered for comparison; the first item compares with none."""
        self.compare.clear()
        self.compare.addItem("(no second model)", "")
        for label, target in entries:
            self.compare.addItem(label, target)

    def _on_examples_changed(self) -> None:
        """ "up to" never offers more shots than there are examples."""
        n = self.editor.examples.topLevelItemCount()
        at_most = self.max_shots.value() == self.max_shots.maximum()
        self.max_shots.setMaximum(n)
        if at_most:  # it was "all of them": it still is
            self.max_shots.setValue(n)

    # ----- preview -------------------------------------------------------------------------

    def on_model_loaded(self) -> None:
        """Another model is in place (a sweep of the old one was stopped by the switch)."""
        self.model_ready = True
        self._update_sweep_buttons()
        self.request_preview()

    def request_preview(self) -> None:
        if not self.model_ready:
            return
        try:
            prompt = self.editor.prompt()
        except ValueError as e:  # e.g. a template without {output}
            self.token_info.setText(str(e))
            return
        self.bridge.submit(
            FewShotPreview(prompt),
            lane="fewshot.preview",
            on_done=self._on_preview_done,
            on_error=self.token_info.setText,
        )

    def _on_preview_done(self, p: FewShotView | None, outcome: str) -> None:
        if outcome != "completed" or p is None:
            return
        self.preview = p

        def shown(text: str) -> str:
            return html.escape(text).replace("\n", "↵<br>")

        cells, position = [], 0
        for part in p.parts:  # each part highlighted; separators between them shown plain
            color = PART_COLORS.get(part.kind, "#eee")
            cells.append(shown(p.text[position : part.start]))
            cells.append(
                f'<span style="background-color:{color}; color:#111111">'
                f"{shown(p.text[part.start : part.end])}</span>"
            )
            position = part.end
        cells.append(shown(p.text[position:]))
        self.assembled.setHtml('<div style="white-space: pre-wrap">' + "".join(cells) + "</div>")
        fits = p.token_count <= p.context_length
        if p.token_count:
            self.token_info.setText(
                f"{p.token_count} tokens of {p.context_length} in the context"
                + ("" if fits else " — too long: the model sees only the most recent tokens")
            )
        else:  # a model on a server: its tokenizer is there, not here
            self.token_info.setText(
                "The server counts the tokens; it refuses a prompt longer than its context"
                + (f" ({p.context_length:,} tokens)." if p.context_length else ".")
            )
        lines = []
        if p.note:
            warn = tone_color("warning")
            lines.append(f'<span style="color:{warn}">{html.escape(p.note)}</span>')
        if p.expected is not None:
            e = p.expected
            lines.append(
                f"P(<b>{html.escape(repr(e.continuation))}</b>) = "
                f"{bound_mark(e.upper_bound)}{format_probability(e.probability)} "
                f"(first token rank {html.escape(format_rank(e.first_token_rank, e.rank_above))});"
                " the model's top: "
                f"{html.escape(repr(e.top_prediction))} {format_probability(e.top_probability)}"
            )
        if p.candidates:
            lines.append(
                " · ".join(f"{html.escape(c)}: {norm:.1%}" for c, _raw, norm in p.candidates)
            )
        self.answers.setText("<br>".join(lines))
        c = p.chart
        self.chart.show_data(ChartData.of_view("next token after the prompt", c))

    # ----- sweep ---------------------------------------------------------------------------

    def run_sweep(self) -> None:
        if not self.model_ready or self.sweeping:
            return
        try:
            prompt = self.editor.prompt()
        except ValueError as e:  # e.g. a template without {output}
            self._say_sweep(f"The sweep cannot run: {e}", error=True)
            return
        if not prompt.expected:
            self._say_sweep(
                "Write the expected answer first: the sweep charts its probability.", error=True
            )
            return
        self.clear_sweep()
        self.progress.setRange(0, 0)
        other = self.compare.currentData() or ""
        self._sweep = self.bridge.submit(
            Sweep(
                prompt,
                max_shots=self.max_shots.value(),
                orders=self.orders.value(),
                others=(other,) if other else (),
            ),
            lane="fewshot.sweep",
            on_yield=self._on_sweep_record,
            on_done=self._on_sweep_done,
            on_error=self._on_sweep_failed,
        )
        self._update_sweep_buttons()

    def clear_sweep(self) -> None:
        """Forget the sweep shown (its chart, table and status)."""
        self._notes = []
        self.sweep_chart.clear()
        self.sweep_status.setText("")
        self.sweep_reading.setText("")
        self.progress.reset()
        self.progress.setFormat("")

    @property
    def sweeping(self) -> bool:
        return self._sweep is not None and not self._sweep.finished

    def _update_sweep_buttons(self) -> None:
        self.sweep_button.setEnabled(self.model_ready and not self.sweeping)
        self.cancel_button.setEnabled(self.sweeping)

    def cancel_sweep(self) -> None:
        if self._sweep is not None and self.sweeping:
            self._sweep.cancel()

    def _on_sweep_record(self, record: Progress | SweepSeries) -> None:
        if isinstance(record, Progress):
            total = record.total
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(record.done)
            name = record.label
            self.progress.setFormat(
                f"{name}: {record.done}/{total}" if total else f"loading {name}…"
            )
        elif isinstance(record, SweepSeries):
            self._add_series(record)

    def _add_series(self, series: SweepSeries) -> None:
        self.sweep_chart.add_series(series.model, list(series.points))
        if series.note:
            self._notes.append(f"{series.model}: {series.note}")

    def _say_sweep(self, text: str, *, error: bool = False) -> None:
        set_tone(self.sweep_status, "error" if error else "muted")
        self.sweep_status.setText(text)

    def _on_sweep_failed(self, message: str) -> None:
        self._say_sweep(f"The sweep could not run: {message}", error=True)

    def _on_sweep_done(self, _result: str | None, outcome: str) -> None:
        self._update_sweep_buttons()
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if outcome == "completed" else 0)
        self.progress.setFormat(outcome)
        if outcome == "cancelled":
            self._say_sweep("Sweep cancelled.")
        elif outcome == "completed":
            points = sum(len(v) for v in self.sweep_chart.series.values())
            self._say_sweep(
                f"{points} points: P(expected answer) with 0 to {self.max_shots.value()} "
                "examples in the prompt." + "".join(f" ({n})" for n in self._notes)
            )
            cut = self._cut_note()
            reading = self._read_sweep()
            if cut:
                self.sweep_reading.setStyleSheet("color:#9a3412")
                self.sweep_reading.setText(cut + (f"  {reading}" if reading else ""))
            else:
                self.sweep_reading.setStyleSheet("color:#1f3b57")
                self.sweep_reading.setText(reading)

    def _cut_note(self) -> str:
        """Plain words for the points whose prompt was longer than the model's context: their
        start was cut off, so they do not measure that many examples."""
        notes = []
        for n, (name, points) in enumerate(self.sweep_chart.series.items()):
            cut = sorted({p.shots for p in points if p.dropped_tokens})
            if not cut:
                continue
            context = ""  # (the preview is of the loaded model: the first line)
            if n == 0 and self.preview is not None and self.preview.context_length:
                context = f" ({self.preview.context_length:,} tokens)"
            shots = f"{cut[0]}" if len(cut) == 1 else f"{cut[0]} to {cut[-1]}"
            who = f"{name}: " if len(self.sweep_chart.series) > 1 else ""
            notes.append(
                f"{who}with {shots} example(s) the prompt is longer than the model's "
                f"context{context}: its start is cut off, so those points (hollow) do not "
                "measure that many examples; the reading leaves them out."
            )
        if not notes:
            return ""
        text = " ".join(notes)
        return text[0].upper() + text[1:]

    def _read_sweep(self) -> str:
        """A sentence per model on what its curve says (memorised, learned in context, ...),
        from the points whose prompt fitted the model's context."""
        from tokenscope.lm.fewshot.scoring import read_sweep

        series = self.sweep_chart.series
        lines = [
            (name, read_sweep([p for p in points if not p.dropped_tokens]))
            for name, points in series.items()
        ]
        lines = [(name, text + _first_token_note(points)) for (name, text), points in
                 zip(lines, series.values(), strict=True)]  # fmt: skip
        lines = [(name, text) for name, text in lines if text]
        if len(lines) == 1:
            return lines[0][1]
        return "  ".join(f"{name}: {text}" for name, text in lines)

    def sweep_points(self) -> dict[str, list[SweepPoint]]:
        """What the sweep chart shows, by model (for tests and exports)."""
        return dict(self.sweep_chart.series)

    @property
    def sweep_labels(self) -> list[tuple[str, int, str]]:
        """(model, shots, top prediction) of every labelled point."""
        return self.sweep_chart.labels


def _first_token_note(points: list[SweepPoint]) -> str:
    """Where the answer's first token is already the model's top guess but the whole answer
    is improbable (" cloud" before an ending it has to guess), say so: the rank of 1 and the
    low P are both true."""
    for p in sorted((p for p in points if p.order == 0), key=lambda p: p.shots):
        if p.rank == 1 and p.probability < 0.05 and not p.dropped_tokens:
            shots = "no example" if p.shots == 0 else f"{p.shots} example(s)"
            return (
                f" With {shots} the answer's first token {p.top_prediction!r} is "
                f"already the top guess ({format_probability(p.top_probability)}), yet the "
                f"whole answer has P = {format_probability(p.probability)}: the rest of it is "
                "what the model has to take from the examples."
            )
    return ""
