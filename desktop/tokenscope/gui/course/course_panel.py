"""The course, beside the window: one lesson at a time, Show me, and what the numbers say.

A dock of the main window (non-modal; it can be moved to either side or floated): the lesson's
title and paragraph, a Show me button that sets the window up, the sentence to notice, and
one line per check, tested against what the window shows now (a light timer re-reads the
numbers while the dock is visible, so the lines follow the model, the prompt and runs
finishing). Previous / Next, and the lesson you were on is remembered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.course import checks, show_me
from tokenscope.gui.course.lessons import Lesson, load_lessons

if TYPE_CHECKING:
    from tokenscope.gui.main_window import MainWindow

CHECK_MS = 500
MARKS = {
    checks.SHOWN: ("✓", "#166534"),
    checks.NOT_SHOWN: ("✗ Not shown here:", "#9a3412"),
    checks.WAITING: ("…", "#555555"),
}


def _label(name: str, *, bold: bool = False) -> QLabel:
    label = QLabel(objectName=name, wordWrap=True, textFormat=Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if bold:
        font = label.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        label.setFont(font)
    return label


class CoursePanel(QWidget):
    """The lessons and their checks, for one main window."""

    def __init__(
        self, window: MainWindow, seen: checks.Seen, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("coursePanel")
        self.window_ = window
        self.lessons, self.problems = load_lessons()
        self.index = 0
        self.seen = seen  # what the window received, tracked from its start
        self.verdicts: list[checks.Verdict] = []
        self.picker = QComboBox(objectName="courseLessonPicker")
        self.picker.setAccessibleName("Lesson")
        self.picker.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.picker.setMinimumContentsLength(12)
        for i, lesson in enumerate(self.lessons):
            self.picker.addItem(f"{i + 1}. {lesson.title}", lesson.key)
        self.title = _label("courseTitle", bold=True)
        self.text = _label("courseText")
        self.show_button = QPushButton("Show me", objectName="courseShowMe")
        self.show_button.setToolTip("Set the window up for this lesson")
        self.notice = _label("courseNotice")
        self.notice.setStyleSheet("background:#eef4fb; color:#1f3b57; padding:6px;")
        self.results = QWidget(objectName="courseChecks")
        self.results_layout = QVBoxLayout(self.results)
        self.results_layout.setContentsMargins(0, 0, 0, 0)
        self.result_labels: list[QLabel] = []
        self.problems_label = _label("courseProblems")
        self.problems_label.setStyleSheet("color:#9a1b1b")
        self.problems_label.setText("\n".join(f"Not loaded: {p}" for p in self.problems))
        self.problems_label.setVisible(bool(self.problems))
        self.previous = QPushButton("< Previous", objectName="coursePrevious")
        self.next = QPushButton("Next >", objectName="courseNext")
        for b in (self.show_button, self.previous, self.next):
            b.setAccessibleName(b.text().strip("<> "))

        body = QWidget()
        bv = QVBoxLayout(body)
        for widget in (self.title, self.text):
            bv.addWidget(widget)
        row = QHBoxLayout()
        row.addWidget(self.show_button)
        row.addStretch(1)
        bv.addLayout(row)
        bv.addWidget(QLabel("What to notice"))
        bv.addWidget(self.notice)
        bv.addWidget(self.results)
        bv.addWidget(self.problems_label)
        bv.addStretch(1)
        scroll = QScrollArea(widgetResizable=True, objectName="courseScroll")
        scroll.setWidget(body)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        nav = QHBoxLayout()
        nav.addWidget(self.previous)
        nav.addStretch(1)
        nav.addWidget(self.next)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.picker)
        layout.addWidget(scroll, 1)
        layout.addLayout(nav)

        self.timer = QTimer(self, interval=CHECK_MS)
        self.timer.timeout.connect(self.refresh_checks)
        self.show_button.clicked.connect(self.show_me)
        self.previous.clicked.connect(lambda: self.go(self.index - 1))
        self.next.clicked.connect(lambda: self.go(self.index + 1))
        self.picker.activated.connect(self.go)
        remembered = str(window.settings.value("course/lesson", ""))
        keys = [lesson.key for lesson in self.lessons]
        self.go(keys.index(remembered) if remembered in keys else 0, remember=False)

    @property
    def lesson(self) -> Lesson | None:
        return self.lessons[self.index] if self.lessons else None

    def go(self, index: int, *, remember: bool = True) -> None:
        """Show lesson `index` (its text; the window changes only with Show me)."""
        if not self.lessons:
            self.title.setText("No lessons could be read.")
            for b in (self.show_button, self.previous, self.next):
                b.setEnabled(False)
            return
        self.index = max(0, min(index, len(self.lessons) - 1))
        lesson = self.lessons[self.index]
        self.picker.setCurrentIndex(self.index)
        self.title.setText(f"Lesson {self.index + 1} of {len(self.lessons)}: {lesson.title}")
        self.text.setText(lesson.text)
        self.notice.setText(lesson.notice)
        self.previous.setEnabled(self.index > 0)
        self.next.setEnabled(self.index < len(self.lessons) - 1)
        if remember:
            self.window_.settings.setValue("course/lesson", lesson.key)
        self.refresh_checks()

    def show_me(self) -> None:
        if self.lesson is not None:
            show_me.show(self.window_, self.lesson)
            self.refresh_checks()

    def refresh_checks(self) -> None:
        """Judge the lesson's checks on the window as it is now (only the text that changed
        is set again)."""
        lesson = self.lesson
        self.verdicts = checks.evaluate(self.window_, lesson, self.seen) if lesson else []
        while len(self.result_labels) < len(self.verdicts):
            label = _label(f"courseCheck{len(self.result_labels)}")
            self.results_layout.addWidget(label)
            self.result_labels.append(label)
        for i, label in enumerate(self.result_labels):
            label.setVisible(i < len(self.verdicts))
            if i >= len(self.verdicts):
                continue
            v = self.verdicts[i]
            mark, color = MARKS[v.state]
            text = f"{mark} {v.text}"
            if text != label.text():
                label.setText(text)
                label.setStyleSheet(f"color:{color}")

    def check_texts(self) -> list[str]:
        """The check lines as shown."""
        return [label.text() for label in self.result_labels if not label.isHidden()]

    def showEvent(self, event: QShowEvent) -> None:  # Qt's name
        super().showEvent(event)
        self.timer.start()
        self.refresh_checks()

    def hideEvent(self, event: QHideEvent) -> None:  # Qt's name
        self.timer.stop()
        super().hideEvent(event)


class CourseDock(QDockWidget):
    """The course panel as a dock on the right of the main window."""

    def __init__(self, window: MainWindow, seen: checks.Seen) -> None:
        super().__init__("Course", window)
        self.setObjectName("courseDock")
        self.panel = CoursePanel(window, seen, self)
        self.setWidget(self.panel)
        self.setAllowedAreas(
            Qt.DockWidgetArea.LeftDockWidgetArea | Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.setMinimumWidth(240)
