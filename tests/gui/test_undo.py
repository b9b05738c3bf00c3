"""Undo and redo in the prompt and few-shot editors, by keyboard and from the Edit menu,
including changes the program makes (a session opened, a preset chosen)."""

from __future__ import annotations

from PySide6.QtCore import Qt

CTRL = Qt.KeyboardModifier.ControlModifier
CTRL_SHIFT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier


def test_a_prompt_set_by_the_program_is_one_undo_step(qtbot, window):
    prompt = window.playground.prompt
    prompt.setFocus()
    prompt.selectAll()
    qtbot.keyClicks(prompt, "my own words")
    window.playground.set_prompt("A lesson's prompt")
    assert prompt.toPlainText() == "A lesson's prompt"

    qtbot.keyClick(prompt, Qt.Key.Key_Z, CTRL)
    assert prompt.toPlainText() == "my own words"
    qtbot.keyClick(prompt, Qt.Key.Key_Z, CTRL_SHIFT)
    assert prompt.toPlainText() == "A lesson's prompt"
    qtbot.keyClick(prompt, Qt.Key.Key_Z, CTRL)
    qtbot.keyClick(prompt, Qt.Key.Key_Y, CTRL)
    assert prompt.toPlainText() == "A lesson's prompt"

    # Edit > Undo acts on the editor with the focus.
    window.edit_menu.undo.trigger()
    assert prompt.toPlainText() == "my own words"
    window.edit_menu.redo.trigger()
    assert prompt.toPlainText() == "A lesson's prompt"


def test_the_fewshot_editor_undoes_typing_rows_and_a_whole_preset(qtbot, window):
    tab, editor = window.fewshot, window.fewshot.editor
    first = editor.state()
    assert not editor.history.canUndo()  # the preset shown at start is where history begins

    tab.load_preset("invented-language")
    chosen = editor.state()
    assert chosen != first
    editor.query.setFocus()
    editor.query.selectAll()
    qtbot.keyClicks(editor.query, "Peru")
    assert editor.query.text() == "Peru"

    # Typing in one field is one step; then the whole preset goes back in one step.
    qtbot.keyClick(editor.query, Qt.Key.Key_Z, CTRL)
    assert editor.state() == chosen
    qtbot.keyClick(editor.query, Qt.Key.Key_Z, CTRL)
    assert editor.state() == first
    assert tab.task_notes.text() == first.notes  # the notes of the task shown again
    qtbot.keyClick(editor.query, Qt.Key.Key_Z, CTRL_SHIFT)
    assert editor.state() == chosen
    qtbot.keyClick(editor.query, Qt.Key.Key_Y, CTRL)
    assert editor.query.text() == "Peru"

    # A removed row comes back with Ctrl+Z in the examples table (through Edit > Undo).
    rows = editor.examples.rows()
    editor.examples.setCurrentItem(editor.examples.topLevelItem(0))
    editor.remove_button.click()
    assert editor.examples.rows() == rows[1:]
    editor.examples.setFocus()
    qtbot.keyClick(editor.examples, Qt.Key.Key_Z, CTRL)
    assert editor.examples.rows() == rows
    window.edit_menu.redo.trigger()
    assert editor.examples.rows() == rows[1:]
