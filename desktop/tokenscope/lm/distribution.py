"""The next-token distribution: P(token | context) over the whole vocabulary, made easy to read."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from tokenscope.lm.sampling import SamplingSettings, entropy_bits, sampling_distribution
from tokenscope.lm.tokens import TokenProbability

if TYPE_CHECKING:
    from tokenscope.lm.language_model import LanguageModel

__all__ = ["NextTokenDistribution", "TokenProbability"]


class NextTokenDistribution:
    """What the model predicts after a context, over the whole vocabulary (a
    tokenscope.lm.backend.Distribution whose every value is exact).

    Iterating yields the top-k as (token text, probability) pairs, most likely first.
    `raw` is softmax(logits); `sampled` is what sampling draws from after the knobs
    (they are the same tensor when no knob is set).
    """

    label = "full vocabulary"
    entropy_exact = True  # every token's probability is known
    sampled_exact = True
    other = 0.0  # no token goes unlisted
    other_sampled = 0.0

    def __init__(
        self,
        raw: torch.Tensor,
        sampled: torch.Tensor,
        *,
        model: LanguageModel,
        context_ids: Sequence[int],
        dropped_tokens: int = 0,
        top_k: int = 10,
        logits: torch.Tensor | None = None,
    ) -> None:
        self.logits = logits  # what raw came from, so other knob settings can be tried on it
        self.raw = raw
        self.sampled = sampled
        self.model = model
        self.context_ids = tuple(context_ids)
        self.dropped_tokens = dropped_tokens  # prompt tokens cut off to fit the context window
        self.top_k = top_k

    def __iter__(self) -> Iterator[tuple[str, float]]:
        for t in self.top():
            yield t.text, t.probability

    def __repr__(self) -> str:
        best = ", ".join(f"{t.display!r}: {t.probability:.3f}" for t in self.top(5))
        return f"NextTokenDistribution({best}, entropy={self.entropy:.2f} bits)"

    def top(self, k: int | None = None, *, sampled: bool = False) -> list[TokenProbability]:
        """The k most likely tokens under the raw (or the sampled) distribution."""
        k = self.top_k if k is None else k
        source = self.sampled if sampled else self.raw
        if sampled:
            k = min(k, int((source > 0).sum()))  # never list tokens that cannot be drawn
        _, ids = torch.topk(source, min(k, source.numel()))
        tok = self.model.tokenizer
        return [
            TokenProbability(
                token_id=i,
                text=tok.token_text(i),
                display=tok.display(i),
                probability=float(self.raw[i]),
                sampled_probability=float(self.sampled[i]),
            )
            for i in ids.tolist()
        ]

    @property
    def most_likely(self) -> TokenProbability:
        return self.top(1)[0]

    @property
    def entropy(self) -> float:
        """Entropy of the raw distribution, in bits."""
        return entropy_bits(self.raw)

    @property
    def removed_mass(self) -> float:
        """Raw probability of the tokens that the sampling knobs made impossible."""
        return float(self.raw[self.sampled == 0].sum())

    def with_sampling(self, sampling: SamplingSettings) -> NextTokenDistribution:
        """The same prediction seen through other sampling knobs; the model is not run again."""
        if self.logits is None:
            raise ValueError("this distribution keeps no logits to apply other knobs to")
        raw, sampled = sampling_distribution(self.logits, sampling, self.context_ids)
        return NextTokenDistribution(
            raw,
            sampled,
            model=self.model,
            context_ids=self.context_ids,
            dropped_tokens=self.dropped_tokens,
            top_k=self.top_k,
            logits=self.logits,
        )

    def vector(self, *, sampled: bool = False) -> np.ndarray:
        """The full distribution over the vocabulary as a float32 NumPy array (a copy)."""
        vector: np.ndarray = (self.sampled if sampled else self.raw).detach().cpu().numpy().copy()
        return vector

    def probability_of(self, continuation: str | Sequence[int]) -> float:
        """Raw probability that the text continues with `continuation` (one or more tokens).

        For several tokens this is the product of each token's probability given the context
        and the tokens before it, computed with the model.
        """
        ids = (
            self.model.tokenizer.encode(continuation)
            if isinstance(continuation, str)
            else list(continuation)
        )
        if not ids:
            raise ValueError("the continuation is empty")
        if len(ids) == 1:
            return float(self.raw[ids[0]])
        return self.model.score_continuation(self.context_ids, ids).probability
