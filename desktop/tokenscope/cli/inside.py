"""`tokenscope lens`, `attention`, `surprisal` and `icl`: looking inside the forward pass.

The Lens, SetAblation, AttentionMap, Induction and Surprisal jobs of the model service, as
the Inside tab runs them (they need the model's forward pass: a model on a server says so).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from tokenscope.cli.common import (
    Session,
    add_dtype_option,
    add_model_options,
    add_threads_option,
    bar,
    print_json,
    read_text_argument,
)
from tokenscope.escapes import printable
from tokenscope.units import format_probability

if TYPE_CHECKING:
    from tokenscope.lm.inside import Surprisal as SurprisalResult


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ln = sub.add_parser("lens", help="the logit lens: every layer's guess of the next token")
    ln.add_argument("prompt")
    add_model_options(ln, chat=False)
    ln.add_argument("--position", type=int, default=-1, help="which token (default: the last)")
    ln.add_argument("--top", "-k", type=int, default=10, help="tokens per layer")
    ln.add_argument("--ablate", metavar="L.H,...", help="silence these heads first")
    ln.add_argument("--json", action="store_true")
    ln.set_defaults(handler=lens)

    at = sub.add_parser("attention", help="attention weights of a layer and head over a prompt")
    at.add_argument("prompt", nargs="?", default="")
    add_model_options(at, chat=False)
    at.add_argument("--layer", type=int, default=0)
    at.add_argument("--head", type=int, default=None, help="default: the layer's heads averaged")
    at.add_argument(
        "--induction",
        action="store_true",
        help="instead: every head's induction score (heads that copy patterns)",
    )
    at.add_argument("--seed", type=int, default=0, help="for the induction test sequences")
    at.add_argument("--json", action="store_true")
    at.set_defaults(handler=attention)

    sp = sub.add_parser("surprisal", help="how surprising each token of a text is, in bits")
    sp.add_argument("file", help="a UTF-8 text file, or - for standard input")
    sp.add_argument(
        "--model",
        "-m",
        dest="models",
        action="append",
        help="a model (twice: compare two, A minus B)",
    )
    add_dtype_option(sp)
    sp.add_argument("--top", type=int, default=3, help="alternatives kept per token")
    sp.add_argument(
        "--top-differences",
        type=int,
        default=10,
        help="with two models: how many disagreements to list",
    )
    sp.add_argument("--json", action="store_true")
    add_threads_option(sp)
    sp.set_defaults(handler=surprisal)
    register_icl(sub)


def register_icl(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ic = sub.add_parser(
        "icl",
        help="in-context learning: late minus early loss on a text, the induction heads, and "
        "the score again without the strongest one",
    )
    add_model_options(ic, chat=False)
    ic.add_argument("--text", metavar="FILE",
                    help="a UTF-8 text file, - for standard input, or a named text: "
                    "shakespeare (the default: natural prose) or induction (held-out text of "
                    "the induction corpus)")  # fmt: skip
    ic.add_argument("--windows", type=int, default=32, help="windows of the text to average")
    ic.add_argument("--seed", type=int, default=0, help="for the induction test sequences")
    ic.add_argument("--json", action="store_true")
    ic.set_defaults(handler=icl)


def heads(text: str | None) -> frozenset[tuple[int, int]]:
    """--ablate "1.0,2.3": (layer, head) pairs."""
    pairs = set()
    for item in (text or "").split(","):
        if item.strip():
            layer, _, head = item.strip().partition(".")
            if not (layer.isdigit() and head.isdigit()):
                raise ValueError(f"--ablate takes LAYER.HEAD pairs such as 1.0,2.3 (got {item!r})")
            pairs.add((int(layer), int(head)))
    return frozenset(pairs)


def lens(args: argparse.Namespace) -> int:
    from tokenscope.service import Lens, SetAblation

    session = Session()
    info = session.load(args)
    silenced = heads(args.ablate)
    if silenced:
        session.run(SetAblation(silenced))
    view = session.run(Lens(args.prompt, position=args.position, top_k=args.top))
    if args.json:
        print_json(
            {
                "model": info.name,
                "position": view.position,
                "target": view.target,
                "target_label": view.target_label,
                "first_top_layer": view.first_top_layer,
                "dropped_tokens": view.dropped_tokens,
                "layers": [
                    {
                        "layer": r.layer,
                        "target_rank": r.target_rank,
                        "target_probability": r.target_probability,
                        "entropy_bits": r.entropy,
                        "top": [
                            {"token_id": i, "label": label, "probability": p}
                            for i, label, p in r.top
                        ],
                    }
                    for r in view.rows
                ],
            }
        )
        return 0
    first = view.first_top_layer
    print(
        f"{printable(info.name)}: the logit lens at token {view.position + 1} of "
        f"{len(view.labels)}; "
        f"the model predicts {view.target_label!r}"
        + (f", top-1 from layer {first} on" if first is not None else "")
    )
    print(f"{'layer':>5}  {'rank':>6}  {'P(final)':>8}  {'bits':>5}  top tokens")
    for r in view.rows:
        name = "emb" if r.layer == 0 else str(r.layer)
        tops = "  ".join(
            f"{printable(label)} {format_probability(p, '.3f')}" for _i, label, p in r.top[:3]
        )
        target = format_probability(r.target_probability)
        print(f"{name:>5}  {r.target_rank:>6}  {target:>8}  {r.entropy:5.2f}  {tops}")
    return 0


def attention(args: argparse.Namespace) -> int:
    from tokenscope.service import AttentionMap, Induction

    session = Session()
    info = session.load(args)
    if args.induction:
        scores = session.run(Induction(seed=args.seed))
        if args.json:
            print_json({"model": info.name, "induction_scores": scores.tolist()})
            return 0
        print(
            f"{printable(info.name)}: induction score per head (attention to the token after the "
            "earlier occurrence, on a repeated random sequence; 1 copies, 0 does not)"
        )
        print("layer  " + "  ".join(f"h{h:<4}" for h in range(scores.shape[1])))
        for layer, row in enumerate(scores):
            print(f"{layer:>5}  " + "  ".join(f"{v:5.3f}" for v in row))
        return 0
    if not info.capabilities.internals:  # (a server: the job says why, in its own words)
        session.run(AttentionMap(args.prompt, layer=args.layer, head=args.head))
    if not 0 <= args.layer < info.layers:
        raise ValueError(f"--layer must be from 0 to {info.layers - 1}")
    if args.head is not None and not 0 <= args.head < info.heads:
        raise ValueError(f"--head must be from 0 to {info.heads - 1}")
    view = session.run(AttentionMap(args.prompt, layer=args.layer, head=args.head))
    if args.json:
        print_json(
            {
                "model": info.name,
                "layer": args.layer,
                "head": args.head,
                "tokens": list(view.labels),
                "token_ids": list(view.token_ids),
                "weights": view.weights.tolist(),
            }
        )
        return 0
    which = "heads averaged" if args.head is None else f"head {args.head}"
    print(f"{printable(info.name)}: layer {args.layer}, {which}; what the last token attends to")
    for label, w in zip(view.labels, view.weights[-1], strict=True):
        print(f"{w:7.4f}  {bar(float(w))}  {printable(label)}")
    return 0


def icl(args: argparse.Namespace) -> int:
    from tokenscope.service import InContext

    if not 1 <= args.windows <= 64:
        raise ValueError("--windows must be from 1 to 64")
    text, source = icl_text(args.text)
    session = Session()
    info = session.load(args)
    r = session.run(InContext(text, windows=args.windows, seed=args.seed))
    layer, head = r.strongest_head
    if args.json:
        print_json({
            "model": info.name, "text": source, "window": r.window, "windows": r.windows,
            "icl_score": r.icl_score, "induction_max": r.heads.induction_max,
            "strongest_induction_head": [layer, head],
            "icl_score_without_strongest": r.icl_without_strongest, "undone": r.undone,
            "induction_scores": r.heads.induction.tolist(),
            "previous_token_scores": r.heads.previous_token.tolist(),
        })  # fmt: skip
        return 0
    print(f"{printable(info.name)} on {printable(source)} ({r.windows} windows of {r.window} "
          "tokens)")  # fmt: skip
    print(
        f"ICL score (late minus early loss): {r.icl_score:+.3f} nats"
        + ("  (negative: it predicts better with more context)" if r.icl_score < 0 else "")
    )
    print(f"strongest induction head: layer {layer}, head {head} "
          f"(score {r.heads.induction_max:.3f}); previous-token max "
          f"{r.heads.previous_token_max:.3f}")  # fmt: skip
    undone = "" if r.undone is None else f"  ({100 * r.undone:.0f}% of it undone)"
    print(f"ICL score with that head silenced: {r.icl_without_strongest:+.3f} nats{undone}")
    return 0


def icl_text(path: str | None) -> tuple[str, str]:
    """The text to measure in-context learning on, and how to name it: a file, standard input
    ("-"), a named text (`shakespeare`, the default; `induction`; see train/icl_texts.py)."""
    from pathlib import Path

    from tokenscope.train.icl_texts import NAMES
    from tokenscope.train.icl_texts import icl_text as named

    if path is None or (path in NAMES and not Path(path).exists()):
        return named(path or "shakespeare")
    return read_text_argument(path), path


def surprisal(args: argparse.Namespace) -> int:
    from tokenscope.service import Surprisal

    text = read_text_argument(args.file)
    if not text.strip():
        raise ValueError(f"{args.file} has no text to score")
    targets = args.models or ["builtin"]
    if len(targets) > 2:
        raise ValueError("surprisal compares at most two models (-m A -m B)")
    session = Session()
    session.load(args, targets[0])
    other = targets[1] if len(targets) == 2 else ""
    view = session.run(Surprisal(text, other=other, top_k=args.top))
    results = view.results
    disagreements = []
    if len(results) == 2:
        from tokenscope.lm.inside import compare

        disagreements = compare(*results).largest(args.top_differences)
    if args.json:
        out: dict[str, Any] = {"models": [_surprisal_json(r) for r in results]}
        if len(results) == 2:
            out["disagreements"] = [
                {"start": s, "end": e, "text": text[s:e], "bits_a": a, "bits_b": b}
                for s, e, a, b in disagreements
            ]
        print_json(out)
        return 0
    for r in results:
        print(
            f"{printable(r.model)}: {len(r.scored):,} tokens scored, "
            f"{r.bits_per_token:.3f} bits per token, {r.bits_per_byte:.3f} bits per byte, "
            f"perplexity {r.perplexity:.2f}"
        )
    if len(results) == 1:
        print(f"{'bits':>7}  {'rank':>6}  token")
        for t in results[0].tokens:
            bits = "" if t.bits is None else f"{t.bits:7.2f}"
            rank = "" if t.rank is None else str(t.rank)
            print(f"{bits:>7}  {rank:>6}  {printable(t.display)}")
    else:
        first, second = printable(results[0].model), printable(results[1].model)
        print(f"where they disagree most ({first} minus {second}, bits):")
        for s, e, a, b in disagreements:
            print(f"{a - b:+7.2f}  {text[s:e]!r}  (at character {s})")
    return 0


def _surprisal_json(r: SurprisalResult) -> dict[str, Any]:
    return {
        "model": r.model,
        "bits": r.total_bits,
        "bits_per_token": r.bits_per_token,
        "bits_per_byte": r.bits_per_byte,
        "perplexity": r.perplexity,
        "windows": r.windows,
        "tokens": [
            {
                "token_id": t.token_id,
                "label": t.display,
                "start": t.start,
                "end": t.end,
                "bits": t.bits,
                "probability": t.probability,
                "rank": t.rank,
                "top": [list(a) for a in t.top],
            }
            for t in r.tokens
        ],
    }
