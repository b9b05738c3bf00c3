"""The prompt split into tokens: alternating colours, ids underneath, readable labels."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from PySide6.QtWidgets import QTextBrowser, QWidget

COLORS = ("#dbeafe", "#fde68a")


class TokenView(QTextBrowser):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tokenView")
        self.setAccessibleName("Tokens of the prompt")
        self.setMaximumHeight(120)
        self.spans: Sequence[Any] = ()

    def set_tokens(self, spans: Sequence[Any]) -> None:
        """Show TokenSpan records (token_id, display)."""
        self.spans = spans
        cells = [
            f'<span style="background-color:{COLORS[i % 2]}">{html.escape(s.display)}</span>'
            f'<sub style="color:#777">{s.token_id}</sub> '
            for i, s in enumerate(spans)
        ]
        self.setHtml(f"<div>{len(spans)} tokens: {''.join(cells)}</div>")
