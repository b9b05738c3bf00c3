"""`tokenscope fewshot`: a few-shot prompt's expected answer, or a sweep over 0..k shots.

The FewShotPreview and Sweep jobs of the model service, as the Few-shot tab runs them. On a
server that lists only its top k tokens a value may be a bound: printed "≤ P" and "> k"
(JSON: "upper_bound": true; "rank": null with "rank_above": k).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import TYPE_CHECKING

from tokenscope.cli.common import (
    BAR_WIDTH,
    Session,
    add_dtype_option,
    add_model_option,
    add_server_options,
    add_threads_option,
    bar,
    print_json,
)
from tokenscope.cli.predict import token_json
from tokenscope.escapes import printable
from tokenscope.units import bound_mark, format_probability, format_rank, probability

if TYPE_CHECKING:
    from tokenscope.lm.fewshot.prompt import FewShotPrompt


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from tokenscope.lm.fewshot.prompt import list_presets

    f = sub.add_parser(
        "fewshot",
        help="score a few-shot prompt's expected answer, or sweep shots",
        epilog=f"presets: {', '.join(list_presets())}. In a sweep, order 0 keeps the "
        "examples as given; orders 1 and up shuffle them (seeded by --seed).",
    )
    f.add_argument("preset", help="a preset name (see below) or a JSON file")
    add_model_option(f)
    add_dtype_option(f)
    add_server_options(f)
    f.add_argument("--sweep", action="store_true", help="P(expected) for 0..K shots")
    f.add_argument("--max-shots", "-k", type=int, default=None, help="use the first K examples")
    f.add_argument("--orders", type=int, default=1, help="example orders to sweep (1: as given)")
    f.add_argument("--seed", type=int, default=0, help="seed for the shuffled orders")
    f.add_argument("--top", type=int, default=5, help="how many next tokens to show")
    f.add_argument(
        "--ablate", metavar="L.H,...", help="silence these heads first (the sweep without them)"
    )
    f.add_argument("--json", action="store_true", help="print one JSON object")
    add_threads_option(f)
    f.set_defaults(handler=fewshot)


def probability_text(p: float, upper_bound: bool) -> str:
    """1.234e-05, or ≤1.234e-05 for a bound ("?" for what no probability can be)."""
    shown = format_probability(p, ".3e")
    return shown if shown == "?" else f"{bound_mark(upper_bound)}{shown}"


def fewshot(args: argparse.Namespace) -> int:
    from tokenscope.lm.fewshot import load_prompt

    prompt = load_prompt(args.preset)  # a bad file is a ValueError: main() reports it
    if args.max_shots is not None and not args.sweep:
        prompt = prompt.with_shots(args.max_shots)
    session = Session()
    info = session.load(args)
    if args.ablate:
        from tokenscope.cli.inside import heads
        from tokenscope.service import SetAblation

        session.run(SetAblation(heads(args.ablate)))
    label = prompt.name or args.preset  # (from a file: shown through printable())
    if args.sweep:
        return _sweep(args, session, prompt, label, info.name)
    return _preview(args, session, prompt, label, info.name)


def _sweep(
    args: argparse.Namespace, session: Session, prompt: FewShotPrompt, label: str, name: str
) -> int:
    from tokenscope.service import Sweep
    from tokenscope.service.records import SweepSeries

    series: list[SweepSeries] = []
    job = Sweep(prompt, max_shots=args.max_shots, orders=args.orders, seed=args.seed)
    session.run(job, lambda r: series.append(r) if isinstance(r, SweepSeries) else None)
    points = series[0].points
    note = series[0].note
    if args.json:
        print_json(
            {
                "model": name,
                "prompt": label,
                "expected": prompt.expected,
                "note": note,
                "points": [asdict(p) for p in points],
            }
        )
        return 0
    print(
        f"{printable(label)} on {printable(name)}: "
        f"P({prompt.answer_text(prompt.expected)!r}) by shots"
    )
    print("(order 0: the examples as given; 1 and up: the same examples shuffled)")
    norm = "  normalised" if prompt.candidates else ""
    print(f"{'shots':>5}  {'order':>5}  {'P(expected)':>11}  {'rank':>6}{norm}  top prediction")
    for p in points:
        share = f"  {format_probability(p.normalised):>10}" if p.normalised is not None else ""
        cut = f"  ({p.dropped_tokens} tokens dropped)" if p.dropped_tokens else ""
        print(
            f"{p.shots:>5}  {p.order:>5}  {probability_text(p.probability, p.upper_bound):>11}"
            f"  {format_rank(p.rank, p.rank_above):>6}{share}  "
            f"{p.top_prediction!r} {format_probability(p.top_probability, '.3f')}{cut}"
        )
    if note:
        print(f"({printable(note)})")
    return 0


def _preview(
    args: argparse.Namespace, session: Session, prompt: FewShotPrompt, label: str, name: str
) -> int:
    from tokenscope.service import FewShotPreview

    view = session.run(FewShotPreview(prompt, top_k=args.top))
    chart, expected = view.chart, view.expected
    if args.json:
        print_json(
            {
                "model": name,
                "prompt": label,
                "text": view.text,
                "token_count": view.token_count,
                "dropped_tokens": chart.dropped_tokens,
                "top": [token_json(t) for t in chart.rows],
                "other": probability(chart.other),
                "expected": None if expected is None else asdict(expected),
                "candidates": [
                    {"candidate": c, "probability": p, "normalised": n}
                    for c, p, n in view.candidates
                ],
                "upper_bound": view.upper_bound,
                "note": view.note,
            }
        )
        return 0
    tokens = f", {view.token_count} tokens" if view.token_count else ""
    print(f"{printable(label)}: {len(prompt.examples)}-shot{tokens}")
    print(printable(view.text, keep="\n\t"))  # (the file's text, laid out: lines kept)
    print("-" * BAR_WIDTH)
    if chart.dropped_tokens:
        print(f"(the prompt was too long: its first {chart.dropped_tokens} tokens were dropped)")
    rows = [(printable(t.display), t) for t in chart.rows]
    width = max([len(shown) for shown, _ in rows] + [5])
    for rank, (shown, t) in enumerate(rows, 1):
        p = f"{format_probability(t.probability):>6}"
        print(f"{rank:>4}  {shown:<{width}}  {p}  {bar(t.probability)}")
    if chart.other is not None:
        p = f"{format_probability(chart.other):>6}"
        print(f"{'':>4}  {'other':<{width}}  {p}  {bar(chart.other)}")
    if expected is not None:
        p = probability_text(expected.probability, expected.upper_bound)
        print(
            f"expected {expected.continuation!r}: P = {p} over "
            f"{len(expected.token_probabilities)} tokens, first-token rank "
            f"{format_rank(expected.first_token_rank, expected.rank_above)}"
        )
    for c, p, n in view.candidates:
        shown_p, shown_n = format_probability(p, ".3e"), format_probability(n)
        print(f"candidate {c!r}: P = {shown_p}, normalised {shown_n}")
    if view.note:
        print(f"({printable(view.note)})")
    return 0
