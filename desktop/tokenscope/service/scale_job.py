"""The ScaleRun job: one probe, a few-shot sweep or the in-context learning score, on each
of several models in turn.

Runs and ladders count as their latest checkpoint on the size chart, and with a probe they
are also measured at every checkpoint (P against training tokens). One model's trouble
becomes its row's error; the others go on. Models are opened for this job alone and let go.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING

from tokenscope.service.cancel import JobCancelled
from tokenscope.service.jobs import ScaleRun
from tokenscope.service.records import Progress, ScaleResult

if TYPE_CHECKING:
    from tokenscope.lm.backend import ModelBackend
    from tokenscope.service.service import JobContext


def run_scale(
    job: ScaleRun, ctx: JobContext, opener: Callable[[str], ModelBackend]
) -> Generator[Progress | ScaleResult, None, str]:
    """The job's records (Progress, then a ScaleResult per model); returns "completed"."""
    from tokenscope.train import runs
    from tokenscope.train.run_folder import list_checkpoints

    if sum(x is not None for x in (job.probe, job.prompt, job.icl_text)) != 1:
        raise ValueError("a scale run measures one thing: a probe, a few-shot task or the "
                         "in-context learning score")  # fmt: skip
    # Every run (a ladder: every size) counts as one model; its checkpoints as units too.
    units: list[tuple[str, Path | None]] = []
    for target in job.targets:
        sizes = runs.run_sizes(target) if runs.is_run_folder(target) else []
        units += [(str(size), size) for size in sizes] or [(target, None)]
    total = len(units)
    if job.probe is not None or job.icl_text is not None:
        total += sum(len(list_checkpoints(run)) for _t, run in units if run is not None)
    done = 0

    def step(label: str) -> Progress:
        nonlocal done
        ctx.check()
        done += 1
        return Progress(label, done - 1, total)

    for target, run in units:
        yield step(target)
        try:
            if job.pull:
                _pull_if_missing(target, ctx, done - 1, total)
            yield _measure(job, ctx, target, run, opener, step)
        except JobCancelled:
            raise
        except Exception as e:  # one model's trouble, reported in its row; the rest go on
            if ctx.token.cancelled:  # (a server request ended by Cancel)
                raise JobCancelled from None
            yield ScaleResult(target, error=str(e) or type(e).__name__)
    yield Progress("", total, total)
    return "completed"


def _pull_if_missing(target: str, ctx: JobContext, done: int, total: int) -> None:
    """Download a Hub model that is not in the cache yet, saying how far it is (in the
    label: the progress bar counts models); Cancel stops the download."""
    import threading
    import time

    from tokenscope.lm import hub

    if not hub.is_hub_ref(target) or hub.cached_path(target) is not None:
        return
    stop, last = threading.Event(), [0.0]

    def progress(t: hub.Transfer) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.2:
            last[0] = now
            mb = f"{t.done / 1e6:.1f} of {t.total / 1e6:.1f} MB" if t.total else ""
            ctx.emit(Progress(f"downloading {target} {mb}".strip(), done, total))

    with ctx.token.calling(stop.set):
        try:
            hub.pull(target, on_progress=progress, cancel=stop)
        except hub.DownloadCancelled:
            raise JobCancelled from None


def _measure(
    job: ScaleRun,
    ctx: JobContext,
    target: str,
    run: Path | None,
    opener: Callable[[str], ModelBackend],
    step: Callable[[str], Progress],
) -> ScaleResult:
    from tokenscope.lm import hub, scale
    from tokenscope.train import probe_runs, runs
    from tokenscope.train.run_folder import latest_checkpoint

    model_target = target
    if run is not None:
        last = latest_checkpoint(run)
        if last is None:
            raise ValueError(f"{run} has no complete checkpoint yet")
        model_target = str(last)
    if job.probe is not None:
        point = scale.measure_probe(
            model_target, job.probe, use_cache=job.use_cache, open_model=opener, cancel=ctx.token
        )
        curve = None
        if run is not None:
            point = dataclasses.replace(point, name=runs.run_label(run))
            curve = probe_runs.training_curve(
                run,
                job.probe,
                use_cache=job.use_cache,
                open_model=opener,
                progress=lambda label, _n, _t: ctx.emit(step(label)),
            )
        if hub.is_hub_ref(target) and "@" in target:
            point = dataclasses.replace(point, name=target.removeprefix(hub.PREFIX))
        return ScaleResult(target, point=point, curve=curve)
    if job.icl_text is not None:
        icl = scale.measure_icl(model_target, job.icl_text, use_cache=job.use_cache,
                                open_model=opener)  # fmt: skip
        if hub.is_hub_ref(target) and "@" in target:  # a training checkpoint: name its step
            icl = dataclasses.replace(icl, name=target.removeprefix(hub.PREFIX))
        points: tuple[probe_runs.ICLCurvePoint, ...] = ()
        if run is not None:
            icl = dataclasses.replace(icl, name=runs.run_label(run))
            points = probe_runs.icl_curve(
                run, job.icl_text, use_cache=job.use_cache, open_model=opener,
                progress=lambda label, _n, _t: ctx.emit(step(label)),
            )  # fmt: skip
        return ScaleResult(target, icl=icl, icl_curve=points)
    assert job.prompt is not None
    sweep = scale.measure_sweep(
        model_target,
        job.prompt,
        max_shots=job.max_shots,
        use_cache=job.use_cache,
        open_model=opener,
        on_point=lambda _p: ctx.check(),
        cancel=ctx.token,
    )
    if run is not None:
        sweep = dataclasses.replace(sweep, name=runs.run_label(run))
    return ScaleResult(target, sweep=sweep)
