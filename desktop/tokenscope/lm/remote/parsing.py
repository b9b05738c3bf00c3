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

from tokenscope.lm.remote.transport import RemoteError
from tokenscope.lm.tokenizer import display_bytes
from tokenscope.lm.tokens import Token, TokenProbability

#: stand-in token ids for a server that names its tokens without ids: above any vocabulary
STAND_IN_BASE = 2**30
#: parameters, a context length or a vocabulary this large is not a model's (2**40: a
#: trillion parameters)
MOST = 2**40


#: a log-probability this far above 0 is rounding (taken as 0); beyond it, the server is wrong
LOGPROB_SLACK = 1e-3
#: listed probabilities of one position may add up to this much (rounding), not more
SUM_SLACK = 0.01


class Malformed(ValueError):
    """A server's log-probabilities are not what the protocol says (the message: what)."""


def display(text: str, raw: Any) -> str:
    """The readable label of a token (␣ for a space, <E4> for a byte of a character), from
    its bytes where the server gives them."""
    if raw is not None:
        return display_bytes(token_bytes(raw))
    return display_bytes(text.encode("utf-8", errors="replace"))


def token_bytes(raw: Any) -> bytes:
    """A token's `bytes` list as bytes (Malformed for anything but a list of 0-255)."""
    if not isinstance(raw, list) or not all(
        isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in raw
    ):
        raise Malformed(f"token bytes that are not a list of bytes: {_shown(raw)}")
    return bytes(raw)


def logprob(value: Any) -> float:
    """A log-probability as a number <= 0 (-inf: probability 0); Malformed for anything else:
    not a number, NaN, a probability above 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Malformed(f"a log-probability that is not a number: {_shown(value)}")
    number = float(value)
    if math.isnan(number) or number > LOGPROB_SLACK:
        raise Malformed(f"a log-probability of {number!r} (a probability above 1)")
    return min(number, 0.0)


def probability(value: Any) -> float:
    """exp(logprob(value)): a probability in [0, 1] (Malformed as `logprob`)."""
    return math.exp(logprob(value))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise Malformed(f"a token that is not text: {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    return repr(value)[:40]


class StandIns:
    """Ids for tokens a server names only by their text: one per text, above any vocabulary."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def id_for(self, token_id: Any, text: str) -> int:
        if token_id is None:
            return self._ids.setdefault(text, STAND_IN_BASE + len(self._ids))
        if (
            isinstance(token_id, bool)
            or not isinstance(token_id, int)
            or not (0 <= token_id < STAND_IN_BASE)
        ):
            raise Malformed(f"a token id that is not a token id: {_shown(token_id)}")
        return token_id

    def token(self, token_id: Any, text: str, raw: Any, p: float) -> TokenProbability:
        return TokenProbability(self.id_for(token_id, text), text, display(text, raw), p, p)


def same_token(listed: TokenProbability, wanted: Token) -> bool:
    """Whether a listed token is `wanted`: by id where the server gave one, else by text."""
    if listed.token_id < STAND_IN_BASE:
        return listed.token_id == wanted.token_id
    return listed.text == wanted.text


Position = tuple[TokenProbability | None, list[TokenProbability]]


def positions(logprobs: Any, ids: StandIns, root: str) -> list[Position]:
    """(the token at that position, its listed alternatives most likely first) per position,
    from either shape (see the module notes). Every value is checked: a RemoteError naming
    `root` (the server) says what is wrong with one that is not what the protocol says."""
    try:
        return _positions(logprobs, ids)
    except Malformed as e:
        raise RemoteError(f"{root} sent {e}") from None


def _positions(logprobs: Any, ids: StandIns) -> list[Position]:
    if logprobs is None:
        return []
    if not isinstance(logprobs, dict):
        raise Malformed(f"log-probabilities that are not an object: {_shown(logprobs)}")
    if "content" in logprobs and logprobs["content"] is not None:
        return _content(logprobs["content"], ids)
    tokens, tops = logprobs.get("tokens"), logprobs.get("top_logprobs")
    values = logprobs.get("token_logprobs")
    if tokens is None and tops is None:
        return []
    for name, value in (("tokens", tokens), ("top_logprobs", tops), ("token_logprobs", values)):
        if value is not None and not isinstance(value, list):
            raise Malformed(f"{name} that is not a list: {_shown(value)}")
    out: list[Position] = []
    for i, token in enumerate(tokens or []):
        token = _text(token)
        top = tops[i] if tops is not None and i < len(tops) else None
        if top is not None and not isinstance(top, dict):
            raise Malformed(f"top_logprobs entries that are not objects: {_shown(top)}")
        ranked = [ids.token(None, _text(text), None, probability(lp))
                  for text, lp in (top or {}).items()]  # fmt: skip
        _check_sum(ranked)
        ranked.sort(key=lambda t: -t.probability)
        own = values[i] if values is not None and i < len(values) else None
        chosen = next((t for t in ranked if t.text == token), None)
        if chosen is None:
            p = probability(own) if own is not None else 0.0  # (echo: the first has none)
            chosen = ids.token(None, token, None, p)
        out.append((chosen, ranked))
    return out


def _content(content: Any, ids: StandIns) -> list[Position]:
    """The chat-style shape llama.cpp returns: a list of {token, id, bytes, logprob,
    top_logprobs: [...]}."""
    if not isinstance(content, list):
        raise Malformed(f"content that is not a list: {_shown(content)}")
    out: list[Position] = []
    for item in content:
        if not isinstance(item, dict):
            raise Malformed(f"a token entry that is not an object: {_shown(item)}")
        listed = item.get("top_logprobs")
        if listed is not None and not isinstance(listed, list):
            raise Malformed(f"top_logprobs that is not a list: {_shown(listed)}")
        top = []
        for t in listed or []:
            if not isinstance(t, dict) or "logprob" not in t:
                raise Malformed(f"a listed token without a log-probability: {_shown(t)}")
            text = _text(t.get("token", ""))
            top.append(ids.token(t.get("id"), text, t.get("bytes"), probability(t["logprob"])))
        _check_sum(top)
        top.sort(key=lambda t: -t.probability)
        text = _text(item.get("token", ""))
        own = ids.id_for(item.get("id"), text)
        # by id: pieces of one character split across tokens share a text
        chosen = next((t for t in top if t.token_id == own), None)
        if chosen is None:
            p = probability(item["logprob"]) if item.get("logprob") is not None else 0.0
            chosen = ids.token(item.get("id"), text, item.get("bytes"), p)
        out.append((chosen, top))
    return out


def _check_sum(listed: list[TokenProbability]) -> None:
    total = sum(t.probability for t in listed)
    if total > 1 + SUM_SLACK:
        raise Malformed(f"listed probabilities that add up to {total:.3g} (more than 1)")


def sizes(entry: dict[str, Any]) -> tuple[int, int, int]:
    """(parameters, context length, vocabulary) where the server's model listing says:
    llama.cpp under "meta", vLLM as "max_model_len"."""
    meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
    assert isinstance(meta, dict)

    def whole(*values: Any) -> int:
        # (a number no model has is as good as none: it would size requests and tables)
        for v in values:
            if isinstance(v, int) and not isinstance(v, bool) and 0 < v < MOST:
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
