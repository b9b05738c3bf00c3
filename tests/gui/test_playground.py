"""The Playground driven as a person would: typing, knobs, generating, clicking, branching."""

import json

import pytest
from PySide6.QtCore import Qt

import tokenscope


def _expected_top(checkpoint, text, k=1):
    model = tokenscope.load_model(str(checkpoint))
    return [t.display for t in model.predict_next_token_probabilities(text).top(k)]


def _chart_labels(window):
    data = window.playground.chart.current_data()
    return [r.display for r in data.rows] if data else []


def test_typing_a_prompt_shows_the_models_top_token(qtbot, window, checkpoint):
    editor = window.findChild(type(window.playground.prompt), "promptEditor")
    editor.clear()
    qtbot.keyClicks(editor, "The capital of Indonesia is")
    expected = _expected_top(checkpoint, "The capital of Indonesia is", 10)
    qtbot.waitUntil(lambda: _chart_labels(window) == expected, timeout=10_000)
    data = window.playground.chart.current_data()
    assert data.rows[0].probability >= data.rows[1].probability
    assert data.entropy_bits > 0
    # The token view is a job of its own: it may land just after the chart.
    qtbot.waitUntil(
        lambda: [s.display for s in window.playground.tokens.spans][:2] == ["The", "␣capital"],
        timeout=10_000,
    )


def test_changing_temperature_changes_the_sampled_distribution_without_the_model(qtbot, window):
    qtbot.waitUntil(lambda: window.playground.chart.current_data() is not None, timeout=10_000)
    before = window.playground.chart.current_data()
    model_ran = []
    window.playground.prediction_arrived.connect(lambda view: model_ran.append(view.recomputed))
    window.playground.sampling.temperature.setValue(0.3)
    qtbot.waitUntil(
        lambda: (
            window.playground.chart.current_data().rows[0].sampled_probability
            > before.rows[0].sampled_probability + 1e-6
        ),
        timeout=5_000,
    )
    after = window.playground.chart.current_data()
    assert [r.probability for r in after.rows] == [
        r.probability for r in before.rows
    ]  # the model's view is fixed
    assert model_ran and not any(model_ran)  # knobs re-applied: the model did not run again
    window.playground.sampling.top_k.setValue(2)
    qtbot.waitUntil(
        lambda: (
            sum(r.sampled_probability > 0 for r in window.playground.chart.current_data().rows) == 2
        ),
        timeout=5_000,
    )
    assert window.playground.chart.current_data().removed_mass > 0


def test_generate_shows_n_coloured_tokens_and_the_captured_distribution(qtbot, window):
    pg = window.playground
    pg.max_tokens.setValue(12)
    qtbot.mouseClick(pg.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled(), timeout=20_000)
    steps = pg.branches[pg.current].steps
    assert len(steps) == 12 or steps[-1].is_eos
    assert pg.text.token_count() == len(steps)
    from tokenscope.gui.playground.generated_text import probability_color

    shown = pg.text.shown_tokens()
    assert [i for i, _, _ in shown] == list(range(len(steps)))
    assert [c for _, _, c in shown] == [probability_color(s.probability) for s in steps]
    assert pg.strip.shown == len(steps)
    # Click the third token: the chart shows the distribution captured when it was drawn.
    pg.text.verticalScrollBar().setValue(0)  # (the box follows the newest text)
    rect = pg.text.token_rect(2)
    qtbot.mouseClick(pg.text.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: pg.selected == 2, timeout=5_000)
    data = pg.chart.current_data()
    step = steps[2]
    k = pg.chart_k.value()
    assert [r.token_id for r in data.rows] == [a.token_id for a in step.top_raw[:k]]
    assert "captured" in data.title
    assert pg.alternatives.count() == len(step.top_raw)


def test_generated_text_keeps_its_spaces_and_its_font(qtbot, make_window):
    pg = make_window("builtin").playground  # the bundled model writes real words
    pg.prompt.setPlainText("The capital of Indonesia is")
    pg.sampling.temperature.setValue(0)
    pg.max_tokens.setValue(8)
    size = pg.text.document().defaultFont().pointSize()
    for press in (pg.generate, pg.step, pg.step):  # appended as they come, then stepped
        press()
        qtbot.waitUntil(lambda: pg.generate_button.isEnabled(), timeout=20_000)
    steps = pg.branches[pg.current].steps
    generated = "".join(s.text or s.display for s in steps)
    assert generated.startswith(" Jakarta")  # the space belongs to the token
    pg.text.flush()  # what the next repaint tick shows
    expected = ("The capital of Indonesia is" + generated).replace("\n", "↵\n")
    assert pg.text.toPlainText() == expected
    assert [t for _, t, _ in pg.text.shown_tokens()] == [
        (s.text or s.display).replace("\n", "↵\n") for s in steps
    ]
    fonts = {f.charFormat().font().pointSize() for f in _fragments(pg.text.document())}
    assert fonts <= {size, -1} and size == 12


def _fragments(doc):
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            yield it.fragment()
            it += 1
        block = block.next()


def test_branching_keeps_earlier_branches(qtbot, endless_window):
    pg = endless_window.playground
    pg.max_tokens.setValue(6)
    pg.generate()
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled(), timeout=20_000)
    first = list(pg.branches[0].steps)
    pg.select_token(2)
    chosen = first[2].token_id
    row = next(i for i, a in enumerate(first[2].top_raw) if a.token_id != chosen)
    pg.alternatives.setCurrentRow(row)
    qtbot.mouseClick(pg.branch_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled() and pg.current == 1, timeout=20_000)
    second = pg.branches[1].steps
    assert [s.token_id for s in second[:2]] == [s.token_id for s in first[:2]]
    assert second[2].token_id == first[2].top_raw[row].token_id
    assert second[2].entropy == first[2].entropy  # the same captured distribution
    assert pg.branch_picker.count() == 2
    pg.branch_picker.setCurrentIndex(0)
    pg._on_branch_picked(0)
    assert pg.branches[0].steps == first  # the first branch is untouched


def test_step_mode_adds_one_token_at_a_time(qtbot, window):
    pg = window.playground
    for n in (1, 2, 3):
        qtbot.mouseClick(pg.step_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(
            lambda n=n: pg.generate_button.isEnabled() and len(pg.branches[pg.current].steps) == n,
            timeout=10_000,
        )
    assert len(pg.branches) == 1


def test_a_corrupt_model_shows_an_error_and_the_app_keeps_working(
    qtbot, window, checkpoint, tmp_path
):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json"):  # all good but the weights
        (broken / name).write_bytes((checkpoint / name).read_bytes())
    weights = (checkpoint / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    window.load_model(str(broken))
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=10_000)
    assert "Could not open" in window.banner.text()
    assert "model.safetensors" in window.banner.text()
    assert "truncated or corrupt" in window.banner.text()
    assert window.model_info.target == str(checkpoint)  # the previous model stays
    pg = window.playground
    pg.max_tokens.setValue(3)
    pg.generate()
    qtbot.waitUntil(
        lambda: (
            pg.generate_button.isEnabled()
            and pg.current >= 0
            and bool(pg.branches[pg.current].steps)
        ),
        timeout=20_000,
    )
    steps = pg.branches[pg.current].steps  # 3, or fewer if the model drew its end-of-text token
    assert len(steps) == 3 or (len(steps) < 3 and steps[-1].is_eos)


def test_session_round_trip(qtbot, window, tmp_path):
    pg = window.playground
    pg.max_tokens.setValue(4)
    pg.generate()
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled(), timeout=20_000)
    path = tmp_path / "session.json"
    pg.save_session(path)
    saved = json.loads(path.read_text())
    assert saved["branches"][0]["steps"][0]["top_raw"]
    steps, shown = list(pg.branches[0].steps), pg.branches
    with qtbot.waitSignal(pg.session_opened, timeout=30_000) as opened:
        pg.open_session(path)
    assert opened.args == [str(path), window.model_id]
    assert pg.branches is not shown and pg.branches[0].steps == steps  # read from the file


def test_chart_exports(qtbot, window, tmp_path):
    qtbot.waitUntil(lambda: window.playground.chart.current_data() is not None, timeout=10_000)
    chart = window.playground.chart
    chart.export_csv(tmp_path / "chart.csv")
    import csv

    with open(tmp_path / "chart.csv", newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f))  # (a token's text may hold a newline)
    assert lines[0] == ["rank", "token_id", "text", "display", "probability",
                        "sampled_probability"]  # fmt: skip
    assert len(lines) == 1 + len(chart.current_data().rows)
    first = lines[1]
    row = chart.current_data().rows[0]
    assert first[0] == "1" and int(first[1]) == row.token_id
    assert float(first[4]) == pytest.approx(row.probability)
    chart.export_image(tmp_path / "chart.png")
    chart.export_image(tmp_path / "chart.svg")
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in (tmp_path / "chart.svg").read_text()[:500]


@pytest.mark.parametrize(
    "name",
    [
        "modelPicker",
        "promptEditor",
        "nextTokenChart",
        "temperatureControl",
        "topKControl",
        "topPControl",
        "seedControl",
        "generateButton",
        "stepButton",
        "stopButton",
        "generatedText",
    ],
)
def test_widgets_have_stable_object_and_accessible_names(window, name):
    from PySide6.QtWidgets import QWidget

    widget = window.findChild(QWidget, name)
    assert widget is not None
    assert widget.accessibleName()
