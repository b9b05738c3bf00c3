"""The Training tab's rows of actions (start, stop, resume, a size ladder, open in the
playground, baselines) and the status line a run's progress gives."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from tokenscope.train.events import ProgressEvent
from tokenscope.units import format_duration


def _button(text: str, name: str, tip: str) -> QPushButton:
    b = QPushButton(text, objectName=name, toolTip=tip)
    b.setAccessibleName(text)
    return b


class TrainingControls(QWidget):
    """Buttons only: the tab connects them and decides when each is enabled."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingControls")
        self.start = _button("Start", "startTrainingButton", "Start a new run")
        self.stop = _button(
            "Stop", "stopTrainingButton", "Save a checkpoint and stop (twice: end it now)"
        )
        self.resume = _button(
            "Resume", "resumeTrainingButton", "Continue the run from its last checkpoint"
        )
        self.checkpoint_choice = QComboBox(objectName="checkpointChoice")
        self.checkpoint_choice.addItem("best checkpoint", "best")
        self.checkpoint_choice.addItem("latest checkpoint", "latest")
        self.checkpoint_choice.setAccessibleName("Which checkpoint to open")
        self.playground = _button(
            "Open in Playground", "openInPlaygroundButton", "Look inside the trained model"
        )
        self.baselines = _button(
            "Compare with baselines",
            "baselinesButton",
            "Train an n-gram model and an LSTM on the same tokens; compare validation perplexity",
        )
        self.ladder = _button(
            "Train a size ladder",
            "ladderButton",
            "Train this data at four model sizes (~0.1 M to ~3 M parameters, the same "
            "tokenizer), one after the other, and fit loss against size with a power law",
        )
        self.ladder_budget = QComboBox(objectName="ladderBudget")
        self.ladder_budget.setAccessibleName("Training tokens per ladder size")
        self.ladder_budget.addItem("1 M tokens each", 1_000_000)
        self.ladder_budget.addItem("4 M tokens each", 4_000_000)
        self.ladder_budget.addItem("compute-optimal (~20 per parameter)", 0)
        # Sized to a short item: the longest would push the tab past a 1024-pixel screen.
        self.ladder_budget.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.ladder_budget.setMinimumContentsLength(14)
        self.ladder_budget.setToolTip(
            "Training tokens for each size: the same budget for all, or about 20 tokens per "
            "parameter (the Chinchilla rule), so larger sizes train longer"
        )
        # Two rows, so the tab still fits a 1024-pixel screen beside the run's settings.
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        run = QHBoxLayout()
        for w in (self.start, self.stop, self.resume, self.ladder, self.ladder_budget):
            run.addWidget(w)
        run.addStretch(1)
        result = QHBoxLayout()
        for w in (self.checkpoint_choice, self.playground, self.baselines):
            result.addWidget(w)
        result.addStretch(1)
        layout.addLayout(run)
        layout.addLayout(result)


PROGRESS_STAGES = {
    "tokenizer": "Preparing data (training the tokenizer)",
    "tokenize": "Preparing data (tokenizing the text)",
    "model": "Building the model and its optimizer",
    "ngram": "Baselines: counting the n-gram model's trigrams",
    "lstm": "Baselines: training the LSTM",
}


def progress_text(event: ProgressEvent) -> str:
    """The status line for a run's progress event: the phase, and how far it is."""
    stage, done, total = event.stage, event.done, event.total or 1
    what = PROGRESS_STAGES.get(stage, stage)
    text = f"{what}: {done / total:.0%}"
    if stage in ("tokenizer", "model") and event.total <= 1:
        text = f"{what}…" if done < total else f"{what}: done"
    elif stage == "tokenize" and done >= total:
        text = f"{what}: done; writing the token files…"
    if stage == "lstm":
        text += f" (step {done:,} of {total:,}"
        if event.eta_s is not None:
            text += f", about {format_duration(event.eta_s)} left"
        text += ")"
    return text
