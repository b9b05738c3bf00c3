"""Start the window: `tokenscope` with no arguments.

The window appears before torch is imported; the model loads in its own thread right after
the first paint. TOKENSCOPE_QUIT_AFTER_MS closes the window after that many milliseconds
(smoke tests of installed and frozen builds).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import cast

# 6.12.0 corrupts the reference count of None on void calls (QPainter.setPen) and of True on
# Signal.emit() on Python 3.11: the app aborts within minutes ("Fatal Python error:
# none_dealloc"); 6.11.3 and 6.10.3 are clean (tests/gui/test_pyside_guard.py checks).
BROKEN_PYSIDE = ("6.12.0",)


def main(argv: Sequence[str] | None = None) -> int:
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:  # a windowed frozen app has no console streams
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the app)
    from tokenscope.doctor import display_problem

    problem = display_problem()
    if problem is not None:  # Qt would abort with a message that names the wrong thing
        print(f"tokenscope: the window cannot open: {problem}", file=sys.stderr)
        return 1
    import PySide6
    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    if PySide6.__version__ in BROKEN_PYSIDE:
        print(
            f"tokenscope: PySide6 {PySide6.__version__} is known to crash; "
            "install PySide6-Essentials 6.11.x",
            file=sys.stderr,
        )
        return 1
    running = cast("QApplication | None", QApplication.instance())  # (typed QCoreApplication)
    app = running or QApplication(list(argv or sys.argv[:1]))
    app.setApplicationName("Tokenscope")
    app.setOrganizationName("Tokenscope")
    from tokenscope.files import resource_path
    from tokenscope.gui.main_window import MainWindow

    icon = resource_path("icons", "tokenscope-256.png")
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    window = MainWindow()
    window.show()
    QTimer.singleShot(0, window.start)
    QTimer.singleShot(0, window.help.open_course_on_first_start)  # once, at the very first start
    quit_after = os.environ.get("TOKENSCOPE_QUIT_AFTER_MS")
    if quit_after:
        QTimer.singleShot(int(quit_after), window.close)
    code = app.exec()
    from tokenscope.gui import background

    background.wait_for_all(10)
    return code
