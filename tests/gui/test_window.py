"""The window as a whole: models tab, remembered settings, start-up from the command line."""

import os
import subprocess
import sys

import pytest
from PySide6.QtCore import Qt


def test_models_tab_lists_the_opened_model_and_opens_it_again(qtbot, window, checkpoint):
    tab = window.models
    qtbot.waitUntil(lambda: any(e.kind == "recent" for e in tab.entries), timeout=60_000)
    recent = next(e for e in tab.entries if e.kind == "recent")
    assert recent.path == str(checkpoint.resolve())
    assert recent.parameters == window.model_info.parameters
    row = tab.entries.index(recent)
    assert tab.table.item(row, 0).text() == f"● {recent.name}"  # the model in use
    assert tab.table.item(row, 5).text() == str(window.model_info.context_length)
    assert {e.kind for e in tab.entries} >= {"bundled", "recent"}
    # The picker offers the same model; choosing it loads it again.
    index = window.picker.findData(str(checkpoint.resolve()))
    assert index >= 0
    before = window.bridge.epoch
    window.picker.setCurrentIndex(index)
    window._on_picker_activated(index)
    qtbot.waitUntil(
        lambda: window.bridge.epoch > before and not window.load_progress.isVisible(),
        timeout=15_000,
    )
    assert window.model_info.source == str(checkpoint.resolve())


def test_installing_without_the_package_index_says_so(qtbot, window, monkeypatch):
    # pip reads these from the environment: no config files, an index nobody answers on.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_FORCE_REINSTALL", "1")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    tab = window.models
    window.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: any(e.name == "smollm2-135m" for e in tab.entries), timeout=60_000)
    tab.table.selectRow(next(i for i, e in enumerate(tab.entries) if e.name == "smollm2-135m"))
    assert tab.install_button.isEnabled()  # (a reinstall where it is installed already)
    qtbot.mouseClick(tab.install_button, Qt.MouseButton.LeftButton)
    assert tab.progress.isVisible()
    qtbot.waitUntil(lambda: not tab.pull.running, timeout=120_000)
    assert "package index cannot be reached, so SmolLM2" in tab.status.text()
    assert not tab.progress.isVisible()


def test_settings_are_remembered_between_runs(qtbot, window, checkpoint):
    from tokenscope.gui.main_window import MainWindow

    window.playground.sampling.temperature.setValue(0.42)
    window.playground.prompt.setPlainText("Remember me")
    window.resize(720, 540)
    size = (window.width(), window.height())  # the layout may not allow any smaller
    window.close()
    again = MainWindow()
    qtbot.addWidget(again)
    try:
        assert again.playground.sampling.temperature.value() == 0.42
        assert again.playground.prompt.toPlainText() == "Remember me"
        # Restored, not the default 1280 x 820; Qt clamps a restored window to the screen
        # (the offscreen screen is 800 x 600).
        from PySide6.QtGui import QGuiApplication

        screen = QGuiApplication.primaryScreen().availableGeometry()
        assert again.height() == min(size[1], screen.height()) or again.height() == size[1]
        assert abs(again.width() - min(size[0], screen.width())) <= 4
        assert again.settings.value("model/last") == str(checkpoint)
    finally:
        again.close()


@pytest.mark.slow
def test_tokenscope_without_arguments_opens_the_window(tmp_path, checkpoint):
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "TOKENSCOPE_HOME": str(tmp_path),
        "TOKENSCOPE_QUIT_AFTER_MS": "4000",
    }
    settings = tmp_path / "settings.ini"
    settings.write_text(f"[model]\nlast={checkpoint}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "tokenscope"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(checkpoint) in settings.read_text()  # it closed cleanly and saved its settings


def test_the_window_appears_before_torch_is_imported(tmp_path):
    code = """
import sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
from tokenscope.gui.main_window import MainWindow
w = MainWindow()
w.show()
app.processEvents()
print('torch' in sys.modules)
w.close()
"""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TOKENSCOPE_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_the_weights_box_reopens_the_model_and_is_remembered(qtbot, window, checkpoint):
    from tokenscope.gui.main_window import MainWindow

    assert window.weights.currentText() == "auto" and window.compiled.isChecked()
    assert window.model_info.packing is None  # a native checkpoint under auto: float32
    first_epoch = window.model_info.epoch
    window.weights.setCurrentText("int4")
    qtbot.waitUntil(
        lambda: window.model_info.epoch > first_epoch and bool(window.model_info.packing),
        timeout=30_000,
    )
    assert "int4" in window.model_info.packing
    assert "int4" in window.status_model.text()  # the status bar says how weights are held
    window.close()
    again = MainWindow()
    qtbot.addWidget(again)
    try:
        assert again.weights.currentText() == "int4"
        assert again.settings.value("model/weights") == "int4"
    finally:
        again.close()


def test_a_failed_load_puts_the_weights_box_back(qtbot, window, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    window.weights.blockSignals(True)
    window.weights.setCurrentText("int4")  # asked for the next load only
    window.weights.blockSignals(False)
    window.load_model(str(broken))
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=30_000)
    qtbot.waitUntil(lambda: window.weights.currentText() == "auto", timeout=5_000)
    assert window.settings.value("model/weights") == "auto"  # what the model in use has
