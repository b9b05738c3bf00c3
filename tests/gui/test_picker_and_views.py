"""What a teacher met outside the Training tab: the same model twice in the picker, the
SmolLM2 entry that did not say it is the Instruct model, a short generated-text box that
scrolled the answer out of view, and status lines that stayed after they stopped being true.
"""

from __future__ import annotations

from pathlib import Path

from tokenscope.lm.tokens import GenerationStep


def test_a_model_opened_through_another_path_is_one_entry_in_the_picker(
    qtbot, make_window, checkpoint, tmp_path, private_home
):
    link = tmp_path / "the-same-model"
    link.symlink_to(checkpoint, target_is_directory=True)
    window = make_window(link)  # opened by a path that is not the one the list has
    qtbot.waitUntil(lambda: any(e.kind == "recent" for e in window.models.entries),
                    timeout=60_000)  # fmt: skip
    window._fill_picker()
    same = [
        i
        for i in range(window.picker.count())
        if isinstance(window.picker.itemData(i), str)
        and Path(window.picker.itemData(i)).exists()
        and Path(window.picker.itemData(i)).resolve() == checkpoint.resolve()
    ]
    assert len(same) == 1, [window.picker.itemText(i) for i in range(window.picker.count())]
    assert window.picker.currentIndex() == same[0]  # and it is the one shown as in use


def test_the_picker_names_each_file_once_and_says_which_smollm2_it_is(tmp_path):
    from tokenscope.gui.widgets.model_picker import picker_entries, picker_label
    from tokenscope.lm.catalog import CatalogEntry

    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "alias").symlink_to(folder, target_is_directory=True)
    entries = [
        CatalogEntry("model", "recent", path=str(folder)),
        CatalogEntry("alias", "recent", path=str(tmp_path / "alias")),
        CatalogEntry("other", "recent", path=str(tmp_path / "other")),
        CatalogEntry("gone", "available", note="not installed"),
    ]
    assert [e.name for e in picker_entries(entries)] == ["model", "other"]
    smol = CatalogEntry("smollm2-135m", "installed")
    assert picker_label(smol) == (
        "smollm2-135m  (installed: SmolLM2-135M-Instruct, instruction-tuned)"
    )
    assert "base model" in picker_label(CatalogEntry("gemma3-270m", "installed"))
    assert picker_label(CatalogEntry("builtin", "bundled")) == "builtin  (bundled)"


def test_the_models_tab_says_smollm2_is_the_instruct_model(qtbot, private_home):
    from tokenscope.gui.models.models_tab import ModelsTab

    tab = ModelsTab()
    qtbot.addWidget(tab)
    tab.refresh()
    qtbot.waitUntil(lambda: any(e.name == "smollm2-135m" for e in tab.entries), timeout=30_000)
    row = [e.name for e in tab.entries].index("smollm2-135m")
    assert "SmolLM2-135M-Instruct" in tab.table.item(row, 0).text()


def _steps(words: list[str]) -> list[GenerationStep]:
    return [GenerationStep(index=i, token_id=i, display=w, text=w, probability=0.5,
                           sampled_probability=0.5, top_raw=(), top_sampled=(), entropy=1.0,
                           elapsed=0.0) for i, w in enumerate(words)]  # fmt: skip


def test_the_newest_generated_text_stays_in_view_in_a_short_box(qtbot):
    from tokenscope.gui.playground.generated_text import MIN_LINES, GeneratedTextView

    view = GeneratedTextView()
    qtbot.addWidget(view)
    view.resize(400, 25)  # asked for about one line
    view.show()
    lines = view.fontMetrics().lineSpacing()
    assert view.height() >= MIN_LINES * lines  # the box keeps room for a few lines
    prompt = "\n".join(f"line {i} of a long prompt" for i in range(40))
    view.set_content(prompt, [])
    view.flush()
    view.verticalScrollBar().setValue(0)  # the person read the prompt from its start
    steps = _steps([" The", " answer", " is", " here."])
    view.set_content(prompt, steps)  # a new generation below a prompt taller than the box
    view.flush()
    bar = view.verticalScrollBar()
    assert bar.maximum() > 0 and bar.value() == bar.maximum()
    last = view.token_rect(len(steps) - 1)
    assert view.viewport().rect().contains(last.center())  # the answer is on screen

    # Clicking a token (another selection) leaves the view where the person was looking.
    bar.setValue(0)
    view.set_content(prompt, steps, selected=0)
    view.flush()
    assert bar.value() == 0


def test_reports_of_things_done_clear_themselves(qtbot, private_home, monkeypatch):
    from tokenscope.gui.models import models_tab
    from tokenscope.gui.models.models_tab import ModelsTab

    tab = ModelsTab()
    qtbot.addWidget(tab)
    tab._status_expiry.setInterval(200)
    tab.report_done("SmolLM2 is installed. Pick it in the list to open it.")
    assert tab.status.text().startswith("SmolLM2 is installed")
    qtbot.waitUntil(lambda: tab.status.text() == "", timeout=5_000)
    # A newer line said before the report expires is not cleared with it.
    tab.report_done("Deleted.")
    tab.status.setText("Installing Gemma 3 270M…")
    qtbot.wait(400)
    assert tab.status.text() == "Installing Gemma 3 270M…"
    assert models_tab.REPORT_MS >= 10_000  # long enough to read
