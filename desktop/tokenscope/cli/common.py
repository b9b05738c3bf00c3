"""What the command's modules share: model and sampling options, the model service driven
from this thread, and output helpers (bars, JSON that is always JSON).

Every command that asks a model something goes through the model service, as the window
does: it builds a job, runs it with `Session.run` and prints the record that comes back,
so a model here or on a server gives the same keys in `--json`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenscope.escapes import printable
from tokenscope.lm.arguments import lone_surrogate
from tokenscope.lm.weight_modes import DTYPE_CHOICES
from tokenscope.units import probability

if TYPE_CHECKING:
    from tokenscope.lm.sampling import SamplingSettings
    from tokenscope.service import Job
    from tokenscope.service.records import ModelInfo

BAR_WIDTH = 40
DEFAULT_KEY_ENV = "TOKENSCOPE_API_KEY"


def add_model_option(p: argparse.ArgumentParser, *, dest: str = "model") -> None:
    p.add_argument(
        "--model",
        "-m",
        dest=dest,
        default="builtin",
        help="'builtin' (default), a known name such as smollm2-135m, hf:ORG/REPO, a checkpoint "
        "or Hugging Face folder, a .gguf file, or a server: http://HOST:PORT/v1",
    )


def add_dtype_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dtype",
        choices=DTYPE_CHOICES,
        default="auto",
        help="weights in memory: auto keeps a GGUF file's 4-bit blocks as int4 and the rest "
        "float16 (other models float32); float32 gives the reference numbers; bfloat16, int8 "
        "and int4 are smaller and give slightly different probabilities (default: %(default)s)",
    )


def add_server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--remote-model",
        metavar="NAME",
        help="with -m http://HOST:PORT/v1: which of the server's models (needed when it "
        "serves several)",
    )
    p.add_argument(
        "--api-key-env",
        metavar="VAR",
        default=DEFAULT_KEY_ENV,
        help="with a server: the environment variable holding its API key (default: %(default)s)",
    )


def add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for the model (default: 1 for small models, else all cores but one)",
    )


def add_model_options(p: argparse.ArgumentParser, *, chat: bool = True) -> None:
    """-m, --dtype, --chat, the server's options and --threads."""
    add_model_option(p)
    add_dtype_option(p)
    if chat:
        p.add_argument(
            "--chat",
            action="store_true",
            help="wrap the prompt as a user turn in the model's chat template (instruct models)",
        )
    add_server_options(p)
    add_threads_option(p)


def add_sampling_options(p: argparse.ArgumentParser, *, default_temperature: float) -> None:
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


def sampling(args: argparse.Namespace) -> SamplingSettings:
    from tokenscope.lm.sampling import SamplingSettings

    return SamplingSettings(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        repetition_penalty=args.repetition_penalty,
        seed=args.seed,
    )


class Session:
    """The model service, driven from this thread: the command line's way to a model."""

    def __init__(self) -> None:
        from tokenscope.service import ModelService

        self.service = ModelService()
        self.info: ModelInfo | None = None

    def load(self, args: argparse.Namespace, target: str | None = None) -> ModelInfo:
        """Open the model the options name (`target` instead of -m where given)."""
        from tokenscope.lm.backend import is_server
        from tokenscope.service import Load

        target = target or args.model
        name = getattr(args, "remote_model", None)
        if name and is_server(target):
            target = f"{target.split('#', 1)[0]}#{name}"
        key_env = getattr(args, "api_key_env", DEFAULT_KEY_ENV) or DEFAULT_KEY_ENV
        dtype = getattr(args, "dtype", "auto")
        job = Load(
            target,
            dtype=None if dtype == "auto" else dtype,
            threads=getattr(args, "threads", None),
            api_key_env=key_env,
        )
        self.info = self.run(job)
        _remember(target)
        return self.info

    def run(self, job: Job, on_record: Callable[[Any], None] | None = None) -> Any:
        from tokenscope.service import run_job

        return run_job(self.service, job, on_record)

    def prompt(self, args: argparse.Namespace) -> str:
        """The prompt as given, or wrapped in the chat template with --chat."""
        if getattr(args, "chat", False):
            from tokenscope.service import ChatPrompt

            return self.run(ChatPrompt(args.prompt))
        return args.prompt


def _remember(target: str) -> None:
    """Files and folders opened by path join the recently opened list."""
    from tokenscope.lm.backend import is_server

    if is_server(target) or not Path(target).expanduser().exists():
        return
    from tokenscope.lm.registry import remember

    try:
        remember(target)
    except OSError as e:  # the list is a convenience; never fail a command over it
        print(f"(could not update the recently opened list: {printable(str(e))})", file=sys.stderr)


def bar(p: float | None) -> str:
    """A bar of BAR_WIDTH blocks at most; empty for what is no probability (NaN, None)."""
    eighths = round((probability(p) or 0.0) * BAR_WIDTH * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (" ▏▎▍▌▋▊▉"[rest] if rest else "")


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null. Other real numbers (numpy's) become
    plain floats, tuples lists."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, Real):
        x = float(value)
        return x if math.isfinite(x) else None
    return value


def json_text(value: Any, **options: Any) -> str:
    """`value` as strict JSON, on one line unless `options` say otherwise: NaN and infinity
    as null (Python writes them as NaN and Infinity, which JSON parsers refuse), and a lone
    surrogate (a file name that is not UTF-8) as its \\u escape, which UTF-8 cannot carry."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, **options)
    except (TypeError, ValueError):  # (the usual case needs no walk over the whole value)
        text = json.dumps(_finite(value), ensure_ascii=False, allow_nan=False, **options)
    if lone_surrogate(text) is not None:
        text = json.dumps(_finite(value), ensure_ascii=True, allow_nan=False, **options)
    return text


def print_json(value: Any, **options: Any) -> None:
    """One JSON document on stdout, always strict JSON (see json_text): every --json prints
    through here."""
    print(json_text(value, **options), flush=True)


def read_text_argument(path: str) -> str:
    """A UTF-8 text file's content, or standard input for "-"."""
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as f:
        return f.read()
