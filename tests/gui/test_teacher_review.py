"""What a teacher preparing a class ran into, checked on the real window (issue: the window,
used by a teacher): stale messages, the first sweep, shortcuts, seeds, the Models tab."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox


def test_the_first_sweep_a_new_user_runs_works(qtbot, window):
    tab = window.fewshot
    window.tabs.setCurrentWidget(tab)
    first = tab.presets.itemText(0)
    tab.load_preset(first)
    examples = len(tab.editor.prompt().examples)
    assert tab.max_shots.maximum() == examples == tab.max_shots.value()
    qtbot.mouseClick(tab.sweep_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.progress.format() == "completed", timeout=60_000)
    assert len(next(iter(tab.sweep_points().values()))) == examples + 1
    assert tab.sweep_status.text().startswith(f"{examples + 1} points")
    # Removing examples clamps "up to"; another preset clears the old sweep.
    tab.editor.examples.takeTopLevelItem(0)
    tab.editor.examples.rows_changed.emit()
    assert tab.max_shots.maximum() == examples - 1 == tab.max_shots.value()
    tab.load_preset("english-indonesian")
    assert not tab.sweep_points() and tab.sweep_status.text() == ""
    assert not tab.sweep_plot.getPlotItem().listDataItems()


def test_a_sweep_error_says_what_is_wrong_and_goes_when_fixed(qtbot, window):
    tab = window.fewshot
    tab.load_preset("english-indonesian")
    tab.editor.template.setText("{input} -> ")  # no {output}
    tab.run_sweep()
    assert "{output}" in tab.sweep_status.text()
    tab.editor.template.setText("{input} => {output}")
    tab.max_shots.setValue(1)
    tab.run_sweep()
    qtbot.waitUntil(lambda: tab.progress.format() == "completed", timeout=60_000)
    assert tab.sweep_status.text().startswith("2 points")


def test_the_context_warning_goes_when_the_prompt_fits_again(qtbot, window):
    pg = window.playground
    window_size = window.model_info.context_length
    pg.prompt.setPlainText("capital " * (window_size + 20))
    qtbot.waitUntil(lambda: "not seen by the model" in pg.context_info.text(), timeout=10_000)
    pg.prompt.setPlainText("The capital")
    qtbot.waitUntil(
        lambda: pg.context_info.text().endswith(f"of {window_size} context tokens used"),
        timeout=10_000,
    )


def test_ctrl_right_steps_even_while_typing_in_the_prompt(qtbot, window):
    pg = window.playground
    pg.prompt.setFocus()
    pg.prompt.setPlainText("The capital of")
    cursor = pg.prompt.textCursor()
    cursor.setPosition(0)
    pg.prompt.setTextCursor(cursor)
    qtbot.keyClick(pg.prompt, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: pg.current == 0 and len(pg.branches[0].steps) == 1, timeout=10_000)
    assert pg.prompt.textCursor().position() == 0  # the editor did not take it as "next word"
    # The chart follows the step: it shows what the new token was drawn from.
    qtbot.waitUntil(lambda: pg.selected == 0, timeout=10_000)
    assert pg.chart.current_data().title.startswith("token 1 ")
    assert pg.alternatives.count() == len(pg.branches[0].steps[0].top_raw)


def test_generate_draws_anew_and_each_branch_shows_its_seed(qtbot, window):
    pg = window.playground
    assert not pg.sampling.use_seed.isChecked()  # sampling, not the same text every time
    pg.max_tokens.setValue(12)
    for _ in range(2):
        pg.generate()
        qtbot.waitUntil(lambda: pg.generate_button.isEnabled(), timeout=20_000)
    first, second = pg.branches
    assert first.seed is not None and second.seed is not None and first.seed != second.seed
    assert f"seed {first.seed}" in pg.branch_picker.itemText(0)
    # The seed shown draws the same branch again.
    pg.sampling.use_seed.setChecked(True)
    pg.sampling.seed.setValue(first.seed)
    pg.generate()
    qtbot.waitUntil(
        lambda: pg.generate_button.isEnabled() and len(pg.branches) == 3, timeout=20_000
    )
    assert [s.token_id for s in pg.branches[2].steps] == [s.token_id for s in first.steps]


def test_continuing_with_an_alternative_shows_the_new_branchs_chart(qtbot, window):
    pg = window.playground
    pg.sampling.set_values({"use_seed": True, "seed": 3})  # unseeded, it may end at once (EOS)
    pg.max_tokens.setValue(5)
    pg.generate()
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled(), timeout=20_000)
    assert len(pg.branches[pg.current].steps) >= 2
    pg.select_token(1)
    assert "captured" in pg.chart.current_data().title
    pg.alternatives.setCurrentRow(3)
    pg.continue_with_alternative()
    assert pg.chart.current_data().title == "next token"  # not the old branch's token
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled(), timeout=20_000)


def test_a_single_step_shows_no_speed(qtbot, window):
    speeds = []
    window.playground.speed_changed.connect(speeds.append)
    window.playground.step()
    qtbot.waitUntil(lambda: window.playground.generate_button.isEnabled(), timeout=10_000)
    assert speeds == []


def test_the_picker_names_the_model_being_opened_at_once(qtbot, window, other_checkpoint):
    window.load_model(str(other_checkpoint))
    assert window.picker.currentData() == str(other_checkpoint)
    qtbot.waitUntil(lambda: window.model_info.target == str(other_checkpoint), timeout=20_000)
    assert window.picker.currentData() == str(other_checkpoint)


def test_the_models_tab_lists_each_model_once_marks_the_one_in_use_and_forgets(
    qtbot, window, checkpoint, other_checkpoint, monkeypatch
):
    from tokenscope.lm.loading import builtin_model_path
    from tokenscope.lm.registry import remember

    remember(builtin_model_path())  # opened by its path: still the bundled model
    tab = window.models
    window.load_model(str(other_checkpoint))
    qtbot.waitUntil(lambda: window.model_info.target == str(other_checkpoint), timeout=20_000)
    qtbot.waitUntil(lambda: sum(e.kind == "recent" for e in tab.entries) == 2, timeout=30_000)
    assert [e.kind for e in tab.entries].count("bundled") == 1
    names = {e.name for e in tab.entries if e.kind == "recent"}
    assert names == {checkpoint.name, other_checkpoint.name}  # names, not whole paths
    row = next(i for i, e in enumerate(tab.entries) if e.path == str(other_checkpoint.resolve()))
    assert tab.table.item(row, 0).text().startswith("●")
    assert tab.table.item(row, 0).font().bold()
    tab.table.selectRow(row)
    assert not tab.delete_button.isEnabled()  # not the model in use
    # Forget the other one: off the list, files kept.
    row = next(i for i, e in enumerate(tab.entries) if e.path == str(checkpoint.resolve()))
    tab.table.selectRow(row)
    qtbot.mouseClick(tab.forget_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: all(e.path != str(checkpoint.resolve()) for e in tab.entries), timeout=30_000
    )
    assert (checkpoint / "model.safetensors").is_file()


def test_the_models_tab_deletes_a_model_after_asking(
    qtbot, window, checkpoint, other_checkpoint, monkeypatch
):
    tab = window.models
    window.load_model(str(other_checkpoint))
    qtbot.waitUntil(lambda: window.model_info.target == str(other_checkpoint), timeout=20_000)
    qtbot.waitUntil(
        lambda: any(e.path == str(checkpoint.resolve()) for e in tab.entries), timeout=30_000
    )
    asked = []
    monkeypatch.setattr(
        QMessageBox,
        "question",
        lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes,
    )
    row = next(i for i, e in enumerate(tab.entries) if e.path == str(checkpoint.resolve()))
    tab.table.selectRow(row)
    qtbot.mouseClick(tab.delete_button, Qt.MouseButton.LeftButton)
    assert asked and str(checkpoint.resolve()) in asked[0]
    assert not checkpoint.exists()
    qtbot.waitUntil(
        lambda: all(e.path != str(checkpoint.resolve()) for e in tab.entries), timeout=30_000
    )


def test_the_training_error_about_missing_text_goes_when_text_is_added(qtbot, window, tmp_path):
    tab = window.training
    window.tabs.setCurrentWidget(tab)
    qtbot.mouseClick(tab.start_button, Qt.MouseButton.LeftButton)
    assert tab.error.isVisible() and "Add some text" in tab.error.text()
    corpus = tmp_path / "text.txt"
    corpus.write_text("The capital of Indonesia is Jakarta.\n" * 50)
    tab.data.add_paths([str(corpus)])
    assert not tab.error.isVisible()


def test_the_few_shot_editor_keeps_the_presets_separator(qtbot, window):
    from tokenscope.lm.fewshot import load_prompt

    tab = window.fewshot
    tab.load_preset("sentiment")
    preset = load_prompt("sentiment")
    assert tab.editor.separator.text() == "\\n\\n"  # shown with escapes
    assert tab.editor.prompt() == preset  # nothing lost on the way through the editor
    expected = preset.assemble(window.bridge.service.model.tokenizer)
    qtbot.waitUntil(
        lambda: tab.preview is not None and tab.preview.text == expected.text, timeout=10_000
    )
    assert tab.preview.token_count == expected.token_count  # what `tokenscope fewshot` counts
    assert f"{expected.token_count} tokens of" in tab.token_info.text()


def test_the_thread_count_can_be_chosen_and_is_remembered(qtbot, window, checkpoint):
    from tokenscope.gui.main_window import MainWindow

    assert window.threads.value() == 0 and window.threads.text() == "auto"
    assert window.model_info.threads == 1  # a small model runs on one thread
    window.threads.setValue(2)
    qtbot.waitUntil(lambda: window.model_info.threads == 2, timeout=10_000)
    assert "2 threads" in window.status_model.text()  # as torch reports it in the model thread
    window.threads.setValue(0)
    qtbot.waitUntil(lambda: window.model_info.threads == 1, timeout=10_000)
    window.threads.setValue(2)
    window.close()
    again = MainWindow()
    qtbot.addWidget(again)
    try:
        assert again.threads.value() == 2
    finally:
        again.close()


@pytest.mark.slow
def test_the_training_plan_measures_a_few_real_steps(qtbot, window, tmp_path):
    tab = window.training
    window.tabs.setCurrentWidget(tab)
    plan = tab.plan
    plan.preset.setCurrentIndex(plan.preset.findData("tiny"))
    plan.steps.setValue(200)
    qtbot.waitUntil(lambda: "measured on this machine" in plan.estimates.text(), timeout=120_000)
    parts = plan.measured[1]
    assert 0 < parts["seconds_per_step"] < 60
    from tokenscope.units import format_duration

    total = plan.run_estimate.total  # the steps and what a run does besides them
    assert total > parts["seconds_per_step"] * 200
    assert f"about {format_duration(total)}" in plan.estimates.text()
    assert f"200 steps {format_duration(parts['seconds_per_step'] * 200)}" in plan.estimates.text()
    corpus = tmp_path / "small.txt"
    corpus.write_text("The capital of Indonesia is Jakarta.\n" * 20)
    tab.data.add_paths([str(corpus)])
    qtbot.waitUntil(lambda: "passes over it" in plan.estimates.text(), timeout=30_000)
    assert "learn this text by heart" in plan.estimates.text()  # hundreds of epochs
