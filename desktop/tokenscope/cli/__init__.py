"""The command line: `tokenscope` and its sub-commands.

    tokenscope                          the window
    tokenscope predict "PROMPT"         the next-token distribution, as text bars or --json
    tokenscope generate "PROMPT"        tokens streamed as they are produced, or JSON lines
    tokenscope fewshot PRESET [--sweep] a few-shot prompt's answer probability, 0..k shots
    tokenscope lens / attention / surprisal     inside the forward pass
    tokenscope scale PROMPT ANSWER      one probe across models, smallest first
    tokenscope models list|pull|remove|search   the models on this machine and the Hub
    tokenscope serve                    a model as an OpenAI-compatible server
    tokenscope train --config run.json  train a model (see tokenscope.train.cli)
    tokenscope export MODEL OUT         save a model as a Hugging Face folder
    tokenscope doctor                   versions, GPU, Qt platform, models and folders

One module per group of commands (predict, fewshot, inside, scale, models, tools), the
parser in `parser`, what they share in `common`. Commands that ask a model something are
clients of the model service, as the window is: each builds a job and runs it through the
same handler (tokenscope.service.run_job). Heavy imports (torch) happen inside the commands
so that `--help` answers at once.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from collections.abc import Sequence

from tokenscope.cli.parser import (
    EXIT_BAD_INPUT,
    EXIT_BUG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    build_parser,
)
from tokenscope.escapes import printable

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_BUG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "build_parser",
    "describe_failure",
    "main",
]

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
    if isinstance(e, (UnicodeDecodeError, UnicodeEncodeError, UnicodeTranslateError)):
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
        return args.handler(args)
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
                f"tokenscope: internal error: {type(e).__name__}: {printable(str(e))}\n"
                "This is a bug in Tokenscope. Please report it with the lines above and the "
                "command you ran.",
                file=sys.stderr,
            )
            return EXIT_BUG
        message, status = known
        # One line, whatever the message holds: a server's error body or a file's name may
        # carry newlines or escape sequences that would repaint the terminal.
        print(f"tokenscope: error: {printable(message)}", file=sys.stderr)
        return status


if __name__ == "__main__":
    raise SystemExit(main())
