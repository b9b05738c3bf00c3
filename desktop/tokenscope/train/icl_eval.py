"""The in-context learning measures taken at every evaluation of a run (tokenscope.lm.icl).

The loop hands over the validation loss by position in the window, already computed for the
validation loss itself; the head scores cost one more forward pass over four short repeated
random sequences, with attention computed explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tokenscope.lm import icl
from tokenscope.lm.model import Transformer
from tokenscope.lm.tokenizer import Tokenizer

#: the window must hold this many tokens for the early and late stretches to differ
MIN_WINDOW = 10


def measure(
    model: Transformer, tokenizer: Tokenizer, by_position: torch.Tensor, *,
    mean: Callable[[list[float]], list[float]], heads: bool,
) -> dict[str, Any]:  # fmt: skip
    """`icl_score` from the validation loss by position (every process takes part in
    `mean`) and, when `heads`, the induction and previous-token scores of every head with
    their maxima; {} where they cannot be measured (a window too short)."""
    out: dict[str, Any] = {}
    if by_position.shape[0] >= MIN_WINDOW:
        (out["icl_score"],) = mean([icl.icl_from_losses(by_position)])
    if heads:
        pool = icl.token_pool(tokenizer, model.config.vocab_size)
        if model.config.context_length >= 5 and pool.size >= 2:
            scores = icl.head_scores(model, pool)
            out["induction_scores"] = _table(scores.induction)
            out["induction_max"] = scores.induction_max
            out["previous_token_scores"] = _table(scores.previous_token)
            out["previous_token_max"] = scores.previous_token_max
    return out


def _table(values: Any) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(round(float(v), 4) for v in row) for row in values)
