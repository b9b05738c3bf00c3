"""The command line run in this process, as `tokenscope ARGS...` (through `cli.main`).

Starting a Python with torch costs seconds a command; the commands' own tests run them here
and look at what they print and return, as a person at a terminal would. A few tests keep a
real process where the process is the point (exit statuses, a FIFO, no display, the seed
example end to end).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from types import SimpleNamespace


@contextlib.contextmanager
def _environment(env: dict[str, str] | None) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_cli(*args: object, ok: bool = True, env: dict[str, str] | None = None,
            stdin: str = "") -> SimpleNamespace:  # fmt: skip
    """`tokenscope ARGS` in this process: returncode, stdout and stderr as a process gives
    them (argparse's own exits included). Torch's thread count is put back afterwards."""
    from tokenscope import cli

    threads = None
    if "torch" in sys.modules:
        import torch

        threads = torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with _environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main([str(a) for a in args])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.stdin = old_stdin
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
    result = SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
    if ok:
        assert code == 0, result.stderr
    return result
