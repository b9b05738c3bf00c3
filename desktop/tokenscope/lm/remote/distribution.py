"""A server's next-token distribution: the top k tokens it listed and the rest as one share.

It answers tokenscope.lm.backend.Distribution; what it cannot know it says: the entropy is a
lower bound (the unlisted tokens counted as one), and the after-sampling values are exact
only where the knobs keep listed tokens alone (see `with_sampling`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenscope.lm.tokens import TokenProbability

if TYPE_CHECKING:  # (only its fields are read: a remote model needs no PyTorch)
    from tokenscope.lm.sampling import SamplingSettings


@dataclass(frozen=True)
class RemoteDistribution:
    """The listed tokens, most likely first (`sampled_probability`: after the knobs set by
    `with_sampling`, else the raw value), and the unlisted ones as `other`."""

    tokens: tuple[TokenProbability, ...]
    other: float  # raw probability of every token not listed
    label: str  # "remote · top-20 · raw"
    other_sampled: float = -1.0  # after the knobs (-1: none applied, the same as `other`)
    sampled_exact: bool = True
    context_ids: tuple[int, ...] = ()  # the server does not say what it saw
    dropped_tokens: int = 0
    top_k: int = 10  # how many `top()` lists by default

    def __post_init__(self) -> None:
        if self.other_sampled < 0:
            object.__setattr__(self, "other_sampled", self.other)

    def top(self, k: int | None = None) -> list[TokenProbability]:
        return list(self.tokens[: self.top_k if k is None else k])

    @property
    def most_likely(self) -> TokenProbability:
        return self.tokens[0]

    @property
    def entropy(self) -> float:
        """A lower bound of the entropy in bits: the unlisted tokens counted as one."""
        ps = [t.probability for t in self.tokens] + [self.other]
        return -sum(p * math.log2(p) for p in ps if p > 0)

    @property
    def entropy_exact(self) -> bool:
        return self.other == 0.0

    @property
    def removed_mass(self) -> float:
        """Raw probability of the tokens the knobs made impossible (listed, and the rest)."""
        gone = sum(t.probability for t in self.tokens if t.sampled_probability == 0.0)
        return gone + (self.other if self.other_sampled == 0.0 else 0.0)

    def probability_of(self, continuation: str) -> float | None:
        """The probability of a listed next token, None when the server did not list it."""
        return next((t.probability for t in self.tokens if t.text == continuation), None)

    def with_sampling(self, sampling: SamplingSettings) -> RemoteDistribution:
        """What sampling would draw from, computed from the listed tokens.

        Exact where the knobs keep only listed tokens (a top-k within the list, a top-p or
        min-p cut that falls inside it) or leave the probabilities as they are; otherwise
        approximate, with the unlisted tokens treated as one: a temperature other than 1 moves
        mass between tokens the server did not show, and a repetition penalty needs the
        logits of the tokens already in the text.
        """
        shares, other, exact = _after_sampling(
            [t.probability for t in self.tokens], self.other, sampling
        )
        tokens = tuple(
            dataclasses.replace(t, sampled_probability=p)
            for t, p in zip(self.tokens, shares, strict=True)
        )
        return dataclasses.replace(self, tokens=tokens, other_sampled=other, sampled_exact=exact)


def _after_sampling(
    listed: list[float], other: float, sampling: SamplingSettings
) -> tuple[tuple[float, ...], float, bool]:
    """(share of each listed token, share of the unlisted ones, exact) after the knobs, in the
    local sampler's order: temperature, top-k, top-p, min-p."""
    n = len(listed)
    if n == 0:
        return (), 1.0 if other > 0 else 0.0, other == 0.0
    if sampling.greedy:
        return (1.0, *([0.0] * (n - 1))), 0.0, True
    # `tail` is the mass of the unlisted tokens, `approximate` whether anything depended on
    # how it is spread among them.
    approximate = sampling.repetition_penalty != 1.0
    power = 1.0 / sampling.temperature
    if power != 1.0:
        # p ** power relative to the most likely token's (sharing is unchanged by a common
        # factor): in logs, so that a low temperature cannot underflow every share to 0.
        top = max(listed[0], 1e-300)

        def relative(p: float) -> float:
            return math.exp(min(700.0, power * math.log(p / top))) if p > 0 else 0.0

        scaled, tail = [relative(p) for p in listed], relative(other)
    else:
        scaled, tail = listed[:], other
    tail_known = power == 1.0 or other == 0.0  # one token's worth, or all of them
    keep = n
    if sampling.top_k:
        if sampling.top_k <= n:
            keep, tail = sampling.top_k, 0.0
        elif tail > 0:
            approximate = True  # some unlisted tokens stay, some go
    if sampling.top_p < 1.0:
        total = sum(scaled[:keep]) + tail
        running, cut = 0.0, None
        for i, p in enumerate(scaled[:keep]):
            running += p / total
            if running >= sampling.top_p:
                cut = i + 1
                break
        if tail > 0 and not tail_known:
            approximate = True  # the shares the cut is made on depend on the tail
        if cut is not None:
            keep, tail = cut, 0.0
        elif tail > 0:
            approximate = True  # part of the unlisted tokens stays
    if sampling.min_p > 0.0:
        floor = sampling.min_p * scaled[0]
        keep = max(1, sum(1 for p in scaled[:keep] if p >= floor))
        if tail > 0:
            if scaled[n - 1] < floor:
                tail = 0.0  # every unlisted token is below the last listed one
            else:
                approximate = True
    if tail > 0 and not tail_known:
        approximate = True
    kept = scaled[:keep]
    total = sum(kept) + tail
    shares = tuple(p / total for p in kept) + (0.0,) * (n - keep)
    return shares, tail / total, not approximate
