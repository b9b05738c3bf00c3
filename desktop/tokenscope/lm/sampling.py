"""Sampling as pure functions: logits in, probability distributions out.

The raw distribution is softmax(logits): what the model believes. The sampled distribution is
what a token is actually drawn from after the knobs are applied, in this order:

    repetition penalty -> temperature -> top-k -> top-p -> min-p -> renormalise

Temperature 0 means greedy: all mass on the most likely token (after the repetition penalty),
and so does any temperature below MIN_TEMPERATURE. Each filter keeps at least one token, so the
sampled distribution always sums to 1, and no finite knob within its range makes it NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from tokenscope.lm.arguments import (
    MAX_REPETITION_PENALTY,
    MAX_SEED,
    MAX_TEMPERATURE,
    number,
    whole,
)

#: temperatures below this sample greedily, as vLLM does (its _SAMPLING_EPS): dividing by
#: 1e-45 or 1e-308 in float32 is dividing by zero, and a temperature this small already puts
#: all but ~e^-100000 of the mass on the top token for logits 1 apart
MIN_TEMPERATURE = 1e-5


@dataclass(frozen=True)
class SamplingSettings:
    """The knobs. The defaults leave the distribution untouched (plain sampling)."""

    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off
    min_p: float = 0.0  # 0.0: off
    repetition_penalty: float = 1.0  # 1.0: off
    seed: int | None = None

    def __post_init__(self) -> None:
        """Check every knob's type and range; raises InvalidArgumentError naming the knob."""
        checked = {
            "temperature": number("temperature", self.temperature, low=0, high=MAX_TEMPERATURE),
            "top_k": whole("top_k", self.top_k, low=0),
            "top_p": number("top_p", self.top_p, low=0, high=1, low_open=True),
            "min_p": number("min_p", self.min_p, low=0, high=1),
            "repetition_penalty": number(
                "repetition_penalty",
                self.repetition_penalty,
                low=0,
                high=MAX_REPETITION_PENALTY,
                low_open=True,
            ),
            "seed": None if self.seed is None else whole("seed", self.seed, low=0, high=MAX_SEED),
        }
        for name, value in checked.items():  # numpy scalars and the like become plain Python
            object.__setattr__(self, name, value)

    @property
    def greedy(self) -> bool:
        """All mass on the most likely token: temperature 0, or below MIN_TEMPERATURE."""
        return self.temperature < MIN_TEMPERATURE

    @property
    def is_identity(self) -> bool:
        """True when the sampled distribution equals the raw one."""
        return (
            self.temperature == 1.0
            and self.top_k == 0
            and self.top_p == 1.0
            and self.min_p == 0.0
            and self.repetition_penalty == 1.0
        )


GREEDY = SamplingSettings(temperature=0.0)


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """Probabilities from logits (V,), computed in float32 whatever the model's dtype."""
    return torch.softmax(logits.float(), dim=-1)


def apply_repetition_penalty(
    logits: torch.Tensor, previous_ids: Iterable[int], penalty: float
) -> torch.Tensor:
    """Make tokens already seen less likely: positive logits divided by, negative multiplied by,
    the penalty (the CTRL paper's rule). Returns a new tensor, every value finite.

    A penalty far from 1 (1e-300 is in range) would overflow float32 to infinity and the
    softmax after it to NaN; the result is kept within the dtype's finite range instead, which
    is where the exact answer lies for any distribution a person can tell apart."""
    ids = torch.tensor(sorted(set(previous_ids)), dtype=torch.long, device=logits.device)
    if penalty == 1.0 or ids.numel() == 0:
        return logits
    out = logits.clone()
    seen = out[ids]
    largest = torch.finfo(out.dtype).max
    penalised = torch.where(seen > 0, seen / penalty, seen * penalty)
    out[ids] = penalised.nan_to_num(posinf=largest, neginf=-largest)
    return out


def top_k_filter(probs: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k most likely tokens (ties at the edge broken by index), renormalised."""
    if k <= 0 or k >= probs.numel():
        return probs
    kept = torch.topk(probs, k).indices
    out = torch.zeros_like(probs)
    out[kept] = probs[kept]
    return out / out.sum()


def top_p_filter(probs: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose mass reaches p, renormalised."""
    if p >= 1.0:
        return probs
    sorted_probs, order = torch.sort(probs, descending=True)
    mass_before = torch.cumsum(sorted_probs, dim=0) - sorted_probs
    keep_sorted = mass_before < p  # a token is kept while the mass before it is short of p
    keep_sorted[0] = True
    keep = torch.zeros_like(keep_sorted)
    keep[order] = keep_sorted
    out = torch.where(keep, probs, torch.zeros_like(probs))
    return out / out.sum()


def min_p_filter(probs: torch.Tensor, min_p: float) -> torch.Tensor:
    """Keep tokens at least min_p times as likely as the most likely one, renormalised."""
    if min_p <= 0.0:
        return probs
    threshold = min_p * probs.max()
    out = torch.where(probs >= threshold, probs, torch.zeros_like(probs))
    return out / out.sum()


def sampling_distribution(
    logits: torch.Tensor,
    settings: SamplingSettings,
    previous_ids: Iterable[int] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """(raw, sampled) distributions over the vocabulary for one position's logits (V,).

    Raises ModelFormatError when the logits are not all finite: a model whose weights hold
    NaN or infinity cannot give a distribution, and a NaN would otherwise surface as a
    baffling error from the sampler."""
    if not bool(torch.isfinite(logits).all()):
        from tokenscope.lm.errors import ModelFormatError

        raise ModelFormatError(
            "the model computed NaN or infinite scores for the next token; its weights are "
            "damaged or overflow in this precision"
        )
    raw = softmax(logits)
    if settings.is_identity:
        return raw, raw
    x = apply_repetition_penalty(logits.float(), previous_ids, settings.repetition_penalty)
    if settings.greedy:
        sampled = torch.zeros_like(raw)
        sampled[int(torch.argmax(x))] = 1.0
        return raw, sampled
    probs = softmax(_cooled(x, settings.temperature))
    probs = top_k_filter(probs, settings.top_k)
    probs = top_p_filter(probs, settings.top_p)
    probs = min_p_filter(probs, settings.min_p)
    return raw, probs


def _cooled(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits / temperature, shifted so that the largest is 0 first: the same softmax, but a
    small temperature can only push the others towards -inf (probability 0), never the top
    one to +inf (inf - inf is NaN)."""
    return (logits - logits.max()) / temperature


def draw(probs: torch.Tensor, generator: torch.Generator | None = None) -> int:
    """Draw one token id from a distribution; a one-hot distribution returns its token."""
    best = int(torch.argmax(probs))
    if float(probs[best]) >= 1.0:  # greedy: multinomial over 49k entries costs ~1.5 ms
        return best
    return int(torch.multinomial(probs, 1, generator=generator))


def entropy_bits(probs: torch.Tensor) -> float:
    """Shannon entropy in bits (0 for a certain outcome; log2(V) for a uniform one)."""
    # entr(p) = -p ln p, and 0 for p = 0 (a boolean mask over 49k entries cost ~0.3 ms).
    return float(torch.special.entr(probs.double()).sum()) / math.log(2)
