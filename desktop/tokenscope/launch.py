"""How to start Tokenscope as another process, from a checkout, an install or a frozen app.

A frozen app (PyInstaller) has no Python to run modules with: its own executable takes the
sub-commands (`tokenscope train ...`, `tokenscope models pull ...`).
"""

from __future__ import annotations

import sys


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def tokenscope_command(*args: str) -> list[str]:
    """The command line that runs `tokenscope ARGS` with this installation."""
    if is_frozen():
        return [sys.executable, *args]
    return [sys.executable, "-m", "tokenscope", *args]


def trainer_command(*args: str, processes: int = 1) -> list[str]:
    """The command line that runs `python -m tokenscope.train ARGS` here.

    Several processes go through torchrun (DDP; gloo on CPU), started as
    `python -m tokenscope.train.torchrun` (torchrun with signal handling that exits 0 after
    a clean stop) so that it uses this interpreter and its environment whatever is on PATH.
    A frozen app runs one process (`tokenscope train ...`).
    """
    if processes > 1:
        if is_frozen():
            raise ValueError("several training processes need torchrun, which this build lacks")
        return [sys.executable, "-m", "tokenscope.train.torchrun", "--standalone",
                f"--nproc-per-node={processes}", "-m", "tokenscope.train", *args]  # fmt: skip
    if is_frozen():
        return tokenscope_command("train", *args)
    return [sys.executable, "-m", "tokenscope.train", *args]
