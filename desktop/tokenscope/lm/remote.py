"""A model on a server: llama.cpp, vLLM, SGLang, Ollama or any OpenAI-compatible API.

    model = RemoteModel("http://127.0.0.1:8080/v1")          # the server's one model
    dist = model.predict_next_token_probabilities("The capital of Indonesia is")
    model.get_most_likely_token(dist)                         # " Jak"
    for step in model.generate("The capital of Indonesia is", max_tokens=8):
        print(step.text, step.probability, step.top)

Such a server returns the log-probabilities of its top k tokens only, so a remote
distribution is those k tokens plus one "other" share holding the missing mass, and it says so
in its label ("remote · top-20 · raw"). Connecting asks the server what it is and what it can
do (Capabilities). Network faults become RemoteError with a message a person can act on; the
standard library's HTTP client is enough here (plain JSON requests and a text event stream).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import re
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tokenscope.lm.errors import TokenscopeError
from tokenscope.lm.tokenizer import display_bytes

if TYPE_CHECKING:  # (only its fields are read: a remote model needs no PyTorch)
    from tokenscope.lm.sampling import SamplingSettings

DEFAULT_KEY_ENV = "TOKENSCOPE_API_KEY"
DEFAULT_TOP_K = 20
TIMEOUT_S = 60.0


class RemoteError(TokenscopeError):
    """The server could not be reached or answered something unusable; the message says which."""


class RemoteCancelled(RemoteError):
    """A request was stopped by RemoteModel.cancel()."""


def is_remote(target: str) -> bool:
    return isinstance(target, str) and target.startswith(("http://", "https://"))


@dataclass(frozen=True)
class Capabilities:
    """What a server is and what it can do, as found when connecting."""

    kind: str  # "llama.cpp", "vLLM", "SGLang", "Ollama" or "OpenAI-compatible"
    model: str  # the model asked for
    models: tuple[str, ...]  # what the server serves
    max_top_k: int  # the most alternatives a token comes with
    prompt_logprobs: bool  # whether it can score the prompt's own tokens
    probabilities: str  # "raw" (before sampling) or "after sampling" or "unknown"

    @property
    def label(self) -> str:
        return f"remote · top-{self.max_top_k} · {self.probabilities}"


@dataclass(frozen=True)
class RemoteToken:
    token_id: int | None  # when the server says
    text: str
    display: str
    probability: float


@dataclass(frozen=True)
class RemoteDistribution:
    """The top k next tokens a server returned, most likely first, and the rest as one share."""

    tokens: tuple[RemoteToken, ...]
    other: float  # probability of every token not listed
    label: str

    def top(self, k: int | None = None) -> list[RemoteToken]:
        return list(self.tokens[: len(self.tokens) if k is None else k])

    @property
    def most_likely(self) -> RemoteToken:
        return self.tokens[0]

    @property
    def entropy_at_least(self) -> float:
        """A lower bound of the entropy in bits: the unlisted tokens counted as one."""
        ps = [t.probability for t in self.tokens] + [self.other]
        return -sum(p * math.log2(p) for p in ps if p > 0)

    def probability_of(self, text: str) -> float | None:
        """The probability of a listed next token, None when the server did not list it."""
        return next((t.probability for t in self.tokens if t.text == text), None)

    def after_sampling(self, sampling: SamplingSettings) -> SampledView:
        """What sampling would draw from, computed from the listed tokens.

        Exact where the knobs keep only listed tokens (a top-k within the list, a top-p or
        min-p cut that falls inside it) or leave the probabilities as they are; otherwise
        approximate, with the unlisted tokens treated as one: a temperature other than 1 moves
        mass between tokens the server did not show, and a repetition penalty needs the
        logits of the tokens already in the text.
        """
        listed = [t.probability for t in self.tokens]
        n = len(listed)
        if sampling.greedy:
            return SampledView((1.0, *([0.0] * (n - 1))), 0.0, exact=True)
        # In the local sampler's order: temperature, top-k, top-p, min-p. `tail` is the mass
        # of the unlisted tokens, `approximate` whether anything depended on how it is spread.
        approximate = sampling.repetition_penalty != 1.0
        power = 1.0 / sampling.temperature
        scaled = [p**power for p in listed] if power != 1.0 else listed[:]
        tail = self.other**power if power != 1.0 else self.other
        tail_known = power == 1.0 or self.other == 0.0  # one token's worth, or all of them
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
        return SampledView(shares, tail / total, exact=not approximate)


@dataclass(frozen=True)
class SampledView:
    """A remote distribution after the sampling knobs: per listed token, then the unlisted."""

    probabilities: tuple[float, ...]
    other: float
    exact: bool  # False: approximate (see RemoteDistribution.after_sampling)


@dataclass(frozen=True)
class RemoteStep:
    """One generated token and the alternatives the server listed for it."""

    index: int
    text: str
    probability: float | None  # of the token drawn, when among those listed
    top: tuple[RemoteToken, ...]


def _display(text: str, raw: list[int] | None) -> str:
    """The readable label of a token (␣ for a space, <E4> for a byte of a character)."""
    return display_bytes(bytes(raw) if isinstance(raw, list) else text.encode("utf-8"))


class RemoteModel:
    """A model served over HTTP (see the module notes)."""

    def __init__(
        self,
        url: str,
        model: str | None = None,
        *,
        api_key_env: str = DEFAULT_KEY_ENV,
        timeout: float = TIMEOUT_S,
    ) -> None:
        if not is_remote(url):
            raise RemoteError(f"{url!r} is not a server address (http://HOST:PORT/v1)")
        self.root = re.sub(r"/v1/?$", "", url.rstrip("/"))
        self.url = self.root + "/v1"
        self.api_key_env = api_key_env
        self.timeout = timeout
        self._lock = threading.Lock()
        self._exchanges: set[_Exchange] = set()
        self.capabilities = self._detect(model)
        self.name = f"{self.capabilities.model} @ {self.root}"

    # ----- HTTP ------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _open(self, path: str, body: dict | None = None) -> _Exchange:
        """One request; its response (read it inside `with`). `cancel()` from another thread
        ends it at once, waiting or reading."""
        url = urllib.parse.urlsplit(self.root + path)
        connection_class = (
            http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(url.hostname, url.port, timeout=self.timeout)
        exchange = _Exchange(self, connection)
        with self._lock:
            self._exchanges.add(exchange)
        try:
            data = None if body is None else json.dumps(body).encode()
            target = url.path + (f"?{url.query}" if url.query else "")
            connection.request(
                "GET" if body is None else "POST", target, body=data, headers=self._headers()
            )
            response = connection.getresponse()
        except BaseException as e:
            exchange.close()
            raise self._network_error(e, exchange) from None
        exchange.response = response
        if response.status >= 400:
            try:
                text = response.read(2000).decode("utf-8", errors="replace")
            except OSError:
                text = ""
            exchange.close()
            raise self._http_error(response.status, response.reason, response.headers, text, path)
        return exchange

    def cancel(self) -> None:
        """Stop every request in flight (from any thread): each raises RemoteCancelled."""
        with self._lock:
            exchanges = list(self._exchanges)
        for exchange in exchanges:
            exchange.cancelled = True
            exchange.shut()

    def _network_error(self, e: BaseException, exchange: _Exchange) -> BaseException:
        if exchange.cancelled:
            return RemoteCancelled("the request to the server was cancelled")
        if isinstance(e, ConnectionRefusedError):
            return RemoteError(
                f"nothing answers at {self.root} (connection refused): is the server running?"
            )
        if isinstance(e, TimeoutError):
            return self._timeout()
        if isinstance(e, (OSError, http.client.HTTPException)):
            return RemoteError(f"{self.root} cannot be reached ({e})")
        return e  # (KeyboardInterrupt and the like go on as they are)

    def _timeout(self) -> RemoteError:
        return RemoteError(f"{self.root} did not answer within {self.timeout:g} s")

    def _http_error(
        self, code: int, reason: str, headers: Any, text: str, path: str
    ) -> RemoteError:
        detail = _error_text(text)
        if code in (401, 403):
            return RemoteError(
                f"{self.root} refused the request ({code}: {detail or reason}); put its API "
                f"key in the environment variable {self.api_key_env}"
            )
        if code == 404:
            return RemoteError(f"{self.root} has no {path} ({detail or 'not found'})")
        if code == 429:
            wait = headers.get("Retry-After")
            after = f"; it asks to retry after {wait} s" if wait else ""
            return RemoteError(f"{self.root} is busy (429: too many requests){after}")
        if code >= 500:
            return RemoteError(f"{self.root} failed ({code}: {detail or reason})")
        return RemoteError(f"{self.root} refused the request ({code}: {detail or reason})")

    def _json(self, path: str, body: dict | None = None) -> Any:
        with self._open(path, body) as exchange:
            raw = exchange.read()
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            shown = raw[:80].decode("utf-8", errors="replace")
            raise RemoteError(
                f"{self.root}{path} answered something that is not JSON: {shown!r}"
            ) from None

    def _probe(self, path: str) -> Any | None:
        """GET `path`, None when the server has no such thing (it tells the kind apart)."""
        try:
            return self._json(path)
        except RemoteError:
            return None

    # ----- what the server is ----------------------------------------------------------------

    def _detect(self, wanted: str | None) -> Capabilities:
        listing = self._json("/v1/models")
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list):
            raise RemoteError(f"{self.url}/models does not list models: not an OpenAI-style API")
        models = tuple(str(m.get("id")) for m in data if isinstance(m, dict) and m.get("id"))
        if wanted is None:
            if len(models) != 1:
                raise RemoteError(
                    f"{self.root} serves {len(models)} models: name one with --remote-model "
                    f"({', '.join(models[:8])})"
                )
            wanted = models[0]
        elif wanted not in models:
            raise RemoteError(
                f"{self.root} has no model {wanted!r} (it serves: {', '.join(models[:8])})"
            )
        props = self._probe("/props")
        if isinstance(props, dict) and "default_generation_settings" in props:
            # llama.cpp: any number of alternatives; probabilities before sampling unless a
            # request asks for post_sampling_probs; no log-probs of the prompt itself.
            return Capabilities("llama.cpp", wanted, models, 100, False, "raw")
        top = self._largest_top_k(wanted)
        echo = self._echoes(wanted)
        if isinstance(self._probe("/version"), dict):
            # vLLM: at most --max-logprobs (20 by default); --logprobs-mode is server-wide.
            return Capabilities("vLLM", wanted, models, top, echo, "raw (by default)")
        if isinstance(self._probe("/get_model_info"), dict):
            return Capabilities("SGLang", wanted, models, top, echo, "scaled by temperature")
        if isinstance(self._probe("/api/version"), dict):
            return Capabilities("Ollama", wanted, models, top, echo, "unknown")
        return Capabilities("OpenAI-compatible", wanted, models, top, echo, "unknown")

    def _echoes(self, model: str) -> bool:
        """Whether the server returns log-probabilities of the prompt's own tokens (echo)."""
        body = {"model": model, "prompt": "a b", "max_tokens": 1, "logprobs": 1, "echo": True}
        try:
            choice = self._json("/v1/completions", body)["choices"][0]
            values = (choice.get("logprobs") or {}).get("token_logprobs")
        except (RemoteError, KeyError, IndexError, TypeError, AttributeError):
            return False
        return isinstance(values, list) and len(values) >= 2

    def _largest_top_k(self, model: str) -> int:
        """Ask for DEFAULT_TOP_K alternatives; a server that allows fewer says how many in its
        error ("... max allowed: 5"), and that number is taken."""
        body = {"model": model, "prompt": "a", "max_tokens": 1, "logprobs": DEFAULT_TOP_K}
        try:
            self._json("/v1/completions", body)
            return DEFAULT_TOP_K
        except RemoteError as e:
            numbers = [int(n) for n in re.findall(r"\b(\d+)\b", str(e)) if 0 < int(n) < 20]
            if numbers:
                return min(numbers)
            raise

    # ----- the seed API ----------------------------------------------------------------------

    def _completion(self, prompt: str, **extra: Any) -> dict:
        c = self.capabilities
        body = {"model": c.model, "prompt": prompt, "logprobs": c.max_top_k, **extra}
        answer = self._json("/v1/completions", body)
        try:
            return answer["choices"][0]
        except (KeyError, IndexError, TypeError):
            raise RemoteError(f"{self.url}/completions answered without choices") from None

    def predict_next_token_probabilities(
        self, prompt: str, top_k: int | None = None
    ) -> RemoteDistribution:
        """The server's top-k next tokens after `prompt` (raw where the server can say)."""
        k = min(top_k or self.capabilities.max_top_k, self.capabilities.max_top_k)
        choice = self._completion(prompt, max_tokens=1, temperature=0.0)
        positions = _positions(choice.get("logprobs"))
        if not positions or not positions[0][1]:
            raise RemoteError(f"{self.root} returned no log-probabilities for this prompt")
        top = positions[0][1][:k]
        listed = sum(t.probability for t in top)
        return RemoteDistribution(tuple(top), max(0.0, 1.0 - listed), self.capabilities.label)

    def get_most_likely_token(self, dist: RemoteDistribution) -> str:
        return dist.most_likely.text

    def score_continuation(self, context: str, continuation: str) -> float:
        """P(continuation | context) from the log-probabilities the server gives the prompt's
        own tokens (`echo`), where it can; a message saying which servers can, where not."""
        c = self.capabilities
        if not c.prompt_logprobs:
            raise RemoteError(
                f"{c.kind} at {self.root} returns no log-probabilities of the prompt, so it "
                "cannot score a given answer (vLLM and SGLang can; or open the model locally)"
            )
        choice = self._completion(context + continuation, max_tokens=1, echo=True, logprobs=1)
        logprobs = choice.get("logprobs") or {}
        offsets, values = logprobs.get("text_offset"), logprobs.get("token_logprobs")
        if not isinstance(offsets, list) or not isinstance(values, list):
            raise RemoteError(f"{self.root} did not return the prompt's log-probabilities")
        start = len(context)
        if start not in offsets:
            raise RemoteError(
                "the server's tokens do not start where the continuation does: a token spans "
                "the end of the context (end the context before a space, or the answer with one)"
            )
        first = offsets.index(start)
        end = start + len(continuation)
        total = 0.0
        for offset, value in zip(offsets[first:], values[first:], strict=False):
            if offset >= end:
                break  # the generated token after the prompt
            if value is None:
                raise RemoteError(f"{self.root} gave a prompt token no log-probability")
            total += float(value)
        return math.exp(total)

    def generate(
        self,
        prompt: str,
        max_tokens: int = 32,
        *,
        temperature: float = 1.0,
        seed: int | None = None,
    ) -> Iterator[RemoteStep]:
        """Tokens as the server streams them, each with its listed alternatives. A stream cut
        mid-way ends with RemoteError after the tokens that arrived."""
        c = self.capabilities
        body = {"model": c.model, "prompt": prompt, "max_tokens": max_tokens, "stream": True,
                "logprobs": c.max_top_k, "temperature": temperature}  # fmt: skip
        if seed is not None:
            body["seed"] = seed
        index = 0
        finished = False
        with self._open("/v1/completions", body) as exchange:
            try:
                for raw in exchange.lines():
                    line = raw.decode("utf-8", errors="replace").strip()
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        finished = True
                        break
                    try:
                        choice = json.loads(payload)["choices"][0]
                    except (ValueError, KeyError, IndexError, TypeError):
                        raise RemoteError(
                            f"{self.root} sent a malformed event after {index} tokens: "
                            f"{payload[:80]!r}"
                        ) from None
                    text = choice.get("text") or ""
                    positions = _positions(choice.get("logprobs")) or (
                        [(text, [])] if text else []  # a server without log-probs
                    )
                    for token, top in positions:
                        chosen = next((t.probability for t in top if t.text == token), None)
                        yield RemoteStep(index, token, chosen, tuple(top))
                        index += 1
                    if choice.get("finish_reason"):
                        finished = True
            except (OSError, http.client.HTTPException) as e:
                if exchange.cancelled:
                    raise RemoteCancelled(
                        f"generation was cancelled after {index} tokens"
                    ) from None
                if isinstance(e, TimeoutError):
                    raise self._timeout() from None
                raise RemoteError(
                    f"{self.root} closed the stream after {index} tokens ({type(e).__name__}); "
                    "the tokens that arrived are kept"
                ) from None
        if not finished:
            if exchange.cancelled:
                raise RemoteCancelled(f"generation was cancelled after {index} tokens")
            raise RemoteError(
                f"{self.root} ended the stream after {index} tokens without finishing; the "
                "tokens that arrived are kept"
            )


class _Exchange:
    """A request in flight: its connection and, once headers came, its response."""

    def __init__(self, owner: RemoteModel, connection: http.client.HTTPConnection) -> None:
        self.owner, self.connection = owner, connection
        self.response: http.client.HTTPResponse | None = None
        self.cancelled = False

    def __enter__(self) -> _Exchange:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def read(self) -> bytes:
        try:
            return self.response.read()
        except BaseException as e:
            raise self.owner._network_error(e, self) from None

    def lines(self) -> Iterator[bytes]:
        while line := self.response.readline():
            yield line

    def shut(self) -> None:
        """Wake a thread blocked on this connection (cancel)."""
        sock = self.connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self.owner._lock:
            self.owner._exchanges.discard(self)
        self.connection.close()


def _error_text(text: str) -> str:
    """The message in a JSON error body ({"error": {"message": ...}} or {"error": "..."})."""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip().splitlines()[0][:200] if text.strip() else ""
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or error
    return str(error)[:200]


def _positions(logprobs: Any) -> list[tuple[str, list[RemoteToken]]]:
    """(token, its listed alternatives) per generated position, from either shape servers use:
    OpenAI's legacy completions ({"tokens": [...], "top_logprobs": [{text: logprob}]}) or the
    chat-style list llama.cpp returns ({"content": [{"token", "id", "bytes", "top_logprobs"}]})."""
    if not isinstance(logprobs, dict):
        return []
    out: list[tuple[str, list[RemoteToken]]] = []
    if isinstance(logprobs.get("content"), list):
        for item in logprobs["content"]:
            top = [
                RemoteToken(t.get("id"), str(t.get("token", "")),
                            _display(str(t.get("token", "")), t.get("bytes")),
                            math.exp(float(t["logprob"])))
                for t in item.get("top_logprobs") or []
                if isinstance(t, dict) and "logprob" in t
            ]  # fmt: skip
            out.append((str(item.get("token", "")), sorted(top, key=lambda t: -t.probability)))
        return out
    tokens, tops = logprobs.get("tokens"), logprobs.get("top_logprobs")
    if isinstance(tokens, list) and isinstance(tops, list):
        for token, top in zip(tokens, tops, strict=False):
            listed = [
                RemoteToken(None, str(text), _display(str(text), None), math.exp(float(lp)))
                for text, lp in (top or {}).items()
            ]
            out.append((str(token), sorted(listed, key=lambda t: -t.probability)))
    return out
