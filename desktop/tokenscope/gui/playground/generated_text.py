"""The generated text: the prompt, then every generated token coloured by its probability.

Hovering a token shows its top alternatives; clicking it emits `token_clicked(index)`.
Setting new tokens only marks the view dirty; a timer redraws at most ~30 times a second.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QPoint, QRect, QTimer, QUrl, Signal
from PySide6.QtGui import QColor, QCursor, QTextCursor
from PySide6.QtWidgets import QTextBrowser, QToolTip, QWidget

REPAINT_MS = 33


def probability_color(p: float) -> str:
    """Red for unlikely, yellow in between, green for likely tokens (pale: text stays legible)."""
    hue = 120 * max(0.0, min(1.0, p)) / 360
    return QColor.fromHslF(hue, 0.75, 0.82).name()


def _escape(text: str) -> str:
    return html.escape(text).replace("\n", "↵<br>").replace("\t", "⇥&nbsp;&nbsp;&nbsp;")


class GeneratedTextView(QTextBrowser):
    #: (token index) — the person clicked a generated token (GUI thread)
    token_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("generatedText")
        self.setAccessibleName("Generated text")
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setMouseTracking(True)
        self.anchorClicked.connect(self._on_anchor_clicked)
        self.highlighted.connect(self._on_highlighted)
        self._prompt = ""
        self._steps: Sequence[Any] = ()
        self._selected: int | None = None
        self._dirty = False
        self._timer = QTimer(self, singleShot=True, interval=REPAINT_MS)
        self._timer.timeout.connect(self._render)
        self.repaints = 0

    # ----- data in -------------------------------------------------------------------------

    def set_content(self, prompt: str, steps: Sequence[Any], selected: int | None = None) -> None:
        """Show `prompt` then `steps` (GenerationStep records); redrawn at the next tick."""
        self._prompt, self._steps, self._selected = prompt, steps, selected
        self._steps_id = id(steps)  # another branch (another list) means drawing it anew
        self._dirty = True
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        if self._dirty:
            self._timer.stop()
            self._render()

    def token_count(self) -> int:
        """How many generated tokens are on screen."""
        self.flush()
        return self._shown_count

    # ----- drawing -------------------------------------------------------------------------

    def _token_html(self, i: int, step: Any) -> str:
        text = step.text if step.text else step.piece
        border = "border-bottom: 2px solid #1a56db;" if i == self._selected else ""
        weight = "font-weight:bold;" if i == self._selected else ""
        return (
            f'<a href="#t{i}" style="color:#111; text-decoration:none; {border}{weight}'
            f'background-color:{probability_color(step.probability)}">{_escape(text)}</a>'
        )

    def _render(self) -> None:
        self._dirty = False
        scrollbar = self.verticalScrollBar()
        at_bottom = scrollbar.value() >= scrollbar.maximum() - 4
        same_start = (self._prompt, self._selected, self._steps_id) == self._rendered_key
        if same_start and self._shown_count <= len(self._steps):
            # Tokens only arrived at the end: append them, the document stays as it is. Laying
            # out the whole text again on every tick would stall the window while generating.
            cursor = QTextCursor(self.document())
            cursor.movePosition(QTextCursor.MoveOperation.End)
            new = range(self._shown_count, len(self._steps))
            cursor.insertHtml("".join(self._token_html(i, self._steps[i]) for i in new))
        else:
            parts = [f'<span style="color:#555">{_escape(self._prompt)}</span>']
            parts += [self._token_html(i, step) for i, step in enumerate(self._steps)]
            self.setHtml(
                f'<div style="white-space: pre-wrap; font-size: 12pt">{"".join(parts)}</div>'
            )
            self._rendered_key = (self._prompt, self._selected, self._steps_id)
        if at_bottom:
            scrollbar.setValue(scrollbar.maximum())
        self._shown_count = len(self._steps)
        self.repaints += 1

    _rendered_key: tuple = ()
    _steps_id = 0
    _shown_count = 0

    # ----- interaction ---------------------------------------------------------------------

    @staticmethod
    def _index(url: QUrl) -> int | None:
        fragment = url.fragment() or url.toString().lstrip("#")
        return int(fragment[1:]) if fragment.startswith("t") and fragment[1:].isdigit() else None

    def _on_anchor_clicked(self, url: QUrl) -> None:
        index = self._index(url)
        if index is not None:
            self.token_clicked.emit(index)

    def _on_highlighted(self, url: QUrl) -> None:
        index = self._index(url)
        if index is None or index >= len(self._steps):
            QToolTip.hideText()
            return
        QToolTip.showText(QCursor.pos(), self.tooltip_for(index), self)

    def tooltip_for(self, index: int) -> str:
        step = self._steps[index]
        lines = [f"{step.piece!s}  p = {step.probability:.3f}   entropy {step.entropy:.2f} bits"]
        lines += [f"  {a.display}  {a.probability:.3f}" for a in step.top_raw[:5]]
        return "\n".join(lines)

    def token_rect(self, index: int) -> QRect:
        """Where token `index` is drawn, in viewport coordinates (for clicking it)."""
        self.flush()
        doc = self.document()
        block = doc.begin()
        while block.isValid():
            it = block.begin()
            while not it.atEnd():
                fragment = it.fragment()
                if fragment.charFormat().anchorHref() == f"#t{index}":
                    cursor = QTextCursor(doc)
                    cursor.setPosition(fragment.position())
                    start = self.cursorRect(cursor)
                    cursor.setPosition(fragment.position() + max(1, fragment.length() // 2))
                    middle = self.cursorRect(cursor)
                    return QRect(
                        start.topLeft(), QPoint(max(middle.x(), start.x() + 2), start.bottom())
                    )
                it += 1
            block = block.next()
        raise IndexError(f"token {index} is not shown")
