"""The Few-shot tab driven as a person would: presets, editing examples, the sweep."""

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

SEED_PROMPT = (
    "Translate English to Indonesian:\nsea otter => berang-berang laut\ncheese => keju\n"
    "plush toy => boneka\n"
)


def _open_tab(qtbot, window):
    tab = window.fewshot
    window.tabs.setCurrentWidget(tab)
    tab.load_preset("english-indonesian")
    qtbot.waitUntil(
        lambda: tab.preview is not None and tab.preview.text.startswith(SEED_PROMPT), timeout=15_000
    )
    return tab


def test_the_seed_preset_assembles_and_scores(qtbot, window):
    tab = _open_tab(qtbot, window)
    p = tab.preview
    assert p.text.endswith("Translate English to Indonesian:\ncloud =>")
    assert p.expected is not None and p.expected.continuation == " awan"
    assert 0 < p.expected.probability < 1
    assert f"{p.token_count} tokens of {p.context_length}" in tab.token_info.text()
    assert "awan" in tab.answers.text()
    assert tab.chart.current_data().rows  # the next-token chart for the assembled prompt


def test_editing_examples_changes_the_prompt(qtbot, window):
    tab = _open_tab(qtbot, window)
    editor = tab.editor
    before = tab.preview.text
    n = editor.examples.topLevelItemCount()
    qtbot.mouseClick(editor.add_button, Qt.MouseButton.LeftButton)
    item = editor.examples.topLevelItem(n)
    item.setText(0, "rain")
    item.setText(1, "hujan")
    qtbot.waitUntil(lambda: "rain => hujan" in tab.preview.text, timeout=10_000)
    # Move the new example to the top, as a drag would.
    editor.examples.move_row(n, 0)
    qtbot.waitUntil(
        lambda: tab.preview.text.startswith(
            "Translate English to Indonesian:\nrain => hujan\nsea otter"
        ),
        timeout=10_000,
    )
    # Remove it again: back to where we started.
    editor.examples.setCurrentItem(editor.examples.topLevelItem(0))
    qtbot.mouseClick(editor.remove_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.preview.text == before, timeout=10_000)


def test_pasting_rows_from_a_spreadsheet(qtbot, window):
    tab = _open_tab(qtbot, window)
    editor = tab.editor
    n = editor.examples.topLevelItemCount()
    QGuiApplication.clipboard().setText("sun\tmatahari\nmoon\tbulan\nnot a row\n")
    qtbot.mouseClick(editor.paste_button, Qt.MouseButton.LeftButton)
    assert editor.examples.topLevelItemCount() == n + 2
    qtbot.waitUntil(lambda: "moon => bulan" in tab.preview.text, timeout=10_000)


def test_sweep_charts_every_shot_count_and_compares_two_models(qtbot, window, other_checkpoint):
    import tokenscope
    from tokenscope.lm.fewshot import sweep

    tab = _open_tab(qtbot, window)
    tab.max_shots.setValue(3)
    tab.orders.setValue(2)
    window.fewshot.set_compare_choices([("other", str(other_checkpoint))])
    tab.compare.setCurrentIndex(1)
    qtbot.mouseClick(tab.sweep_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.sweep_button.isEnabled(), timeout=60_000)
    points = tab.sweep_points()
    assert list(points)[1] == str(other_checkpoint)  # two lines on the chart
    for series in points.values():
        assert sorted((p.order, p.shots) for p in series) == [
            (o, s) for o in (0, 1) for s in range(4)
        ]
        assert all(0 <= p.probability <= 1 for p in series)
    a, b = points.values()  # other weights, another curve: the engine's own sweep of each
    assert [p.probability for p in a] != [p.probability for p in b]
    expected = sweep(
        tokenscope.load_model(str(other_checkpoint)), tab.editor.prompt(), max_shots=3, orders=2
    )
    assert [p.probability for p in b] == [p.probability for p in expected]
    assert len(tab.sweep_plot.getPlotItem().listDataItems()) == 2
    # Each point of the given order is labelled with what it measures.
    from tokenscope.gui.fewshot.sweep_chart import point_label

    for name, series in points.items():
        expected_labels = [(name, p.shots, point_label(p)) for p in series if p.order == 0]
        assert [lab for lab in tab.sweep_labels if lab[0] == name] == expected_labels
    assert tab.progress.format() == "completed"


def test_a_sweep_can_be_cancelled(qtbot, window):
    tab = _open_tab(qtbot, window)
    tab.max_shots.setValue(8)
    tab.orders.setValue(20)
    tab.run_sweep()
    tab.cancel_sweep()
    qtbot.waitUntil(lambda: tab.sweep_button.isEnabled(), timeout=60_000)
    total = sum(len(v) for v in tab.sweep_points().values())
    assert total < 20 * 9
