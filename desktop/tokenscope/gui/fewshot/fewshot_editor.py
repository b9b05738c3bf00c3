"""The structured few-shot editor: instruction, example pairs, query, template and answers.

Examples can be added, removed, duplicated, reordered by dragging and pasted from a
spreadsheet (tab-separated rows). Any edit emits `prompt_changed`; `prompt()` reads the
fields as a tokenscope.lm.fewshot.FewShotPrompt.

The editor keeps one undo history for all its parts (`history`): typing in a field, a row
added, removed, moved or edited, a whole preset chosen: each is one step of Ctrl+Z (Ctrl+Shift+Z
or Ctrl+Y redoes), whichever part has the focus. Consecutive typing in one field is one step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import (
    QDropEvent,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QShortcut,
    QUndoCommand,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tokenscope.escapes import escape, unescape

if TYPE_CHECKING:
    from tokenscope.lm.fewshot.prompt import FewShotPrompt

ITEM_FLAGS = (
    Qt.ItemFlag.ItemIsSelectable
    | Qt.ItemFlag.ItemIsEditable
    | Qt.ItemFlag.ItemIsEnabled
    | Qt.ItemFlag.ItemIsDragEnabled  # not drop-enabled: an example never becomes a child
)


class ExamplesTable(QTreeWidget):
    """Two columns (input, output); rows move by drag and drop."""

    #: () — a row was added, removed, edited or moved (GUI thread)
    rows_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("examplesTable")
        self.setAccessibleName("Examples")
        self.setColumnCount(2)
        self.setHeaderLabels(["input", "output"])
        self.setRootIsDecorated(False)
        self.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.itemChanged.connect(lambda *_: self.rows_changed.emit())
        self.model().rowsMoved.connect(lambda *_: self.rows_changed.emit())

    def add_row(self, inp: str = "", out: str = "", at: int | None = None) -> QTreeWidgetItem:
        item = QTreeWidgetItem([inp, out])
        item.setFlags(ITEM_FLAGS)
        if at is None:
            self.addTopLevelItem(item)
        else:
            self.insertTopLevelItem(at, item)
        self.rows_changed.emit()
        return item

    def rows(self) -> list[tuple[str, str]]:
        items = [self.topLevelItem(i) for i in range(self.topLevelItemCount())]
        return [(item.text(0), item.text(1)) for item in items if item is not None]

    def set_rows(self, rows: list[tuple[str, str]]) -> None:
        self.blockSignals(True)
        self.clear()
        for inp, out in rows:
            item = QTreeWidgetItem([inp, out])
            item.setFlags(ITEM_FLAGS)
            self.addTopLevelItem(item)
        self.blockSignals(False)
        self.rows_changed.emit()

    def move_row(self, source: int, target: int) -> None:
        """What a drag does, for keyboard users (and tests): move row `source` to `target`."""
        item = self.takeTopLevelItem(source)
        assert item is not None, f"no row {source}"
        self.insertTopLevelItem(target, item)
        self.setCurrentItem(item)
        self.rows_changed.emit()

    def dropEvent(self, event: QDropEvent) -> None:
        super().dropEvent(event)
        self.rows_changed.emit()


def parse_rows(text: str) -> list[tuple[str, str]]:
    """Rows pasted from a spreadsheet: one per line, input and output separated by a tab."""
    rows = []
    for line in text.splitlines():
        if "\t" in line:
            inp, out = line.split("\t", 1)
            rows.append((inp.strip(), out.split("\t")[0].strip()))
    return rows


def undo_key(event: QKeyEvent) -> str | None:
    """ "undo", "redo" or None: what a key press asks of an editor's history."""
    if event.matches(QKeySequence.StandardKey.Undo):
        return "undo"
    ctrl_y = (
        event.key() == Qt.Key.Key_Y and event.modifiers() == Qt.KeyboardModifier.ControlModifier
    )
    if event.matches(QKeySequence.StandardKey.Redo) or ctrl_y:
        return "redo"
    return None


@dataclass(frozen=True)
class EditorState:
    """Everything the editor holds, as typed (a template being typed need not be valid)."""

    fields: tuple[str, ...]  # the line edits' texts, in FewShotEditor.fields order
    rows: tuple[tuple[str, str], ...]
    name: str
    notes: str


class _Change(QUndoCommand):
    """One step of the editor's history: the state before and after."""

    def __init__(self, editor: FewShotEditor, before: EditorState, after: EditorState, part: str):
        super().__init__(part)
        self.editor, self.before, self.after, self.part = editor, before, after, part
        self._done = True  # pushed after the change was made: the first redo has nothing to do

    def id(self) -> int:
        return 1

    def mergeWith(self, other: QUndoCommand) -> bool:
        # Typing on in the same field is one step; rows and whole prompts never merge.
        if not isinstance(other, _Change) or other.part != self.part or self.part in (
            "rows", "prompt"
        ):  # fmt: skip
            return False
        self.after = other.after
        return True

    def redo(self) -> None:
        if self._done:
            self._done = False
            return
        self.editor._show_state(self.after)

    def undo(self) -> None:
        self.editor._show_state(self.before)


class FewShotEditor(QWidget):
    #: () — any part of the prompt changed (GUI thread)
    prompt_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.instruction = self._line("fewshotInstruction", "Instruction")
        self.examples = ExamplesTable()
        self.query = self._line("fewshotQuery", "Query")
        self.template = self._line("fewshotTemplate", "Template")
        self.template.setText("{input} => {output}")
        self.separator = self._line("fewshotSeparator", "Between parts")
        self.separator.setText("\\n")
        self.separator.setToolTip(
            "What goes between the instruction, the examples and the query; \\n is a new line"
        )
        self.name = ""  # the prompt's name, kept as it was loaded
        self.notes = ""  # and its notes (what the task teaches), shown by the tab
        self.header = self._line("fewshotHeader", "Header before the query")
        self.expected = self._line("fewshotExpected", "Expected answer")
        self.candidates = self._line("fewshotCandidates", "Candidate answers")
        self.candidates.setPlaceholderText("label words, separated by commas (optional)")
        self.add_button = QPushButton("Add", objectName="addExampleButton")
        self.remove_button = QPushButton("Remove", objectName="removeExampleButton")
        self.duplicate_button = QPushButton("Duplicate", objectName="duplicateExampleButton")
        self.paste_button = QPushButton("Paste rows", objectName="pasteExamplesButton")
        self.paste_button.setToolTip("Paste tab-separated rows (input, output) from a spreadsheet")
        buttons = QHBoxLayout()
        for b in (self.add_button, self.remove_button, self.duplicate_button, self.paste_button):
            b.setAccessibleName(b.text())
            buttons.addWidget(b)
        form = QFormLayout()
        form.addRow("Instruction", self.instruction)
        form.addRow("Template", self.template)
        form.addRow("Between parts", self.separator)
        form.addRow("Header before the query", self.header)
        form.addRow("Query", self.query)
        form.addRow("Expected answer", self.expected)
        form.addRow("Candidates", self.candidates)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.examples, 1)
        layout.addLayout(buttons)
        layout.addLayout(form)
        self.add_button.clicked.connect(self._on_add)
        self.remove_button.clicked.connect(self._on_remove)
        self.duplicate_button.clicked.connect(self._on_duplicate)
        self.paste_button.clicked.connect(self.paste_rows)
        QShortcut(QKeySequence.StandardKey.Paste, self.examples, self.paste_rows)
        self.examples.rows_changed.connect(self.prompt_changed)
        self.fields = (
            self.instruction,
            self.query,
            self.template,
            self.separator,
            self.header,
            self.expected,
            self.candidates,
        )
        for w in self.fields:
            w.textChanged.connect(self.prompt_changed)
        self.history = QUndoStack(self)
        self._state = self.state()
        self._restoring = False
        self.prompt_changed.connect(self._record)
        for part in (*self.fields, self.examples):
            part.installEventFilter(self)

    def _line(self, name: str, label: str) -> QLineEdit:
        edit = QLineEdit(objectName=name)
        edit.setAccessibleName(label)
        return edit

    def _on_add(self) -> None:
        item = self.examples.add_row("input", "output")
        self.examples.setCurrentItem(item)
        self.examples.editItem(item, 0)

    def _on_remove(self) -> None:
        current = self.examples.currentItem()
        row = self.examples.indexOfTopLevelItem(current) if current is not None else -1
        if row >= 0:
            self.examples.takeTopLevelItem(row)
            self.examples.rows_changed.emit()

    def _on_duplicate(self) -> None:
        item = self.examples.currentItem()
        if item is not None:
            row = self.examples.indexOfTopLevelItem(item)
            self.examples.add_row(item.text(0), item.text(1), at=row + 1)

    def paste_rows(self) -> None:
        rows = parse_rows(QGuiApplication.clipboard().text())
        for inp, out in rows:
            self.examples.add_row(inp, out)

    # ----- FewShotPrompt in and out --------------------------------------------------------

    def prompt(self) -> FewShotPrompt:
        from tokenscope.lm.fewshot import Example, FewShotPrompt

        return FewShotPrompt(
            instruction=self.instruction.text(),
            examples=tuple(Example(i, o) for i, o in self.examples.rows()),
            query=self.query.text(),
            template=unescape(self.template.text()),
            separator=unescape(self.separator.text()),
            query_header=self.header.text(),
            expected=self.expected.text(),
            candidates=tuple(c.strip() for c in self.candidates.text().split(",") if c.strip()),
            name=self.name,
            notes=self.notes,
        )

    def set_prompt(self, p: FewShotPrompt) -> None:
        """Show `p`: one step of the history (Ctrl+Z brings back what was there)."""
        fields = (
            p.instruction,
            p.query,
            escape(p.template),
            escape(p.separator),
            p.query_header,
            p.expected,
            ", ".join(p.candidates),
        )
        rows = tuple((e.input, e.output) for e in p.examples)
        before = self._state
        self._show_state(EditorState(fields, rows, p.name, p.notes))
        if before != self._state:
            self.history.push(_Change(self, before, self._state, "prompt"))

    # ----- the history ---------------------------------------------------------------------

    def state(self) -> EditorState:
        rows = tuple(self.examples.rows())
        return EditorState(tuple(w.text() for w in self.fields), rows, self.name, self.notes)

    def _show_state(self, state: EditorState) -> None:
        """Put `state` in the widgets (without recording it) and say the prompt changed."""
        self._restoring = True
        try:
            for w, text in zip(self.fields, state.fields, strict=True):
                w.blockSignals(True)
                w.setText(text)
                w.blockSignals(False)
            self.name, self.notes = state.name, state.notes
            if tuple(self.examples.rows()) != state.rows:
                self.examples.set_rows(list(state.rows))
        finally:
            self._restoring = False
        self._state = self.state()
        self.prompt_changed.emit()

    def _record(self) -> None:
        if self._restoring:
            return
        after = self.state()
        if after == self._state:
            return
        before, self._state = self._state, after
        changed = [
            i for i, (a, b) in enumerate(zip(before.fields, after.fields, strict=True)) if a != b
        ]
        if before.rows != after.rows or before.name != after.name:
            part = "rows" if not changed and before.name == after.name else "prompt"
        else:
            part = self.fields[changed[0]].objectName() if len(changed) == 1 else "prompt"
        self.history.push(_Change(self, before, after, part))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Ctrl+Z and Ctrl+Shift+Z / Ctrl+Y in any part of the editor go to its history (a
        field's own history would not know about rows or presets)."""
        kind = event.type()
        if kind in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress) and isinstance(
            event, QKeyEvent
        ):
            wanted = undo_key(event)
            if wanted is not None:
                event.accept()
                if kind == QEvent.Type.KeyPress:
                    self.history.undo() if wanted == "undo" else self.history.redo()
                return True
        return super().eventFilter(watched, event)
