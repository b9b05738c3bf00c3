"""The causal test of a run's induction heads, in one click: at a checkpoint, the ICL score
with every head and again with the strongest induction head silenced.

The measurement is `tokenscope icl -m CHECKPOINT --json` (the InContext job of the model
service, tokenscope.lm.icl.report) in a process of its own, waited on in the thread pool: the
window's model (the playground's) stays loaded, and no torch work shares the GUI's
interpreter. Runs on the induction corpus are measured on held-out text of it (the command's
default: another seed); other runs on the end of their own text, where their validation part
comes from.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.background import run_in_background
from tokenscope.gui.widgets.plots import quiet_plot
from tokenscope.gui.widgets.theme import chart_widget
from tokenscope.train import run_folder as ckpt

TIMEOUT_S = 300
TEXT_CHARS = 200_000  # of a run's own text, from its end (the held-out part)
LATEST = "latest"
SMALL_SCORE = 0.05  # nats: an ICL score closer to 0 than this is hardly learning from context
BAR_COLORS = ((200, 60, 60), (150, 150, 150))


@dataclass(frozen=True)
class AblationResult:
    """What `tokenscope icl --json` found at one checkpoint."""

    checkpoint: str
    icl_score: float
    icl_without: float
    head: tuple[int, int]
    induction_max: float
    undone: float | None
    text: str  # what it was measured on, in words

    @classmethod
    def from_json(cls, checkpoint: str, data: dict[str, Any], text: str) -> AblationResult:
        layer, head = data["strongest_induction_head"]
        undone = data.get("undone")
        return cls(checkpoint, float(data["icl_score"]), float(data["icl_score_without_strongest"]),
                   (int(layer), int(head)), float(data["induction_max"]),
                   None if undone is None else float(undone), text)  # fmt: skip

    @property
    def head_name(self) -> str:
        return f"L{self.head[0]} H{self.head[1]}"

    def summary(self) -> str:
        """The finding in words."""
        where = Path(self.checkpoint).name
        lines = [
            f"At {where} ({self.text}): ICL score {self.icl_score:+.3f} nats with every head; "
            f"{self.icl_without:+.3f} with {self.head_name} silenced (its induction score "
            f"{self.induction_max:.2f})."
        ]
        if self.undone is None:
            lines.append("The score is not negative: the model does not yet learn from its "
                         "context, so there is nothing for the head to undo.")  # fmt: skip
        elif self.icl_score > -SMALL_SCORE:
            lines.append(f"The score is barely below 0: the model hardly uses its context yet, "
                         f"so what silencing {self.head_name} changes says little (train "
                         "further and test again).")  # fmt: skip
        else:
            share = f"{100 * self.undone:.0f} %"
            if self.undone > 1:
                said = (f"more than all of it ({share}; without that head the late tokens are "
                        "predicted worse than the early ones)")  # fmt: skip
            else:
                said = f"{share} of it"
            lines.append(f"Silencing {self.head_name} undoes {said}.")
            if self.undone >= 0.5:
                lines.append("That one head carries most of the in-context learning.")
        return " ".join(lines)


def run_text(run_dir: Path) -> tuple[str | None, str]:
    """The text to measure a run on: None for the induction corpus's held-out text (the
    command's default), else the end of the run's own text; and how to say which."""
    from tokenscope.train.corpus import find_files

    settings = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    if settings.get("corpus_recipe") == "induction":
        return None, "held-out text of the induction corpus"
    data = [str(p) for p in settings.get("data") or []]
    if settings.get("corpus_recipe"):
        data += [str(p) for p in (run_dir / "corpus").glob("*.txt")]
    files, _skipped = find_files(data, lambda: False)
    text = ""
    for path in reversed(files):  # the end of the corpus: where the validation part is
        text = Path(path).read_text(encoding="utf-8", errors="replace")[-TEXT_CHARS:] + text
        if len(text) >= TEXT_CHARS:
            break
    if not text.strip():
        raise ValueError("the run's text cannot be found any more (its files were moved)")
    return text[-TEXT_CHARS:], "the end of the run's own text"


def measure(checkpoint: Path, run_dir: Path) -> AblationResult:
    """The ICL score at `checkpoint` with and without its strongest induction head, measured
    by `tokenscope icl` in its own process. Runs in the thread pool (it waits)."""
    from tokenscope.launch import tokenscope_command

    text, source = run_text(run_dir)
    with tempfile.TemporaryDirectory(prefix="tokenscope-icl-") as tmp:
        args = ["icl", "-m", str(checkpoint), "--json", "--threads", "1"]
        if text is None:
            args += ["--text", "induction"]
        else:
            path = Path(tmp) / "text.txt"
            path.write_text(text, encoding="utf-8")
            args += ["--text", str(path)]
        done = subprocess.run(tokenscope_command(*args), capture_output=True, text=True,
                              timeout=TIMEOUT_S, check=False)  # fmt: skip
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return AblationResult.from_json(str(checkpoint), json.loads(line), source)
    last = (done.stderr.strip().splitlines() or ["it gave no answer"])[-1]
    raise RuntimeError(f"the measurement failed: {last}")


class ICLAblation(QGroupBox):
    """A checkpoint, a button, and the ICL score with and without the strongest head."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Causal test: silence the strongest induction head", parent)
        self.setObjectName("iclAblation")
        self.run_dir: Path | None = None
        self.result: AblationResult | None = None
        self.last_error: str | None = None
        self.measuring = False
        self._request = 0
        self.checkpoint = QComboBox(objectName="iclCheckpoint")
        self.checkpoint.setAccessibleName("Checkpoint to test")
        self.button = QPushButton("Silence it and measure", objectName="iclAblateButton")
        self.button.setToolTip(
            "Loads the checkpoint in a separate process, measures the ICL score on held-out "
            "text, silences the head with the highest induction score and measures again"
        )
        self.label = QLabel(objectName="iclAblationResult", wordWrap=True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setText("Choose a checkpoint of the run to test it.")
        self.bars_plot = chart_widget(objectName="iclAblationBars")
        item = quiet_plot(self.bars_plot)
        item.setTitle("ICL score (nats)", size="8pt")
        item.getAxis("bottom").setTicks([[(0, "every head"), (1, "head silenced")]])
        item.addItem(pg.InfiniteLine(pos=0, angle=0, pen=pg.mkPen((90, 90, 90))))
        item.setXRange(-0.6, 1.6, padding=0)
        self.bars = pg.BarGraphItem(x=[0, 1], height=[0, 0], width=0.6,
                                    brushes=[pg.mkBrush(c) for c in BAR_COLORS])  # fmt: skip
        item.addItem(self.bars)
        self.bars_plot.setFixedSize(190, 105)
        self.bars_plot.setVisible(False)
        row = QHBoxLayout()
        row.addWidget(QLabel("Checkpoint"))
        row.addWidget(self.checkpoint, 1)
        row.addWidget(self.button)
        text = QVBoxLayout()
        text.addLayout(row)
        text.addWidget(self.label, 1)
        layout = QHBoxLayout(self)
        layout.addLayout(text, 1)
        layout.addWidget(self.bars_plot)
        self.button.clicked.connect(self.run)
        self._update_button()

    def set_run(self, run_dir: Path | None) -> None:
        """The run shown changed: list its checkpoints, forget the last finding."""
        if run_dir != self.run_dir:
            self.result = None
            self.bars_plot.setVisible(False)
            self.label.setText("Choose a checkpoint of the run to test it.")
        self.run_dir = run_dir
        self.refresh()

    def refresh(self) -> None:
        """Read the run's checkpoints again (a new one was saved)."""
        chosen = self.checkpoint.currentData()
        self.checkpoint.clear()
        folders = ckpt.list_checkpoints(self.run_dir) if self.run_dir is not None else []
        if folders:
            self.checkpoint.addItem(f"latest ({folders[-1].name})", LATEST)
        for folder in reversed(folders):
            self.checkpoint.addItem(folder.name, str(folder))
        index = self.checkpoint.findData(chosen)
        self.checkpoint.setCurrentIndex(max(0, index))
        self._update_button()

    def chosen_checkpoint(self) -> Path | None:
        data = self.checkpoint.currentData()
        if data is None or self.run_dir is None:
            return None
        return ckpt.latest_checkpoint(self.run_dir) if data == LATEST else Path(data)

    def run(self) -> None:
        """Measure the chosen checkpoint (in the background; the result follows)."""
        checkpoint, run_dir = self.chosen_checkpoint(), self.run_dir
        if checkpoint is None or run_dir is None:
            return
        self._request += 1
        request = self._request
        self.last_error = None
        self.measuring = True
        self._update_button()
        self.label.setText(f"Loading {checkpoint.name} and measuring, with and without its "
                           "strongest induction head…")  # fmt: skip
        run_in_background(
            lambda: measure(checkpoint, run_dir),
            lambda result, error: self._on_measured(request, result, error),
            self,
        )

    def _on_measured(self, request: int, result: AblationResult | None, error: str | None) -> None:
        if request != self._request:
            return
        self.measuring = False
        self._update_button()
        if error or result is None:
            self.last_error = (error or "no answer").split(": ", 1)[-1]
            self.label.setText(f"Could not measure: {self.last_error}")
            return
        self.result = result
        self.label.setText(result.summary())
        self.bars.setOpts(height=[result.icl_score, result.icl_without])
        item = self.bars_plot.getPlotItem()
        item.getAxis("bottom").setTicks([[(0, "every head"), (1, f"{result.head_name} off")]])
        low = min(0.0, result.icl_score, result.icl_without)
        high = max(0.0, result.icl_score, result.icl_without)
        item.setYRange(low - 0.05, high + 0.05)
        self.bars_plot.setVisible(True)

    def _update_button(self) -> None:
        self.button.setEnabled(self.checkpoint.count() > 0 and not self.measuring)
