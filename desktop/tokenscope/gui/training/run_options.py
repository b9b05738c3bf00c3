"""The run's own options in the Training tab: its name, a sample prompt, and the probes whose
probability is charted as it learns."""

from __future__ import annotations

import datetime

from PySide6.QtWidgets import QFormLayout, QGroupBox, QLineEdit, QPlainTextEdit, QWidget

DEFAULT_PROBES = "The capital of Indonesia is| Jakarta"


def parse_probes(text: str) -> list[dict[str, str]]:
    """`prompt|continuation` per line; the continuation keeps its leading space."""
    probes = []
    for line in text.splitlines():
        prompt, sep, continuation = line.partition("|")
        if sep and prompt.strip() and continuation:
            probes.append({"prompt": prompt.strip(), "continuation": continuation})
    return probes


class RunOptions(QGroupBox):
    """Name, sample prompt and probes of the next run."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Run", parent)
        self.setObjectName("runOptions")
        self.name = QLineEdit(objectName="runName", placeholderText="date and time")
        self.name.setAccessibleName("Run name")
        self.sample_prompt = QLineEdit("The", objectName="samplePrompt")
        self.sample_prompt.setAccessibleName("Prompt for samples")
        self.probes = QPlainTextEdit(DEFAULT_PROBES, objectName="probesEditor")
        self.probes.setAccessibleName("Probes: prompt|continuation, one per line")
        self.probes.setToolTip(
            "One probe a line: the prompt, a bar, then the continuation (spaces kept), e.g.\n"
            + DEFAULT_PROBES
        )
        self.probes.setMaximumHeight(60)
        form = QFormLayout(self)
        form.addRow("Name", self.name)
        form.addRow("Sample prompt", self.sample_prompt)
        form.addRow("Probes (prompt|continuation)", self.probes)

    def run_name(self) -> str:
        """The name typed, or the date and time."""
        return self.name.text().strip() or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")

    def config_fields(self) -> dict:
        """The TrainConfig fields these options decide."""
        prompt = self.sample_prompt.text()
        return {
            "sample_prompts": [prompt] if prompt else [],
            "probes": parse_probes(self.probes.toPlainText()),
        }
