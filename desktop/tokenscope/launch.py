"""How to start Tokenscope as another process, from a checkout, an install or a frozen app.

A frozen app (PyInstaller) has no Python to run modules with: its own executable takes the
sub-commands (`tokenscope train ...`, `tokenscope models pull ...`).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def tokenscope_command(*args: str) -> list[str]:
    """The command line that runs `tokenscope ARGS` with this installation."""
    if is_frozen():
        return [sys.executable, *args]
    return [sys.executable, "-m", "tokenscope", *args]


def trainer_command(*args: str, processes: int = 1) -> list[str]:
    """The command line that runs `python -m tokenscope.train ARGS` here.

    Several processes go through torchrun (DDP or FSDP; gloo on CPU), started as
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


def multinode_command(
    run_config: str | Path,
    nnodes: int,
    nproc_per_node: int,
    rdzv_endpoint: str = "HOST:29500",
    *,
    strategy: str | None = None,
    run_id: str | None = None,
) -> str:
    """The shell line that trains the run of `run_config` on `nnodes` machines.

    The same line is typed on every machine: torchrun's c10d rendezvous at `rdzv_endpoint`
    (one of the machines, its port open to the others) numbers the machines and processes,
    and `run_id` (the run folder's name unless given) keeps this run apart from others
    meeting there. Every machine must see the config, the corpus and the run folder at the
    same paths (a shared file system, so give `run_config` as an absolute path); rank 0
    writes. `strategy`, when given, is set on the command line whatever the config says.
    """
    config = Path(run_config)
    args = ["torchrun", "--nnodes", str(nnodes), "--nproc-per-node", str(nproc_per_node),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint,
            "--rdzv-id", run_id or config.parent.name or "run",
            "-m", "tokenscope.train", "--config", str(config)]  # fmt: skip
    if strategy is not None:
        args += ["--set", f"strategy={strategy}"]
    return shlex.join(args)
