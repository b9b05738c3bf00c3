"""A probe on every checkpoint of a training run: does the answer appear as training goes on?

    curve = training_curve("runs/default", Probe("The capital of Indonesia is", " Jakarta"))
    [training_curve(size, probe) for size in run_sizes("runs/ladder")]  # a ladder: one per size

Each checkpoint is measured like any model by tokenscope.lm.scale (and cached the same way),
and placed at the training tokens it had seen, from the run's own step events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tokenscope.lm.errors import TokenscopeError
from tokenscope.lm.scale import Probe, measure_icl, measure_probe
from tokenscope.train.run_folder import list_checkpoints

# for tokenscope.cli and the service until they import them from there.
from tokenscope.train.runs import run_label, tokens_per_step

if TYPE_CHECKING:
    from tokenscope.lm.backend import ModelBackend


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


def training_curve(
    run_dir: str | Path,
    probe: Probe,
    *,
    use_cache: bool = True,
    open_model: Callable[[str], ModelBackend] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> TrainingCurve:
    """The probe on each checkpoint of a run, against the training tokens it had seen
    (each checkpoint cached like any model)."""
    run_dir = Path(run_dir).expanduser()
    checkpoints = list_checkpoints(run_dir)
    per_step = tokens_per_step(run_dir)
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
        assert point.rank is not None  # a local model ranks its whole vocabulary
        points.append(CurvePoint(step, round(step * per_step), point.probability, point.rank))
    return TrainingCurve(str(run_dir), run_label(run_dir), parameters, tuple(points))


@dataclass(frozen=True)
class ICLCurvePoint:
    """In-context learning at one checkpoint of a run."""

    step: int
    tokens: int
    icl_score: float
    induction_max: float


def icl_curve(
    run_dir: str | Path,
    text: str,
    *,
    use_cache: bool = True,
    open_model: Callable[[str], ModelBackend] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[ICLCurvePoint, ...]:
    """The ICL score and the strongest induction head's score at each checkpoint of a run,
    against the training tokens it had seen (each checkpoint cached like any model)."""
    run_dir = Path(run_dir).expanduser()
    checkpoints = list_checkpoints(run_dir)
    per_step = tokens_per_step(run_dir)
    points = []
    for n, folder in enumerate(checkpoints):
        if progress is not None:
            progress(str(folder), n, len(checkpoints))
        step = int(folder.name.split("-")[1])
        try:
            got = measure_icl(str(folder), text, use_cache=use_cache, open_model=open_model)
        except (TokenscopeError, OSError):
            if folder.exists():
                raise
            continue  # removed meanwhile by the run that is still training
        points.append(ICLCurvePoint(step, round(step * per_step), got.icl_score,
                                    got.induction_max))  # fmt: skip
    return tuple(points)
