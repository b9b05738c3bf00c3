"""The prompt split into tokens: alternating colours, ids underneath, readable labels."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QTextBrowser, QWidget

from tokenscope.gui.widgets.theme import tone_color

if TYPE_CHECKING:
    from tokenscope.lm.tokens import Token

COLORS = ("#dbeafe", "#fde68a")
#: tokens drawn at most (the last ones: those nearest the next token); a book-length prompt
#: would otherwise take seconds to lay out
MAX_SHOWN = 2000
#: characters of one token's label drawn at most
MAX_LABEL = 200


class TokenView(QTextBrowser):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tokenView")
        self.setAccessibleName("Tokens of the prompt")
        self.setMaximumHeight(120)
        self.spans: Sequence[Token] = ()

    def set_tokens(self, spans: Sequence[Token]) -> None:
        """Show TokenSpan records (token_id, display)."""
        self.spans = spans
        first = max(0, len(spans) - MAX_SHOWN)
        muted = tone_color("muted")  # (dark ink on the light chips, whatever the palette)
        cells = [
            f'<span style="background-color:{COLORS[i % 2]}; color:#111111">'
            f"{html.escape(_label(s.display))}"
            f'</span><sub style="color:{muted}">{s.token_id}</sub> '
            for i, s in enumerate(spans[first:], start=first)
        ]
        hidden = f" (the first {first:,} not shown)" if first else ""
        self.setHtml(f"<div>{len(spans):,} tokens{hidden}: {''.join(cells)}</div>")

    def show_note(self, text: str) -> None:
        """No tokens to show, and why (a server that does not tokenize for its clients)."""
        self.spans = ()
        self.setHtml(f'<div style="color:{tone_color("muted")}">{html.escape(text)}</div>')


def _label(display: str) -> str:
    if len(display) <= MAX_LABEL:
        return display
    return f"{display[: MAX_LABEL // 2]}…[{len(display):,} characters]…{display[-20:]}"
