"""Measures of in-context learning, for a finished model and during training.

    heads = head_scores(model.transformer, pool, bos_id=..., length=31)
    heads.induction            # (layers, heads): attention to "the token after the earlier A"
    heads.previous_token       # (layers, heads): attention to the token just before
    icl = icl_score(model.transformer, windows)  # late loss minus early loss, nats

Olsson et al. (2022, "In-context learning and induction heads") define the in-context learning
score as the loss on a late token of a context minus the loss on an early one: a model that
learns from what it has read predicts the 500th token better than the 50th, and the score goes
negative. Here "late" is the last tenth of the window and "early" the tenth after its first
twentieth (tokens 50-100 and 900-1000 of 1000; 3-6 and 57-64 of 64), averaged over the
windows given, so one token's luck does not decide it.

An induction head, in the second copy of a repeated random sequence, attends from each token
to the token that followed that token's earlier occurrence (it then copies it: "A B ... A" ->
B); it builds on a previous-token head in an earlier layer that writes "the token before me
was A" into each position. Both scores come from the same forward passes over repeated random
sequences, so no knowledge of language helps: only copying does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from tokenscope.lm.hooks import run_with_cache

if TYPE_CHECKING:
    from tokenscope.lm.language_model import LanguageModel
    from tokenscope.lm.model import Transformer
    from tokenscope.lm.tokenizer import Tokenizer


@dataclass(frozen=True)
class HeadScores:
    """Every head's induction and previous-token score (layers, heads), each from 0 to 1."""

    induction: np.ndarray
    previous_token: np.ndarray

    @property
    def induction_max(self) -> float:
        return float(self.induction.max())

    @property
    def previous_token_max(self) -> float:
        return float(self.previous_token.max())

    def strongest_induction_head(self) -> tuple[int, int]:
        """(layer, head) of the highest induction score."""
        layer, head = np.unravel_index(int(self.induction.argmax()), self.induction.shape)
        return int(layer), int(head)


def token_pool(tokenizer: Tokenizer, vocab_size: int) -> np.ndarray:
    """The ids a random sequence may use: every token of the model's vocabulary that the
    tokenizer has, less the special ones (BOS, end of text, unknown)."""
    special = {i for i in (tokenizer.bos_id, tokenizer.eos_id) if i is not None}
    top = min(tokenizer.vocab_size, vocab_size)
    return np.array([i for i in range(top) if i not in special and not tokenizer.is_special(i)],
                    dtype=np.int64)  # fmt: skip


def repeated_sequences(
    pool: Sequence[int] | np.ndarray, length: int, count: int, *, seed: int = 0,
    bos_id: int | None = None,
) -> np.ndarray:  # fmt: skip
    """(count, [BOS] + 2 * length) token ids: random tokens from `pool`, then the same again."""
    pool = np.asarray(pool, dtype=np.int64)
    if pool.size < 2:
        raise ValueError("repeated sequences need at least 2 tokens to choose from")
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        half = rng.choice(pool, size=length, replace=pool.size < length)
        start = [bos_id] if bos_id is not None else []
        rows.append(np.concatenate([np.array(start, dtype=np.int64), half, half]))
    return np.stack(rows)


@torch.no_grad()
def head_scores(
    transformer: Transformer, pool: Sequence[int] | np.ndarray, *, length: int | None = None,
    seed: int = 0, repeats: int = 4, bos_id: int | None = None,
) -> HeadScores:  # fmt: skip
    """Induction and previous-token scores of every head on `repeats` repeated random
    sequences of `length` tokens from `pool` (by default a quarter of the window, at most
    50), in one batched forward pass that computes attention explicitly."""
    window = transformer.config.context_length
    start = 1 if bos_id is not None else 0
    longest = (window - start) // 2
    # A quarter of the window at most: the copy then lies where a model trained on this
    # window has seen copies (a head may copy only from so far back), 50 tokens at most.
    n = length or max(2, min(50, window // 4))
    if not 2 <= n <= longest:
        raise ValueError(f"length must be from 2 to {longest} for this model")
    ids = repeated_sequences(pool, n, repeats, seed=seed, bos_id=bos_id)
    names = [f"blocks.{i}.attn.pattern" for i in range(len(transformer.blocks))]
    device = next(transformer.parameters()).device
    was_training = transformer.training
    transformer.eval()
    try:
        _logits, cache = run_with_cache(transformer, torch.from_numpy(ids).to(device), names)
    finally:
        transformer.train(was_training)
    w = torch.stack([cache[name] for name in names]).float()  # (L, B, nh, T, T)
    # The second copy's i-th token (position start + n + i) should look at the token after
    # the first copy's i-th (start + i + 1).
    queries = torch.arange(start + n, start + 2 * n - 1, device=w.device)
    induction = w[:, :, :, queries, queries - n + 1].mean(dim=(1, 3))
    # Previous-token: every position after the first token of the sequence proper.
    later = torch.arange(start + 1, start + 2 * n, device=w.device)
    previous = w[:, :, :, later, later - 1].mean(dim=(1, 3))
    return HeadScores(induction.cpu().numpy(), previous.cpu().numpy())


def icl_positions(window: int) -> tuple[slice, slice]:
    """The early and late stretches of a window of `window` predicted tokens."""
    if window < 10:
        raise ValueError(f"the in-context learning score needs a window of 10 tokens or more "
                         f"(got {window})")  # fmt: skip
    early = slice(max(1, window // 20), max(2, window // 10))
    late = slice(window - max(1, window // 10), window)
    return early, late


def icl_from_losses(losses: np.ndarray | torch.Tensor) -> float:
    """The score from per-position losses (rows: windows, columns: positions)."""
    loss = torch.as_tensor(losses, dtype=torch.float64)
    per_position = loss.reshape(-1, loss.shape[-1]).mean(0)
    early, late = icl_positions(per_position.shape[0])
    return float(per_position[late].mean() - per_position[early].mean())


#: logits made at once when scoring positions, at most (rows x vocabulary): a 262,144-token
#: vocabulary (Gemma 3) over 32 windows of 511 positions would be 17 GB in one go
LOGITS_AT_ONCE = 1 << 24


@torch.no_grad()
def position_losses(transformer: Transformer, windows: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(B, T - 1): the loss on each next token of each window of token ids (B, T). One
    window's forward pass at a time, its logits made a slice of positions at a time from the
    last block's output, so memory stays bounded whatever the vocabulary."""
    from tokenscope.lm.hooks import hooks

    x = torch.as_tensor(windows, dtype=torch.long)
    device = next(transformer.parameters()).device
    last = f"blocks.{len(transformer.blocks) - 1}.resid_post"
    rows = max(1, LOGITS_AT_ONCE // transformer.config.vocab_size)
    out = torch.empty(x.shape[0], x.shape[1] - 1)
    was_training = transformer.training
    transformer.eval()
    try:
        for b in range(x.shape[0]):
            row = x[b : b + 1].to(device)
            seen: dict[str, torch.Tensor] = {}

            def keep(h: torch.Tensor, _name: str, seen: dict[str, torch.Tensor] = seen) -> None:
                seen["h"] = h

            with hooks(transformer, [(last, keep)]):
                transformer(row[:, :-1], last_only=True)  # (only the last logits are made)
            hidden = seen["h"][0]  # (T - 1, C)
            for at in range(0, hidden.shape[0], rows):
                logits = transformer.unembed(hidden[at : at + rows]).float()
                targets = row[0, 1 + at : 1 + at + logits.shape[0]]
                out[b, at : at + logits.shape[0]] = F.cross_entropy(
                    logits, targets, reduction="none"
                ).cpu()
    finally:
        transformer.train(was_training)
    return out


def icl_score(transformer: Transformer, windows: np.ndarray | torch.Tensor) -> float:
    """Mean loss on the late tokens minus on the early tokens of `windows` (B, T), in nats:
    negative when the model predicts better with more context read."""
    return icl_from_losses(position_losses(transformer, windows))


# ----- a whole model, on a text -------------------------------------------------------------

#: the window the score is taken over for a model with a longer context (Olsson et al.: 512)
LONGEST_WINDOW = 512
#: text read to cut windows from, at most (a long file is not tokenized whole)
TEXT_CHARS = 400_000
#: windows averaged by default: the loss of one token varies by nats, and each stretch of a
#: 512-token window holds ~25-50 tokens; 8 windows left SmolLM2's score within noise of 0
WINDOWS = 32


@dataclass(frozen=True)
class ICLReport:
    """A model's in-context learning on a text, and what its strongest induction head adds."""

    icl_score: float  # late minus early loss, nats (negative: learns from context)
    heads: HeadScores
    strongest_head: tuple[int, int]  # (layer, head) of the highest induction score
    icl_without_strongest: float  # the same score with that head silenced
    window: int  # tokens per window
    windows: int

    @property
    def undone(self) -> float | None:
        """The share of the ICL score that silencing the strongest head takes away (1: all
        of it); None when the score is not negative to begin with."""
        if self.icl_score >= 0:
            return None
        return (self.icl_score - self.icl_without_strongest) / self.icl_score


def text_windows(model: LanguageModel, text: str, *, count: int = WINDOWS) -> np.ndarray:
    """Up to `count` windows (rows) of token ids cut one after the other from `text`, each as
    long as the model's context allows (at most LONGEST_WINDOW), with BOS first where the
    model uses one. Raises ValueError when the text is too short for one window."""
    tok = model.tokenizer
    start = [tok.bos_id] if tok.bos_id is not None else []
    window = min(model.config.context_length, LONGEST_WINDOW) - len(start)
    ids = tok.encode(text[:TEXT_CHARS])
    rows = [start + ids[i : i + window] for i in range(0, len(ids) - window + 1, window)][:count]
    if not rows or window < 10:
        raise ValueError(f"the text is too short for the in-context learning score: it needs "
                         f"{window} tokens for one window and has {len(ids)}")  # fmt: skip
    return np.array(rows, dtype=np.int64)


def report(model: LanguageModel, text: str, *, count: int = WINDOWS, seed: int = 0) -> ICLReport:
    """The ICL score of `model` on windows of `text`, its heads' scores, and the ICL score
    again with the strongest induction head silenced (the causal test)."""
    from tokenscope.lm.inside import ablated
    from tokenscope.lm.inside import head_scores as model_head_scores

    windows = text_windows(model, text, count=count)
    skip = 1 if model.tokenizer.bos_id is not None else 0
    losses = position_losses(model.transformer, windows)[:, skip:]
    heads = model_head_scores(model, seed=seed)
    strongest = heads.strongest_induction_head()
    with ablated(model, {strongest}):
        without = position_losses(model.transformer, windows)[:, skip:]
    return ICLReport(icl_from_losses(losses), heads, strongest, icl_from_losses(without),
                     windows.shape[1], windows.shape[0])  # fmt: skip


def transition(steps: Sequence[int], scores: Sequence[float]) -> int | None:
    """The step where the ICL score falls fastest (its steepest drop between two
    evaluations, per step), or None without a drop: the marker on a run's loss curve."""
    if len(steps) != len(scores):
        raise ValueError("one score per step")
    best, where = 0.0, None
    for i in range(1, len(steps)):
        s0, s1, fall = steps[i - 1], steps[i], scores[i - 1] - scores[i]
        if s1 > s0 and fall / (s1 - s0) > best:
            best, where = fall / (s1 - s0), s1
    return where
