"""The Edit menu: Undo and Redo for the editor that has the focus.

A text editor with the focus takes Ctrl+Z itself (Qt gives the key to the editor before any
menu shortcut), so these actions run when the menu is used, or when the key is pressed
elsewhere: in the few-shot examples table, or Ctrl+Y where the platform's editors do not
know it. The few-shot editor has one history for all its parts; other editors their own.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence, QUndoStack
from PySide6.QtWidgets import QApplication, QLineEdit, QMainWindow, QPlainTextEdit, QTextEdit

from tokenscope.gui.fewshot.fewshot_editor import FewShotEditor

TextEditor = QPlainTextEdit | QTextEdit | QLineEdit


def focused_history() -> QUndoStack | TextEditor | None:
    """Where Undo and Redo go: the few-shot editor's history when the focus is in it, else
    the focused text editor (if it can be edited), else nothing."""
    widget = QApplication.focusWidget()
    at = widget
    while at is not None:
        if isinstance(at, FewShotEditor):
            return at.history
        at = at.parentWidget()
    if isinstance(widget, (QPlainTextEdit, QTextEdit, QLineEdit)) and not widget.isReadOnly():
        return widget
    return None


def _available(target: QUndoStack | TextEditor | None, redo: bool) -> bool:
    if target is None:
        return False
    if isinstance(target, QUndoStack):
        return target.canRedo() if redo else target.canUndo()
    if isinstance(target, QLineEdit):
        return target.isRedoAvailable() if redo else target.isUndoAvailable()
    document = target.document()
    return document.isRedoAvailable() if redo else document.isUndoAvailable()


def undo_focused() -> None:
    target = focused_history()
    if target is not None:
        target.undo()


def redo_focused() -> None:
    target = focused_history()
    if target is not None:
        target.redo()


class EditMenu(QObject):
    """Edit > Undo (Ctrl+Z), Redo (Ctrl+Shift+Z, Ctrl+Y)."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.menu = window.menuBar().addMenu("&Edit")
        self.undo = self._action("&Undo", ["Ctrl+Z"], undo_focused)
        self.redo = self._action("&Redo", ["Ctrl+Shift+Z", "Ctrl+Y"], redo_focused)
        # Greyed out in the open menu when there is nothing to take back; enabled again when
        # it closes (a disabled action's shortcut would not work).
        self.menu.aboutToShow.connect(self._show_availability)
        self.menu.aboutToHide.connect(self._enable)

    def _action(self, text: str, keys: list[str], slot) -> QAction:
        action = QAction(text, self)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(slot)
        self.menu.addAction(action)
        return action

    def _show_availability(self) -> None:
        target = focused_history()
        self.undo.setEnabled(_available(target, redo=False))
        self.redo.setEnabled(_available(target, redo=True))

    def _enable(self) -> None:
        self.undo.setEnabled(True)
        self.redo.setEnabled(True)
