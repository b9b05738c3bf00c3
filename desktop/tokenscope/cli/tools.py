"""`tokenscope serve`, `train`, `export` and `doctor`: the commands that are not questions to
a model (serving one, training one, saving one, and what this installation has)."""

from __future__ import annotations

import argparse

from tokenscope.cli.common import (
    DEFAULT_KEY_ENV,
    add_dtype_option,
    add_threads_option,
    print_json,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser("doctor", help="what this installation has and where it keeps things")
    d.add_argument("--json", action="store_true")
    d.set_defaults(handler=doctor)

    e = sub.add_parser("export", help="save a model as a Hugging Face folder")
    e.add_argument("model", help="a checkpoint folder or model name")
    e.add_argument("out", help="the folder to write")
    e.add_argument("--format", choices=["hf"], default="hf", help="only 'hf' for now")
    e.set_defaults(handler=export)

    t = sub.add_parser("train", help="train a language model (same as python -m tokenscope.train)")
    from tokenscope.train.cli import add_arguments

    add_arguments(t)
    t.set_defaults(handler=train)

    s = sub.add_parser(
        "serve",
        help="serve a model as an OpenAI-compatible server with full log-probabilities",
        description="Serve a model (one you trained, say) over HTTP as OpenAI's API does: "
        "/v1/completions (any prompt shape, n, stop, usage, top-k log-probabilities, the "
        "prompt's own with echo, streaming) and /v1/chat/completions (for a model with a chat "
        "template); /v1/models; /tokenize, /detokenize and /tokenizer_info (lm-evaluation-"
        "harness uses them). Needs the serve extra: pip install 'tokenscope[serve]'.",
    )
    s.add_argument("--model", "-m", default="builtin", help="what to serve (as for predict)")
    add_dtype_option(s)
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
        help=f"require the key in this environment variable (Authorization: Bearer KEY), "
        f"e.g. {DEFAULT_KEY_ENV}",
    )
    add_threads_option(s)
    s.set_defaults(handler=serve)


def serve(args: argparse.Namespace) -> int:
    from tokenscope.serve import serve as run_server

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be from 0 to 65535 (got {args.port})")
    if not 1 <= args.max_logprobs <= 1000:
        raise ValueError(f"--max-logprobs must be from 1 to 1000 (got {args.max_logprobs})")
    run_server(
        args.model,
        host=args.host,
        port=args.port,
        max_logprobs=args.max_logprobs,
        api_key_env=args.api_key_env,
        dtype=None if args.dtype == "auto" else args.dtype,
        threads=args.threads,
        announce=lambda line: print(line, flush=True),
    )
    return 0


def train(args: argparse.Namespace) -> int:
    from tokenscope.train.cli import run

    return run(args)


def export(args: argparse.Namespace) -> int:
    from tokenscope.lm import load_model
    from tokenscope.train.export import export_hugging_face

    # float32: packed weights (the GGUF default) are not plain tensors a folder can hold.
    folder = export_hugging_face(load_model(args.model, dtype="float32"), args.out)
    print(f"wrote a Hugging Face folder to {folder}")
    return 0


def doctor(args: argparse.Namespace) -> int:
    from tokenscope.doctor import print_report, report

    facts = report()
    if args.json:
        print_json(facts, indent=2)
    else:
        print_report(facts)
    return 0
