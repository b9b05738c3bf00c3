"""The window with compiled decoding on (the default): the status line says "compiling…" while
the step is built in the background and the model answers, then "compiled"."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_the_status_line_follows_the_background_compile(
    qtbot, make_window, checkpoint, monkeypatch
):
    from tokenscope.lm import background_compile

    monkeypatch.setattr(background_compile, "WORTH_COMPILING", 0)  # the tiny model too
    monkeypatch.delenv("TOKENSCOPE_COMPILE")
    window = make_window(checkpoint)
    assert window.compiled.isChecked()  # the default
    assert window.model_info.compiling and "· compiling…" in window.status_model.text()
    # The model answers meanwhile: a prediction comes back while the step is being built.
    window.playground.prompt.setPlainText("The capital of")
    qtbot.waitUntil(lambda: window.playground.chart.current_data() is not None, timeout=30_000)
    qtbot.waitUntil(lambda: window.model_info.compiled, timeout=600_000)
    assert "· compiled ·" in window.status_model.text() and not window.model_info.compiling
    assert not window.compile_watch.timer.isActive()  # it stops asking
