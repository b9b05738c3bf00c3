"""Looking inside the forward pass: why the model predicts what it predicts.

    lens = logit_lens(model, "The capital of Indonesia is")      # every layer's guess
    lens.first_top_layer                                          # where the answer wins
    maps = attention(model, "a b c a b")                          # (layers, heads, T, T)
    scores = induction_scores(model)                              # (layers, heads)
    with ablated(model, {(1, 0)}):                                # head 0 of layer 1 silenced
        model.predict_next_token_probabilities("...")
    s = surprisal(model, text)                                    # bits per token and per byte

Everything here reads or changes the model through its named hook points
(tokenscope.lm.hooks). The logit lens applies the model's own final norm, output head and soft
cap to `resid_pre` of the first block and `resid_post` of each block: the last row is the
model's prediction. Attention weights come from `attn.pattern`, which makes a layer compute
them explicitly (softmax(q k^T / sqrt(d) + mask)) only while asked; the fused attention stays
the default. Ablating a head zeroes it at `attn.head_out`, before the output projection, in
every forward (the chart, generation and sweeps) until it is undone.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from tokenscope.lm import icl
from tokenscope.lm.arguments import unicode_text
from tokenscope.lm.hooks import run_with_cache

if TYPE_CHECKING:
    from tokenscope.lm.language_model import LanguageModel

_LN2 = math.log(2.0)


def _ids(model: LanguageModel, prompt: str | Sequence[int]) -> tuple[list[int], int]:
    """The ids the model sees for `prompt` (BOS and the window as for a prediction), and how
    many were cut from the front."""
    ids = model._context_ids(prompt)
    dropped = max(0, len(ids) - model.config.context_length)
    return ids[dropped:], dropped


# ----- the logit lens -----------------------------------------------------------------------


@dataclass(frozen=True)
class LensRow:
    """One layer's reading of the residual stream at the position looked at."""

    layer: int  # 0: the embeddings, before the first block; n: after block n
    top: tuple[tuple[int, str, float], ...]  # (token id, label, probability), most likely first
    target_rank: int  # rank of the final prediction here (1: it is this layer's top token)
    target_probability: float
    entropy: float  # bits


@dataclass(frozen=True)
class Lens:
    """The logit lens at one position of a prompt."""

    token_ids: tuple[int, ...]  # what the model saw
    position: int  # the position looked at (its next token is predicted)
    target: int  # the model's own most likely next token there (the last layer's top)
    target_label: str
    rows: tuple[LensRow, ...]  # embeddings, then each layer
    dropped_tokens: int = 0

    @property
    def first_top_layer(self) -> int | None:
        """The first layer where the final prediction is already the most likely token."""
        return next((r.layer for r in self.rows if r.target_rank == 1), None)

    def probabilities(self) -> np.ndarray:
        """(layers + 1, k): the top tokens' probabilities, row by row (for a heat table)."""
        return np.array([[p for _i, _l, p in r.top] for r in self.rows])


@torch.inference_mode()
def logit_lens(
    model: LanguageModel, prompt: str | Sequence[int], *, position: int = -1, top_k: int = 10
) -> Lens:
    """Every layer's next-token distribution at `position` (default: the last, i.e. the next
    token after the prompt), read through the model's own final norm and output head."""
    ids, dropped = _ids(model, prompt)
    if not -len(ids) <= position < len(ids):
        raise ValueError(f"position {position} is outside the {len(ids)} tokens")
    at = position % len(ids)
    t = model.transformer
    layers = len(t.blocks)
    names = ["blocks.0.resid_pre"] + [f"blocks.{i}.resid_post" for i in range(layers)]
    _logits, cache = run_with_cache(t, torch.tensor([ids], device=model.device), names)
    stack = torch.stack([cache[name][0, at] for name in names])  # (L + 1, C)
    logp = torch.log_softmax(t.unembed(stack).float(), dim=-1)  # (L + 1, V)
    target = int(logp[-1].argmax())
    probs = logp.exp()
    k = min(top_k, probs.shape[-1])
    values, indices = probs.topk(k, dim=-1)
    entropy = -(probs * logp).nan_to_num().sum(-1) / _LN2
    target_p = probs[:, target]
    ranks = (probs > target_p[:, None]).sum(-1) + 1
    tok = model.tokenizer
    rows = tuple(
        LensRow(
            layer,
            tuple(
                (i, tok.display(i), p)
                for i, p in zip(indices[layer].tolist(), values[layer].tolist(), strict=True)
            ),
            int(ranks[layer]),
            float(target_p[layer]),
            float(entropy[layer]),
        )
        for layer in range(layers + 1)
    )
    return Lens(tuple(ids), at, target, tok.display(target), rows, dropped)


# ----- attention ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AttentionMaps:
    """Attention weights of every layer and head for one prompt: weights[l, h, i, j] is how
    much position i attends to position j (rows sum to 1; j > i is 0)."""

    token_ids: tuple[int, ...]
    labels: tuple[str, ...]
    weights: np.ndarray  # (layers, heads, T, T), float32

    def averaged(self, layer: int) -> np.ndarray:
        """(T, T): the layer's heads averaged."""
        averaged: np.ndarray = self.weights[layer].mean(axis=0)
        return averaged


def _patterns(model: LanguageModel, ids: list[int]) -> torch.Tensor:
    """Every layer's attention weights (L, nh, T, T) over `ids`, from one forward pass."""
    names = [f"blocks.{i}.attn.pattern" for i in range(len(model.transformer.blocks))]
    x = torch.tensor([ids], device=model.device)
    _logits, cache = run_with_cache(model.transformer, x, names)
    return torch.stack([cache[name][0] for name in names]).float()  # (L, nh, T, T)


@torch.inference_mode()
def attention(model: LanguageModel, prompt: str | Sequence[int]) -> AttentionMaps:
    """Every layer's and head's attention weights over the prompt, from one forward pass
    through the explicit attention path."""
    ids, _dropped = _ids(model, prompt)
    weights = _patterns(model, ids).cpu().numpy()  # (L, H, T, T)
    tok = model.tokenizer
    return AttentionMaps(tuple(ids), tuple(tok.display(i) for i in ids), weights)


@torch.inference_mode()
def induction_scores(
    model: LanguageModel, *, length: int | None = None, seed: int = 0, repeats: int = 4
) -> np.ndarray:
    """(layers, heads): how much each head attends, in the second copy of a repeated random
    token sequence, to the token just after the earlier occurrence of the current one — the
    pattern an induction head follows to copy ("A B ... A" -> B). Near 1 for a head that
    copies, near 0 for one that does not; averaged over `repeats` random sequences
    (tokenscope.lm.icl.head_scores, which also gives the previous-token scores)."""
    return head_scores(model, length=length, seed=seed, repeats=repeats).induction


@torch.inference_mode()
def head_scores(
    model: LanguageModel, *, length: int | None = None, seed: int = 0, repeats: int = 4
) -> icl.HeadScores:
    """Every head's induction and previous-token scores, from the same forward passes."""
    tok = model.tokenizer
    pool = icl.token_pool(tok, model.config.vocab_size)
    return icl.head_scores(model.transformer, pool, length=length, seed=seed, repeats=repeats,
                           bos_id=tok.bos_id)  # fmt: skip


@contextlib.contextmanager
def ablated(model: LanguageModel, heads: Iterable[tuple[int, int]]) -> Iterator[None]:
    """While inside, the given (layer, head) pairs add nothing to the residual stream."""
    before = ablation(model)
    set_ablation(model, set(before) | set(heads))
    try:
        yield
    finally:
        set_ablation(model, before)


def ablation(model: LanguageModel) -> frozenset[tuple[int, int]]:
    """The (layer, head) pairs ablated now."""
    heads = model.intervention("ablation")
    return heads if isinstance(heads, frozenset) else frozenset()


def set_ablation(model: LanguageModel, heads: Iterable[tuple[int, int]]) -> None:
    """Ablate exactly these (layer, head) pairs (none: the model as trained): a hook on each
    affected layer's `attn.head_out` zeroes those heads' outputs before the projection mixes
    them, in every forward pass until changed."""
    c = model.config
    chosen: dict[int, set[int]] = {}
    for layer, head in heads:
        if not (0 <= layer < c.n_layer and 0 <= head < c.n_head):
            raise ValueError(
                f"no head {head} in layer {layer} (the model has {c.n_layer} layers of "
                f"{c.n_head} heads)"
            )
        chosen.setdefault(layer, set()).add(head)
    fns = [(f"blocks.{layer}.attn.head_out", _silencer(sorted(hs))) for layer, hs in chosen.items()]
    pairs = frozenset((layer, h) for layer, hs in chosen.items() for h in hs)
    model.intervene("ablation", pairs, fns)


def _silencer(heads: list[int]) -> Callable[[torch.Tensor, str], torch.Tensor]:
    def silence(y: torch.Tensor, _name: str) -> torch.Tensor:  # y: (B, nh, T, hs)
        keep = torch.ones(y.shape[1], 1, 1, dtype=y.dtype, device=y.device)
        keep[heads] = 0
        return y * keep  # those heads add nothing to the residual stream

    return silence


# ----- surprisal ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenSurprisal:
    token_id: int
    display: str
    start: int  # characters of the text this token covers
    end: int
    byte_start: int  # and its UTF-8 bytes
    byte_end: int
    logprob: float | None  # natural log of P(token | the text before it); None for the first
    rank: int | None  # 1: the model's most likely token there
    top: tuple[tuple[str, float], ...]  # the model's top alternatives there: (label, P)

    @property
    def bits(self) -> float | None:
        return None if self.logprob is None else -self.logprob / _LN2

    @property
    def probability(self) -> float | None:
        return None if self.logprob is None else math.exp(self.logprob)


@dataclass(frozen=True)
class Surprisal:
    """Every token of a text and how surprising it was to the model."""

    text: str
    tokens: tuple[TokenSurprisal, ...]
    model: str = ""
    windows: int = 1  # forward passes (a text longer than the context takes several)

    @property
    def scored(self) -> list[TokenSurprisal]:
        return [t for t in self.tokens if t.logprob is not None]

    @property
    def total_bits(self) -> float:
        return sum(bits for t in self.scored if (bits := t.bits) is not None)

    @property
    def bits_per_token(self) -> float:
        return self.total_bits / len(self.scored) if self.scored else float("nan")

    @property
    def perplexity(self) -> float:
        perplexity: float = 2.0**self.bits_per_token  # (typeshed: float ** float may be complex)
        return perplexity

    @property
    def bits_per_byte(self) -> float:
        """Comparable across tokenizers: the bits of the scored tokens over their bytes."""
        scored = self.scored
        nbytes = sum(t.byte_end - t.byte_start for t in scored)
        return self.total_bits / nbytes if nbytes else float("nan")


def _byte_offsets(text: str) -> list[int]:
    """Byte offset of each character (and one past the end)."""
    out, at = [], 0
    for ch in text:
        out.append(at)
        at += len(ch.encode("utf-8"))
    out.append(at)
    return out


@torch.inference_mode()
def surprisal(
    model: LanguageModel,
    text: str,
    *,
    top_k: int = 5,
    progress: Callable[[int, int], None] | None = None,
) -> Surprisal:
    """-log2 P of every token of `text` given the text before it, with its rank and the top
    alternatives. A text longer than the context is taken in windows that overlap by half, so
    every token sees at least half a window (the same as `LanguageModel.score`); `progress`
    is called with (windows done, windows in all) and may raise to cancel."""
    tok = model.tokenizer
    pieces = tok.encode_with_offsets(unicode_text("text", text))
    ids = [i for i, _s, _e in pieces]
    start_id = tok.bos_id if tok.bos_id is not None else tok.eos_id
    full = ([start_id] if start_id is not None else []) + ids
    lead = len(full) - len(ids)
    window = model.config.context_length
    stride = max(1, window // 2)
    starts = [0]
    while starts[-1] + window < len(full):
        starts.append(starts[-1] + stride)
    found: list[tuple[float, int, tuple[tuple[str, float], ...]] | None] = [None] * len(full)
    for n, begin in enumerate(starts):
        chunk = full[begin : begin + window]
        if len(chunk) > 1:
            x = torch.tensor([chunk], device=model.device)
            logp = torch.log_softmax(model.transformer(x)[0, :-1].float(), dim=-1)  # (T-1, V)
            own = logp.gather(1, x[0, 1:, None])[:, 0]
            ranks = (logp > own[:, None]).sum(-1) + 1
            k = min(top_k, logp.shape[-1])
            values, indices = logp.topk(k, dim=-1) if k else (None, None)
            first_new = 1 if begin == 0 else window - stride
            for j in range(first_new, len(chunk)):
                top: tuple[tuple[str, float], ...] = ()
                if indices is not None and values is not None:  # k > 0
                    pairs = zip(indices[j - 1].tolist(), values[j - 1].tolist(), strict=True)
                    top = tuple((tok.display(i), math.exp(v)) for i, v in pairs)
                found[begin + j] = (float(own[j - 1]), int(ranks[j - 1]), top)
        if progress is not None:
            progress(n + 1, len(starts))
    offsets = _byte_offsets(text)
    tokens = []
    for n, (token_id, s, e) in enumerate(pieces):
        logprob, rank, top = found[n + lead] or (None, None, ())
        tokens.append(
            TokenSurprisal(
                token_id, tok.display(token_id), s, e, offsets[s], offsets[e], logprob, rank, top
            )
        )
    return Surprisal(text, tuple(tokens), model.name or "", len(starts))


@dataclass(frozen=True)
class Difference:
    """Where two models disagree on a text, aligned by bytes: for each span of text that is
    one token of model A, model B's bits for the same bytes (its tokens' bits shared out by
    the bytes they cover)."""

    a: Surprisal
    b: Surprisal
    spans: tuple[tuple[int, int, float, float], ...] = field(default=())  # (start, end, A, B)

    def largest(self, n: int = 10) -> list[tuple[int, int, float, float]]:
        """The spans where |A - B| is largest (character offsets, A's bits, B's bits)."""
        return sorted(self.spans, key=lambda s: -abs(s[2] - s[3]))[:n]


def compare(a: Surprisal, b: Surprisal) -> Difference:
    """Model A minus model B per A-token, on the same text, whatever their tokenizers."""
    if a.text != b.text:
        raise ValueError("the two surprisal results are not of the same text")
    nbytes = len(a.text.encode("utf-8"))
    per_byte = np.zeros(nbytes)
    known = np.zeros(nbytes, dtype=bool)
    for t in b.tokens:
        width = t.byte_end - t.byte_start
        if t.bits is not None and width > 0:
            per_byte[t.byte_start : t.byte_end] = t.bits / width
            known[t.byte_start : t.byte_end] = True
    offsets = _byte_offsets(a.text)
    byte_to_char = {offsets[i]: i for i in range(len(offsets))}
    spans = []
    for t in a.tokens:
        if t.bits is None or t.byte_end <= t.byte_start:
            continue
        if not known[t.byte_start : t.byte_end].all():
            continue  # B has no score for these bytes (its first token)
        b_bits = float(per_byte[t.byte_start : t.byte_end].sum())
        start = byte_to_char.get(t.byte_start, t.start)
        spans.append((start, t.end, t.bits, b_bits))
    return Difference(a, b, tuple(spans))
