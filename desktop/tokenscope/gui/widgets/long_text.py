"""Text views that stay quick when a text has a very long unbroken run (no spaces).

Qt wraps a line at word boundaries by searching back for one, which for a run of n characters
without a space costs about n^2: 100,000 such characters take a second to lay out, 300,000 take
three, and the window is frozen meanwhile. Where a text holds such a run, its view wraps
anywhere instead (a run that long has no words to keep whole), which costs about n.
"""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import QMimeData
from PySide6.QtGui import QTextOption
from PySide6.QtWidgets import QPlainTextEdit, QTextEdit

#: an unbroken run this long is wrapped anywhere (a real word is far shorter)
UNBROKEN = 1000
_RUN = re.compile(r"\S{" + str(UNBROKEN) + "}")

WORDS = QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere
ANYWHERE = QTextOption.WrapMode.WrapAnywhere


def has_unbroken_run(text: str) -> bool:
    return _RUN.search(text) is not None


def wrap_for(view: QPlainTextEdit | QTextEdit, text: str) -> None:
    """Give `view` the wrap mode that lays out `text` quickly. Call it with the text the view
    holds (or is empty and about to hold): switching modes lays the document out again."""
    mode = ANYWHERE if has_unbroken_run(text) else WORDS
    if view.wordWrapMode() != mode:
        view.setWordWrapMode(mode)


class PlainTextEditor(QPlainTextEdit):
    """A QPlainTextEdit that picks its wrap mode before a long text arrives (set or pasted)
    and after each edit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setWordWrapMode(WORDS)
        self.textChanged.connect(lambda: wrap_for(self, self.toPlainText()))

    def setPlainText(self, text: str) -> None:
        # Never switch to word wrapping while a long run is still in the document (that lays
        # it out again, slowly): wrap anywhere before a long text comes in, and go back to
        # words only once it is gone (textChanged does that).
        if has_unbroken_run(text):
            self.setWordWrapMode(ANYWHERE)
        super().setPlainText(text)

    def replace_text(self, text: str) -> None:
        """Set the text as one edit that Ctrl+Z takes back (setPlainText clears the history)."""
        from tokenscope.gui.widgets.undoable import replace_text

        if has_unbroken_run(text):
            self.setWordWrapMode(ANYWHERE)
        replace_text(self, text)

    def insertFromMimeData(self, source: QMimeData) -> None:
        if source.hasText() and has_unbroken_run(source.text()):
            self.setWordWrapMode(ANYWHERE)
        super().insertFromMimeData(source)
