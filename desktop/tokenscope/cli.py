"""The command line: `tokenscope` and its sub-commands.

    tokenscope                          the window (not in this version yet: says so)
    tokenscope predict "PROMPT"         the next-token distribution, as text bars or --json
    tokenscope generate "PROMPT"        tokens streamed as they are produced, or JSON lines
    tokenscope train --config run.json  train a model (see tokenscope.train.cli)
    tokenscope export MODEL OUT         save a model as a Hugging Face folder

Heavy imports (torch) happen inside the commands so that `--help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tokenscope import __version__

if TYPE_CHECKING:
    from tokenscope.lm import LanguageModel, SamplingSettings

BAR_WIDTH = 40


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        "-m",
        default="builtin",
        help="a checkpoint folder, or 'builtin' for the bundled model (default: %(default)s)",
    )


def _add_sampling_options(p: argparse.ArgumentParser, *, default_temperature: float) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument(
        "--temperature",
        "-t",
        type=float,
        default=default_temperature,
        help="0 is greedy (default: %(default)s)",
    )
    g.add_argument("--top-k", type=int, default=0, help="keep the K most likely tokens (0: off)")
    g.add_argument("--top-p", type=float, default=1.0, help="keep the top tokens up to mass P")
    g.add_argument("--min-p", type=float, default=0.0, help="drop tokens below P x the best one")
    g.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeats")
    g.add_argument("--seed", type=int, default=None, help="seed for reproducible sampling")


def _sampling(args: argparse.Namespace) -> SamplingSettings:
    from tokenscope.lm import SamplingSettings

    return SamplingSettings(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        repetition_penalty=args.repetition_penalty,
        seed=args.seed,
    )


def _load(args: argparse.Namespace) -> LanguageModel:
    from tokenscope.lm import load_model

    return load_model(args.model)


def _bar(p: float) -> str:
    eighths = round(p * BAR_WIDTH * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (" ▏▎▍▌▋▊▉"[rest] if rest else "")


def _cmd_predict(args: argparse.Namespace) -> int:
    model = _load(args)
    settings = _sampling(args)
    dist = model.predict_next_token_probabilities(args.prompt, sampling=settings, top_k=args.top)
    top = dist.top()
    if args.json:
        out: dict[str, Any] = {
            "model": model.name,
            "context_tokens": len(dist.context_ids),
            "dropped_tokens": dist.dropped_tokens,
            "entropy_bits": dist.entropy,
            "sampling": None if settings.is_identity else vars(settings),
            "top": [
                {
                    "token_id": t.token_id,
                    "text": t.text,
                    "display": t.display,
                    "probability": t.probability,
                    "sampled_probability": t.sampled_probability,
                }
                for t in top
            ],
        }
        print(json.dumps(out, ensure_ascii=False))
        return 0
    print(f"{model.name}: {len(dist.context_ids)} context tokens, entropy {dist.entropy:.2f} bits")
    if dist.dropped_tokens:
        print(f"(the prompt was too long: its first {dist.dropped_tokens} tokens were dropped)")
    width = max(len(t.display) for t in top)
    show_sampled = not settings.is_identity
    header = f"{'rank':>4}  {'token':<{width}}  {'prob':>6}" + ("  sampled" if show_sampled else "")
    print(header)
    for rank, t in enumerate(top, 1):
        sampled = f"  {t.sampled_probability:7.4f}" if show_sampled else ""
        print(
            f"{rank:>4}  {t.display:<{width}}  {t.probability:6.4f}{sampled}  {_bar(t.probability)}"
        )
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    model = _load(args)
    gen = model.generate(
        args.prompt, max_tokens=args.max_tokens, sampling=_sampling(args), stop=args.stop
    )
    started = time.perf_counter()
    if gen.dropped_prompt_tokens:
        print(
            f"(the prompt was too long: its first {gen.dropped_prompt_tokens} tokens were dropped)",
            file=sys.stderr,
        )
    try:
        for step in gen:
            if args.json:
                record = {
                    "index": step.index,
                    "token_id": step.token_id,
                    "text": step.text,
                    "display": step.piece,
                    "probability": step.probability,
                    "sampled_probability": step.sampled_probability,
                    "entropy_bits": step.entropy,
                    "elapsed_s": step.elapsed,
                    "top": [[a.display, a.probability] for a in step.top_raw[:5]],
                }
                print(json.dumps(record, ensure_ascii=False), flush=True)
            else:
                sys.stdout.write(step.text)
                sys.stdout.flush()
    finally:
        gen.close()
    seconds = time.perf_counter() - started
    n = len(gen.steps)
    rate = n / seconds if seconds > 0 else 0.0
    if args.json:
        summary = {"done": True, "stop_reason": gen.stop_reason, "text": gen.text, "tokens": n}
        summary["tokens_per_second"] = rate
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print()  # end the streamed line
        print(f"[{n} tokens, {rate:.1f} tokens/s, stopped: {gen.stop_reason}]", file=sys.stderr)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from tokenscope.lm import load_model
    from tokenscope.train.export import export_hugging_face

    folder = export_hugging_face(load_model(args.model), args.out)
    print(f"wrote a Hugging Face folder to {folder}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from tokenscope.train.cli import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenscope",
        description="Look inside language models: next-token probabilities and generation.",
    )
    parser.add_argument("--version", action="version", version=f"tokenscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("predict", help="show the most likely next tokens after a prompt")
    p.add_argument("prompt")
    _add_model_options(p)
    p.add_argument("--top", "-k", type=int, default=10, help="how many tokens to show")
    _add_sampling_options(p, default_temperature=1.0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_cmd_predict)

    g = sub.add_parser("generate", help="generate text token by token")
    g.add_argument("prompt")
    _add_model_options(g)
    g.add_argument("--max-tokens", "-n", type=int, default=64)
    g.add_argument("--stop", action="append", default=[], help="stop at this text (repeatable)")
    _add_sampling_options(g, default_temperature=1.0)
    g.add_argument("--json", action="store_true", help="print one JSON object per token")
    g.set_defaults(run=_cmd_generate)

    e = sub.add_parser("export", help="save a model as a Hugging Face folder")
    e.add_argument("model", help="a checkpoint folder or model name")
    e.add_argument("out", help="the folder to write")
    e.add_argument("--format", choices=["hf"], default="hf", help="only 'hf' for now")
    e.set_defaults(run=_cmd_export)

    t = sub.add_parser("train", help="train a language model (same as python -m tokenscope.train)")
    from tokenscope.train.cli import add_arguments

    add_arguments(t)
    t.set_defaults(run=_cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        print(
            "The Tokenscope window is not part of this version yet.\n"
            'Use `tokenscope predict "PROMPT"` or `tokenscope generate "PROMPT"` '
            "(see `tokenscope --help`)."
        )
        return 0
    from tokenscope.lm.errors import TokenscopeError

    try:
        return args.run(args)
    except (TokenscopeError, ValueError) as e:
        print(f"tokenscope: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
