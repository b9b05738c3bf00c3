"""Where a training run keeps its checkpoints, read without the training code.

    RUN/checkpoints/step-NNNNNN/     a native checkpoint (tokenscope.lm.checkpoint), complete
                                     once it holds training_state.json (written last)
    RUN/checkpoints/best.json        {"checkpoint": "step-NNNNNN", "val_loss": ...}

The engine reads this much so that a list of models can offer a run's best checkpoint (the
window's Models tab, `tokenscope models list`); writing checkpoints is tokenscope.train's.
"""

from __future__ import annotations

import re
from pathlib import Path

from tokenscope.files import FileReadError, load_json

STATE_FILE, BEST_FILE = "training_state.json", "best.json"
_STEP_NAME = re.compile(r"step-\d{1,12}")


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def step_folder(run_dir: Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"step-{step:06d}"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders are ignored)."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("step-*") if p.is_dir() and (p / STATE_FILE).is_file())


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def best_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint best.json names, if it is there (a name that is not a step folder of
    this run, "../x" say, is not followed)."""
    try:
        data = load_json(checkpoint_dir(run_dir) / BEST_FILE, 64 * 1024, "a run's best.json")
    except FileReadError:  # absent, damaged, or not a file (a FIFO would block open())
        return None
    name = data.get("checkpoint") if isinstance(data, dict) else None
    if not isinstance(name, str) or not _STEP_NAME.fullmatch(name):
        return None
    path = checkpoint_dir(run_dir) / name
    return path if path.is_dir() else None
