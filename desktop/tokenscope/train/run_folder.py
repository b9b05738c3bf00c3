"""Where a run keeps its checkpoints, and which is the latest and the best (no torch needed).

The window lists runs and opens their checkpoints without importing the training code.
"""

from __future__ import annotations

import json
from pathlib import Path

STATE_FILE, BEST_FILE = "training_state.json", "best.json"
# A file that asks the run in progress to save a checkpoint and stop; every rank checks for it
# between steps, also under torchrun.
STOP_FILE = "STOP"


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
    try:
        best = json.loads((checkpoint_dir(run_dir) / BEST_FILE).read_text())
        path = checkpoint_dir(run_dir) / best["checkpoint"]
        return path if path.is_dir() else None
    except (OSError, ValueError, KeyError):
        return None
