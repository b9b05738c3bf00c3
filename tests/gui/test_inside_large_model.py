"""The Inside tab on a model too large to follow every keystroke (as Gemma 3 270M is): each
view draws when first shown, Update (a button in each view, and Ctrl+L) asks again, and a
prompt put in the box opens the lens on its last token, not on the start of the text."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

import tokenscope
from tokenscope.lm.inside import logit_lens

PROMPT = "The capital of Indonesia is"


@pytest.fixture
def large_window(monkeypatch, make_window, checkpoint):
    import tokenscope.gui.inside.inside_tab as inside_tab

    monkeypatch.setattr(inside_tab, "LIVE_PARAMETERS", 0)  # every model counts as large
    window = make_window(checkpoint)
    assert not window.inside.live
    assert "(Update)" in window.inside.note.text()
    return window


def test_attention_draws_on_first_show_and_update_asks_again(qtbot, large_window, checkpoint):
    window = large_window
    ins = window.inside
    window.tabs.setCurrentWidget(ins)
    ins.prompt.setPlainText(PROMPT)
    qtbot.wait(200)  # (a large model does not follow the typing)
    assert ins.attention.view is None
    ins.views.setCurrentWidget(ins.attention)  # no layer changed, no button pressed
    qtbot.waitUntil(lambda: ins.attention.view is not None, timeout=10_000)
    model = tokenscope.load_model(str(checkpoint))
    assert len(ins.attention.view.labels) == len(model.tokenizer.encode(PROMPT))
    # A new prompt is not followed; Update draws it.
    ins.prompt.setPlainText(PROMPT + " Jakarta")
    qtbot.wait(200)
    assert len(ins.attention.view.labels) == len(model.tokenizer.encode(PROMPT))
    assert ins.attention.update_button.isVisible()
    qtbot.mouseClick(ins.attention.update_button, Qt.MouseButton.LeftButton)
    longer = len(model.tokenizer.encode(PROMPT + " Jakarta"))
    qtbot.waitUntil(lambda: len(ins.attention.view.labels) == longer, timeout=10_000)
    # Ctrl+L does the same in the lens.
    ins.prompt.setPlainText(PROMPT)
    ins.views.setCurrentWidget(ins.lens)
    ins.lens.setFocus()
    qtbot.keyClick(ins.lens, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    n = len(model.tokenizer.encode(PROMPT))
    qtbot.waitUntil(
        lambda: ins.lens.view is not None and len(ins.lens.view.labels) == n, timeout=10_000
    )


def test_a_prompt_put_in_the_box_opens_the_lens_on_its_last_token(qtbot, large_window, checkpoint):
    ins = large_window.inside
    large_window.tabs.setCurrentWidget(ins)
    ins.prompt.setPlainText(PROMPT)  # the cursor stays at the start, as when the window fills it
    assert ins.prompt.textCursor().position() == 0 and ins.lens.follow.isChecked()
    qtbot.mouseClick(ins.lens.update_button, Qt.MouseButton.LeftButton)
    expected = logit_lens(tokenscope.load_model(str(checkpoint)), PROMPT, top_k=8)
    last = len(expected.token_ids) - 1
    qtbot.waitUntil(lambda: "predicts" in ins.lens.summary.text(), timeout=10_000)
    assert len(ins.lens.view.labels) == last + 1 and ins.lens.view.position == last
    assert f"predicts {expected.target_label!r}" in ins.lens.summary.text()
