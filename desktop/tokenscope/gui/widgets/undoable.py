"""Text set by the program that the person can take back with Ctrl+Z.

`setPlainText` and `QLineEdit.setText` clear an editor's undo history: a preset or a lesson
that replaces the prompt would throw away what the person typed, for good. These replace the
text as one edit on the undo stack instead.
"""

from __future__ import annotations

from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QLineEdit, QPlainTextEdit, QTextEdit


def replace_text(editor: QPlainTextEdit | QTextEdit | QLineEdit, text: str) -> None:
    """Replace all of the editor's text with `text`, as one step Ctrl+Z takes back."""
    if isinstance(editor, QLineEdit):
        if editor.text() == text:
            return
        # selectAll + insert is one step of QLineEdit's history (setText would clear it).
        editor.selectAll()
        editor.insert(text)
        return
    if editor.toPlainText() == text:
        return
    cursor = QTextCursor(editor.document())
    cursor.beginEditBlock()
    cursor.select(QTextCursor.SelectionType.Document)
    cursor.insertText(text)
    cursor.endEditBlock()
    editor.setTextCursor(cursor)  # the caret at the end of the new text
