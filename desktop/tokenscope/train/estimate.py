"""How long a run will take: the measured parts (tokenscope.train.measure) times how often
the run does each, plus the start of the trainer's process. Arithmetic only (no torch).

The trainer evaluates every eval_every steps and at the last; it samples every
sample_every steps and at the last; it saves a checkpoint every checkpoint_every steps, at the
last, and whenever an evaluation finds the best validation loss so far (early in a run that
is nearly every one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunEstimate:
    """Seconds each part of a run takes; `total` is their sum."""

    start: float  # the process: Python, torch, building the model
    prepare: float  # training the tokenizer and tokenizing the text
    steps: float
    evals: float
    samples: float
    checkpoints: float

    @property
    def total(self) -> float:
        return self.start + self.prepare + self.steps + self.evals + self.samples + self.checkpoints


def times_in_run(steps: int, every: int) -> int:
    """How often something done every `every` steps and at the last step happens."""
    every = max(1, every)
    return steps // every + (1 if steps % every else 0)


def saves_in_run(steps: int, checkpoint_every: int, eval_every: int) -> int:
    """Checkpoints a run writes at most: its own schedule, the last step, and each
    evaluation that may find a new best."""
    marks = set(range(max(1, checkpoint_every), steps + 1, max(1, checkpoint_every)))
    marks |= set(range(max(1, eval_every), steps + 1, max(1, eval_every)))
    marks.add(steps)
    return len(marks)


def estimate_run(
    parts: dict[str, Any],
    fields: dict[str, Any],
    *,
    start_seconds: float,
    corpus_chars: int | None,
    processes: int = 1,
) -> RunEstimate:
    """The run `fields` (TrainConfig fields: steps, eval_every, sample_every,
    checkpoint_every) from the measured `parts` (measure_run's answer). Several processes
    share the steps and evaluations; one writes samples and checkpoints."""
    steps = int(fields["steps"])
    share = max(1, processes)
    per_char = parts.get("prepare_seconds_per_char")
    prepare = per_char * corpus_chars if per_char and corpus_chars else 0.0
    samples_each = float(parts.get("seconds_per_sample") or 0.0)
    return RunEstimate(
        start=max(0.0, start_seconds),
        prepare=prepare,
        steps=float(parts["seconds_per_step"]) * steps / share,
        evals=float(parts.get("seconds_per_eval") or 0.0)
        * times_in_run(steps, int(fields["eval_every"]))
        / share,
        samples=samples_each * times_in_run(steps, int(fields["sample_every"])),
        checkpoints=float(parts.get("seconds_per_checkpoint") or 0.0)
        * saves_in_run(steps, int(fields["checkpoint_every"]), int(fields["eval_every"])),
    )
