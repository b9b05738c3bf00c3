"""The logit lens view: a layers x top-tokens heat table."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.inside.common import HEAT_INK, Exportable, heat
from tokenscope.gui.widgets.theme import set_tone
from tokenscope.service.records import LensView

# ----- the logit lens ---------------------------------------------------------------------------


class LensPanel(Exportable):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view: LensView | None = None
        self.summary = QLabel(objectName="lensSummary", wordWrap=True)
        self.follow = QCheckBox("follow the cursor", objectName="lensFollowCursor")
        self.follow.setChecked(True)
        self.follow.setToolTip(
            "Look at the token just before the cursor in the prompt; off: the next token"
        )
        self.update_button = QPushButton("Update", objectName="lensUpdateButton")
        self.update_button.setToolTip("Run the lens on the prompt as it is (Ctrl+L)")
        self.table = QTableWidget(0, 0, objectName="lensTable")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAccessibleName("Logit lens: layers by top tokens")
        self.table.verticalHeader().setDefaultSectionSize(22)
        row = QHBoxLayout()
        row.addWidget(self.follow)
        row.addWidget(self.update_button)
        row.addStretch(1)
        row.addWidget(self._export_button("lens"))
        note = QLabel(
            "Each row applies the model's own final norm and output head to the residual "
            "stream after that layer ('emb': before the first). Darker: more probable. The "
            "last row is the model's prediction.",
            wordWrap=True,
        )
        set_tone(note, "muted")
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addLayout(row)
        layout.addWidget(self.table, 1)
        layout.addWidget(note)

    def show_view(self, view: LensView) -> None:
        self.view = view
        k = max((len(r.top) for r in view.rows), default=0)
        headers = ["P(final)", "rank"] + [f"#{i + 1}" for i in range(k)]
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(view.rows))
        self.table.setVerticalHeaderLabels(
            ["emb" if r.layer == 0 else f"layer {r.layer}" for r in view.rows]
        )
        for i, r in enumerate(view.rows):
            cells = [(f"{r.target_probability:.3f}", r.target_probability),
                     (str(r.target_rank), 1.0 if r.target_rank == 1 else 0.0)]  # fmt: skip
            cells += [(f"{label}  {p:.3f}", p) for _id, label, p in r.top]
            for j, (text, p) in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setBackground(heat(p))
                item.setForeground(HEAT_INK)
                if j >= 2 and r.top[j - 2][1] == view.target_label:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(i, j, item)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        at = view.labels[view.position] if view.labels else ""
        first = view.first_top_layer
        when = (
            "the embeddings already rank it first"
            if first == 0
            else f"it becomes the top token at layer {first}"
            if first is not None
            else "no layer ranks it first"
        )
        self.summary.setText(
            f"After {at!r} (token {view.position + 1} of {len(view.labels)}) the model "
            f"predicts {view.target_label!r}; {when}. ({view.seconds * 1000:.0f} ms)"
        )

    def rows(self) -> list[list[Any]]:
        if self.view is None:
            return []
        out: list[list[Any]] = [
            ["layer", "target", "target_rank", "target_probability", "rank", "token", "p"]
        ]
        for r in self.view.rows:
            for rank, (_i, label, p) in enumerate(r.top, 1):
                out.append([r.layer, self.view.target_label, r.target_rank,
                            r.target_probability, rank, label, p])  # fmt: skip
        return out

    def picture(self) -> QWidget:
        return self.table
