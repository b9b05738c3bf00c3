"""A lesson's "what to notice", tested against what the window shows now.

Each check kind reads the numbers the tabs received (the Playground's last prediction and
tokens, the Scale tab's results, the Inside tab's lens and induction scores, the Training
tab's plan, baselines and ladder) and returns a Verdict: SHOWN with the numbers that show
it, NOT_SHOWN with the numbers that do not (another model is loaded, a short run), or
WAITING when there is nothing to judge yet (and what to do about it). A check never claims
what the numbers do not say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenscope.gui.course.lessons import Lesson
    from tokenscope.gui.main_window import MainWindow
    from tokenscope.service.records import NextTokenView

SHOWN, NOT_SHOWN, WAITING = "shown", "not shown", "waiting"


@dataclass(frozen=True)
class Verdict:
    state: str  # SHOWN, NOT_SHOWN or WAITING
    text: str


@dataclass
class Seen:
    """What the window received that its widgets do not keep in public: the Playground's
    latest prediction and the prompt it belongs to."""

    prediction: NextTokenView | None = None
    predicted_text: str | None = None

    def take(self, view: NextTokenView, text: str | None) -> None:
        self.prediction, self.predicted_text = view, text


def _model(w: MainWindow) -> str:
    return w.model_info.name if w.model_info is not None else "no model"


def _lesson_prompt(w: MainWindow, lesson: Lesson) -> Verdict | None:
    """WAITING when the Playground's prompt is no longer the one the lesson set."""
    wanted = lesson.show.get("playground", {}).get("prompt")
    if wanted is not None and w.playground.prompt.toPlainText() != wanted:
        return Verdict(
            WAITING,
            "The Playground does not hold this lesson's prompt: press Show me to set it.",
        )
    return None


def _prediction(w: MainWindow, lesson: Lesson, seen: Seen) -> NextTokenView | Verdict:
    other = _lesson_prompt(w, lesson)
    if other is not None:
        return other
    if seen.prediction is None or seen.predicted_text != w.playground.prompt.toPlainText():
        return Verdict(WAITING, "Waiting for the model's prediction…")
    return seen.prediction


def top_token(w: MainWindow, lesson: Lesson, seen: Seen, c: dict[str, Any]) -> Verdict:
    view = _prediction(w, lesson, seen)
    if isinstance(view, Verdict):
        return view
    if not view.rows:
        return Verdict(NOT_SHOWN, "The model returned no tokens.")
    top = view.rows[0]
    wanted = [str(t) for t in c.get("tokens", [])]
    least = float(c.get("min_probability", 0.0))
    said = f"The top bar on {_model(w)} is {top.text!r} with P = {top.probability:.3f}"
    if top.text in wanted and top.probability >= least:
        return Verdict(SHOWN, said + ".")
    if top.text in wanted:
        return Verdict(
            NOT_SHOWN,
            f"{said}: the expected token, but below {least:g}; this model is less sure "
            "than the lesson says.",
        )
    expected = " or ".join(repr(t) for t in wanted)
    return Verdict(
        NOT_SHOWN, f"{said}, not {expected} above {least:g}: this model does not show it."
    )


def prompt_tokens(w: MainWindow, lesson: Lesson, seen: Seen, c: dict[str, Any]) -> Verdict:
    other = _lesson_prompt(w, lesson)
    if other is not None:
        return other
    text = w.playground.prompt.toPlainText()
    spans = list(w.playground.tokens.spans)
    if not spans or spans[-1].end != len(text):
        return Verdict(WAITING, "Waiting for the tokens of the prompt…")
    pieces = " | ".join(s.display for s in spans[:24]) + (" | …" if len(spans) > 24 else "")
    said = f"{len(text)} characters became {len(spans)} tokens on {_model(w)}: [{pieces}]."
    word = str(c.get("split_word", ""))
    start = text.find(word) if word else -1
    if len(spans) >= len(text):
        return Verdict(
            NOT_SHOWN, said + " One token per character: this tokenizer does not make pieces."
        )
    if start >= 0:
        parts = [s.display for s in spans if s.start < start + len(word) and s.end > start]
        if len(parts) < 2:
            return Verdict(
                NOT_SHOWN,
                said + f" {word!r} is one token here: this vocabulary knows the whole word.",
            )
        said += f" {word!r} is {len(parts)} pieces: {' + '.join(parts)}."
    return Verdict(SHOWN, said)


def temperature(w: MainWindow, lesson: Lesson, seen: Seen, c: dict[str, Any]) -> Verdict:
    view = _prediction(w, lesson, seen)
    if isinstance(view, Verdict):
        return view
    t = w.playground.sampling.temperature.value()
    if not view.rows:
        return Verdict(NOT_SHOWN, "The model returned no tokens.")
    top = view.rows[0]
    raw, drawn = top.probability, top.sampled_probability
    said = (
        f"At temperature {t:g} on {_model(w)}, the top token {top.text!r} has "
        f"P = {raw:.3f} in the model and {drawn:.3f} in what is drawn from"
    )
    if t > 1 and drawn < raw - 0.01:
        return Verdict(SHOWN, said + ": the others get more of the chance.")
    if 0 < t < 1 and drawn > raw + 0.01:
        return Verdict(SHOWN, said + ": the favourite gets even more.")
    if t == 0 and drawn >= 0.999:
        return Verdict(SHOWN, said + ": temperature 0 always takes the top token.")
    return Verdict(NOT_SHOWN, said + ": the bars barely differ here.")


def baselines(w: MainWindow, lesson: Lesson, seen: Seen, c: dict[str, Any]) -> Verdict:
    t = w.training
    found = t.charts.baselines()
    val = [v for _s, v in t.charts.curve_points("val")]
    if not val:
        return Verdict(
            WAITING,
            f"No run shown yet: press {t.start_button.text()}, then "
            f"{t.baselines_button.text()} when it has finished.",
        )
    if len(found) < 2:
        return Verdict(
            WAITING,
            f"The run is there: press {t.baselines_button.text()} to train the n-gram and the "
            "LSTM on the same text.",
        )
    ppl = {name: math.exp(v) for name, v in found.items()}
    ours = math.exp(min(val))
    said = (
        "Validation perplexity (lower is better): "
        + ", ".join(f"{n} {p:,.2f}" for n, p in ppl.items())
        + f", the Transformer {ours:,.2f}"
    )
    ahead = [name for name, p in ppl.items() if p < ours]
    if not ahead:
        return Verdict(SHOWN, said + ": the Transformer predicts this text best.")
    return Verdict(
        NOT_SHOWN,
        said + f": on this run {' and '.join(ahead)} predict(s) the text better than the "
        f"Transformer. Resume with more steps (or a larger preset), press "
        f"{t.baselines_button.text()} again, "
        "and compare.",
    )


def reference_models(w: MainWindow, lesson: Lesson, seen: Seen, c: dict[str, Any]) -> Verdict:
    refs = w.scale.size_chart.reference.references
    if not refs:
        return Verdict(NOT_SHOWN, "The reference list of well-known models could not be read.")
    small = min(refs, key=lambda r: r.parameters)
    big = max(refs, key=lambda r: r.parameters)
    decades = math.log10(big.parameters / small.parameters)
    said = (
        f"The chart runs from {small.name} ({small.parameters / 1e6:,.0f} M) to {big.name} "
        f"({big.parameters / 1e9:,.0f} B): {decades:.1f} powers of ten, each the same "
        "width on the log axis"
    )
    info = w.model_info
    if info is not None and info.parameters:
        said += (
            f"; {info.name} ({info.parameters / 1e6:,.1f} M) is "
            f"{small.parameters / info.parameters:,.0f}x smaller than {small.name}"
        )
    if decades >= float(c.get("min_decades", 3.0)):
        return Verdict(SHOWN, said + ".")
    return Verdict(NOT_SHOWN, said + ", fewer than the lesson expects.")


def training_compute(w: MainWindow, lesson: Lesson, seen: Seen, c: dict[str, Any]) -> Verdict:
    plan = w.training.plan
    try:
        n = plan.model_config().parameter_count()
    except ValueError as e:
        return Verdict(NOT_SHOWN, f"The planned model is not valid: {e}")
    d = plan.planned_tokens()
    rule = 6 * n * d
    said = (
        f"The plan: N = {n:,} parameters, D = {d:,} tokens; 6 x N x D = {rule:.2e} FLOPs "
        "(the rule of thumb); the Model and budget box counts attention too"
    )
    if "FLOPs" in plan.estimates.text():
        return Verdict(SHOWN, said + ".")
    return Verdict(WAITING, "Waiting for the estimate…")


def ladder_fit(w: MainWindow, lesson: Lesson, seen: Seen, c: dict[str, Any]) -> Verdict:
    points = w.training.ladder_chart.loss_points()
    if len(points) < 2:
        return Verdict(
            WAITING,
            f"{len(points)} size(s) trained: press {w.training.ladder_button.text()} (four "
            "sizes, a few minutes) for the power law.",
        )
    from tokenscope.train.ladder import fit_power_law

    ns, losses = zip(*points, strict=True)
    try:
        law = fit_power_law(ns, losses)
    except ValueError as e:
        return Verdict(NOT_SHOWN, f"No fit: {e}")
    said = f"{len(points)} sizes: the fit is loss = {law.a:.3g} x N^-{law.alpha:.3f} + {law.c:.3g}"
    if law.alpha > 0 and min(losses) == losses[ns.index(max(ns))]:
        return Verdict(SHOWN, said + ": the largest model has the lowest loss.")
    return Verdict(NOT_SHOWN, said + ": the loss does not fall with size in this ladder.")


def _scale_state(w: MainWindow, lesson: Lesson, mode: str) -> Verdict | None:
    """WAITING while the Scale tab measures, or when it is set to another probe than the
    lesson's (its results would answer another question)."""
    s = w.scale
    wanted = lesson.show.get("scale", {})
    fields = {"prompt": s.prompt.text(), "answer": s.answer.text(), "task": s.task.currentData()}
    mode_on = s.mode_task if mode == "task" else s.mode_probe
    if not mode_on.isChecked() or any(
        key in wanted and wanted[key] != value for key, value in fields.items()
    ):
        return Verdict(
            WAITING, "The Scale tab is set to another probe than the lesson's: press Show me again."
        )
    if s.running:
        return Verdict(WAITING, f"Measuring the models ({len(s.results)} done so far)…")
    return None


def probe_by_size(w: MainWindow, lesson: Lesson, seen: Seen, c: dict[str, Any]) -> Verdict:
    waiting = _scale_state(w, lesson, "probe")
    if waiting is not None:
        return waiting
    points = sorted(
        (r.point for r in w.scale.results if r.point is not None), key=lambda p: p.parameters
    )
    if not points:
        return Verdict(WAITING, "No model measured yet: press Run in the Scale tab.")
    answer = w.scale.answer.text()
    listed = "; ".join(
        f"{p.name} ({p.parameters / 1e6:,.1f} M): P = {p.probability:.3f}" for p in points
    )
    said = f"P({answer!r}): {listed}"
    who = str(c.get("memorised_by", "builtin"))
    least = float(c.get("min_probability", 0.9))
    mine = next((p for p in points if p.model == who), None)
    if mine is None:
        return Verdict(NOT_SHOWN, said + f". {who} was not measured (tick it and Run).")
    if mine.probability < least:
        return Verdict(
            NOT_SHOWN,
            said + f". {mine.name} gives it less than {least:g}: it has "
            "not memorised this sentence.",
        )
    larger = [p for p in points if p.parameters > mine.parameters]
    if not larger:
        return Verdict(
            SHOWN,
            said + f". {mine.name} was trained on this very sentence. With "
            "SmolLM2 or Gemma installed (Models tab), Run again: larger models "
            "that read all kinds of text give it less.",
        )
    lower = [p for p in larger if p.probability < mine.probability]
    if lower:
        return Verdict(
            SHOWN,
            said + f". {len(lower)} larger model(s) give it less: size did "
            "not make them know less; the small one memorised its own data.",
        )
    return Verdict(NOT_SHOWN, said + ". Here the larger models are as sure as the small one.")


def fewshot_by_size(w: MainWindow, lesson: Lesson, seen: Seen, c: dict[str, Any]) -> Verdict:
    waiting = _scale_state(w, lesson, "task")
    if waiting is not None:
        return waiting
    sweeps = sorted(
        (r.sweep for r in w.scale.results if r.sweep is not None and r.sweep.points),
        key=lambda s: s.parameters,
    )
    if not sweeps:
        return Verdict(WAITING, "No sweep yet: press Run in the Scale tab.")

    def last(s: Any) -> float:
        return float(max(s.points, key=lambda p: p.shots).probability)

    listed = "; ".join(f"{s.name}: {s.points[0].probability:.3f} -> {last(s):.3f}" for s in sweeps)
    said = f"P(answer) with 0 -> {max(p.shots for p in sweeps[0].points)} examples: {listed}"
    excluded = set(c.get("exclude", []))
    fair = [s for s in sweeps if s.model not in excluded and s.parameters]
    least = float(c.get("min_probability", 0.5))
    if len(fair) < 2:
        return Verdict(
            NOT_SHOWN,
            said + ". Fewer than two general models were measured, so "
            "size cannot be compared here: install SmolLM2-135M and Gemma 3 270M "
            "(Models tab) and Run again.",
        )
    small, big = fair[0], fair[-1]
    if last(big) >= least and last(big) > last(small) + 0.1:
        return Verdict(
            SHOWN,
            said + f". {big.name} learns the task from the examples; "
            f"{small.name}, {big.parameters / small.parameters:.1f}x smaller, "
            "much less.",
        )
    return Verdict(NOT_SHOWN, said + ". Here the largest model does not do clearly better.")


def lens(w: MainWindow, lesson: Lesson, seen: Seen, c: dict[str, Any]) -> Verdict:
    view = w.inside.lens.view
    if view is None:
        return Verdict(WAITING, "Waiting for the logit lens…")
    first = view.first_top_layer
    layers = len(view.rows) - 1
    final = view.rows[-1].target_probability
    said = f"On {_model(w)}, the final guess {view.target_label!r} (P = {final:.3f})"
    if first is None:
        return Verdict(NOT_SHOWN, said + " is ranked first by no layer before the last.")
    if first == 0:
        return Verdict(
            NOT_SHOWN, said + " is already first in the embeddings: no layer had to work it out."
        )
    if first == layers:
        return Verdict(
            SHOWN,
            said + f" becomes the top guess only at the last layer ({first} of {layers}): "
            "the layers before it work towards it unseen.",
        )
    return Verdict(
        SHOWN,
        said + f" becomes the top guess at layer {first} of {layers}: the "
        "layers before it build it up.",
    )


def induction(w: MainWindow, lesson: Lesson, seen: Seen, c: dict[str, Any]) -> Verdict:
    scores = w.inside.attention.scores
    if scores is None or not scores.size:
        return Verdict(WAITING, "Press 'Induction scores' in the Attention view.")
    import numpy as np

    layer, head = np.unravel_index(int(scores.argmax()), scores.shape)
    best = float(scores[layer, head])
    least = float(c.get("min_score", 0.3))
    said = f"The highest induction score on {_model(w)} is {best:.2f} (layer {layer}, head {head})"
    if best >= least:
        copying = int((scores >= least).sum())
        return Verdict(
            SHOWN,
            said + f"; {copying} head(s) score {least:g} or more: they copy "
            "what followed the same token before.",
        )
    return Verdict(
        NOT_SHOWN,
        said + f", below {least:g}: this model has no copying heads. "
        "Open SmolLM2-135M (if installed) and look again.",
    )


def icl_transition(w: MainWindow, lesson: Lesson, seen: Seen, c: dict[str, Any]) -> Verdict:
    """The Training tab's in-context learning pane: did the ICL score fall, and where."""
    t = w.training
    charts = t.icl.charts
    scores = [(s, v) for s, v in zip(charts.steps, charts.icl, strict=True) if v is not None]
    if len(scores) < 2:
        return Verdict(WAITING, f"No run with ICL scores shown yet: press {t.start_button.text()} "
                       "(about a minute and a half on a small computer).")  # fmt: skip
    least = float(c.get("min_fall", 0.3))
    first, last = scores[0][1], min(v for _s, v in scores)
    said = f"The ICL score went from {first:+.2f} to {last:+.2f} nats"
    if charts.transition_step is not None and first - last >= least:
        return Verdict(
            SHOWN,
            said + f", falling fastest around step {charts.transition_step:,}: from there the "
            "model predicts the late letters of its window from the early ones.",
        )
    return Verdict(
        WAITING if t.mode == "train" else NOT_SHOWN,
        said
        + f"; no fall of {least:g} nats yet"
        + (" (the run is still going)." if t.mode == "train" else ": try more steps."),
    )


KINDS = {
    "top_token": top_token,
    "prompt_tokens": prompt_tokens,
    "temperature": temperature,
    "baselines": baselines,
    "reference_models": reference_models,
    "training_compute": training_compute,
    "ladder_fit": ladder_fit,
    "probe_by_size": probe_by_size,
    "fewshot_by_size": fewshot_by_size,
    "lens": lens,
    "induction": induction,
    "icl_transition": icl_transition,
}


def evaluate(w: MainWindow, lesson: Lesson, seen: Seen) -> list[Verdict]:
    """Every check of `lesson` on the window as it is now."""
    if w.model_info is None:
        return [Verdict(WAITING, "Waiting for a model to open…")] if lesson.checks else []
    return [KINDS[c["kind"]](w, lesson, seen, c) for c in lesson.checks]
