"""The generated text: the prompt, then every generated token coloured by its probability.

Hovering a token shows its top alternatives; clicking it emits `token_clicked(index)`.
Setting new tokens only marks the view dirty; a timer redraws at most ~30 times a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QPoint, QRect, QTimer, QUrl, Signal
from PySide6.QtGui import QColor, QCursor, QFont, QFontMetrics, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QTextBrowser, QToolTip, QWidget

from tokenscope.gui.widgets.long_text import wrap_for
from tokenscope.gui.widgets.theme import tone_color

if TYPE_CHECKING:
    from tokenscope.lm.tokens import GenerationStep

REPAINT_MS = 33
#: characters of the prompt drawn at most (its end): the model sees far fewer
MAX_PROMPT_SHOWN = 20_000
MIN_LINES = 3  # the box never shrinks below this many lines (it follows the newest text)


def probability_color(p: float) -> str:
    """Red for unlikely, yellow in between, green for likely tokens (pale: text stays legible)."""
    hue = 120 * max(0.0, min(1.0, p)) / 360
    return QColor.fromHslF(hue, 0.75, 0.82).name()


def _shown(text: str) -> str:
    """Text as drawn: a newline keeps its mark (↵) so that a newline token can be seen."""
    return text.replace("\n", "↵\n")


class GeneratedTextView(QTextBrowser):
    #: (token index) — the person clicked a generated token (GUI thread)
    token_clicked = Signal(int)
    #: () — the text was laid out anew (on the repaint timer, not per token); GUI thread
    repainted = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("generatedText")
        self.setAccessibleName("Generated text")
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setMouseTracking(True)
        font = self.document().defaultFont()
        font.setPointSize(12)
        self.document().setDefaultFont(font)
        self.anchorClicked.connect(self._on_anchor_clicked)
        self.highlighted.connect(self._on_highlighted)
        self._prompt = ""
        self._steps: Sequence[GenerationStep] = ()
        self._selected: int | None = None
        self._spans: list[tuple[int, int]] = []  # document positions of each token
        self._dirty = False
        self._timer = QTimer(self, singleShot=True, interval=REPAINT_MS)
        self._timer.timeout.connect(self._render)
        # Room for a few lines of answer below the prompt's last line, whatever the layout.
        self.setMinimumHeight(MIN_LINES * QFontMetrics(font).lineSpacing() + 12)

    # ----- data in -------------------------------------------------------------------------

    def set_content(
        self, prompt: str, steps: Sequence[GenerationStep], selected: int | None = None
    ) -> None:
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

    def _token_format(self, i: int, step: GenerationStep) -> QTextCharFormat:
        f = QTextCharFormat()
        f.setAnchor(True)
        f.setAnchorHref(f"#t{i}")
        f.setForeground(QColor("#111111"))
        f.setBackground(QColor(probability_color(step.probability)))
        if i == self._selected:
            f.setFontWeight(QFont.Weight.Bold)
            f.setFontUnderline(True)
            f.setUnderlineColor(QColor("#1a56db"))
        return f

    def _insert_tokens(self, cursor: QTextCursor, indices: range) -> None:
        # Plain text with a format per token, never HTML: HTML would fold the spaces that
        # start most tokens (" Jakarta") and change the font where it is inserted.
        # One edit block: the document is laid out once at its end. Without it every token
        # laid out its whole paragraph again, so n tokens cost n^2 (a saved session of 2,000
        # tokens of 2 KB each: over ten minutes; now about two seconds).
        cursor.beginEditBlock()
        for i in indices:
            step = self._steps[i]
            start = cursor.position()
            cursor.insertText(_shown(step.text if step.text else step.display),
                              self._token_format(i, step))  # fmt: skip
            self._spans.append((start, cursor.position()))
        cursor.endEditBlock()

    def _render(self) -> None:
        self._dirty = False
        scrollbar = self.verticalScrollBar()
        at_bottom = scrollbar.value() >= scrollbar.maximum() - 4
        was_at = scrollbar.value()
        same_start = (self._prompt, self._selected, self._steps_id) == self._rendered_key
        # Another prompt or generation: its newest text is what to see (a long prompt would
        # otherwise fill a short box and keep the answer below it out of view). Only another
        # selected token: the view stays where the person was looking.
        fresh = self._rendered_key[0::2] != (self._prompt, self._steps_id)
        cursor = QTextCursor(self.document())
        if same_start and self._shown_count <= len(self._steps):
            # Tokens only arrived at the end: append them, the document stays as it is. Laying
            # out the whole text again on every tick would stall the window while generating.
            cursor.movePosition(QTextCursor.MoveOperation.End)
            self._insert_tokens(cursor, range(self._shown_count, len(self._steps)))
        else:
            self.document().clear()
            self._spans = []
            prompt = QTextCharFormat()
            prompt.setForeground(QColor(tone_color("muted")))
            shown = _shown(self._prompt)
            if len(shown) > MAX_PROMPT_SHOWN:  # the model sees far less; laying it out is slow
                shown = "…" + shown[-MAX_PROMPT_SHOWN:]
            wrap_for(self, shown)
            cursor.insertText(shown, prompt)
            self._insert_tokens(cursor, range(len(self._steps)))
            self._rendered_key = (self._prompt, self._selected, self._steps_id)
        if at_bottom or fresh:
            scrollbar.setValue(scrollbar.maximum())
        elif not same_start:
            scrollbar.setValue(was_at)
        self._shown_count = len(self._steps)
        wrap_for(self, self.document().toPlainText())
        self.repainted.emit()

    def shown_tokens(self) -> list[tuple[int, str, str]]:
        """(token index, text, background colour) of every generated token on screen."""
        self.flush()
        text = self.document().toPlainText()
        cursor = QTextCursor(self.document())
        out = []
        for i, (start, end) in enumerate(self._spans):
            cursor.setPosition(start + 1)  # the format of the character after `start`
            out.append((i, text[start:end], cursor.charFormat().background().color().name()))
        return out

    _rendered_key: tuple = (None, None, None)
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
        lines = [f"{step.display!s}  p = {step.probability:.3f}   entropy {step.entropy:.2f} bits"]
        lines += [f"  {a.display}  {a.probability:.3f}" for a in step.top_raw[:5]]
        return "\n".join(lines)

    def token_rect(self, index: int) -> QRect:
        """Where token `index` is drawn, in viewport coordinates (for clicking it)."""
        self.flush()
        if not 0 <= index < len(self._spans):
            raise IndexError(f"token {index} is not shown")
        start, end = self._spans[index]
        cursor = QTextCursor(self.document())
        cursor.setPosition(start)
        first = self.cursorRect(cursor)
        cursor.setPosition(start + max(1, (end - start) // 2))
        middle = self.cursorRect(cursor)
        return QRect(first.topLeft(), QPoint(max(middle.x(), first.x() + 2), first.bottom()))
