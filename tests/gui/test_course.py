"""The course and the Help menu: every bundled lesson loads, each Show me leaves the real window
(the bundled model, offscreen) in the state its lesson describes, the checks judge the numbers
the tabs received (and say so when they do not show the lesson), bad lesson files get one
clear line, and Help has the course, the real shortcuts and About with the versions."""

from __future__ import annotations

import json
import platform
from importlib import metadata

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget

from tokenscope.gui.course import checks
from tokenscope.gui.course.lessons import (
    CHECK_FIELDS,
    LessonError,
    bundled_folder,
    load_lesson,
    load_lessons,
)

WAIT_MS = 60_000


def test_every_bundled_lesson_loads():
    lessons, problems = load_lessons()
    assert problems == []
    assert 7 <= len(lessons) <= 10
    assert [lesson.key for lesson in lessons] == sorted(p.stem for p in bundled_folder().glob("*"))
    for lesson in lessons:
        assert lesson.title and lesson.text and lesson.notice
        assert lesson.show.get("tab"), lesson.key  # every Show me opens a tab
        assert lesson.checks, lesson.key  # and every notice is checked
        assert all(c["kind"] in CHECK_FIELDS for c in lesson.checks)


def _write(tmp_path, data, name="lesson.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


GOOD = {
    "title": "T",
    "text": "A paragraph.",
    "notice": "Something.",
    "show": {"tab": "playground"},
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("{not json", "is not valid JSON"),
        ({**GOOD, "titel": "x"}, "unknown field 'titel'"),
        ({**GOOD, "title": ""}, "'title' is missing or empty"),
        ({k: v for k, v in GOOD.items() if k != "notice"}, "'notice' is missing"),
        ({**GOOD, "show": {"tab": "kitchen"}}, "show.tab should be one of 'playground'"),
        ({**GOOD, "show": {"playground": {"prompt": 3}}}, "show.playground.prompt should be text"),
        ({**GOOD, "show": {"playground": {"sampling": {"temperature": 9}}}}, "temperature"),
        ({**GOOD, "show": {"fewshot": {"preset": "klingon"}}}, "'klingon' is not a few-shot"),
        ({**GOOD, "show": {"training": {"preset": "huge"}}}, "'huge' is not a model preset"),
        ({**GOOD, "checks": [{"kind": "vibes"}]}, "unknown kind 'vibes'"),
        ({**GOOD, "checks": [{"kind": "top_token", "tokens": " Paris"}]}, "should be a list"),
        ({**GOOD, "checks": [{"kind": "top_token", "p": 1}]}, "unknown field 'p'"),
    ],
)
def test_a_malformed_lesson_gives_a_clear_message(tmp_path, change, message):
    path = _write(tmp_path, change)
    with pytest.raises(LessonError) as e:
        load_lesson(path)
    assert message in str(e.value)
    assert str(path) in str(e.value)  # the file is named
    assert "\n" not in str(e.value)


def test_a_teacher_adds_a_lesson_and_a_broken_one_is_named(private_home):
    folder = private_home / "course"
    folder.mkdir(parents=True)
    _write(folder, {**GOOD, "title": "Paris"}, "05a-paris.json")
    _write(folder, {**GOOD, "checks": [{"kind": "vibes"}]}, "99-broken.json")
    lessons, problems = load_lessons()
    keys = [lesson.key for lesson in lessons]
    assert "05a-paris" in keys and keys == sorted(keys)  # between lessons 5 and 6
    assert len(problems) == 1 and "99-broken.json" in problems[0] and "vibes" in problems[0]


# ----- the window --------------------------------------------------------------------------


@pytest.fixture
def bundled(make_window):
    """The window on the bundled model, the Scale tab measuring it alone (as on a machine
    with nothing installed), with the course open."""
    w = make_window("builtin")
    w.scale.set_models([("tokenscope-default  (bundled)", "builtin")], {"builtin"})
    w.help.open_course()
    return w


def panel_of(w):
    return w.help.dock.panel


def go(w, key):
    panel = panel_of(w)
    panel.go([lesson.key for lesson in panel.lessons].index(key))
    return panel


def verdicts_settle(qtbot, panel, states):
    """Wait until the checks' states are `states` (judged on the window as it is)."""

    def settled():
        panel.refresh_checks()
        return [v.state for v in panel.verdicts] == states

    qtbot.waitUntil(settled, timeout=WAIT_MS)
    return panel.verdicts


def test_the_playground_lessons_set_up_and_check_on_the_bundled_model(qtbot, bundled):
    w = bundled
    assert isinstance(w.help.dock, QDockWidget) and w.help.dock.isVisible()
    assert w.isEnabled()  # not modal

    panel = go(w, "01-tokens")
    qtbot.mouseClick(panel.show_button, Qt.MouseButton.LeftButton)
    assert w.tabs.currentWidget() is w.playground
    assert w.playground.prompt.toPlainText() == "Tokenization splits unusual words into pieces."
    (v,) = verdicts_settle(qtbot, panel, [checks.SHOWN])
    assert "46 characters became 24 tokens" in v.text and "'Tokenization' is 7 pieces" in v.text
    assert panel.check_texts()[0].startswith("✓")

    panel = go(w, "02-next-token")
    panel.show_me()
    assert w.playground.prompt.toPlainText() == "The capital of Indonesia is"
    assert w.playground.watch.text() == " Jakarta"
    (v,) = verdicts_settle(qtbot, panel, [checks.SHOWN])
    top = w.playground.chart  # what the learner sees: the chart's top bar
    assert "' Jakarta' with P = 0.99" in v.text and top is not None

    # The learner edits the prompt: the check no longer claims anything about it.
    w.playground.prompt.setPlainText("The capital of France is")
    (v,) = verdicts_settle(qtbot, panel, [checks.WAITING])
    assert "does not hold this lesson's prompt" in v.text

    panel = go(w, "03-sampling")
    panel.show_me()
    assert w.playground.sampling.temperature.value() == 2.0
    assert w.playground.prompt.toPlainText() == "The capital of Indonesia is"
    (v,) = verdicts_settle(qtbot, panel, [checks.SHOWN])
    assert "At temperature 2" in v.text and "more of the chance" in v.text


def test_a_check_says_so_when_the_numbers_do_not_show_it(qtbot, make_window, checkpoint):
    """A tiny random model is loaded: the Jakarta lesson's notice is not claimed."""
    w = make_window(checkpoint)
    w.help.open_course()
    panel = go(w, "02-next-token")
    panel.show_me()
    (v,) = verdicts_settle(qtbot, panel, [checks.NOT_SHOWN])
    assert "does not show it" in v.text and "test-tiny" in v.text
    assert panel.check_texts()[0].startswith("✗ Not shown here:")


def test_the_scale_lessons_measure_and_explain_on_the_bundled_model(qtbot, bundled):
    w = bundled
    panel = go(w, "05-size")
    panel.show_me()
    assert w.tabs.currentWidget() is w.scale
    assert w.scale.charts.currentWidget() is w.scale.size_chart and w.scale.mode_probe.isChecked()
    qtbot.waitUntil(lambda: not w.scale.running and bool(w.scale.results), timeout=WAIT_MS)
    (v,) = verdicts_settle(qtbot, panel, [checks.SHOWN])
    assert "powers of ten" in v.text and "smaller than" in v.text

    panel = go(w, "08-memorisation")
    panel.show_me()
    qtbot.waitUntil(lambda: not w.scale.running and bool(w.scale.results), timeout=WAIT_MS)
    (v,) = verdicts_settle(qtbot, panel, [checks.SHOWN])
    assert "tokenscope-default (1.1 M): P = 0.99" in v.text and "trained on this" in v.text
    w.scale.answer.setText(" Paris")  # the results answer another question now
    (v,) = verdicts_settle(qtbot, panel, [checks.WAITING])
    assert "another probe" in v.text

    panel = go(w, "07-few-shot")
    panel.show_me()
    assert w.scale.mode_task.isChecked() and w.scale.task.currentData() == "invented-language"
    assert w.scale.charts.currentWidget() is w.scale.sweep_chart
    qtbot.waitUntil(lambda: not w.scale.running and bool(w.scale.results), timeout=WAIT_MS)
    (v,) = verdicts_settle(qtbot, panel, [checks.NOT_SHOWN])
    # The bundled model alone cannot show size: it says so, with its own numbers.
    assert "tokenscope-default: 0.001 -> 0.98" in v.text and "Fewer than two" in v.text


def test_the_inside_lesson_shows_the_lens_and_says_there_are_no_copying_heads(qtbot, bundled):
    w = bundled
    panel = go(w, "09-why")
    panel.show_me()
    assert w.tabs.currentWidget() is w.inside
    assert w.inside.views.currentWidget() is w.inside.lens
    assert w.inside.prompt.toPlainText() == "The capital of Indonesia is"
    lens, heads = verdicts_settle(qtbot, panel, [checks.SHOWN, checks.NOT_SHOWN])
    assert "'␣Jakarta'" in lens.text and "at layer 1 of 4" in lens.text
    assert "highest induction score on tokenscope-default is 0.0" in heads.text


def test_the_training_lessons_set_up_the_tab(qtbot, bundled, private_home):
    w = bundled
    panel = go(w, "04-before-transformers")
    panel.show_me()
    t = w.training
    assert w.tabs.currentWidget() is t
    assert t.plan.preset.currentData() == "tiny" and t.plan.steps.value() == 300
    assert t.data.tokenizer_kind() == "char"
    corpus = private_home / "course" / "text" / "default-corpus.txt"
    qtbot.waitUntil(lambda: t.data.paths() == [str(corpus)], timeout=WAIT_MS)
    assert corpus.stat().st_size > 1_000_000  # the text the bundled model learned
    (v,) = verdicts_settle(qtbot, panel, [checks.WAITING])
    assert f"press {t.start_button.text()}" in v.text  # the buttons' own names
    assert t.baselines_button.text() in v.text and t.baselines_button.text() in panel.lesson.text
    assert t.start_button.isEnabled()  # one click from the run the lesson describes

    panel = go(w, "06-data-and-compute")
    panel.show_me()
    assert t.plan.preset.currentData() == "small" and t.plan.steps.value() == 1000
    assert t.bottom.currentWidget() is t.ladder_chart
    compute, ladder = verdicts_settle(qtbot, panel, [checks.SHOWN, checks.WAITING])
    n = t.plan.model_config().parameter_count()
    assert f"N = {n:,} parameters" in compute.text
    assert t.ladder_button.text() in ladder.text and t.ladder_button.text() in panel.lesson.text
    assert t.data.paths() == [str(corpus)]  # added once


def test_the_in_context_learning_lesson_chooses_the_recipe_and_reads_the_icl_pane(qtbot, bundled):
    from tokenscope.train.events import EvalEvent

    w = bundled
    panel = go(w, "10-in-context-learning")
    panel.show_me()
    t = w.training
    assert w.tabs.currentWidget() is t and t.bottom.currentWidget() is t.icl
    assert t.recipes.choice.currentData() == "induction"
    assert t.plan.steps.value() == 4000 and t.data.tokenizer_kind() == "char"
    (v,) = verdicts_settle(qtbot, panel, [checks.WAITING])
    assert t.start_button.text() in v.text
    # The pane as a run fills it: flat, then a fall of a nat (the check reads the pane).
    flat = [-0.05, -0.08, -0.1, -0.12]
    for i, score in enumerate([*flat, -0.7, -1.05, -1.15], start=1):
        t.icl.add_event(EvalEvent(step=100 * i, val_loss=4.0, icl_score=score,
                                  induction_max=0.05))  # fmt: skip
    (v,) = verdicts_settle(qtbot, panel, [checks.SHOWN])
    assert "-0.05 to -1.15" in v.text and "step 500" in v.text
    t.icl.set_run(None)
    for i, score in enumerate(flat, start=1):
        t.icl.add_event(EvalEvent(step=100 * i, val_loss=4.0, icl_score=score))
    (v,) = verdicts_settle(qtbot, panel, [checks.NOT_SHOWN])
    assert "no fall of 0.3 nats" in v.text


def test_previous_next_and_the_lesson_is_remembered(qtbot, make_window):
    w = make_window("builtin")
    w.help.open_course_on_first_start()  # the first start: it opens
    panel = panel_of(w)
    assert w.help.dock.isVisible() and panel.index == 0
    assert not panel.previous.isEnabled()
    qtbot.mouseClick(panel.next, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(panel.next, Qt.MouseButton.LeftButton)
    assert panel.index == 2 and panel.title.text().startswith(f"Lesson 3 of {len(panel.lessons)}")
    key = panel.lesson.key
    w.close()

    again = make_window("builtin")
    again.help.open_course_on_first_start()  # not the first start any more
    assert again.help.dock is None
    again.help.course_action.trigger()
    assert panel_of(again).lesson.key == key and again.help.dock.isVisible()


def test_the_help_menu_lists_real_shortcuts_and_about_names_the_versions(window, private_home):
    import PySide6
    from PySide6.QtCore import qVersion

    import tokenscope
    from tokenscope.gui.help_menu import AboutDialog, ShortcutsDialog, shortcut_rows

    menus = {a.text(): a.menu() for a in window.menuBar().actions()}
    assert "&Help" in menus
    texts = [a.text() for a in menus["&Help"].actions() if a.text()]
    assert texts == ["&Course…", "&Keyboard shortcuts…", "&About Tokenscope…"]
    assert window.help.course_action.shortcut().toString() == "F1"

    rows = shortcut_rows(window)
    assert ("Ctrl+O", "Open model", "File menu") in rows
    assert ("F1", "Course", "Help menu") in rows
    generate = [r for r in rows if r[1] == "Generate tokens from the prompt"]
    assert generate == [("Ctrl+Return or Ctrl+Enter", "Generate tokens from the prompt",
                         "Playground tab")]  # fmt: skip
    assert ("Esc", "Stop measuring", "Scale tab") in rows  # each tab's own button, not another's
    assert ("Esc", "Stop generating", "Playground tab") in rows
    assert ("Ctrl+V", "Paste (in Examples)", "Few-shot tab") in rows
    dialog = ShortcutsDialog(window)
    assert dialog.table.rowCount() == len(rows)
    dialog.deleteLater()

    about = dict(__import__("tokenscope.gui.help_menu", fromlist=["x"]).about_lines())
    assert about["Tokenscope"] == tokenscope.__version__
    assert about["Python"] == platform.python_version()
    assert about["PySide6"] == PySide6.__version__ and about["Qt"] == qVersion()
    assert about["PyTorch"] == metadata.version("torch")
    assert about["tokenizers"] == metadata.version("tokenizers")
    assert about["Data folder"] == str(private_home)
    dialog = AboutDialog(window)
    for value in about.values():
        assert value in dialog.label.text()
    dialog.deleteLater()


@pytest.mark.slow
def test_the_baselines_check_reads_the_three_perplexities(qtbot, bundled):
    """The before-Transformers lesson on a real (short) run and its real baselines: the line
    names the three validation perplexities and ranks them as the numbers say."""
    import math

    w = bundled
    panel = go(w, "04-before-transformers")
    panel.show_me()
    t = w.training
    qtbot.waitUntil(lambda: "characters" in t.data.summary_label.text(), timeout=WAIT_MS)
    t.plan.steps.setValue(40)  # shorter than the lesson's run: the check is what is tested
    qtbot.mouseClick(t.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: t.done_event is not None and not t.process.is_running(),
                    timeout=240_000)  # fmt: skip
    (v,) = verdicts_settle(qtbot, panel, [checks.WAITING])
    assert f"press {t.baselines_button.text()}" in v.text
    qtbot.mouseClick(t.baselines_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(t.charts.baselines()) == 2 and not t.process.is_running(),
                    timeout=240_000)  # fmt: skip
    panel.refresh_checks()
    (v,) = panel.verdicts
    ppl = {name: math.exp(loss) for name, loss in t.charts.baselines().items()}
    ours = math.exp(min(loss for _s, loss in t.charts.curve_points("val")))
    for name, p in ppl.items():
        assert f"{name} {p:,.2f}" in v.text
    assert f"the Transformer {ours:,.2f}" in v.text
    best = all(ours <= p for p in ppl.values())
    assert v.state == (checks.SHOWN if best else checks.NOT_SHOWN)


def test_the_app_opens_the_course_on_its_first_start_only(tmp_path):
    """`tokenscope` itself: the first start opens the course and says so in the settings;
    the settings keep it from opening again."""
    import os
    import subprocess
    import sys

    from PySide6.QtCore import QSettings

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TOKENSCOPE_HOME": str(tmp_path),
           "TOKENSCOPE_QUIT_AFTER_MS": "3000"}  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "tokenscope"], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    assert settings.value("course/opened") == "true"


def test_a_lessons_model_is_opened_by_show_me(qtbot, make_window, checkpoint, private_home):
    """A teacher's lesson names a model: Show me opens it like the picker would."""
    folder = private_home / "course"
    folder.mkdir(parents=True)
    lesson = {**GOOD, "show": {"model": str(checkpoint), "tab": "inside"}}
    _write(folder, lesson, "00-own-model.json")
    w = make_window("builtin")
    w.help.open_course()
    panel = go(w, "00-own-model")
    panel.show_me()
    assert w.tabs.currentWidget() is w.inside
    qtbot.waitUntil(lambda: w.model_id == str(checkpoint), timeout=WAIT_MS)
    assert w.picker.currentData() == str(checkpoint)


def test_a_prediction_made_before_the_course_opened_is_judged(qtbot, make_window):
    """The window opens on the Jakarta prompt; the course, opened later, judges the chart the
    learner already sees without waiting for Show me."""
    w = make_window("builtin")
    assert w.playground.prompt.toPlainText() == "The capital of Indonesia is"
    qtbot.waitUntil(lambda: w.playground.predicted_text == "The capital of Indonesia is",
                    timeout=WAIT_MS)  # fmt: skip
    w.help.open_course()
    panel = go(w, "02-next-token")
    (v,) = verdicts_settle(qtbot, panel, [checks.SHOWN])
    assert "' Jakarta' with P = 0.99" in v.text
