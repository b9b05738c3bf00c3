"""The Inside tab on the real window: the logit lens follows the prompt and its cursor, the
attention map and the heads table, silencing a head (the Playground's chart follows), the
surprisal view with a second model, Cancel, exports, and a server model refused with a note."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PySide6.QtCore import Qt

import tokenscope
from tokenscope.lm.inside import attention, logit_lens, surprisal

PROMPT = "The capital of Indonesia is"


def _inside(qtbot, window):
    window.tabs.setCurrentWidget(window.inside)
    ins = window.inside
    ins.prompt.setPlainText(PROMPT)
    cursor = ins.prompt.textCursor()
    cursor.movePosition(cursor.MoveOperation.End)
    ins.prompt.setTextCursor(cursor)
    return ins


def test_the_lens_shows_every_layer_and_follows_the_cursor(qtbot, window, checkpoint):
    ins = _inside(qtbot, window)
    model = tokenscope.load_model(str(checkpoint))
    expected = logit_lens(model, PROMPT, top_k=8)
    qtbot.waitUntil(
        lambda: ins.lens.view is not None and ins.lens.view.position == len(expected.token_ids) - 1,
        timeout=10_000,
    )
    table = ins.lens.table
    assert table.rowCount() == model.config.n_layer + 1
    last = table.item(table.rowCount() - 1, 2).text()
    assert last.startswith(expected.target_label)
    assert f"predicts {expected.target_label!r}" in ins.lens.summary.text()
    # The cursor after "capital": the lens looks at that token.
    cursor = ins.prompt.textCursor()
    cursor.setPosition(len("The capital"))
    ins.prompt.setTextCursor(cursor)
    qtbot.waitUntil(lambda: "After '␣capital'" in ins.lens.summary.text(), timeout=10_000)
    at = logit_lens(model, PROMPT, position=1, top_k=8)
    assert ins.lens.view.rows[-1].top[0][0] == at.rows[-1].top[0][0]


def test_attention_map_heads_and_silencing_a_head(qtbot, window, checkpoint):
    ins = _inside(qtbot, window)
    ins.views.setCurrentWidget(ins.attention)
    ins.attention.layer.setValue(1)
    ins.attention.head.setCurrentIndex(2)  # head 1
    qtbot.waitUntil(
        lambda: (v := ins.attention.view) is not None and v.layer == 1 and v.head == 1,
        timeout=10_000,
    )
    maps = attention(tokenscope.load_model(str(checkpoint)), PROMPT)
    assert np.allclose(ins.attention.view.weights, maps.weights[1, 1], atol=1e-6)
    heads = ins.attention.heads_table
    assert heads.rowCount() == 2 and heads.columnCount() == 2
    qtbot.mouseClick(ins.attention.induction_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ins.attention.scores is not None, timeout=20_000)
    assert "Highest induction score" in ins.attention.heads_note.text()

    pg = window.playground
    pg.prompt.setPlainText(PROMPT)
    qtbot.waitUntil(lambda: pg.chart.current_data() is not None, timeout=10_000)
    before = [r.probability for r in pg.chart.current_data().rows]
    ins.attention._on_head_clicked(1, 0)  # as a click on that cell
    qtbot.waitUntil(lambda: ins.attention.ablated == {(1, 0)}, timeout=10_000)
    qtbot.waitUntil(
        lambda: [r.probability for r in pg.chart.current_data().rows] != before, timeout=10_000
    )
    assert "off" in ins.attention.heads_table.item(1, 0).text()
    qtbot.mouseClick(ins.attention.restore_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not ins.attention.ablated, timeout=10_000)
    qtbot.waitUntil(
        lambda: [r.probability for r in pg.chart.current_data().rows] == pytest.approx(before),
        timeout=10_000,
    )


def test_surprisal_of_a_text_and_two_models(
    qtbot, window, checkpoint, other_checkpoint, tmp_path, monkeypatch
):
    ins = _inside(qtbot, window)
    ins.views.setCurrentWidget(ins.surprisal)
    text = "The capital of Indonesia is Jakarta. The capital of France is Paris."
    ins.surprisal.text.setPlainText(text)
    ins.set_compare_choices([("other", str(other_checkpoint))])
    ins.surprisal.other.setCurrentIndex(1)
    qtbot.mouseClick(ins.surprisal.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ins.surprisal.view is not None, timeout=30_000)
    view = ins.surprisal.view
    mine = surprisal(tokenscope.load_model(str(checkpoint)), text)
    assert [t.bits for t in view.results[0].tokens] == pytest.approx(
        [t.bits for t in mine.tokens], rel=1e-5, nan_ok=True
    )
    assert f"{mine.bits_per_byte:.3f} bits per byte" in ins.surprisal.stats.text()
    assert ins.surprisal.differences.count() > 0 and ins.surprisal.progress.format() == "completed"
    ins.surprisal.differences.setCurrentRow(0)
    assert ins.surprisal.result.textCursor().hasSelection()
    # A long text is coloured up to a limit (the layout of a book would hold the window).
    from tokenscope.gui.inside import surprisal_panel

    monkeypatch.setattr(surprisal_panel, "MAX_COLORED", 5)
    ins.surprisal.show_view(view)
    n = len(view.results[0].tokens)
    assert f"the first 5 of {n:,} tokens are coloured" in ins.surprisal.result.toPlainText()
    assert ins.surprisal.result.toPlainText().count("Jakarta") == 0  # past the fifth token
    for suffix in ("png", "svg", "csv"):
        path = tmp_path / f"surprisal.{suffix}"
        ins.surprisal.export(path)
        assert path.stat().st_size > 100
    assert "bits" in (tmp_path / "surprisal.csv").read_text().splitlines()[0]
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\x00\x01\x02 not text")
    messages = []
    ins.message.connect(messages.append)
    ins.surprisal.load_file(binary)
    assert messages and "is not text" in messages[-1]
    assert ins.surprisal.text.toPlainText() == text  # nothing lost
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    ins.surprisal.load_file(fifo)  # open() of a FIFO would wait for a writer: the window froze
    assert (
        messages[-1] == f"{fifo} is a named pipe (FIFO), not a regular file; expected a text file"
    )
    assert ins.surprisal.text.toPlainText() == text


def test_a_long_surprisal_run_can_be_cancelled(qtbot, window):
    ins = _inside(qtbot, window)
    ins.views.setCurrentWidget(ins.surprisal)
    ins.surprisal.text.setPlainText("The capital of Indonesia is Jakarta. " * 4000)
    ins.run_surprisal()
    qtbot.waitUntil(lambda: ins.surprisal.progress.maximum() > 1, timeout=20_000)
    qtbot.mouseClick(ins.surprisal.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ins.surprisal.run_button.isEnabled(), timeout=10_000)
    assert ins.surprisal.progress.format() == "cancelled" and ins.surprisal.view is None


def test_lens_and_attention_export(qtbot, window, tmp_path):
    ins = _inside(qtbot, window)
    qtbot.waitUntil(lambda: ins.lens.view is not None, timeout=10_000)
    ins.views.setCurrentWidget(ins.attention)
    qtbot.waitUntil(lambda: ins.attention.view is not None, timeout=10_000)
    for panel in (ins.lens, ins.attention):
        for suffix in ("png", "svg", "csv"):
            path = tmp_path / f"{panel.objectName() or id(panel)}.{suffix}"
            panel.export(path)
            assert path.stat().st_size > 100
