"""How to start the trainer as its own process, from a checkout, an install or a frozen app."""

from __future__ import annotations

import sys


def trainer_command(*args: str, processes: int = 1) -> list[str]:
    """The command line that runs `python -m tokenscope.train ARGS` here.

    Several processes go through torchrun (DDP; gloo on CPU), started as
    `python -m torch.distributed.run` so that it uses this interpreter and its environment
    whatever is on PATH. A frozen app has no Python to run modules with: its own executable
    is the trainer (`tokenscope train ...`), and it runs one process.
    """
    frozen = bool(getattr(sys, "frozen", False))
    if processes > 1:
        if frozen:
            raise ValueError("several training processes need torchrun, which this build lacks")
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc-per-node={processes}", "-m", "tokenscope.train", *args]  # fmt: skip
    if frozen:
        return [sys.executable, "train", *args]
    return [sys.executable, "-m", "tokenscope.train", *args]
