"""The Help menu: the course (F1), the keyboard shortcuts, and About (versions, data folder).

The shortcuts dialog lists what the window really has: every QAction with a shortcut and
every QShortcut among its widgets, read when the dialog opens, so it cannot drift from the
code. A QShortcut says what it does through its whatsThis text or, failing that, through the
tooltip of a button beside it that names its keys, e.g. "Generate tokens (Ctrl+Enter)".
"""

from __future__ import annotations

import platform
import re
from importlib import metadata
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, qVersion
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.course.checks import Seen
from tokenscope.gui.course.course_panel import CourseDock

if TYPE_CHECKING:
    from tokenscope.gui.main_window import MainWindow
    from tokenscope.service.records import NextTokenView

NATIVE = QKeySequence.SequenceFormat.NativeText
COURSE_WIDTH = 340  # pixels: a lesson's paragraph reads well at this width


def _version(package: str, module: str | None = None) -> str:
    """An installed package's version, read without importing it (torch takes a second)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        import sys

        found = sys.modules.get(module or package)
        return str(getattr(found, "__version__", "not installed"))


def about_lines() -> list[tuple[str, str]]:
    """(what, version or place) of everything About names."""
    import PySide6

    import tokenscope
    from tokenscope.paths import data_dir

    return [
        ("Tokenscope", tokenscope.__version__),
        ("Python", platform.python_version()),
        ("PySide6", PySide6.__version__),
        ("Qt", qVersion()),
        ("PyTorch", _version("torch")),
        ("tokenizers", _version("tokenizers")),
        ("Data folder", str(data_dir())),
    ]


def _plain(text: str) -> str:
    return text.replace("&", "").replace("…", "").strip()


def _keys(sequence: QKeySequence) -> str:
    return sequence.toString(NATIVE)


def _same_keys(a: str, b: str) -> bool:
    """Ctrl+Return and Ctrl+Enter (the two Enter keys), Esc and Escape, are one to a reader."""

    def norm(s: str) -> str:
        s = QKeySequence(s).toString(QKeySequence.SequenceFormat.PortableText).lower()
        return s.replace("return", "enter")

    return bool(a) and norm(a) == norm(b)


def _where(w: MainWindow, widget: QObject | None) -> str:
    """The tab a widget is in, or "window"."""
    pages = {w.tabs.widget(i): w.tabs.tabText(i) for i in range(w.tabs.count())}
    while widget is not None:
        if widget in pages:
            return f"{pages[widget]} tab"
        widget = widget.parent()
    return "window"


def _what(w: MainWindow, shortcut: QShortcut) -> str:
    """What a QShortcut does: its whatsThis, or the tooltip of a button in its own tab (or
    window part) that names its keys; else the name of the widget it belongs to."""
    if shortcut.whatsThis():
        return shortcut.whatsThis()
    keys = _keys(shortcut.key())
    parent = shortcut.parent()
    pages = [w.tabs.widget(i) for i in range(w.tabs.count())]
    scope = parent if isinstance(parent, QWidget) else None
    while scope is not None:
        for child in [scope, *scope.findChildren(QWidget)]:
            tip = child.toolTip()
            named = re.search(r"\(([^()]+)\)\s*$", tip)
            if named and _same_keys(named.group(1), keys):
                return tip[: named.start()].strip()
        if scope in pages:  # never another tab's button
            break
        scope = scope.parentWidget()
    standard = {
        QKeySequence.StandardKey.Paste: "Paste",
        QKeySequence.StandardKey.Copy: "Copy",
        QKeySequence.StandardKey.Cut: "Cut",
        QKeySequence.StandardKey.Undo: "Undo",
        QKeySequence.StandardKey.Redo: "Redo",
    }
    verb = next(
        (v for k, v in standard.items() if shortcut.key() in QKeySequence.keyBindings(k)), ""
    )
    name = parent.accessibleName() if isinstance(parent, QWidget) else ""
    return " ".join(x for x in (verb, f"(in {name})" if name else "") if x) or "(no description)"


def shortcut_rows(w: MainWindow) -> list[tuple[str, str, str]]:
    """(keys, what it does, where) of every shortcut in the window, read from the widgets."""
    rows: list[tuple[str, str, str]] = []
    for action in w.findChildren(QAction):
        keys = ", ".join(_keys(k) for k in action.shortcuts() if not k.isEmpty())
        if keys and action.text():
            menus = [m.title() for m in action.associatedObjects() if hasattr(m, "title")]
            where = f"{_plain(menus[0])} menu" if menus else "window"
            rows.append((keys, _plain(action.text()), where))
    grouped: dict[tuple[str, str], list[str]] = {}
    for shortcut in w.findChildren(QShortcut):
        if shortcut.key().isEmpty() or not shortcut.isEnabled():
            continue
        what, where = _what(w, shortcut), _where(w, shortcut.parent())
        combos = grouped.setdefault((what, where), [])
        if _keys(shortcut.key()) not in combos:
            combos.append(_keys(shortcut.key()))
    rows += [(" or ".join(keys), what, where) for (what, where), keys in grouped.items()]
    return rows


class ShortcutsDialog(QDialog):
    def __init__(self, w: MainWindow) -> None:
        super().__init__(w)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle("Keyboard shortcuts")
        rows = shortcut_rows(w)
        self.table = QTableWidget(len(rows), 3, objectName="shortcutsTable")
        self.table.setHorizontalHeaderLabels(["Keys", "What it does", "Where"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.resizeColumnToContents(0)
        self.table.resizeColumnToContents(2)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(620, 380)


class AboutDialog(QDialog):
    def __init__(self, w: MainWindow) -> None:
        super().__init__(w)
        self.setObjectName("aboutDialog")
        self.setWindowTitle("About Tokenscope")
        text = "\n".join(f"{what}: {value}" for what, value in about_lines())
        intro = QLabel("Tokenscope: look inside language models: P(next token | previous tokens).")
        intro.setWordWrap(True)
        self.label = QLabel(text, objectName="aboutText", textFormat=Qt.TextFormat.PlainText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.label)
        layout.addWidget(buttons)


class HelpMenu(QObject):
    """Adds the Help menu to `w` and owns the course dock (made when first asked for)."""

    def __init__(self, w: MainWindow) -> None:
        super().__init__(w)
        self.w = w
        self.dock: CourseDock | None = None
        # The Playground's predictions, tracked from the start: the course may open later.
        self.seen = Seen()
        w.playground.prediction_arrived.connect(self._on_playground_prediction_arrived)
        menu = w.menuBar().addMenu("&Help")
        self.course_action = self._add(
            menu, "&Course…", QKeySequence.StandardKey.HelpContents, self.open_course
        )
        self.shortcuts_action = self._add(
            menu, "&Keyboard shortcuts…", "Ctrl+/", self.show_shortcuts
        )
        menu.addSeparator()
        self.about_action = self._add(menu, "&About Tokenscope…", None, self.show_about)

    def _add(self, menu, text: str, keys, slot) -> QAction:
        action = QAction(text, self.w)
        if keys is not None:
            action.setShortcut(QKeySequence(keys))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _on_playground_prediction_arrived(self, view: NextTokenView) -> None:
        self.seen.take(view, self.w.playground.predicted_text)

    def course(self) -> CourseDock:
        if self.dock is None:
            self.dock = CourseDock(self.w, self.seen)
            self.w.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
            screen = self.w.screen().availableGeometry()
            tabs = self.w.centralWidget()
            central = tabs.minimumSizeHint().width() if tabs is not None else 0
            if screen.width() - central < COURSE_WIDTH:
                # No room beside the tabs (a 1024-pixel screen): the course floats at the
                # screen's right edge, over the window, where it can be moved or docked.
                self.dock.setFloating(True)
                self.dock.setGeometry(
                    screen.right() - COURSE_WIDTH,
                    screen.top() + 90,
                    COURSE_WIDTH,
                    max(400, screen.height() - 180),
                )
            else:
                self.w.resizeDocks([self.dock], [COURSE_WIDTH], Qt.Orientation.Horizontal)
        return self.dock

    def open_course(self) -> None:
        dock = self.course()
        dock.show()
        dock.raise_()

    def open_course_on_first_start(self) -> None:
        """The course opens by itself once, the first time the app starts (called by
        tokenscope.gui.app, not by the window: windows built in tests do not open it)."""
        if str(self.w.settings.value("course/opened", "")) != "true":
            self.w.settings.setValue("course/opened", "true")
            self.open_course()

    def show_shortcuts(self) -> None:
        dialog = ShortcutsDialog(self.w)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()

    def show_about(self) -> None:
        dialog = AboutDialog(self.w)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
