"""What a server is and what it can do, found by asking it when connecting.

Each kind answers a probe of its own: `tokenscope serve` /tokenscope, llama.cpp /props,
vLLM /version, SGLang /get_model_info, Ollama /api/version. What matters for the charts is
how many alternatives a token comes with, whether the prompt's own tokens get
log-probabilities (echo: exact scores of given answers), and whether it shows its tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tokenscope.lm.cancel import CancelToken
from tokenscope.lm.remote.parsing import sizes
from tokenscope.lm.remote.transport import RemoteError, Server

DEFAULT_TOP_K = 20
#: connecting (the listing and every question about what the server can do) ends within this
CONNECT_BUDGET_S = 15.0
#: more alternatives than any server lists per token (llama.cpp can list its whole vocabulary
#: when asked, which is asked for by vocab_size, not this)
MOST_TOP_K = 1000
#: the largest vocabulary read whole (about 100 bytes a token: 26 MB, within a body's bound)
MOST_LISTED = 2**18


@dataclass(frozen=True)
class ServerInfo:
    """What a server is and what it can do, as found when connecting."""

    kind: str  # "Tokenscope", "llama.cpp", "vLLM", "SGLang", "Ollama" or "OpenAI-compatible"
    model: str  # the model asked for
    models: tuple[str, ...]  # what the server serves
    max_top_k: int  # the most alternatives a token comes with
    prompt_logprobs: bool  # whether it scores the prompt's own tokens (echo)
    probabilities: str  # "raw" (before sampling), "after sampling", "unknown", ...
    parameters: int = 0  # when the server says (0: it does not)
    context_length: int = 0
    vocab_size: int = 0
    tokenizes: bool = False  # it shows how it splits a text into tokens (/tokenize)
    # It lists every token when asked for as many as its vocabulary holds (llama.cpp does):
    # a token below the usual list is then read off the whole distribution, exactly.
    lists_all: bool = False

    @property
    def label(self) -> str:
        return f"remote · top-{self.max_top_k} · {self.probabilities}"


def list_models(server: Server, cancel: CancelToken | None = None) -> dict[str, dict[str, Any]]:
    """The server's models by id, with what its listing says of each (GET /v1/models)."""
    with server.within(CONNECT_BUDGET_S):
        listing = server.json("/v1/models", cancel=cancel)
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list):
        raise RemoteError(f"{server.url}/models does not list models: not an OpenAI-style API")
    return {str(m.get("id")): m for m in data if isinstance(m, dict) and m.get("id")}


def detect(server: Server, wanted: str | None, cancel: CancelToken | None = None) -> ServerInfo:
    """Ask the server what it serves and what it returns; `wanted` None: its one model. All
    the asking ends within CONNECT_BUDGET_S."""
    with server.within(CONNECT_BUDGET_S):
        return _detect(server, wanted, cancel)


def _detect(server: Server, wanted: str | None, cancel: CancelToken | None) -> ServerInfo:
    entries = list_models(server, cancel)
    models = tuple(entries)
    if wanted is None:
        if len(models) != 1:
            raise RemoteError(
                f"{server.root} serves {len(models)} models: name one with --remote-model "
                f"({', '.join(models[:8])})"
            )
        wanted = models[0]
    elif wanted not in models:
        raise RemoteError(
            f"{server.root} has no model {wanted!r} (it serves: {', '.join(models[:8])})"
        )
    size = sizes(entries[wanted])
    ours = server.probe("/tokenscope", cancel)
    if isinstance(ours, dict) and isinstance(ours.get("max_logprobs"), int):
        # `tokenscope serve`: raw log-probabilities, of the prompt too, and its tokens.
        top = min(max(1, ours["max_logprobs"]), MOST_TOP_K)
        return ServerInfo("Tokenscope", wanted, models, top, True, "raw", *size, True)
    props = server.probe("/props", cancel)
    if isinstance(props, dict) and "default_generation_settings" in props:
        # llama.cpp: any number of alternatives, up to its whole vocabulary; probabilities
        # before sampling unless a request asks for post_sampling_probs; no log-probs of the
        # prompt itself.
        # (its listing says how many tokens it has; a whole list of a vocabulary beyond
        # MOST_LISTED would be a body no answer should be)
        full = 0 < size[2] <= MOST_LISTED
        return ServerInfo("llama.cpp", wanted, models, 100, False, "raw", *size, True, full)
    top = _largest_top_k(server, wanted, cancel)
    echo = _echoes(server, wanted, cancel)
    answer = server.probe("/tokenize", cancel, {"model": wanted, "prompt": "a"})
    tokenizes = isinstance(answer, dict) and isinstance(answer.get("tokens"), list)
    if isinstance(server.probe("/version", cancel), dict):
        # vLLM: at most --max-logprobs (20 by default); --logprobs-mode is server-wide.
        kind, probabilities = "vLLM", "raw (by default)"
    elif isinstance(server.probe("/get_model_info", cancel), dict):
        kind, probabilities = "SGLang", "scaled by temperature"
    elif isinstance(server.probe("/api/version", cancel), dict):
        kind, probabilities = "Ollama", "unknown"
    else:
        kind, probabilities = "OpenAI-compatible", "unknown"
    return ServerInfo(kind, wanted, models, top, echo, probabilities, *size, tokenizes)


def _echoes(server: Server, model: str, cancel: CancelToken | None) -> bool:
    """Whether the server returns log-probabilities of the prompt's own tokens (echo)."""
    body = {"model": model, "prompt": "a b", "max_tokens": 1, "logprobs": 1, "echo": True}
    try:
        choice = server.json("/v1/completions", body, cancel)["choices"][0]
        values = (choice.get("logprobs") or {}).get("token_logprobs")
    except (RemoteError, KeyError, IndexError, TypeError, AttributeError):
        return False
    return isinstance(values, list) and len(values) >= 2


def _largest_top_k(server: Server, model: str, cancel: CancelToken | None) -> int:
    """Ask for DEFAULT_TOP_K alternatives; a server that allows fewer says how many in its
    error ("... max allowed: 5"), and that number is taken."""
    body = {"model": model, "prompt": "a", "max_tokens": 1, "logprobs": DEFAULT_TOP_K}
    try:
        server.json("/v1/completions", body, cancel)
        return DEFAULT_TOP_K
    except RemoteError as e:
        # Only a refusal of the request itself, read from the server's own words (the
        # address in the message has numbers too).
        if e.status in (400, 422):
            numbers = [int(n) for n in re.findall(r"\b(\d+)\b", e.detail) if 0 < int(n) < 20]
            if numbers:
                return min(numbers)
        raise
