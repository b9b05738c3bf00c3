"""The command line's parser: one group of sub-commands per module of tokenscope.cli."""

from __future__ import annotations

import argparse

from tokenscope import __version__
from tokenscope.cli import fewshot, inside, models, predict, scale, tools

#: exit statuses (documented in `tokenscope --help` and docs/)
EXIT_FAILED = 1  # the work failed for an outside reason: a full disk, a permission
EXIT_BAD_INPUT = 2  # a bad argument, file or model (argparse uses 2 for a bad command line too)
EXIT_BUG = 70  # BSD's EX_SOFTWARE: an error in Tokenscope itself
EXIT_INTERRUPTED = 130


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
    # In the order `--help` lists them: asking a model first, then the rest.
    for group in (predict, fewshot, inside, scale, models, tools):
        group.register(sub)
    return parser
