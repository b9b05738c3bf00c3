"""ModelService: the loaded model, its epoch, and one handler per kind of job.

A handler either returns its result (short jobs) or is a generator: each `yield` hands a
record to whoever asked and is a point where the job may be cancelled or another job may
run; its `return` value is the result. Everything that leaves here is a plain record.

Not thread-safe by itself: one JobRunner calls it, from one thread.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tokenscope.service.cancel import CancelToken, JobCancelled
from tokenscope.service.jobs import (
    FewShotPreview,
    Generate,
    Job,
    Load,
    Predict,
    Score,
    SetThreads,
    Sweep,
    Tokenize,
)
from tokenscope.service.records import (
    FewShotView,
    GenerationDone,
    GenerationStarted,
    LoadProgress,
    ModelInfo,
    NextTokenView,
    SweepProgress,
    SweepSeries,
    TokenRow,
)

PROGRESS_EVERY_S = 0.05  # load progress faster than this is not worth a repaint


class JobContext:
    """What a handler may use: its cancellation token, and `emit` for records that come
    from inside a blocking call (a load's progress) rather than from a `yield`."""

    def __init__(self, token: CancelToken, emit: Callable[[Any], None]) -> None:
        self.token = token
        self.emit = emit

    def check(self) -> None:
        self.token.check()

    def load_reporter(self) -> Callable[[str, int, int], None]:
        """A progress callback for tokenscope.lm.progress that emits LoadProgress records
        (a few per second at most) and stops the load when the job is cancelled."""
        last = [0.0, ""]

        def report(stage: str, done: int, total: int) -> None:
            self.token.check()
            now = time.perf_counter()
            if stage != last[1] or now - last[0] >= PROGRESS_EVERY_S or done == total:
                last[0], last[1] = now, stage
                self.emit(LoadProgress(stage, done, total))

        return report


def model_view(dist: Any, top_k: int, **extra: Any) -> NextTokenView:
    """A NextTokenDistribution as chart rows: its top tokens with raw and sampled probability."""
    rows = tuple(
        TokenRow(rank, t.token_id, t.display, t.probability, t.sampled_probability)
        for rank, t in enumerate(dist.top(top_k), start=1)
    )
    return NextTokenView(
        rows=rows,
        entropy_bits=dist.entropy,
        removed_mass=dist.removed_mass,
        context_ids=dist.context_ids,
        dropped_tokens=dist.dropped_tokens,
        **extra,
    )


class ModelService:
    """Owns the current model. `epoch` grows by one each time a model is loaded."""

    def __init__(self) -> None:
        self.model: Any = None  # tokenscope.lm.LanguageModel
        self.info: ModelInfo | None = None
        self.epoch = 0
        self._last: tuple[str, Any] | None = None  # (text, NextTokenDistribution)
        self._watch: tuple[tuple[int, ...], str, float] | None = None

    def handle(self, job: Job, ctx: JobContext) -> Any:
        """Run `job`: its result, or a generator of records whose return value is the result."""
        handler = getattr(self, f"_{job.kind}", None)
        if handler is None:
            raise TypeError(f"the model service has no handler for {type(job).__name__}")
        if job.needs_model and self.model is None:
            raise ValueError("no model is loaded yet")
        return handler(job, ctx)

    # ----- loading -------------------------------------------------------------------------

    def _load(self, job: Load, ctx: JobContext) -> Iterator[Any]:
        yield LoadProgress("importing PyTorch")
        import torch

        from tokenscope.lm.loading import load_model
        from tokenscope.lm.threads import check_threads, choose_threads

        ctx.check()
        yield LoadProgress(f"opening {Path(job.target).name or job.target}")
        model = load_model(job.target, dtype=job.dtype, progress=ctx.load_reporter())
        ctx.check()  # cancelled at the last moment: keep the current model
        threads = (
            check_threads(job.threads)
            if job.threads is not None
            else choose_threads(model.parameter_count)
        )
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        note = ""
        if job.compile:
            yield LoadProgress("compiling the decode step (minutes the first time, then seconds)")
            try:
                model.compile_decoding(progress=ctx.load_reporter())
            except JobCancelled:
                torch.set_num_threads(previous_threads)  # the current model stays, as it was
                raise
            except Exception as e:
                # No C++ compiler, an unsupported torch: the eager model is still good.
                lines = str(e).strip().splitlines()
                note = f"compiled decoding unavailable ({lines[0] if lines else type(e).__name__})"
            try:
                ctx.check()
            except JobCancelled:
                torch.set_num_threads(previous_threads)
                raise
        self.model, self.epoch = model, self.epoch + 1
        self._last = self._watch = None
        c = model.config
        self.info = ModelInfo(
            epoch=self.epoch,
            target=job.target,
            name=model.name,
            source=model.source or "",
            parameters=model.parameter_count,
            layers=c.n_layer,
            context_length=c.context_length,
            vocab_size=model.tokenizer.vocab_size,
            device=str(model.device),
            architecture=model.architecture
            or ("Llama-style" if c.position == "rope" else "GPT-2-style"),
            quantization=model.quantization,
            has_chat_template=bool(model.chat_template),
            threads=torch.get_num_threads(),  # as torch reports it, in the model's thread
            packing=model.packing,
            compiled=model.compiled,
            note=note,
        )
        return self.info

    def _setthreads(self, job: SetThreads, ctx: JobContext) -> ModelInfo:
        import torch

        from tokenscope.lm.threads import check_threads, choose_threads

        n = (
            choose_threads(self.model.parameter_count)
            if job.threads is None
            else check_threads(job.threads)
        )
        torch.set_num_threads(n)
        self.info = dataclasses.replace(self.info, threads=torch.get_num_threads())
        return self.info

    # ----- the next token ------------------------------------------------------------------

    def _predict(self, job: Predict, ctx: JobContext) -> NextTokenView:
        from tokenscope.lm.sampling import SamplingSettings

        started = time.perf_counter()
        sampling = job.sampling or SamplingSettings()
        if self._last is not None and self._last[0] == job.text:
            dist, recomputed = self._last[1].with_sampling(sampling), False
        else:
            dist = self.model.predict_next_token_probabilities(job.text, sampling=sampling)
            self._last, recomputed = (job.text, dist), True
        watch = self._watch_probability(dist, job.watch) if job.watch else None
        return model_view(
            dist,
            job.top_k,
            watch_text=job.watch,
            watch_probability=watch,
            seconds=time.perf_counter() - started,
            recomputed=recomputed,
        )

    def _watch_probability(self, dist: Any, watch: str) -> float:
        key = (dist.context_ids, watch)
        if self._watch is not None and self._watch[:2] == key:
            return self._watch[2]
        p = dist.probability_of(watch)
        self._watch = (*key, p)
        return p

    def _tokenize(self, job: Tokenize, ctx: JobContext) -> tuple[Any, ...]:
        return tuple(self.model.tokenize(job.text))

    def _score(self, job: Score, ctx: JobContext) -> Any:
        return self.model.score(job.text)

    # ----- generation ----------------------------------------------------------------------

    def _generate(self, job: Generate, ctx: JobContext) -> Iterator[Any]:
        from tokenscope.lm.generation import choose_alternative

        model = self.model
        started = time.perf_counter()
        prompt: Any = list(job.prompt) if isinstance(job.prompt, tuple) else job.prompt
        max_tokens, count = job.max_tokens, 0
        forced = None
        if job.forced is not None:
            source, token_id = job.forced
            forced = choose_alternative(source, token_id, model.tokenizer)
            prompt = [*prompt, token_id]
            max_tokens -= 1
        gen = model.generate(prompt, max_tokens=max(0, max_tokens), sampling=job.sampling,
                             top_k=job.top_k)  # fmt: skip
        try:
            prompt_ids = gen.prompt_ids[:-1] if forced is not None else gen.prompt_ids
            yield GenerationStarted(tuple(prompt_ids))
            if forced is not None:
                count += 1
                yield forced
                if forced.is_eos:
                    return GenerationDone("eos", count, time.perf_counter() - started)
            for step in gen:
                count += 1
                yield step
        finally:
            gen.close()
        return GenerationDone(gen.stop_reason or "max_tokens", count, time.perf_counter() - started)

    # ----- few-shot ------------------------------------------------------------------------

    def _fewshotpreview(self, job: FewShotPreview, ctx: JobContext) -> FewShotView:
        from tokenscope.lm.fewshot import score_answer, score_candidates

        model, prompt = self.model, job.prompt
        assembled = prompt.assemble(model.tokenizer)
        dist = model.predict_next_token_probabilities(assembled.text)
        expected = score_answer(model, prompt, prompt.expected) if prompt.expected else None
        candidates = (
            tuple(score_candidates(model, prompt, prompt.candidates)) if prompt.candidates else ()
        )
        return FewShotView(
            text=assembled.text,
            parts=assembled.parts,
            token_count=assembled.token_count or len(dist.context_ids),
            context_length=model.config.context_length,
            chart=model_view(dist, job.top_k),
            expected=expected,
            candidates=candidates,
        )

    def _sweep(self, job: Sweep, ctx: JobContext) -> Iterator[Any]:
        from tokenscope.lm.fewshot import iter_sweep, sweep_size
        from tokenscope.lm.loading import load_model

        total = sweep_size(job.prompt, job.max_shots, job.orders)  # bad settings fail here
        runs: list[tuple[Any, str]] = [(self.model, self.info.name if self.info else "model")]
        runs += [(None, other) for other in job.others]
        for model, label in runs:
            if model is None:
                yield SweepProgress(label, 0, 0)
                model = load_model(label, progress=ctx.load_reporter())
            points = []
            for point in iter_sweep(
                model, job.prompt, max_shots=job.max_shots, orders=job.orders, seed=job.seed
            ):
                points.append(point)
                yield SweepProgress(label, len(points), total)
            yield SweepSeries(label, tuple(points))
        return "completed"
