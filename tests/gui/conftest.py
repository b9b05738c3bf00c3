"""GUI tests: offscreen Qt, a private data folder, a tiny real model in a real worker thread."""

from __future__ import annotations

import os
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import pytest

#: how long what a test started may take to wind down after it (a worker finishing its task)
WIND_DOWN_S = 10.0


def _ours(thread: threading.Thread) -> bool:
    """A running thread of the app's: not the shared pool's idle workers (tokenscope.gui.
    background keeps them for the next call; what matters is that no call is still running),
    nor a request thread of a test's own loopback server (a client may keep its connection),
    nor tqdm's monitor (started once for the process by any progress bar), nor the network's
    deadline watchdog (one for the process, started by the first request: lm/net.py)."""
    from tokenscope.gui import background

    if not thread.is_alive() or "process_request_thread" in thread.name:
        return False
    if thread.name in ("tqdm_monitor", "net-deadlines"):  # one per process each
        return False
    if thread.name.startswith("background"):
        with background._lock:
            return bool(background._pending)
    return True


@pytest.fixture(autouse=True)
def nothing_outlives_the_test():
    """After each GUI test (and after pytest-qt has closed its widgets): no thread the test
    started is still running, no window is still shown, and no timer of the test's widgets
    still fires. A leak here is how "QThread: Destroyed while thread is still running" and
    callbacks into deleted widgets start."""
    from PySide6.QtCore import QCoreApplication, QEvent, QTimer
    from PySide6.QtWidgets import QApplication

    before = set(threading.enumerate())
    yield
    app = QApplication.instance()
    deadline = time.monotonic() + WIND_DOWN_S
    while True:
        if app is not None:
            app.processEvents()
            QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        threads = [t for t in threading.enumerate() if t not in before and _ours(t)]
        widgets = [w for w in (app.topLevelWidgets() if app else []) if w.isVisible()]
        timers = [t for w in widgets for t in w.findChildren(QTimer) if t.isActive()]
        if not (threads or widgets or timers) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not threads, f"threads outlived the test: {[t.name for t in threads]}"
    assert not widgets, f"windows still shown after the test: {widgets}"
    assert not timers, f"timers still running after the test: {timers}"


@pytest.fixture
def make_window(qtbot):
    """make_window(model_path) -> the main window with that model loaded (a real load in the
    model thread). Every window made is closed after the test, its threads joined."""
    from tokenscope.gui.main_window import MainWindow

    made = []

    def make(model_path):
        w = MainWindow()
        qtbot.addWidget(w)
        made.append(w)
        w.show()
        w.activateWindow()
        w.load_model(str(model_path))
        qtbot.waitUntil(
            lambda: w.model_info is not None and w.model_info.target == str(model_path),
            timeout=30_000,
        )
        return w

    yield make
    for w in made:
        w.close()
        assert not w.bridge.thread_.is_alive()  # no thread outlives its test


@pytest.fixture
def window(make_window, checkpoint):
    """The main window with the tiny test model loaded."""
    return make_window(checkpoint)


@pytest.fixture
def endless_window(make_window, endless_checkpoint):
    """The main window on a model that never ends a text by itself."""
    return make_window(endless_checkpoint)
