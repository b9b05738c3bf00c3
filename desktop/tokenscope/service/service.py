"""ModelService: the loaded model, its epoch, and one handler per kind of job.

A handler either returns its result (short jobs) or is a generator: each `yield` hands a
record to whoever asked and is a point where the job may be cancelled or another job may
run; its `return` value is the result. Everything that leaves here is a plain record.

Not thread-safe by itself: one JobRunner calls it, from one thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tokenscope.service.cancel import CancelToken, JobCancelled
from tokenscope.service.jobs import (
    AttentionMap,
    FewShotPreview,
    Generate,
    Induction,
    Job,
    Lens,
    Load,
    Predict,
    ScaleRun,
    Score,
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
    LoadProgress,
    ModelInfo,
    NextTokenView,
    ScaleProgress,
    ScaleResult,
    SurprisalProgress,
    SurprisalView,
    SweepProgress,
    SweepSeries,
    TokenRow,
)

PROGRESS_EVERY_S = 0.05  # load progress faster than this is not worth a repaint
#: stand-in token ids for a server that names its tokens without ids: above any vocabulary
STAND_IN_IDS = 2**30


class JobContext:
    """What a handler may use: its cancellation token, and `emit` for records that come
    from inside a blocking call (a load's progress) rather than from a `yield`."""

    def __init__(self, token: CancelToken, emit: Callable[[Any], None]) -> None:
        self.token = token
        self.emit = emit

    def check(self) -> None:
        self.token.check()

    @contextlib.contextmanager
    def remote(self) -> Iterator[Any]:
        """A CancelScope for the requests made inside: cancelling the job ends them at once
        (a request waiting on a server has no point where a check could run)."""
        from tokenscope.lm.remote import CancelScope, RemoteCancelled

        scope = CancelScope()
        with self.token.calling(scope.cancel):
            try:
                yield scope
            except RemoteCancelled:
                if self.token.cancelled:
                    raise JobCancelled from None
                raise

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
        self.remote = False  # the model is on a server (tokenscope.lm.remote.RemoteModel)
        self._maps: tuple[str, Any] | None = None  # (text, AttentionMaps) of the last map
        self._stand_ins: dict[str, int] = {}  # token text -> id, for servers that give none

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
        from tokenscope.lm.remote import is_remote

        if is_remote(job.target):
            return (yield from self._connect(job, ctx))
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
        self._last = self._watch = self._maps = None
        self.remote = False
        c = model.config
        self.info = ModelInfo(
            epoch=self.epoch,
            target=job.target,
            name=model.name,
            source=model.source or "",
            parameters=model.parameter_count,
            layers=c.n_layer,
            heads=c.n_head,
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

    def _connect(self, job: Load, ctx: JobContext) -> Iterator[Any]:
        """A model on a server: asks it what it is and what it returns (no PyTorch needed)."""
        from tokenscope.lm.remote import RemoteModel, server_root

        yield LoadProgress(f"connecting to {server_root(job.target)}")
        with ctx.remote() as scope:
            model = RemoteModel(job.target, api_key=job.api_key, scope=scope)
        ctx.check()
        c = model.capabilities
        self.model, self.epoch = model, self.epoch + 1
        self._last = self._watch = None
        self.remote, self._stand_ins = True, {}
        self.info = ModelInfo(
            epoch=self.epoch,
            target=model.target,
            name=model.name,
            source=model.root,
            parameters=c.parameters,
            layers=0,
            context_length=c.context_length,
            vocab_size=c.vocab_size,
            device="server",
            architecture=f"{c.kind} server",
            quantization=None,
            has_chat_template=False,
            threads=0,
            remote=f"{c.kind} · {c.label}",
            can_score=c.can_score,
        )
        return self.info

    def _setthreads(self, job: SetThreads, ctx: JobContext) -> ModelInfo:
        if self.remote:
            return self.info  # the server decides its own threads
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

        if self.remote:
            return self._predict_remote(job, ctx)
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
        if self.remote:
            with ctx.remote() as scope:
                return tuple(self.model.tokenize(job.text, scope=scope))
        return tuple(self.model.tokenize(job.text))

    def _score(self, job: Score, ctx: JobContext) -> Any:
        if self.remote:
            raise ValueError(
                "scoring every token of a text needs the model open locally; a model on a "
                "server returns only its top tokens"
            )
        return self.model.score(job.text)

    # ----- looking inside ------------------------------------------------------------------

    def _local(self, what: str) -> None:
        if self.remote:
            raise ValueError(
                f"{what} needs the model's forward pass: open the model locally (a server "
                "returns only its top tokens)"
            )

    def _lens(self, job: Lens, ctx: JobContext) -> LensView:
        from tokenscope.lm.inside import logit_lens

        self._local("the logit lens")
        started = time.perf_counter()
        position = job.position
        if job.cursor is not None and 0 <= job.cursor < len(job.text.rstrip()):
            # The token that ends at or before the cursor: the lens shows what follows it.
            pieces = self.model.tokenizer.encode_with_offsets(job.text)
            seen = len(self.model._context_ids(job.text))
            lead = seen - len(pieces)
            before = [k for k, (_i, _s, end) in enumerate(pieces) if end <= job.cursor]
            position = lead + before[-1] if before else max(0, lead - 1)
            position -= max(0, seen - self.model.config.context_length)  # cut to fit
            if position < 0:
                raise ValueError(
                    "the cursor is in the part of the prompt cut off to fit the context"
                )
        lens = logit_lens(self.model, job.text, position=position, top_k=job.top_k)
        tok = self.model.tokenizer
        return LensView(
            labels=tuple(tok.display(i) for i in lens.token_ids),
            position=lens.position,
            target_label=lens.target_label,
            first_top_layer=lens.first_top_layer,
            rows=lens.rows,
            seconds=time.perf_counter() - started,
        )

    def _attentionmap(self, job: AttentionMap, ctx: JobContext) -> AttentionView:
        from tokenscope.lm.inside import ablation, attention

        self._local("the attention map")
        c = self.model.config
        if not 0 <= job.layer < c.n_layer or (
            job.head is not None and not 0 <= job.head < c.n_head
        ):
            raise ValueError(f"the model has {c.n_layer} layers of {c.n_head} heads")
        if self._maps is None or self._maps[0] != job.text:
            self._maps = (job.text, attention(self.model, job.text))
        maps = self._maps[1]
        grid = maps.averaged(job.layer) if job.head is None else maps.weights[job.layer, job.head]
        return AttentionView(maps.labels, job.layer, job.head, grid, c.n_layer, c.n_head,
                             ablation(self.model))  # fmt: skip

    def _induction(self, job: Induction, ctx: JobContext) -> Any:
        from tokenscope.lm.inside import induction_scores

        self._local("the induction score")
        return induction_scores(self.model, seed=job.seed)

    def _setablation(self, job: SetAblation, ctx: JobContext) -> frozenset[tuple[int, int]]:
        from tokenscope.lm.inside import ablation, set_ablation

        self._local("ablating heads")
        set_ablation(self.model, job.heads)
        self._last = self._watch = self._maps = None  # they were computed without it
        return ablation(self.model)

    def _surprisal(self, job: Surprisal, ctx: JobContext) -> Iterator[Any]:
        from tokenscope.lm.inside import compare, surprisal

        self._local("surprisal")
        if not job.text.strip():
            raise ValueError("there is no text to score")
        models = [(self.model, self.info.name if self.info else "model")]
        if job.other:
            models.append((None, job.other))
        results = []
        for model, label in models:
            if model is None:
                yield SurprisalProgress(label, 0, 0)
                model = self._open_other(label, ctx)
                if not hasattr(model, "transformer"):
                    raise ValueError(f"{label} is on a server: surprisal needs a local model")

            def progress(done: int, total: int, label: str = label) -> None:
                ctx.check()
                ctx.emit(SurprisalProgress(label, done, total))

            results.append(surprisal(model, job.text, top_k=job.top_k, progress=progress))
            yield SurprisalProgress(label, 1, 1)
        spans = compare(*results).spans if len(results) == 2 else ()
        return SurprisalView(tuple(results), tuple(spans))

    # ----- a model on a server ---------------------------------------------------------------

    def _stand_in(self, token: Any) -> int:
        """The token's id, or a stand-in for a server that gives none (one per text, above
        any real vocabulary) so that the window can tell the listed tokens apart."""
        if token.token_id is not None:
            return token.token_id
        return self._stand_ins.setdefault(token.text, STAND_IN_IDS + len(self._stand_ins))

    def _predict_remote(self, job: Predict, ctx: JobContext) -> NextTokenView:
        from tokenscope.lm.sampling import SamplingSettings

        started = time.perf_counter()
        sampling = job.sampling or SamplingSettings()
        if self._last is not None and self._last[0] == job.text:
            dist, recomputed = self._last[1], False
        else:
            with ctx.remote() as scope:
                dist = self.model.predict_next_token_probabilities(job.text, scope=scope)
            self._last, recomputed = (job.text, dist), True
        view = dist.after_sampling(sampling)
        listed = dist.top(job.top_k)
        rows = tuple(
            TokenRow(rank, self._stand_in(t), t.display, t.probability, view.probabilities[i])
            for i, (rank, t) in enumerate(enumerate(listed, start=1))
        )
        watch, note = None, ""
        if job.watch:
            watch, note = self._watch_remote(job.text, job.watch, dist, ctx)
        return NextTokenView(
            rows=rows,
            entropy_bits=dist.entropy_at_least,
            removed_mass=0.0,
            context_ids=(),
            watch_text=job.watch,
            watch_probability=watch,
            seconds=time.perf_counter() - started,
            recomputed=recomputed,
            other=max(0.0, 1.0 - sum(r.raw for r in rows)),
            other_sampled=max(0.0, 1.0 - sum(r.sampled for r in rows)),
            source=dist.label,
            approximate=not view.exact,
            watch_note=note,
        )

    def _watch_remote(
        self, text: str, watch: str, dist: Any, ctx: JobContext
    ) -> tuple[float | None, str]:
        key = (text, watch)
        if self._watch is not None and self._watch[:2] == key:
            return self._watch[2], ""
        p = dist.probability_of(watch)
        if p is None and self.model.capabilities.can_score:
            from tokenscope.lm.remote import RemoteError

            try:
                with ctx.remote() as scope:
                    score = self.model.score_continuation(text, watch, scope=scope)
            except RemoteError as e:
                return None, str(e)
            p = score.probability
            if score.upper_bound:
                k = self.model.capabilities.max_top_k
                return p, f"at most: one of its tokens is not among the server's top {k}"
        if p is None:
            c = self.model.capabilities
            return None, (
                f"not among the {len(dist.tokens)} tokens {c.kind} listed, and it cannot "
                "score a longer continuation"
            )
        self._watch = (*key, p)
        return p, ""

    def _remote_step(self, step: Any, sampling: Any, elapsed: float, keep: int) -> Any:
        """A RemoteStep as the engine's GenerationStep (the window shows only those), with
        its `keep` most likely alternatives (the sampled values come from all listed)."""
        from tokenscope.lm.generation import Alternative, GenerationStep
        from tokenscope.lm.remote import RemoteDistribution, RemoteToken, _display

        top = step.top
        dist = RemoteDistribution(top, max(0.0, 1.0 - sum(t.probability for t in top)), "")
        view = dist.after_sampling(sampling) if sampling is not None and top else None
        shares = view.probabilities if view is not None else [t.probability for t in top]
        token = step.token or RemoteToken(None, step.text, _display(step.text, None), 0.0)
        chosen = self._stand_in(token)
        raw = tuple(Alternative(self._stand_in(t), t.display, t.probability, t.text) for t in top)
        sampled = tuple(
            Alternative(a.token_id, a.display, p, a.text)
            for a, p in sorted(zip(raw, shares, strict=True), key=lambda x: -x[1])
            if p > 0
        )
        chosen_sampled = next((a.probability for a in sampled if a.token_id == chosen), 0.0)
        raw, sampled = raw[:keep], sampled[:keep]
        return GenerationStep(
            index=step.index,
            token_id=chosen,
            piece=token.display,
            text=step.text,  # the server's decoding (a whole character where one is split)
            probability=step.probability or 0.0,
            sampled_probability=chosen_sampled,
            top_raw=raw,
            top_sampled=sampled,
            entropy=dist.entropy_at_least if top else 0.0,
            elapsed=elapsed,
        )

    def _generate_remote(self, job: Generate, ctx: JobContext) -> Iterator[Any]:
        started = time.perf_counter()
        if not isinstance(job.prompt, str):
            raise ValueError("a model on a server continues from text, not from token ids")
        prompt, count = job.prompt, 0
        max_tokens = job.max_tokens
        forced = None
        if job.forced is not None:
            source, token_id = job.forced
            alternative = next((a for a in source.top_raw if a.token_id == token_id), None)
            if alternative is None:
                raise ValueError("that alternative is not one the server listed at this token")
            if not alternative.text or "\ufffd" in alternative.text:
                raise ValueError(
                    f"{alternative.display} is part of a character split across tokens; a "
                    "server continues from text, so choose an alternative that is whole"
                )
            sampled = {a.token_id: a.probability for a in source.top_sampled}
            forced = dataclasses.replace(
                source,
                token_id=token_id,
                piece=alternative.display,
                text=alternative.text,
                probability=alternative.probability,
                sampled_probability=sampled.get(token_id, 0.0),
                elapsed=0.0,
                is_eos=False,
            )
            prompt += alternative.text
            max_tokens -= 1
        yield GenerationStarted(())
        if forced is not None:
            count += 1
            yield forced
        if max_tokens <= 0:
            return GenerationDone("max_tokens", count, time.perf_counter() - started)
        with ctx.remote() as scope:
            gen = self.model.generate(prompt, max_tokens, sampling=job.sampling, scope=scope)
            try:
                last = time.perf_counter()
                for step in gen:
                    now = time.perf_counter()
                    count += 1
                    yield self._remote_step(step, job.sampling, now - last, job.top_k)
                    last = time.perf_counter()
            finally:
                gen.close()
        reason = {"stop": "eos", "length": "max_tokens"}.get(gen.finish_reason or "", "max_tokens")
        return GenerationDone(reason, count, time.perf_counter() - started)

    # ----- generation ----------------------------------------------------------------------

    def _generate(self, job: Generate, ctx: JobContext) -> Iterator[Any]:
        from tokenscope.lm.generation import choose_alternative

        if self.remote:
            return (yield from self._generate_remote(job, ctx))
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

        if self.remote:
            return self._fewshotpreview_remote(job, ctx)
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

    def _fewshotpreview_remote(self, job: FewShotPreview, ctx: JobContext) -> FewShotView:
        from tokenscope.lm.fewshot import score_answer, score_candidates

        prompt = job.prompt
        assembled = prompt.assemble()  # the server's tokenizer is not here: no token spans
        chart = self._predict_remote(Predict(assembled.text, top_k=job.top_k), ctx)
        expected, candidates, note = None, (), ""
        if prompt.expected or prompt.candidates:
            if self.model.capabilities.can_score:
                with ctx.remote() as scope:
                    scorer = _Scoped(self.model, scope)
                    if prompt.expected:
                        expected = score_answer(scorer, prompt, prompt.expected)
                    if prompt.candidates:
                        candidates = tuple(score_candidates(scorer, prompt, prompt.candidates))
                if scorer.bounded:
                    note = _BOUND_NOTE.format(k=self.model.capabilities.max_top_k)
            else:
                c = self.model.capabilities
                note = (
                    f"{c.kind} returns no log-probabilities of the prompt and does not show its "
                    "tokens, so the answers cannot be scored on it (vLLM, SGLang and llama.cpp "
                    f"can); the chart shows its top {c.max_top_k} next tokens"
                )
        return FewShotView(
            text=assembled.text,
            parts=assembled.parts,
            token_count=0,
            context_length=self.info.context_length if self.info else 0,
            chart=chart,
            expected=expected,
            candidates=candidates,
            note=note,
        )

    def _open_other(self, target: str, ctx: JobContext) -> Any:
        """A model for a comparison sweep, let go afterwards: a name, a file, or a server."""
        from tokenscope.lm.remote import RemoteModel, is_remote

        if is_remote(target):
            with ctx.remote() as scope:
                return RemoteModel(target, scope=scope)
        from tokenscope.lm.loading import load_model

        return load_model(target, progress=ctx.load_reporter())

    def _sweep(self, job: Sweep, ctx: JobContext) -> Iterator[Any]:
        from tokenscope.lm.fewshot import iter_sweep, sweep_size
        from tokenscope.lm.remote import RemoteError, RemoteModel

        total = sweep_size(job.prompt, job.max_shots, job.orders)  # bad settings fail here
        runs: list[tuple[Any, str]] = [(self.model, self.info.name if self.info else "model")]
        runs += [(None, other) for other in job.others]
        for model, label in runs:
            if model is None:
                yield SweepProgress(label, 0, 0)
                model = self._open_other(label, ctx)
            points, note = [], ""
            with contextlib.ExitStack() as stack:
                if isinstance(model, RemoteModel):
                    c = model.capabilities
                    if not c.can_score:
                        raise RemoteError(
                            f"{label} ({c.kind}) returns no log-probabilities of the prompt and "
                            "does not show its tokens, so it cannot score the expected answer "
                            "(vLLM, SGLang and llama.cpp can)"
                        )
                    model = _Scoped(model, stack.enter_context(ctx.remote()))
                for point in iter_sweep(
                    model, job.prompt, max_shots=job.max_shots, orders=job.orders, seed=job.seed
                ):
                    points.append(point)
                    yield SweepProgress(label, len(points), total)
                if isinstance(model, _Scoped) and model.bounded:
                    note = _BOUND_NOTE.format(k=model.model.capabilities.max_top_k)
            yield SweepSeries(label, tuple(points), note)
        return "completed"

    def _scalerun(self, job: ScaleRun, ctx: JobContext) -> Iterator[Any]:
        from tokenscope.lm.remote import RemoteModel
        from tokenscope.train import probe_runs as runs
        from tokenscope.train.run_folder import list_checkpoints

        if (job.probe is None) == (job.prompt is None):
            raise ValueError("a scale run measures either a probe or a few-shot task")
        # Every run (a ladder: every size) counts as one model; its checkpoints as units too.
        units: list[tuple[str, Path | None]] = []
        for target in job.targets:
            sizes = runs.run_sizes(target) if runs.is_run_folder(target) else []
            units += [(str(size), size) for size in sizes] or [(target, None)]
        total = len(units)
        if job.probe is not None:
            total += sum(len(list_checkpoints(run)) for _t, run in units if run is not None)
        done = 0

        requests = contextlib.ExitStack()  # the cancel scopes of models on servers

        def opener(target: str) -> Any:
            """A model for one measurement; a server's requests belong to this job, so
            Cancel ends one that is waiting on the server."""
            model = self._open_other(target, ctx)
            if isinstance(model, RemoteModel):
                return _Scoped(model, requests.enter_context(ctx.remote()))
            return model

        def step(label: str) -> ScaleProgress:
            nonlocal done
            ctx.check()
            done += 1
            return ScaleProgress(label, done - 1, total)

        with requests:
            yield from self._scale_units(job, ctx, units, opener, step)
        yield ScaleProgress("", total, total)
        return "completed"

    def _scale_units(self, job: ScaleRun, ctx: JobContext, units, opener, step) -> Iterator[Any]:
        from tokenscope.lm import scale
        from tokenscope.train import probe_runs as runs
        from tokenscope.train.run_folder import latest_checkpoint

        for target, run in units:
            yield step(target)
            try:
                model_target = target
                if run is not None:
                    last = latest_checkpoint(run)
                    if last is None:
                        raise ValueError(f"{run} has no complete checkpoint yet")
                    model_target = str(last)
                if job.probe is not None:
                    point = scale.measure_probe(
                        model_target, job.probe, use_cache=job.use_cache, open_model=opener
                    )
                    curve = None
                    if run is not None:
                        point = dataclasses.replace(point, name=runs.run_label(run))
                        curve = runs.training_curve(
                            run, job.probe, use_cache=job.use_cache, open_model=opener,
                            progress=lambda label, _n, _t: ctx.emit(step(label)),
                        )  # fmt: skip
                    yield ScaleResult(target, point=point, curve=curve)
                else:
                    sweep = scale.measure_sweep(
                        model_target, job.prompt, max_shots=job.max_shots,
                        use_cache=job.use_cache, open_model=opener,
                        on_point=lambda _p: ctx.check(),
                    )  # fmt: skip
                    if run is not None:
                        sweep = dataclasses.replace(sweep, name=runs.run_label(run))
                    yield ScaleResult(target, sweep=sweep)
            except JobCancelled:
                raise
            except Exception as e:  # one model's trouble, reported in its row; the rest go on
                if ctx.token.cancelled:  # (a server request ended by Cancel)
                    raise JobCancelled from None
                yield ScaleResult(target, error=str(e) or type(e).__name__)


class _Scoped:
    """A model on a server whose scoring requests belong to one job's CancelScope (for the
    few-shot scoring routines, which know nothing of scopes)."""

    def __init__(self, model: Any, scope: Any) -> None:
        self.model, self.scope = model, scope
        self.bounded = False  # some score was an upper bound (a token below the server's list)

    def __getattr__(self, name: str) -> Any:  # the rest (name, capabilities) as the model's
        return getattr(self.model, name)

    def score_continuation(self, context: str, continuation: str) -> Any:
        score = self.model.score_continuation(context, continuation, scope=self.scope)
        self.bounded = self.bounded or score.upper_bound
        return score


_BOUND_NOTE = (
    "some answer tokens are not among the server's top {k}: their probability is at most the "
    "last listed one's, so those values are upper bounds (and shares among the candidates "
    "approximate)"
)
