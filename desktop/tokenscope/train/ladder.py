"""A size ladder: the same corpus and tokenizer, several model sizes, one run each.

    configs = plan(base_config)                       # DEFAULT_SIZES, DEFAULT_TOKENS each
    results = run_ladder(configs)                     # one after the other
    fit = fit_power_law([r.parameters for r in results], [r.val_loss for r in results])
    fit.predict(4 * results[-1].parameters)

Every run goes in its own folder under the base config's out_dir (size-1, size-2, ...). The
first run trains the tokenizer and tokenizes the corpus; the others start from copies of its
tokenizer and token files (the same vocabulary, so their losses compare). The final
validation loss of each size, against its parameter count, is fitted with
L(N) = a * N^-alpha + c (a power law with an irreducible loss c), the curve of the scaling
laws papers.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenscope.train.config import TrainConfig

#: GPT-2-style sizes from ~0.1 M to ~3 M parameters with a 2,048-piece vocabulary: over 30x
DEFAULT_SIZES: tuple[dict[str, int], ...] = (
    {"n_layer": 2, "n_head": 2, "d_model": 32},
    {"n_layer": 3, "n_head": 4, "d_model": 64},
    {"n_layer": 4, "n_head": 4, "d_model": 128},
    {"n_layer": 6, "n_head": 6, "d_model": 192},
)
#: training tokens per size by default (minutes on two CPU cores for the whole ladder)
DEFAULT_TOKENS = 1_000_000
#: the compute-optimal budget of the Chinchilla paper, in tokens per parameter
COMPUTE_OPTIMAL = 20.0


def plan(
    base: TrainConfig,
    sizes: Sequence[dict[str, Any]] = DEFAULT_SIZES,
    *,
    tokens: int | None = DEFAULT_TOKENS,
    tokens_per_parameter: float | None = None,
) -> list[TrainConfig]:
    """One config per size: `tokens` training tokens each, or `tokens_per_parameter` times
    its parameter count (COMPUTE_OPTIMAL: ~20)."""
    if len(sizes) < 2:
        raise ValueError("a ladder needs at least two sizes")
    if (tokens is None) == (tokens_per_parameter is None):
        raise ValueError("give either a token budget or tokens per parameter")
    if base.init_from or base.tokenizer == "model":
        raise ValueError("a ladder trains each size from scratch (no init_from)")
    out = []
    for i, size in enumerate(sizes, start=1):
        config = base.replace(
            model={**base.model, **size},
            out_dir=str(Path(base.out_dir) / f"size-{i}"),
            name=f"{base.name}-size-{i}",
        )
        model = config.model_config(base.vocab_size)
        context = min(config.context or model.context_length, model.context_length)
        if tokens is not None:
            budget: float = tokens
        else:
            assert tokens_per_parameter is not None  # one of the two (checked above)
            budget = tokens_per_parameter * model.parameter_count()
        steps = max(2, math.ceil(budget / (config.batch_size * context)))
        out.append(
            config.replace(
                steps=steps,
                warmup_steps=min(config.warmup_steps, max(1, steps // 10)),
                # Eight evaluations (and probes) and four checkpoints per size at least, so
                # each size has a curve against training tokens, not one point.
                eval_every=min(config.eval_every, max(1, steps // 8)),
                sample_every=min(config.sample_every, steps),
                checkpoint_every=min(config.checkpoint_every, max(1, steps // 4)),
                keep_checkpoints=max(config.keep_checkpoints, 4),
            )
        )
    return out


@dataclass(frozen=True)
class LadderResult:
    run_dir: str
    parameters: int
    tokens: int  # trained on
    val_loss: float  # the last evaluation's
    status: str


def _result(config: TrainConfig, status: str) -> LadderResult:
    from tokenscope.train.events import EvalEvent, StartEvent, StepEvent, read_events

    events = read_events(Path(config.out_dir) / "events.jsonl")
    start = next((e for e in reversed(events) if isinstance(e, StartEvent)), None)
    losses = [e.val_loss for e in events if isinstance(e, EvalEvent) and e.val_loss is not None]
    steps = [e for e in events if isinstance(e, StepEvent)]
    return LadderResult(
        run_dir=config.out_dir,
        parameters=start.parameters if start is not None else 0,
        tokens=steps[-1].tokens if steps else 0,
        val_loss=losses[-1] if losses else math.nan,
        status=status,
    )


def run_ladder(configs: Sequence[TrainConfig]) -> list[LadderResult]:
    """Train each size in turn (in this process); stops at the first run that does not
    complete, with the results so far."""
    from tokenscope.train.loop import Trainer

    results: list[LadderResult] = []
    first = Path(configs[0].out_dir)
    for n, config in enumerate(configs):
        resume = False
        if n > 0:  # the first run's tokenizer and token files: the same vocabulary
            folder = Path(config.out_dir)
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy2(first / "tokenizer.json", folder / "tokenizer.json")
            if (folder / "data").exists():
                shutil.rmtree(folder / "data")
            shutil.copytree(first / "data", folder / "data")
            resume = True  # (reuses a matching tokenizer and token files; no checkpoint yet)
        status = Trainer(config, resume=resume).run()
        results.append(_result(config, status))
        if status != "completed":
            break
    return results


@dataclass(frozen=True)
class PowerLaw:
    """L(N) = a * N^-alpha + c."""

    a: float
    alpha: float
    c: float
    rms: float  # of the fit's residuals, in loss units

    def predict(self, parameters: float) -> float:
        return self.a * parameters**-self.alpha + self.c


def fit_power_law(parameters: Sequence[float], losses: Sequence[float]) -> PowerLaw:
    """Least squares in log space for each irreducible loss c on a grid below the smallest
    loss, keeping the c whose curve fits the losses best."""
    ns = [float(n) for n in parameters]
    ls = [float(v) for v in losses]
    if len(ns) < 2 or len(ns) != len(ls) or any(n <= 0 for n in ns):
        raise ValueError("the fit needs two or more (parameters > 0, loss) pairs")
    if any(not math.isfinite(v) for v in ls):
        raise ValueError("every size needs a finite validation loss")
    low = min(ls)
    best: PowerLaw | None = None
    xs = [math.log(n) for n in ns]
    mx = sum(xs) / len(xs)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("the sizes must differ")
    for i in range(400):
        c = low * i / 400  # 0 .. just below the smallest loss
        ys = [math.log(v - c) for v in ls]
        my = sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
        a = math.exp(my - slope * mx)
        fit = PowerLaw(a, -slope, c, 0.0)
        rms = math.sqrt(
            sum((fit.predict(n) - v) ** 2 for n, v in zip(ns, ls, strict=True)) / len(ns)
        )
        if best is None or rms < best.rms:
            best = PowerLaw(a, -slope, c, rms)
    assert best is not None  # the first c sets it
    return best
