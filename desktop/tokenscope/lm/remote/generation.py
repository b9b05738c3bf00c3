"""Generation on a server: its event stream read as GenerationStep records.

A server streams one event per token (llama.cpp, vLLM) with the alternatives it listed; each
becomes the same record a local model yields, with the sampled alternatives computed from the
listed ones (tokenscope.lm.remote.distribution). The stream ends after `max_tokens` steps
whatever the server sends; a stream cut mid-way raises RemoteError after the tokens that
arrived, which the caller keeps.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

from tokenscope.lm.cancel import Cancelled
from tokenscope.lm.remote.distribution import RemoteDistribution
from tokenscope.lm.remote.parsing import StandIns, display, positions
from tokenscope.lm.remote.transport import Exchange, RemoteError
from tokenscope.lm.tokens import GenerationStep, TokenProbability

if TYPE_CHECKING:
    from tokenscope.lm.sampling import SamplingSettings

#: events read after the last token asked for (the held-back text and the finish reason
#: come then); a server that goes on beyond them is not listened to
EVENTS_AFTER_THE_LAST = 8
#: lines of an event stream per token asked for, at most (one event is "data: ..." and a
#: blank line; servers add comments and keep-alives)
LINES_PER_TOKEN = 16


class RemoteGeneration(Iterator[GenerationStep]):
    """The steps of a streamed generation (a tokenscope.lm.backend.GenerationStream)."""

    dropped_prompt_tokens = 0

    def __init__(
        self,
        exchange: Exchange | None,
        *,
        max_tokens: int,
        sampling: SamplingSettings | None,
        top_k: int,
        ids: StandIns,
        first: GenerationStep | None = None,
        stops: bool = False,
    ) -> None:
        self.prompt_ids: list[int] = []  # the server does not say how it split the prompt
        self.steps: list[GenerationStep] = []
        self.stop_reason: str | None = None
        self.tail = ""  # text that came with no token of its own (held back, then released)
        self._listed = False  # the server gave tokens with their log-probabilities
        self._stops = stops
        self._exchange, self._max = exchange, max_tokens
        self._sampling, self._top_k, self._ids = sampling, top_k, ids
        self._first = first
        self._steps = self._run()

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.steps) + self.tail

    @property
    def flushed(self) -> str:
        return self.tail

    def _stop_reason(self, reason: str, choice: dict[str, Any]) -> str:
        """Generation's stop_reason for a server's finish_reason. "stop" is the end of the
        text or a stop sequence: vLLM (and tokenscope serve) say which in `stop_reason` (the
        sequence, or null / a token id); llama.cpp does not, and a request that sent stop
        sequences counts as stopped by one."""
        if reason == "length":
            return "max_tokens"
        if reason != "stop":
            return "max_tokens"
        if "stop_reason" in choice:
            return "stop_string" if isinstance(choice["stop_reason"], str) else "eos"
        return "stop_string" if self._stops else "eos"

    def __next__(self) -> GenerationStep:
        return next(self._steps)

    def close(self) -> None:
        if self.stop_reason is None:
            self.stop_reason = "closed"
        self._steps.close()
        if self._exchange is not None:
            self._exchange.close()

    def _run(self) -> Generator[GenerationStep, None, None]:
        if self._first is not None:
            self.steps.append(self._first)
            yield self._first
        if len(self.steps) >= self._max or self._exchange is None:
            self.stop_reason = "max_tokens"
            return
        with self._exchange as exchange:
            yield from self._read(exchange)

    def _read(self, exchange: Exchange) -> Iterator[GenerationStep]:
        root = exchange.server.root
        finished, after_last = False, 0
        # Blank lines, comments and events without a token count too: a server that sends
        # nothing else forever is stopped.
        most_lines = LINES_PER_TOKEN * (self._max + EVENTS_AFTER_THE_LAST)
        last = time.perf_counter()
        try:
            for count, raw in enumerate(exchange.lines(), 1):
                if count > most_lines:
                    raise RemoteError(
                        f"{root} sent {most_lines} lines for a stream of {self._max} tokens "
                        "without finishing"
                    )
                line = raw.decode("utf-8", errors="replace").strip()
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    finished = True
                    break
                if len(self.steps) >= self._max:
                    after_last += 1  # whatever the server means to send: a few events more
                    if after_last > EVENTS_AFTER_THE_LAST:
                        break
                choice = _choice(payload, root, len(self.steps))
                raw_text = choice.get("text")
                text = raw_text if isinstance(raw_text, str) else ""
                found = positions(choice.get("logprobs"), self._ids, root)
                if not found and text:
                    if self._listed or len(self.steps) >= self._max:
                        # Text with no token of its own, after tokens that had theirs: text a
                        # server held back as a possible stop sequence (tokenscope serve).
                        self.tail += text
                        text = ""
                    else:
                        found = [(None, [])]  # a server without log-probs: the text as a step
                for token, top in found:
                    if len(self.steps) >= self._max:
                        break
                    self._listed = self._listed or token is not None
                    now = time.perf_counter()
                    # One token per event (llama.cpp, vLLM streaming): the event's text is the
                    # server's own decoding, whole characters even where one is split across
                    # tokens; continuing a branch sends it back.
                    own = text if len(found) == 1 or token is None else token.text
                    step = self._step(len(self.steps), own, token, top, now - last)
                    self.steps.append(step)
                    yield step
                    last = time.perf_counter()
                reason = choice.get("finish_reason")
                if reason:
                    finished = True
                    self.stop_reason = self._stop_reason(str(reason), choice)
        except RemoteError as e:
            if exchange.cancelled:
                raise Cancelled from None
            raise RemoteError(
                f"{e} (the stream stopped after {len(self.steps)} tokens; the tokens that "
                "arrived are kept)"
            ) from None
        if exchange.cancelled:
            raise Cancelled
        if not finished and len(self.steps) < self._max:
            raise RemoteError(
                f"{root} ended the stream after {len(self.steps)} tokens without finishing; "
                "the tokens that arrived are kept"
            )
        if self.stop_reason is None:
            self.stop_reason = "max_tokens"

    def _step(
        self,
        index: int,
        text: str,
        token: TokenProbability | None,
        top: list[TokenProbability],
        elapsed: float,
    ) -> GenerationStep:
        """The record of one streamed token, with its `top_k` most likely alternatives (the
        sampled values come from all listed)."""
        other = max(0.0, 1.0 - sum(t.probability for t in top))
        dist = RemoteDistribution(tuple(top), other, "")
        if self._sampling is not None and top:
            dist = dist.with_sampling(self._sampling)
        if token is None:
            token = TokenProbability(
                self._ids.id_for(None, text), text, display(text, None), 0.0, 0.0
            )
        sampled = {t.token_id: t.sampled_probability for t in dist.tokens}
        by_sampled = sorted(
            (t for t in dist.tokens if t.sampled_probability > 0),
            key=lambda t: -t.sampled_probability,
        )
        return GenerationStep(
            index=index,
            token_id=token.token_id,
            display=token.display,
            text=text,
            probability=token.probability,
            sampled_probability=sampled.get(token.token_id, 0.0),
            top_raw=dist.tokens[: self._top_k],
            top_sampled=tuple(by_sampled[: self._top_k]),
            entropy=dist.entropy if top else 0.0,
            elapsed=elapsed,
            full_vocabulary=False,
        )


def _choice(payload: str, root: str, index: int) -> dict[str, Any]:
    try:
        choice = json.loads(payload)["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
        choice = None
    if not isinstance(choice, dict):
        raise RemoteError(f"{root} sent a malformed event after {index} tokens: {payload[:80]!r}")
    return choice


def forced_step(source: GenerationStep, token_id: int) -> tuple[GenerationStep, str]:
    """Choosing `token_id` where `source` was generated, from a server's listed alternatives:
    the step (captured then, not recomputed) and the text to append to the prompt."""
    alternative = next((a for a in source.top_raw if a.token_id == token_id), None)
    if alternative is None:
        raise ValueError("that alternative is not one the server listed at this token")
    if not alternative.text or "\ufffd" in alternative.text:
        raise ValueError(
            f"{alternative.display} is part of a character split across tokens; a server "
            "continues from text, so choose an alternative that is whole"
        )
    sampled = {a.token_id: a.sampled_probability for a in source.top_sampled}
    step = dataclasses.replace(
        source,
        token_id=token_id,
        display=alternative.display,
        text=alternative.text,
        probability=alternative.probability,
        sampled_probability=sampled.get(token_id, 0.0),
        elapsed=0.0,
        is_eos=False,
    )
    return step, alternative.text
