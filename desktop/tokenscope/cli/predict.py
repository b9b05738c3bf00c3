"""`tokenscope predict` and `tokenscope generate`: the next token, and tokens one at a time.

Both run the model service's Predict and Generate jobs, the ones the window's Playground
runs; a model on a server prints the same keys, with what it cannot know said so
(`entropy_exact`, `other`, `sampled_exact`).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from tokenscope.cli.common import (
    Session,
    add_model_options,
    add_sampling_options,
    bar,
    print_json,
    sampling,
)
from tokenscope.escapes import printable, unescape
from tokenscope.units import format_probability, probability

if TYPE_CHECKING:
    from tokenscope.lm.tokens import TokenProbability


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("predict", help="show the most likely next tokens after a prompt")
    p.add_argument("prompt")
    add_model_options(p)
    p.add_argument("--top", "-k", type=int, default=10, help="how many tokens to show")
    add_sampling_options(p, default_temperature=1.0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=predict)

    g = sub.add_parser("generate", help="generate text token by token")
    g.add_argument("prompt")
    add_model_options(g)
    g.add_argument("--max-tokens", "-n", type=int, default=64)
    g.add_argument(
        "--stop",
        action="append",
        default=[],
        help="stop at this text (repeatable); \\n, \\t and \\\\ are read as a newline, a tab "
        "and a backslash",
    )
    add_sampling_options(g, default_temperature=1.0)
    g.add_argument("--json", action="store_true", help="print one JSON object per token")
    g.set_defaults(handler=generate)


def token_json(t: TokenProbability) -> dict[str, Any]:
    """A TokenProbability in the command line's JSON (the engine's own field names); a value
    no probability can be (a server's log-probability above 0, say) is null."""
    return {
        "token_id": t.token_id,
        "text": t.text,
        "display": t.display,
        "probability": probability(t.probability),
        "sampled_probability": probability(t.sampled_probability),
    }


def predict(args: argparse.Namespace) -> int:
    from tokenscope.service import Predict

    session = Session()
    info = session.load(args)
    settings = sampling(args)
    view = session.run(Predict(session.prompt(args), settings, top_k=args.top))
    c = info.capabilities
    if args.json:
        print_json(
            {
                "model": info.name,
                "kind": c.kind,
                "label": view.label,
                "context_tokens": len(view.context_ids) if view.context_ids else None,
                "dropped_tokens": view.dropped_tokens,
                "entropy_bits": view.entropy_bits,
                "entropy_exact": view.entropy_exact,
                "other": probability(view.other),
                "sampling": None if settings.is_identity else vars(settings),
                "sampled_other": None if settings.is_identity else probability(view.other_sampled),
                "sampled_exact": not view.approximate,
                "top": [token_json(t) for t in view.rows],
            }
        )
        return 0
    # Names, labels and tokens may come from a server or a model's files: printable() keeps
    # their control characters from reaching the terminal; probabilities are shown only
    # within 0..1 (format_probability), whatever a server sent.
    context = f"{len(view.context_ids)} context tokens, " if view.context_ids else ""
    at_least = "" if view.entropy_exact else "at least "
    where = "" if c.full_vocabulary else f" ({c.kind}: {printable(view.label)})"
    print(f"{printable(info.name)}{where}: {context}entropy {at_least}{view.entropy_bits:.2f} bits")
    if view.dropped_tokens:
        print(f"(the prompt was too long: its first {view.dropped_tokens} tokens were dropped)")
    rows = [(printable(t.display), t) for t in view.rows]
    width = max([len(shown) for shown, _ in rows] + [5])
    show_sampled = not settings.is_identity
    sampled = "  sampled" + (" (approximate)" if view.approximate else "") if show_sampled else ""
    print(f"{'rank':>4}  {'token':<{width}}  {'prob':>6}{sampled}")
    for rank, (shown, t) in enumerate(rows, 1):
        column = f"  {format_probability(t.sampled_probability):>7}" if show_sampled else ""
        p = f"{format_probability(t.probability):>6}"
        print(f"{rank:>4}  {shown:<{width}}  {p}{column}  {bar(t.probability)}")
    if view.other is not None:
        column = f"  {format_probability(view.other_sampled):>7}" if show_sampled else ""
        p = f"{format_probability(view.other):>6}"
        print(f"{'':>4}  {'other':<{width}}  {p}{column}  {bar(view.other)}")
    return 0


def generate(args: argparse.Namespace) -> int:
    from tokenscope.lm.tokens import GenerationStep
    from tokenscope.service import Generate
    from tokenscope.service.records import GenerationStarted

    session = Session()
    session.load(args)
    stop = tuple(unescape(s) for s in args.stop)  # --stop "\n\n" means two newlines
    job = Generate(
        session.prompt(args), max_tokens=args.max_tokens, sampling=sampling(args), stop=stop
    )

    def show(record: GenerationStarted | GenerationStep) -> None:
        if isinstance(record, GenerationStarted) and record.dropped_tokens:
            print(
                f"(the prompt was too long: its first {record.dropped_tokens} tokens were dropped)",
                file=sys.stderr,
            )
        if not isinstance(record, GenerationStep):
            return
        if args.json:
            print_json(
                {
                    "index": record.index,
                    "token_id": record.token_id,
                    "text": record.text,
                    "display": record.display,
                    "probability": probability(record.probability),
                    "sampled_probability": probability(record.sampled_probability),
                    "entropy_bits": record.entropy,
                    "elapsed_s": record.elapsed,
                    "top": [[a.display, probability(a.probability)] for a in record.top_raw[:5]],
                }
            )
        else:  # (the model's text: its newlines and tabs, but no escape sequence, go through)
            sys.stdout.write(printable(record.text, keep="\n\t"))
            sys.stdout.flush()

    done = session.run(job, show)
    if args.json:
        print_json(
            {
                "done": True,
                "stop_reason": done.reason,
                "text": done.text,
                "tokens": done.tokens,
                "tokens_per_second": done.tokens_per_second,
            }
        )
    else:
        # what came after the last token, and the line's end
        print(printable(done.tail, keep="\n\t"), flush=True)
        print(
            f"[{done.tokens} tokens, {done.tokens_per_second:.1f} tokens/s, stopped: "
            f"{printable(done.reason)}]",
            file=sys.stderr,
        )
    return 0
