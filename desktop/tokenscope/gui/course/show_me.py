""" "Show me": set the window up as a lesson's `show` says, through the tabs' own controls.

Only what the lesson names changes; the rest of the window stays as the learner left it.
A model named by the lesson is opened like any other (the picker follows); work that takes
time (a Scale run, the induction scores) starts the way its button would start it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QTextCursor

from tokenscope.gui.background import run_in_background

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from tokenscope.gui.course.lessons import Lesson
    from tokenscope.gui.main_window import MainWindow


def course_corpus() -> Path:
    """Where the default corpus (the text the bundled model learned) is written for training."""
    from tokenscope.paths import data_dir

    return data_dir() / "course" / "text" / "default-corpus.txt"


def show(w: MainWindow, lesson: Lesson) -> None:
    s = lesson.show
    model = s.get("model")
    if model and model != w.model_id:
        w.load_model(model)
    if "playground" in s:
        _playground(w, s["playground"])
    if "fewshot" in s:
        w.fewshot.load_preset(s["fewshot"]["preset"])
    if "inside" in s:
        _inside(w, s["inside"])
    if "training" in s:
        _training(w, s["training"])
    if "tab" in s:
        pages: dict[str, QWidget] = {
            "playground": w.playground,
            "fewshot": w.fewshot,
            "inside": w.inside,
            "scale": w.scale,
            "training": w.training,
            "models": w.models,
        }
        w.tabs.setCurrentWidget(pages[s["tab"]])
    if "scale" in s:  # last: a run starts on the settings above
        _scale(w, s["scale"])


def _playground(w: MainWindow, p: dict[str, Any]) -> None:
    pg = w.playground
    if "sampling" in p:
        from tokenscope.gui.playground.sampling_panel import DEFAULTS

        pg.sampling.set_values({**DEFAULTS, **p["sampling"]})
    if "watch" in p:
        pg.watch.setText(p["watch"])
    if "prompt" in p and pg.prompt.toPlainText() != p["prompt"]:
        pg.prompt.setPlainText(p["prompt"])
    pg.request_prediction()  # the same prompt again still gets a fresh chart


def _inside(w: MainWindow, p: dict[str, Any]) -> None:
    inside = w.inside
    if "prompt" in p:
        inside.prompt.setPlainText(p["prompt"])
        inside.prompt.moveCursor(QTextCursor.MoveOperation.End)  # the lens reads the next token
    views = {"lens": inside.lens, "attention": inside.attention, "surprisal": inside.surprisal}
    if "view" in p:
        inside.views.setCurrentWidget(views[p["view"]])
    if "layer" in p:
        inside.attention.layer.setValue(p["layer"])
    inside.refresh(force=True)  # a large model updates on demand: this is the demand
    if p.get("induction"):
        inside.request_induction()


def _scale(w: MainWindow, p: dict[str, Any]) -> None:
    sc = w.scale
    (sc.mode_task if p.get("mode") == "task" else sc.mode_probe).setChecked(True)
    if "prompt" in p:
        sc.prompt.setText(p["prompt"])
    if "answer" in p:
        sc.answer.setText(p["answer"])
    if "task" in p:
        sc.task.setCurrentIndex(max(0, sc.task.findData(p["task"])))
    if "max_shots" in p:
        sc.max_shots.setValue(p["max_shots"])
    charts = {"size": sc.size_chart, "training": sc.training_chart, "sweep": sc.sweep_chart}
    if "chart" in p:
        sc.charts.setCurrentWidget(charts[p["chart"]])
    if p.get("run"):
        if sc.running:
            sc.cancel()  # another probe was being measured: this one replaces it
        sc.results = []
        sc.run()


def _training(w: MainWindow, p: dict[str, Any]) -> None:
    t = w.training
    if "recipe" in p:  # a ready-made run: it fills the settings below itself
        index = t.recipes.choice.findData(p["recipe"])
        if index < 0:
            w.show_message(f"The course asks for the ready-made run {p['recipe']!r}, which "
                           "this version does not have.")  # fmt: skip
        else:
            t.recipes.choice.setCurrentIndex(index)
    if "tokenizer" in p:
        t.data.kind.setCurrentIndex(t.data.kind.findData(p["tokenizer"]))
    if "preset" in p:
        t.plan.preset.setCurrentIndex(t.plan.preset.findData(p["preset"]))
    for key, box in (("context", t.plan.context), ("batch", t.plan.batch), ("steps", t.plan.steps)):
        if key in p:
            box.setValue(p[key])
    details = {
        "notes": t.notes_view,
        "samples": t.samples,
        "log": t.log,
        "runs": t.runs,
        "ladder": t.ladder_chart,
        "icl": t.icl,
    }
    if "details" in p:
        t.bottom.setCurrentWidget(details[p["details"]])
    if p.get("corpus") == "default":
        path = course_corpus()

        def write() -> str:
            from tokenscope.train import default_corpus

            return str(default_corpus.write(path))  # (half a second: off the GUI thread)

        def written(result: str | None, error: str | None) -> None:
            if error:
                w.show_message(f"Could not write the course's text: {error}")
            elif result and result not in t.data.paths():
                t.data.add_paths([result])

        run_in_background(write, written, t)
