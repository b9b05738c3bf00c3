"""Reading what servers send: listed tokens and their log-probabilities, sizes, token spans.

Servers return log-probabilities in one of two shapes: OpenAI's legacy completions
({"tokens": [...], "token_logprobs": [...], "top_logprobs": [{text: logprob}]}) or the
chat-style list llama.cpp returns ({"content": [{"token", "id", "bytes", "logprob",
"top_logprobs"}]}). Both become TokenProbability records; a token named without an id gets a
stand-in id (StandIns) so that views can still tell the listed tokens apart.
"""

from __future__ import annotations

import math
from typing import Any

from tokenscope.lm.tokenizer import display_bytes
from tokenscope.lm.tokens import Token, TokenProbability

#: stand-in token ids for a server that names its tokens without ids: above any vocabulary
STAND_IN_BASE = 2**30


def display(text: str, raw: Any) -> str:
    """The readable label of a token (␣ for a space, <E4> for a byte of a character), from
    its bytes where the server gives them."""
    if isinstance(raw, list) and all(isinstance(b, int) and 0 <= b < 256 for b in raw):
        return display_bytes(bytes(raw))
    return display_bytes(text.encode("utf-8", errors="replace"))


def probability(logprob: Any) -> float:
    """exp(logprob), 0 for what is not a number."""
    try:
        return math.exp(float(logprob))
    except (TypeError, ValueError, OverflowError):
        return 0.0


class StandIns:
    """Ids for tokens a server names only by their text: one per text, above any vocabulary."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def id_for(self, token_id: Any, text: str) -> int:
        if isinstance(token_id, int) and not isinstance(token_id, bool) and token_id >= 0:
            return token_id
        return self._ids.setdefault(text, STAND_IN_BASE + len(self._ids))

    def token(self, token_id: Any, text: str, raw: Any, p: float) -> TokenProbability:
        return TokenProbability(self.id_for(token_id, text), text, display(text, raw), p, p)


def same_token(listed: TokenProbability, wanted: Token) -> bool:
    """Whether a listed token is `wanted`: by id where the server gave one, else by text."""
    if listed.token_id < STAND_IN_BASE:
        return listed.token_id == wanted.token_id
    return listed.text == wanted.text


Position = tuple[TokenProbability | None, list[TokenProbability]]


def positions(logprobs: Any, ids: StandIns) -> list[Position]:
    """(the token at that position, its listed alternatives most likely first) per position,
    from either shape (see the module notes)."""
    if not isinstance(logprobs, dict):
        return []
    out: list[Position] = []
    if isinstance(logprobs.get("content"), list):
        for item in logprobs["content"]:
            if not isinstance(item, dict):
                continue
            top = [
                ids.token(
                    t.get("id"), str(t.get("token", "")), t.get("bytes"), probability(t["logprob"])
                )
                for t in item.get("top_logprobs") or []
                if isinstance(t, dict) and "logprob" in t
            ]
            top.sort(key=lambda t: -t.probability)
            text = str(item.get("token", ""))
            own = ids.id_for(item.get("id"), text)
            # by id: pieces of one character split across tokens share a text
            listed = next((t for t in top if t.token_id == own), None)
            if listed is None:
                p = probability(item["logprob"]) if "logprob" in item else 0.0
                listed = ids.token(item.get("id"), text, item.get("bytes"), p)
            out.append((listed, top))
        return out
    tokens, tops = logprobs.get("tokens"), logprobs.get("top_logprobs")
    values = logprobs.get("token_logprobs")
    if isinstance(tokens, list) and isinstance(tops, list):
        for i, (token, top) in enumerate(zip(tokens, tops, strict=False)):
            alternatives = top.items() if isinstance(top, dict) else ()
            ranked = [
                ids.token(None, str(text), None, probability(lp)) for text, lp in alternatives
            ]
            ranked.sort(key=lambda t: -t.probability)
            own_logprob = values[i] if isinstance(values, list) and i < len(values) else None
            chosen = next((t for t in ranked if t.text == token), None)
            if chosen is None:
                p = probability(own_logprob) if own_logprob is not None else 0.0
                chosen = ids.token(None, str(token), None, p)
            out.append((chosen, ranked))
    return out


def sizes(entry: dict[str, Any]) -> tuple[int, int, int]:
    """(parameters, context length, vocabulary) where the server's model listing says:
    llama.cpp under "meta", vLLM as "max_model_len"."""
    meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
    assert isinstance(meta, dict)

    def whole(*values: Any) -> int:
        for v in values:
            if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                return v
        return 0

    return (
        whole(meta.get("n_params")),
        whole(meta.get("n_ctx"), entry.get("max_model_len"), entry.get("context_length")),
        whole(meta.get("n_vocab")),
    )


def spans(text: str, pieces: list[tuple[int, bytes]]) -> list[Token]:
    """Tokens from (id, bytes) pieces, each with the characters of `text` it covers; a token
    holding part of a character's bytes shares that character's span."""
    encoded = text.encode("utf-8")
    # character index at each byte offset (the character a byte belongs to)
    char_at = [0] * (len(encoded) + 1)
    b = 0
    for i, ch in enumerate(text):
        n = len(ch.encode("utf-8"))
        for k in range(n):
            char_at[b + k] = i
        b += n
    char_at[len(encoded)] = len(text)
    out, at = [], 0
    for token_id, piece in pieces:
        start = min(at, len(encoded))
        end = min(at + len(piece), len(encoded))
        first = char_at[start]
        last = char_at[end - 1] + 1 if end > start else first
        out.append(
            Token(
                token_id, piece.decode("utf-8", errors="replace"), display_bytes(piece), first, last
            )
        )
        at += len(piece)
    return out
