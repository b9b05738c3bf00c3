"""The Training tab's "In-context learning" pane: the run's ICL charts and heat strip
(icl_charts) above the causal test at a checkpoint (icl_ablation)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QVBoxLayout, QWidget

from tokenscope.gui.training.icl_ablation import ICLAblation
from tokenscope.gui.training.icl_charts import ICLCharts
from tokenscope.train.events import CheckpointEvent, Event


class ICLPanel(QWidget):
    """In-context learning forming during a run, and the test of what carries it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("iclPanel")
        self.charts = ICLCharts()
        self.ablation = ICLAblation()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.charts, 1)
        layout.addWidget(self.ablation)
        # The pane takes the place of the run's charts when shown (as the Ladder does), so it
        # asks the details below them for no height of its own: with its minimum the window
        # would not fit a 768-pixel screen.
        self.setMinimumSize(200, 80)

    def set_run(self, run_dir: Path | None) -> None:
        """Another run is shown: forget the last one's points, list this one's checkpoints."""
        self.charts.clear()
        self.ablation.set_run(run_dir)

    def add_event(self, event: Event) -> None:
        self.charts.add_event(event)
        if isinstance(event, CheckpointEvent):
            self.ablation.refresh()

    def shutdown(self) -> None:
        self.charts.shutdown()
