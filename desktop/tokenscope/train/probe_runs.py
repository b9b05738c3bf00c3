"""A probe on every checkpoint of a training run: does the answer appear as training goes on?

    curve = training_curve("runs/default", Probe("The capital of Indonesia is", " Jakarta"))
    [training_curve(size, probe) for size in run_sizes("runs/ladder")]  # a ladder: one per size

Each checkpoint is measured like any model by tokenscope.lm.scale (and cached the same way),
and placed at the training tokens it had seen, from the run's own step events.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenscope.lm.errors import TokenscopeError
from tokenscope.lm.scale import Probe, measure_probe


@dataclass(frozen=True)
class CurvePoint:
    """The probe on one checkpoint of a run."""

    step: int
    tokens: int  # training tokens seen by this checkpoint
    probability: float
    rank: int


@dataclass(frozen=True)
class TrainingCurve:
    """The probe on every checkpoint of one run (one model size), oldest first."""

    run_dir: str
    name: str
    parameters: int
    points: tuple[CurvePoint, ...]


def run_sizes(folder: str | Path) -> list[Path]:
    """The runs in `folder`: itself when it is a run folder (it has checkpoints/), else the
    sizes of a ladder (size-1, size-2, ... each a run folder), smallest first."""
    folder = Path(folder).expanduser()
    if (folder / "checkpoints").is_dir():
        return [folder]
    sizes = [p for p in folder.glob("size-*") if (p / "checkpoints").is_dir()]
    return sorted(sizes, key=lambda p: int(p.name.split("-")[1]) if p.name[5:].isdigit() else 0)


def run_label(run_dir: str | Path) -> str:
    """A run's name for a chart: its folder, with the ladder's for a size ("ladder/size-2")."""
    run_dir = Path(run_dir)
    is_size = run_dir.name.startswith("size-") and run_dir.parent.name
    return f"{run_dir.parent.name}/{run_dir.name}" if is_size else run_dir.name


def is_run_folder(target: str) -> bool:
    """True for a training run's folder or a ladder's folder (not a single checkpoint)."""
    return bool(run_sizes(target)) if Path(target).expanduser().is_dir() else False


def _tokens_per_step(run_dir: Path) -> float:
    """Training tokens per optimizer step, from the run's own step events (they count every
    process and accumulated micro-batch), else from its config."""
    from tokenscope.train.events import read_events

    for event in reversed(read_events(run_dir / "events.jsonl")):
        if event.get("event") == "step" and event.get("step") and event.get("tokens"):
            return float(event["tokens"]) / float(event["step"])
    try:
        c = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        return float(c["batch_size"] * c["context"])  # (the batch is per optimizer step)
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def training_curve(
    run_dir: str | Path,
    probe: Probe,
    *,
    use_cache: bool = True,
    open_model: Callable[[str], Any] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> TrainingCurve:
    """The probe on each checkpoint of a run, against the training tokens it had seen
    (each checkpoint cached like any model)."""
    from tokenscope.train.run_folder import list_checkpoints

    run_dir = Path(run_dir).expanduser()
    checkpoints = list_checkpoints(run_dir)
    per_step = _tokens_per_step(run_dir)
    points, parameters = [], 0
    for n, folder in enumerate(checkpoints):
        if progress is not None:
            progress(str(folder), n, len(checkpoints))
        step = int(folder.name.split("-")[1])
        try:
            point = measure_probe(str(folder), probe, use_cache=use_cache, open_model=open_model)
        except (TokenscopeError, OSError):
            if folder.exists():
                raise
            continue  # removed meanwhile by the run that is still training (it keeps the last N)
        parameters = point.parameters
        points.append(CurvePoint(step, round(step * per_step), point.probability, point.rank))
    return TrainingCurve(str(run_dir), run_label(run_dir), parameters, tuple(points))
