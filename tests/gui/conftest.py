"""GUI tests: offscreen Qt, a private data folder, a tiny real model in a real worker thread."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import pytest


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
