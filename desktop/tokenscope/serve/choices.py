"""One choice of a completion or a chat completion: tokens from the engine, text for the client.

What the client reads as text follows OpenAI's rules: special tokens (the end of the text,
`<|im_end|>`) are never in it, and it ends before the first stop sequence, which is held back
while it may still be forming so that a stream never sends part of one. Each token still has
its log-probability, stop sequence or not.

    for token in walk(served, prompt_ids, settings):   # takes the model's lock a step at a time
        token.text, token.step, token.stopped
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tokenscope.lm.sampling import SamplingSettings
from tokenscope.lm.tokens import GenerationStep
from tokenscope.serve.state import Served


class StopText:
    """Text as it may be shown, given stop sequences: `feed` returns what can be sent now
    (everything but a tail that may still become a stop sequence) and whether one appeared."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.held = ""
        self.stopped = False
        self.matched: str | None = None  # the stop sequence that ended the text

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self.held += piece
        hits = [(i, s) for s in self.stops if (i := self.held.find(s)) >= 0]
        if hits:
            at, self.matched = min(hits)
            out, self.held, self.stopped = self.held[:at], "", True
            return out
        keep = self._partial()
        out = self.held[: len(self.held) - keep]
        self.held = self.held[len(self.held) - keep :]
        return out

    def _partial(self) -> int:
        """How many characters at the end might begin a stop sequence."""
        longest = max((len(s) for s in self.stops), default=1)
        for k in range(min(len(self.held), longest - 1), 0, -1):
            tail = self.held[-k:]
            if any(s.startswith(tail) for s in self.stops):
                return k
        return 0

    def flush(self) -> str:
        out, self.held = self.held, ""
        return out


@dataclass(frozen=True)
class Token:
    """A generated token: its step (for the log-probabilities), the text it lets the client
    see now, its own text (where it stands in the choice's text: `text_offset`), and whether
    the choice ends here."""

    step: GenerationStep
    text: str
    own: str  # the token's text as the model made it ("" for a special token)
    stopped: bool


@dataclass(frozen=True)
class Settings:
    """What one choice is generated with."""

    max_tokens: int
    sampling: SamplingSettings
    stop: tuple[str, ...]
    top_k: int  # alternatives kept for each token


def choice_settings(settings: Settings, index: int) -> Settings:
    """The settings of the `index`-th choice of a prompt: a seed, if given, moves on by one
    for each, so that n choices are n draws, and the same request draws them again."""
    seed = settings.sampling.seed
    if seed is None or index == 0:
        return settings
    sampling = dataclasses.replace(settings.sampling, seed=seed + index)
    return dataclasses.replace(settings, sampling=sampling)


@dataclass
class Outcome:
    """How a walk ended, filled in as it goes."""

    tokens: int = 0
    finish_reason: str = "length"  # "stop": the model ended the text, or a stop sequence
    stop_sequence: str | None = None  # the one that ended it (vLLM's "stop_reason")
    tail: str = ""  # text held back as a possible stop sequence, and none came: send it last


def walk(served: Served, ids: list[int], settings: Settings, outcome: Outcome) -> Iterator[Token]:
    """Generate after `ids`, taking the model's lock for each step only (a slow or vanished
    client must not hold the model), until the model ends the text, a stop sequence appears
    or `max_tokens` were made."""
    tok = served.tokenizer
    cut = StopText(settings.stop)
    with served.lock:
        gen = served.model.generate(
            ids, max_tokens=settings.max_tokens, sampling=settings.sampling, top_k=settings.top_k
        )
    try:
        while True:
            with served.lock:
                step = next(gen, None)
            if step is None:
                break
            outcome.tokens += 1
            own = "" if tok.is_special(step.token_id) else step.text
            text = cut.feed(own)
            if cut.stopped or step.is_eos:
                outcome.finish_reason = "stop"
                outcome.stop_sequence = cut.matched
                yield Token(step, text, own, True)
                break
            yield Token(step, text, own, False)
        # What was held back as a possible stop sequence, and a character the last token left
        # unfinished (as U+FFFD).
        outcome.tail = cut.feed(gen.flushed) + cut.flush()
    finally:
        gen.close()  # (it only drops the generation's state: no model call, no lock)
