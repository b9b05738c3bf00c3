"""ModelService: the loaded model, its epoch, and one handler per kind of job.

A handler either returns its result (short jobs) or is a generator: each `yield` hands a
record to whoever asked and is a point where the job may be cancelled or another job may
run; its `return` value is the result. Everything that leaves here is a plain record.

The model is whatever answers tokenscope.lm.backend.ModelBackend, here or on a server; no
handler asks which. "Can this model do X" is a question to its capabilities, and a job's
cancel token goes down into every call (it wakes a request waiting on a server).

Not thread-safe by itself: one JobRunner calls it, from one thread (or the command line,
through `run_job`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from tokenscope.lm.backend import ModelBackend, open_model, require_internals
from tokenscope.lm.errors import TokenscopeError
from tokenscope.service.cancel import CancelToken
from tokenscope.service.jobs import (
    AttentionMap,
    ChatPrompt,
    CompileStatus,
    FewShotPreview,
    Generate,
    InContext,
    Induction,
    Job,
    Lens,
    Load,
    Predict,
    ScaleRun,
    SetAblation,
    SetThreads,
    Surprisal,
    Sweep,
    Tokenize,
)
from tokenscope.service.records import (
    AttentionView,
    FewShotView,
    GenerationDone,
    GenerationStarted,
    LensView,
    ModelInfo,
    NextTokenView,
    Progress,
    ScaleResult,
    SurprisalView,
    SweepSeries,
)

if TYPE_CHECKING:
    import numpy as np

    from tokenscope.lm.backend import Distribution
    from tokenscope.lm.background_compile import BackgroundCompile
    from tokenscope.lm.fewshot.scoring import AnswerScore
    from tokenscope.lm.icl import ICLReport
    from tokenscope.lm.inside import AttentionMaps
    from tokenscope.lm.tokens import GenerationStep, Token

PROGRESS_EVERY_S = 0.05  # load progress faster than this is not worth a repaint

BOUND_NOTE = (
    "some answer tokens are not among the server's top {k}: their probability is at most the "
    "last listed one's, so those values are upper bounds (and shares among the candidates "
    "approximate)"
)


class JobContext:
    """What a handler may use: its cancellation token, and `emit` for records that come
    from inside a blocking call (a load's progress) rather than from a `yield`."""

    def __init__(self, token: CancelToken, emit: Callable[[Any], None]) -> None:
        self.token = token
        self.emit = emit

    def check(self) -> None:
        self.token.check()

    def load_reporter(self, emit: bool = True) -> Callable[[str, int, int], None]:
        """A progress callback for tokenscope.lm.progress that emits Progress records (a few
        per second at most; none with `emit` False, for a model opened inside a job that
        counts its own units) and stops the load when the job is cancelled."""
        last_time, last_stage = 0.0, ""

        def report(stage: str, done: int, total: int) -> None:
            nonlocal last_time, last_stage
            self.token.check()
            if not emit:
                return
            now = time.perf_counter()
            if stage != last_stage or now - last_time >= PROGRESS_EVERY_S or done == total:
                last_time, last_stage = now, stage
                self.emit(Progress(stage, done, total))

        return report


def next_token_view(
    model: ModelBackend, dist: Distribution, top_k: int, **extra: Any
) -> NextTokenView:
    """A distribution as chart rows: its top tokens with raw and sampled probability, and
    (for a model that lists only its top tokens) the rest as one share."""
    rows = tuple(dist.top(top_k))
    full = model.capabilities.full_vocabulary
    return NextTokenView(
        rows=rows,
        entropy_bits=dist.entropy,
        entropy_exact=dist.entropy_exact,
        removed_mass=dist.removed_mass,
        context_ids=tuple(dist.context_ids),
        dropped_tokens=dist.dropped_tokens,
        other=None if full else max(0.0, 1.0 - sum(r.probability for r in rows)),
        other_sampled=0.0 if full else max(0.0, 1.0 - sum(r.sampled_probability for r in rows)),
        label=dist.label,
        approximate=not dist.sampled_exact,
        **extra,
    )


class ModelService:
    """Owns the current model. `epoch` grows by one each time a model is loaded."""

    def __init__(self) -> None:
        self.backend: ModelBackend | None = None
        self.info: ModelInfo | None = None
        self.epoch = 0
        self._last: tuple[str, Distribution] | None = None  # (text, its prediction)
        self._watch: tuple[str, str, float, str] | None = None  # (text, watch, P, note)
        self._maps: tuple[str, AttentionMaps] | None = None  # the last map and its text
        self._compiling: BackgroundCompile | None = None  # the current model's, while it runs

    @property
    def model(self) -> ModelBackend:
        """The loaded model (ValueError before one is loaded)."""
        if self.backend is None:
            raise ValueError("no model is loaded yet")
        return self.backend

    def handle(self, job: Job, ctx: JobContext) -> Any:
        """Run `job`: its result, or a generator of records whose return value is the result."""
        handler = getattr(self, f"_{job.kind}", None)
        if handler is None:
            raise TypeError(f"the model service has no handler for {type(job).__name__}")
        if job.needs_model and self.backend is None:
            raise ValueError("no model is loaded yet")
        return handler(job, ctx)

    def _forget(self) -> None:
        """Drop what was computed with the model as it was (another model, an ablation)."""
        self._last = self._watch = self._maps = None

    # ----- loading -------------------------------------------------------------------------

    def _load(self, job: Load, ctx: JobContext) -> Generator[Progress, None, ModelInfo]:
        model = open_model(
            job.target,
            dtype=job.dtype,
            api_key=job.api_key,
            api_key_env=job.api_key_env,
            progress=ctx.load_reporter(),
            cancel=ctx.token,
        )
        ctx.check()  # cancelled at the last moment: keep the current model
        yield from ()  # (a generator, as every load: its progress comes from the reporter)
        threads = model.set_threads(job.threads)
        if self._compiling is not None:
            self._compiling.cancel()  # the old model's: its result is not wanted
            self._compiling = None
        note = ""
        if job.compile and model.capabilities.local_weights:
            lm = model.internals()
            self._compiling = lm.compile_in_background(job.dtype)
            if self._compiling is None and lm.compile_note:
                note = f"decoding eagerly: {lm.compile_note}"
        self.backend, self.epoch = model, self.epoch + 1
        self._forget()
        self.info = _model_info(model, self.epoch, job.target, threads, note)
        self.info = dataclasses.replace(self.info, compiling=self._compiling is not None)
        return self.info

    def _compilestatus(self, job: CompileStatus, ctx: JobContext) -> ModelInfo:
        assert self.info is not None
        c = self._compiling
        if c is not None and c.state != "compiling":
            self._compiling = None
        self.info = dataclasses.replace(
            self.info,
            compiling=c is not None and c.state == "compiling",
            compiled=self.model.facts().compiled,
            note=c.note if c is not None and c.state == "failed" else self.info.note,
        )
        return self.info

    def _restore_threads(self) -> None:
        if self.backend is not None and self.info is not None and self.info.threads:
            self.backend.set_threads(self.info.threads)

    def _setthreads(self, job: SetThreads, ctx: JobContext) -> ModelInfo:
        assert self.info is not None
        threads = self.model.set_threads(job.threads)
        self.info = dataclasses.replace(self.info, threads=threads)
        return self.info

    def _open(self, target: str, ctx: JobContext) -> ModelBackend:
        """Another model, for this job only (a comparison sweep, a scale run); the job
        reports its own progress, the load only stops when it is cancelled."""
        return open_model(target, progress=ctx.load_reporter(emit=False), cancel=ctx.token)

    # ----- the next token ------------------------------------------------------------------

    def _predict(self, job: Predict, ctx: JobContext) -> NextTokenView:
        from tokenscope.lm.sampling import SamplingSettings

        started = time.perf_counter()
        sampling = job.sampling or SamplingSettings()
        if self._last is not None and self._last[0] == job.text:
            dist, recomputed = self._last[1].with_sampling(sampling), False
        else:
            dist = self.model.predict_next_token_probabilities(
                job.text, sampling=sampling, top_k=job.top_k, cancel=ctx.token
            )
            self._last, recomputed = (job.text, dist), True
        watch, note = (None, "")
        if job.watch:
            watch, note = self._watch_probability(job.text, job.watch, dist, ctx)
        return next_token_view(
            self.model,
            dist,
            job.top_k,
            watch_text=job.watch,
            watch_probability=watch,
            watch_note=note,
            seconds=time.perf_counter() - started,
            recomputed=recomputed,
        )

    def _watch_probability(
        self, text: str, watch: str, dist: Distribution, ctx: JobContext
    ) -> tuple[float | None, str]:
        """P(watch | text), from the distribution where it tells, else scored; with a note
        where it is unknown or only a bound."""
        if self._watch is not None and self._watch[:2] == (text, watch):
            return self._watch[2], self._watch[3]
        p, note = dist.probability_of(watch), ""
        c = self.model.capabilities
        if p is None:
            if not c.can_score:
                return None, (
                    f"not among the tokens {c.kind} listed, and it cannot score a longer "
                    "continuation"
                )
            try:
                score = self.model.score_continuation(text, watch, cancel=ctx.token)
            except TokenscopeError as e:
                return None, str(e)
            p = score.probability
            if score.upper_bound:
                note = f"at most: one of its tokens is not among the top {c.max_top_k} listed"
        self._watch = (text, watch, p, note)
        return p, note

    def _tokenize(self, job: Tokenize, ctx: JobContext) -> tuple[Token, ...]:
        return tuple(self.model.tokenize(job.text, cancel=ctx.token))

    def _chatprompt(self, job: ChatPrompt, ctx: JobContext) -> str:
        return self.model.chat_prompt(job.text, system=job.system or None)

    # ----- generation ----------------------------------------------------------------------

    def _generate(
        self, job: Generate, ctx: JobContext
    ) -> Generator[GenerationStarted | GenerationStep, None, GenerationDone]:
        started = time.perf_counter()
        prompt = list(job.prompt) if isinstance(job.prompt, tuple) else job.prompt
        gen = self.model.generate(
            prompt,
            max_tokens=job.max_tokens,
            sampling=job.sampling,
            stop=job.stop,
            top_k=job.top_k,
            forced=job.forced,
            cancel=ctx.token,
        )
        count = 0
        try:
            yield GenerationStarted(tuple(gen.prompt_ids), gen.dropped_prompt_tokens)
            for step in gen:
                count += 1
                yield step
        finally:
            gen.close()
        seconds = time.perf_counter() - started
        return GenerationDone(
            gen.stop_reason or "max_tokens", count, seconds, gen.text, gen.flushed
        )

    # ----- looking inside ------------------------------------------------------------------

    def _lens(self, job: Lens, ctx: JobContext) -> LensView:
        from tokenscope.lm.inside import logit_lens

        model = require_internals(self.model, "the logit lens")
        started = time.perf_counter()
        position = job.position
        if job.cursor is not None and 0 <= job.cursor < len(job.text.rstrip()):
            # The token that ends at or before the cursor: the lens shows what follows it.
            pieces = model.tokenizer.encode_with_offsets(job.text)
            seen = len(model._context_ids(job.text))
            lead = seen - len(pieces)
            before = [k for k, (_i, _s, end) in enumerate(pieces) if end <= job.cursor]
            position = lead + before[-1] if before else max(0, lead - 1)
            position -= max(0, seen - model.config.context_length)  # cut to fit
            if position < 0:
                raise ValueError(
                    "the cursor is in the part of the prompt cut off to fit the context"
                )
        lens = logit_lens(model, job.text, position=position, top_k=job.top_k)
        tok = model.tokenizer
        return LensView(
            labels=tuple(tok.display(i) for i in lens.token_ids),
            position=lens.position,
            target_label=lens.target_label,
            first_top_layer=lens.first_top_layer,
            rows=lens.rows,
            seconds=time.perf_counter() - started,
            target=lens.target,
            dropped_tokens=lens.dropped_tokens,
        )

    def _attentionmap(self, job: AttentionMap, ctx: JobContext) -> AttentionView:
        from tokenscope.lm.inside import ablation, attention

        model = require_internals(self.model, "the attention map")
        c = model.config
        if not 0 <= job.layer < c.n_layer or (
            job.head is not None and not 0 <= job.head < c.n_head
        ):
            raise ValueError(f"the model has {c.n_layer} layers of {c.n_head} heads")
        if self._maps is None or self._maps[0] != job.text:
            self._maps = (job.text, attention(model, job.text))
        maps = self._maps[1]
        grid = maps.averaged(job.layer) if job.head is None else maps.weights[job.layer, job.head]
        return AttentionView(
            maps.labels,
            job.layer,
            job.head,
            grid,
            c.n_layer,
            c.n_head,
            ablation(model),
            maps.token_ids,
        )

    def _induction(self, job: Induction, ctx: JobContext) -> np.ndarray:
        from tokenscope.lm.inside import induction_scores

        return induction_scores(require_internals(self.model, "the induction score"), seed=job.seed)

    def _incontext(self, job: InContext, ctx: JobContext) -> ICLReport:
        from tokenscope.lm.icl import report

        model = require_internals(self.model, "the in-context learning score")
        return report(model, job.text, count=job.windows, seed=job.seed)

    def _setablation(self, job: SetAblation, ctx: JobContext) -> frozenset[tuple[int, int]]:
        from tokenscope.lm.inside import ablation, set_ablation

        model = require_internals(self.model, "ablating heads")
        set_ablation(model, job.heads)
        self._forget()  # they were computed without it
        return ablation(model)

    def _surprisal(
        self, job: Surprisal, ctx: JobContext
    ) -> Generator[Progress, None, SurprisalView]:
        from tokenscope.lm.inside import compare, surprisal

        if not job.text.strip():
            raise ValueError("there is no text to score")
        models: list[tuple[ModelBackend | None, str]] = [(self.model, self.model.name)]
        if job.other:
            models.append((None, job.other))
        results = []
        for backend, label in models:
            if backend is None:
                yield Progress(label, 0, 0)
                backend = self._open(label, ctx)
            model = require_internals(backend, "surprisal")

            def progress(done: int, total: int, label: str = label) -> None:
                ctx.check()
                ctx.emit(Progress(label, done, total))

            results.append(surprisal(model, job.text, top_k=job.top_k, progress=progress))
            yield Progress(label, 1, 1)
        spans = compare(*results).spans if len(results) == 2 else ()
        return SurprisalView(tuple(results), tuple(spans))

    # ----- few-shot ------------------------------------------------------------------------

    def _fewshotpreview(self, job: FewShotPreview, ctx: JobContext) -> FewShotView:
        from tokenscope.lm.fewshot import candidate_shares, score_answer, score_answers

        model, prompt = self.model, job.prompt
        assembled = prompt.assemble(model.tokenizer)  # token spans where the tokenizer is here
        dist = model.predict_next_token_probabilities(
            assembled.text, top_k=job.top_k, cancel=ctx.token
        )
        chart = next_token_view(model, dist, job.top_k)
        expected: AnswerScore | None = None
        candidates: tuple[tuple[str, float, float], ...] = ()
        note, bound = "", False
        c = model.capabilities
        if prompt.expected or prompt.candidates:
            if c.can_score:
                if prompt.expected:
                    expected = score_answer(model, prompt, prompt.expected, cancel=ctx.token)
                    bound = expected.upper_bound
                if prompt.candidates:
                    scores = score_answers(model, prompt, prompt.candidates, cancel=ctx.token)
                    candidates = tuple(candidate_shares(scores))
                    bound = bound or any(s.upper_bound for s in scores)
                note = BOUND_NOTE.format(k=c.max_top_k) if bound else ""
            else:
                note = (
                    f"{c.kind} returns no log-probabilities of the prompt and does not show its "
                    "tokens, so the answers cannot be scored on it (vLLM, SGLang and llama.cpp "
                    f"can); the chart shows its top {c.max_top_k} next tokens"
                )
        return FewShotView(
            text=assembled.text,
            parts=assembled.parts,
            token_count=assembled.token_count or len(dist.context_ids),
            context_length=self.info.context_length if self.info else 0,
            chart=chart,
            expected=expected,
            candidates=candidates,
            note=note,
            upper_bound=bound,
        )

    def _sweep(self, job: Sweep, ctx: JobContext) -> Generator[Progress | SweepSeries, None, str]:
        from tokenscope.lm.fewshot import iter_sweep, sweep_size

        total = sweep_size(job.prompt, job.max_shots, job.orders)  # bad settings fail here
        runs: list[tuple[ModelBackend | None, str]] = [(self.model, self.model.name)]
        runs += [(None, other) for other in job.others]
        for backend, label in runs:
            if backend is None:
                yield Progress(label, 0, 0)
                backend = self._open(label, ctx)
            c = backend.capabilities
            if not c.can_score:
                raise ValueError(
                    f"{label} ({c.kind}) returns no log-probabilities of the prompt and does "
                    "not show its tokens, so it cannot score the expected answer (vLLM, "
                    "SGLang and llama.cpp can)"
                )
            points = []
            for point in iter_sweep(
                backend,
                job.prompt,
                max_shots=job.max_shots,
                orders=job.orders,
                seed=job.seed,
                cancel=ctx.token,
            ):
                points.append(point)
                yield Progress(label, len(points), total)
            bound = any(p.upper_bound for p in points)
            yield SweepSeries(
                label, tuple(points), BOUND_NOTE.format(k=c.max_top_k) if bound else ""
            )
        return "completed"

    def _scalerun(
        self, job: ScaleRun, ctx: JobContext
    ) -> Generator[Progress | ScaleResult, None, str]:
        from tokenscope.service.scale_job import run_scale

        return (yield from run_scale(job, ctx, lambda target: self._open(target, ctx)))


def _model_info(model: ModelBackend, epoch: int, target: str, threads: int, note: str) -> ModelInfo:
    f = model.facts()
    return ModelInfo(
        epoch=epoch,
        target=f.target or target,
        name=f.name,
        source=f.source,
        parameters=f.parameters,
        layers=f.layers,
        context_length=f.context_length,
        vocab_size=f.vocab_size,
        device=f.device,
        architecture=f.architecture,
        quantization=f.quantization,
        threads=threads,
        capabilities=model.capabilities,
        packing=f.packing,
        compiled=f.compiled,
        note=note,
        heads=f.heads,
    )
