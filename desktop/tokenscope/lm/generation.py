"""Token-by-token generation as an iterator of small immutable step records.

    gen = model.generate("Once upon a time", max_tokens=20, sampling=SamplingSettings(seed=1))
    for step in gen:
        print(step.text, end="")
    gen.stop_reason  # "eos", "stop_string", "max_tokens" or "closed"

Each step keeps the distribution it was drawn from (top-k, raw and after sampling) as it was
when the token was produced, so a viewer never has to recompute it.

Context window: a prompt longer than the window keeps its most recent tokens (how many were
dropped is in `dropped_prompt_tokens`). When generation fills the window, the oldest half is
dropped and the rest recomputed; the step where that happened has `context_shifted` set.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING

import torch

from tokenscope.lm.cancel import CancelToken
from tokenscope.lm.sampling import SamplingSettings, draw, entropy_bits, sampling_distribution
from tokenscope.lm.tokenizer import IncrementalDecoder, Tokenizer
from tokenscope.lm.tokens import GenerationStep, TokenProbability

if TYPE_CHECKING:
    from tokenscope.lm.language_model import LanguageModel


def choose_alternative(step: GenerationStep, token_id: int, tokenizer: Tokenizer) -> GenerationStep:
    """The record of choosing `token_id` where `step` was generated: the same distribution
    (captured then, not recomputed), another token. A branch starts with it."""
    raw = {a.token_id: a.probability for a in step.top_raw}
    sampled = {a.token_id: a.sampled_probability for a in step.top_sampled}
    return dataclasses.replace(
        step,
        token_id=token_id,
        display=tokenizer.display(token_id),
        text=tokenizer.token_text(token_id),
        probability=raw.get(token_id, 0.0),
        sampled_probability=sampled.get(token_id, 0.0),
        elapsed=0.0,
        is_eos=token_id == tokenizer.eos_id,
    )


class Generation(Iterator[GenerationStep]):
    """An iterator over generated tokens; `close()` (or leaving a for loop) stops the work."""

    def __init__(
        self,
        model: LanguageModel,
        prompt_ids: Sequence[int],
        *,
        max_tokens: int,
        sampling: SamplingSettings,
        stop: Sequence[str] = (),
        top_k: int = 10,
        first: GenerationStep | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        """`first`: a step chosen already (an alternative taken where another branch was
        generated): it is yielded first, as it was captured, and the model continues after
        its token. `cancel` is checked between tokens."""
        if max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0 (got {max_tokens})")
        window = model.config.context_length
        ids = list(prompt_ids)
        self.dropped_prompt_tokens = max(0, len(ids) - (window - 1))
        self.prompt_ids = ids[self.dropped_prompt_tokens :]
        self.steps: list[GenerationStep] = []
        self.stop_reason: str | None = None
        # The bytes of a character the last token left unfinished, as U+FFFD: text that
        # belongs to no step (set when generation ends by max_tokens).
        self.flushed = ""
        self.context_shifts = 0
        self._model = model
        self._max_tokens = max_tokens
        self._sampling = sampling
        self._stop = tuple(s for s in stop if s)
        self._stop_reach = max((len(s) for s in self._stop), default=0)
        self._top_k = top_k
        self._first = first
        self._cancel = cancel
        self._text_parts: list[str] = []
        self._steps = self._run()

    @property
    def text(self) -> str:
        """The generated text so far (without a stop string that ended it)."""
        text = "".join(self._text_parts)
        if self.stop_reason == "stop_string":
            cut = min((i for s in self._stop if (i := text.find(s)) >= 0), default=len(text))
            text = text[:cut]
        return text

    @property
    def token_ids(self) -> list[int]:
        return [s.token_id for s in self.steps]

    def __next__(self) -> GenerationStep:
        return next(self._steps)

    def close(self) -> None:
        """Stop generating; safe to call at any time, more than once."""
        if self.stop_reason is None:
            self.stop_reason = "closed"
        self._steps.close()

    def __enter__(self) -> Generation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stop_in_tail(self, new_chars: int) -> bool:
        """Whether a stop string ends in the text just added (only the tail is searched, so a
        long generation does not rescan all its text at every token)."""
        tail, need = [], new_chars + self._stop_reach - 1
        for part in reversed(self._text_parts):
            tail.append(part)
            need -= len(part)
            if need <= 0:
                break
        recent = "".join(reversed(tail))
        return any(s in recent for s in self._stop)

    def _alternatives(
        self, by: torch.Tensor, raw: torch.Tensor, sampled: torch.Tensor
    ) -> tuple[TokenProbability, ...]:
        """The top tokens by `by` (raw or sampled), with both probabilities of each."""
        k = min(self._top_k, int((by > 0).sum()))
        ids = torch.topk(by, k).indices.tolist()
        tok = self._model.tokenizer
        raw_p, sampled_p = raw[ids].tolist(), sampled[ids].tolist()
        return tuple(
            TokenProbability(i, tok.token_text(i), tok.display(i), r, s)
            for i, r, s in zip(ids, raw_p, sampled_p, strict=True)
        )

    def _run(self) -> Generator[GenerationStep, None, None]:
        model, tokenizer = self._model, self._model.tokenizer
        transformer = model.transformer
        window = model.config.context_length
        generator = None
        if self._sampling.seed is not None:
            # On the device the distribution lives on: torch.multinomial refuses a CPU
            # generator for a CUDA tensor.
            generator = torch.Generator(device=model.device).manual_seed(self._sampling.seed)
        decoder = IncrementalDecoder(tokenizer)
        context = list(self.prompt_ids)  # what the cache holds, plus the token to feed next
        cache = transformer.new_cache(len(context) + self._max_tokens)
        pending = context
        start = 0
        if self._first is not None and self._max_tokens > 0:
            first = self._first
            decoder.feed(first.token_id)
            self.steps.append(first)
            self._text_parts.append(first.text)
            context.append(first.token_id)
            start = 1
            if first.is_eos:
                self.stop_reason = "eos"
            yield first
            if self.stop_reason is not None:
                return
        for index in range(start, self._max_tokens):
            if self._cancel is not None:
                self._cancel.check()
            started = time.perf_counter()
            # Inference mode only around the work, never across the yield: code that runs
            # while this generator is suspended (another job on the same thread, a model
            # being loaded) must not find itself in inference mode.
            with torch.inference_mode():
                shifted = False
                if cache.length + len(pending) > window:
                    # Keep the most recent half of the window and recompute its cache.
                    context = context[-(window // 2) :]
                    cache.reset()
                    pending = context
                    shifted = True
                    self.context_shifts += 1
                ids = torch.tensor([pending], device=cache.keys.device)
                logits = model.forward(ids, cache)[0, -1]  # (V,)
                raw, sampled = sampling_distribution(logits, self._sampling, context)
                token = draw(sampled, generator)
                is_eos = token == tokenizer.eos_id
                text = "" if is_eos else decoder.feed(token)
                step = GenerationStep(
                    index=index,
                    token_id=token,
                    display=tokenizer.display(token),
                    text=text,
                    probability=float(raw[token]),
                    sampled_probability=float(sampled[token]),
                    top_raw=self._alternatives(raw, raw, sampled),
                    top_sampled=self._alternatives(sampled, raw, sampled),
                    entropy=entropy_bits(raw),
                    elapsed=time.perf_counter() - started,
                    context_shifted=shifted,
                    is_eos=is_eos,
                    removed_mass=(
                        0.0 if sampled is raw else float(torch.where(sampled > 0, 0.0, raw).sum())
                    ),
                )
            self.steps.append(step)
            self._text_parts.append(text)
            context.append(token)
            pending = [token]
            if is_eos:
                self.stop_reason = "eos"
            elif self._stop and self._stop_in_tail(len(text)):
                self.stop_reason = "stop_string"
            yield step
            if self.stop_reason is not None:
                return
        tail = decoder.flush()
        if tail:
            self._text_parts.append(tail)
            self.flushed = tail
        self.stop_reason = "max_tokens"
