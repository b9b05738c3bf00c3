"""GUI tests: offscreen Qt, a private data folder, a tiny real model in a real worker thread."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import pytest


@pytest.fixture
def window(qtbot, checkpoint):
    """The main window with the tiny test model loaded (a real load in the model thread)."""
    from tokenscope.gui.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    w.load_model(str(checkpoint))
    qtbot.waitUntil(lambda: w.model_info is not None, timeout=30_000)
    yield w
    w.close()
    assert not w.bridge.thread_.isRunning()  # no thread outlives its test
