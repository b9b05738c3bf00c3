"""The window on the model service: stopping, switching models and closing, whatever runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from PySide6.QtCore import Qt


def _steps(pg):
    return len(pg.branches[pg.current].steps)


def _press_escape(qtbot, window):
    qtbot.keyClick(window.focusWidget() or window, Qt.Key.Key_Escape)


def test_escape_stops_generation_at_once(qtbot, endless_window):
    pg = endless_window.playground
    pg.max_tokens.setValue(4096)
    qtbot.mouseClick(pg.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _steps(pg) >= 5, timeout=20_000)
    _press_escape(qtbot, endless_window)
    at_escape = _steps(pg)
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled(), timeout=10_000)
    assert _steps(pg) <= at_escape + 1
    assert not pg.stop_button.isEnabled()


def test_clicking_an_alternative_while_generating_keeps_stop_working(qtbot, endless_window):
    pg = endless_window.playground
    pg.max_tokens.setValue(4096)
    pg.generate()
    qtbot.waitUntil(lambda: _steps(pg) >= 3, timeout=20_000)
    pg.select_token(0)
    item = pg.alternatives.item(1)
    rect = pg.alternatives.visualItemRect(item)
    qtbot.mouseClick(pg.alternatives.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert pg.alternatives.currentRow() == 1
    # Still generating: Stop is the way out, Generate and Continue wait for it.
    assert pg.stop_button.isEnabled()
    assert not pg.generate_button.isEnabled() and not pg.branch_button.isEnabled()
    _press_escape(qtbot, endless_window)
    at_escape = _steps(pg)
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled(), timeout=10_000)
    assert _steps(pg) <= at_escape + 1
    assert pg.branch_button.isEnabled()  # now the alternative can be taken


def test_switching_models_stops_generation_and_old_branches_stay_readable(
    qtbot, endless_window, checkpoint
):
    window, pg = endless_window, endless_window.playground
    pg.max_tokens.setValue(4096)
    pg.generate()
    qtbot.waitUntil(lambda: _steps(pg) >= 5, timeout=20_000)
    window.load_model(str(checkpoint))
    at_switch = _steps(pg)
    qtbot.waitUntil(lambda: window.model_info.target == str(checkpoint), timeout=20_000)
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled(), timeout=10_000)
    assert _steps(pg) <= at_switch + 1
    old = list(pg.branches[0].steps)
    assert "endless" in pg.branch_picker.itemText(0)  # marked with the model that made it
    # Continuing the old branch with another vocabulary is refused, saying why.
    messages = []
    pg.message.connect(messages.append)
    pg.select_token(1)
    pg.alternatives.setCurrentRow(2)
    qtbot.mouseClick(pg.branch_button, Qt.MouseButton.LeftButton)
    assert len(pg.branches) == 1 and pg.branches[0].steps == old
    assert messages and "cannot continue it" in messages[-1]
    # The new model generates a branch of its own.
    pg.max_tokens.setValue(3)
    pg.generate()
    qtbot.waitUntil(
        lambda: pg.generate_button.isEnabled() and len(pg.branches) == 2, timeout=20_000
    )
    assert pg.branches[1].model == str(checkpoint)


def test_generate_clicked_while_another_model_loads_ends_with_the_button_back(
    qtbot, endless_window, other_checkpoint
):
    """A generation asked of the old model while the new one loads ends when the load does;
    the Generate button must come back (the soak test found it stuck disabled)."""
    pg = endless_window.playground
    pg.max_tokens.setValue(4096)
    endless_window.load_model(str(other_checkpoint))
    assert pg.generate_button.isEnabled()  # the old model stays usable while the new one loads
    pg.generate()
    qtbot.waitUntil(
        lambda: endless_window.model_info.target == str(other_checkpoint), timeout=30_000
    )
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled(), timeout=10_000)
    assert not pg.stop_button.isEnabled()


def test_switching_models_stops_a_sweep(qtbot, window, other_checkpoint):
    tab = window.fewshot
    window.tabs.setCurrentWidget(tab)
    tab.load_preset("english-indonesian")
    tab.max_shots.setValue(8)
    tab.orders.setValue(20)
    tab.run_sweep()
    qtbot.waitUntil(lambda: tab.progress.value() >= 2, timeout=20_000)
    window.load_model(str(other_checkpoint))
    at_switch = tab.progress.value()
    qtbot.waitUntil(lambda: window.model_info.target == str(other_checkpoint), timeout=20_000)
    qtbot.waitUntil(lambda: tab.sweep_button.isEnabled(), timeout=10_000)
    assert not tab.sweeping and not tab.cancel_button.isEnabled()
    assert tab.progress.value() <= at_switch + 1
    assert not tab.sweep_points()  # the unfinished sweep of the old model is not shown


CLOSE_WHILE = """
import sys, time
from PySide6.QtWidgets import QApplication
import tokenscope.lm.checkpoint as checkpoint_module
slow_read = checkpoint_module._load_state
def _slow(*args, **kwargs):
    time.sleep(1.5)  # a slow disk: the close below arrives while this load is running
    return slow_read(*args, **kwargs)
checkpoint_module._load_state = _slow
app = QApplication([])
from tokenscope.gui.main_window import MainWindow
w = MainWindow()
w.show()
state = {{}}
def close_now(*_):
    if "in_flight" not in state:
        state["in_flight"] = {what}
        w.close()
{setup}
app.exec()
print("closed while running:", state.get("in_flight"))
print("thread running:", w.bridge.thread_.is_alive())
"""

DURING_LOAD = """
w.load_model(sys.argv[1])
w._on_load_progress_original = w._on_load_progress
def progress(p):
    w._on_load_progress_original(p)
    if p.label == "reading the weights":
        close_now()
w._load.on_yield = progress
"""

DURING_SWEEP = """
checkpoint_module._load_state = slow_read
w.load_model(sys.argv[1])
def on_loaded(info):
    tab = w.fewshot
    tab.load_preset("english-indonesian")
    tab.orders.setValue(20)
    tab.run_sweep()
    handle = tab._sweep
    original = handle.on_yield
    def record(r):
        original(r)
        if getattr(r, "done", 0) >= 2:
            close_now()
    handle.on_yield = record
w.bridge.model_loaded.connect(on_loaded)
"""


def _close_while(setup, what, checkpoint, tmp_path):
    code = CLOSE_WHILE.format(setup=textwrap.dedent(setup), what=what)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TOKENSCOPE_HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-c", code, str(checkpoint)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_closing_the_window_during_a_load_exits_cleanly(checkpoint, tmp_path):
    proc = _close_while(DURING_LOAD, "not w._load.finished", checkpoint, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "closed while running: True" in proc.stdout
    assert "thread running: False" in proc.stdout
    assert "Destroyed while thread" not in proc.stderr and "Traceback" not in proc.stderr


def test_closing_the_window_during_a_sweep_exits_cleanly(checkpoint, tmp_path):
    proc = _close_while(DURING_SWEEP, "w.fewshot.sweeping", checkpoint, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "closed while running: True" in proc.stdout
    assert "thread running: False" in proc.stdout
    assert "Destroyed while thread" not in proc.stderr and "Traceback" not in proc.stderr
