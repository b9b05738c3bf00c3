"""Log-probabilities in the shapes completion clients read, side by side in one object:

- OpenAI's legacy keys: "tokens", "token_logprobs", "top_logprobs" ({text: logprob}) and
  "text_offset", what evaluation harnesses read;
- "content": one entry per position as llama.cpp and OpenAI's chat API write it, with ids and
  bytes, so a client can tell apart two tokens with one text (the legacy keys cannot).

Everything here reads the model or its tokenizer: call it holding the model's lock.
"""

from __future__ import annotations

import math
from typing import Any

KEYS = ("tokens", "token_logprobs", "top_logprobs", "text_offset", "content")
Part = dict[str, list]  # a run of positions, a list under each of KEYS


def position(tok: Any, token_id: int, logprob: float | None, top: list[tuple[int, float]]) -> dict:
    """One position of "content": the token, its log-probability and the top alternatives."""

    def one(i: int) -> dict:
        return {"id": i, "token": tok.token_text(i), "bytes": list(tok.token_bytes(i))}

    return {
        **one(token_id),
        "logprob": logprob,
        "top_logprobs": [{**one(i), "logprob": lp} for i, lp in top],
    }


def by_text(tok: Any, ids_and_logprobs: list[tuple[int, float]]) -> dict[str, float]:
    """The legacy {text: logprob} of the alternatives (two tokens with one text: the likelier
    one is kept)."""
    out: dict[str, float] = {}
    for i, lp in ids_and_logprobs:
        out.setdefault(tok.token_text(i), lp)
    return out


def echoed(
    model: Any, prompts: list[tuple[list[int], list[tuple[int, int, int]]]], k: int
) -> list[Part]:
    """The prompts' own tokens (`spans`: id, start, end of each of `ids`'s own tokens) with
    their log-probabilities, the prompts scored together (LanguageModel.prompt_logprobs_batch);
    the first token has none unless the model puts BOS before it."""
    tok = model.tokenizer
    scored_all = model.prompt_logprobs_batch([ids for ids, _spans in prompts], k)
    parts = []
    for (ids, spans), scored in zip(prompts, scored_all, strict=True):
        lead = len(ids) - len(spans)  # BOS the model added
        part: Part = {key: [] for key in KEYS}
        for j, (i, start, _end) in enumerate(spans):
            at = lead + j - 1  # scored[at] is about ids[at + 1]
            own, top = scored[at] if at >= 0 else (None, None)
            part["tokens"].append(tok.token_text(i))
            part["token_logprobs"].append(own)
            part["top_logprobs"].append(by_text(tok, top) if k and top is not None else None)
            part["text_offset"].append(start)
            part["content"].append(position(tok, i, own, top or []))
        parts.append(part)
    return parts


def generated(tok: Any, step: Any, k: int, offset: int) -> Part:
    """One generated token (a GenerationStep) at character `offset` of the choice's text."""
    own, top = _logprobs(step)
    return {
        "tokens": [tok.token_text(step.token_id)],
        "token_logprobs": [own],
        "top_logprobs": [by_text(tok, top[:k]) if k else None],
        "text_offset": [offset],
        "content": [position(tok, step.token_id, own, top[:k])],
    }


def chat_position(tok: Any, step: Any, k: int) -> dict[str, Any]:
    """One generated token in the chat API's shape ({"token", "logprob", "bytes",
    "top_logprobs": [...]}, each with its id too)."""
    own, top = _logprobs(step)
    return position(tok, step.token_id, own, top[:k])


def _logprobs(step: Any) -> tuple[float, list[tuple[int, float]]]:
    top = [(a.token_id, math.log(a.probability)) for a in step.top_raw if a.probability > 0]
    own = math.log(step.probability) if step.probability > 0 else -math.inf
    return (own if math.isfinite(own) else -9999.0), top  # (JSON has no -Infinity)


def merged(parts: list[Part]) -> Part:
    """The parts one after another, as one."""
    return {key: [value for part in parts for value in part[key]] for key in KEYS}
