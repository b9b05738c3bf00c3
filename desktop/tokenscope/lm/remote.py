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
#: at most this long to open a connection (a cancel cannot cut it short: the socket is not
#: there to shut until it is open)
CONNECT_TIMEOUT_S = 10.0


class RemoteError(TokenscopeError):
    """The server could not be reached or answered something unusable; the message says which.
    `status` and `detail`: the HTTP status and the server's own message, where it answered."""

    status: int | None = None
    detail: str = ""


class RemoteCancelled(RemoteError):
    """A request was stopped by RemoteModel.cancel()."""


def is_remote(target: str) -> bool:
    return isinstance(target, str) and target.startswith(("http://", "https://"))


def remote_target(url: str, model: str | None = None) -> str:
    """One string naming a model on a server: "http://host:8000/v1#NAME" (the part after #
    never reaches the server); without a name, the server's one model."""
    return f"{url.rstrip('/')}#{model}" if model else url.rstrip("/")


def split_target(target: str) -> tuple[str, str | None]:
    """(server address, model name or None) of a remote_target string."""
    url, _, model = target.partition("#")
    return url, (model or None)


KEYRING_SERVICE = "tokenscope"


def stored_key(root: str) -> str | None:
    """The API key kept in the system keyring for the server at `root`, if any (None also
    where this machine has no keyring to ask)."""
    try:
        import keyring

        return keyring.get_password(KEYRING_SERVICE, root)
    except Exception:  # no keyring backend, a locked or broken one: as if nothing were kept
        return None


def store_key(root: str, key: str) -> None:
    """Keep `key` for the server at `root` in the system keyring (never in a settings file);
    an empty key forgets the one kept. RemoteError where there is no keyring to keep it in."""
    try:
        import keyring
        import keyring.errors

        if key:
            keyring.set_password(KEYRING_SERVICE, root, key)
        else:
            try:
                keyring.delete_password(KEYRING_SERVICE, root)
            except keyring.errors.PasswordDeleteError:
                pass  # nothing was kept
    except Exception as e:
        raise RemoteError(
            f"the key could not be kept in a system keyring ({type(e).__name__}: {e}); set "
            f"the environment variable {DEFAULT_KEY_ENV} before starting Tokenscope instead"
        ) from None


def server_root(url: str) -> str:
    """The server's address without /v1 (the name its key is kept under)."""
    return re.sub(r"/v1/?$", "", split_target(url)[0].rstrip("/"))


class CancelScope:
    """The requests of one piece of work: `cancel()` (from any thread) stops those in flight
    and refuses new ones with RemoteCancelled, leaving the model's other requests alone."""

    def __init__(self) -> None:
        self.cancelled = False
        self._lock = threading.Lock()
        self._exchanges: set[_Exchange] = set()

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            exchanges = list(self._exchanges)
        for exchange in exchanges:
            exchange.cancelled = True
            exchange.shut()

    def _add(self, exchange: _Exchange) -> None:
        with self._lock:
            if self.cancelled:
                exchange.cancelled = True
            self._exchanges.add(exchange)
        if exchange.cancelled:
            exchange.shut()

    def _discard(self, exchange: _Exchange) -> None:
        with self._lock:
            self._exchanges.discard(exchange)


@dataclass(frozen=True)
class Capabilities:
    """What a server is and what it can do, as found when connecting."""

    kind: str  # "llama.cpp", "vLLM", "SGLang", "Ollama" or "OpenAI-compatible"
    model: str  # the model asked for
    models: tuple[str, ...]  # what the server serves
    max_top_k: int  # the most alternatives a token comes with
    prompt_logprobs: bool  # whether it can score the prompt's own tokens
    probabilities: str  # "raw" (before sampling) or "after sampling" or "unknown"
    parameters: int = 0  # when the server says (0: it does not)
    context_length: int = 0
    vocab_size: int = 0
    tokenizes: bool = False  # it shows how it splits a text into tokens (/tokenize)

    @property
    def label(self) -> str:
        return f"remote · top-{self.max_top_k} · {self.probabilities}"

    @property
    def can_score(self) -> bool:
        """It can score a given continuation: from echoed prompt log-probs, or token by token
        through its top-k where it shows its tokens (a token below the list gives a bound)."""
        return self.prompt_logprobs or self.tokenizes


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
        if power != 1.0:
            # p ** power relative to the most likely token's (sharing is unchanged by a common
            # factor): in logs, so that a low temperature cannot underflow every share to 0.
            top = max(listed[0], 1e-300)

            def relative(p: float) -> float:
                return math.exp(min(700.0, power * math.log(p / top))) if p > 0 else 0.0

            scaled, tail = [relative(p) for p in listed], relative(self.other)
        else:
            scaled, tail = listed[:], self.other
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
class RemoteScore:
    """How probable a continuation is after a context, from the server's prompt log-probs.

    `first_rank` is the rank of its first token among the alternatives the server listed
    there (listed + 1 when it was not among them); `top_text` is the server's most likely
    token at that point."""

    probability: float
    logprob: float
    logprobs: tuple[float, ...]
    first_rank: int
    top_text: str
    top_probability: float
    dropped_tokens: int = 0
    # Scored through the server's top-k and a token was not listed: its probability is at
    # most the last listed one's, so `probability` is an upper bound.
    upper_bound: bool = False


@dataclass(frozen=True)
class TextToken:
    """A token of a text as the server splits it, and the characters it covers."""

    token_id: int
    text: str
    display: str
    start: int
    end: int


@dataclass(frozen=True)
class RemoteStep:
    """One generated token and the alternatives the server listed for it."""

    index: int
    text: str
    probability: float | None  # of the token drawn, where the server says
    top: tuple[RemoteToken, ...]
    token: RemoteToken | None = None  # the token drawn (None from a server without log-probs)


class RemoteGeneration(Iterator[RemoteStep]):
    """The steps of a streamed generation; `finish_reason` once it ends ("stop": the model
    ended the text or met a stop string, "length": max_tokens), `close()` to stop early."""

    def __init__(self, steps: Iterator[RemoteStep], state: dict[str, str]) -> None:
        self._steps, self._state = steps, state

    def __next__(self) -> RemoteStep:
        return next(self._steps)

    def close(self) -> None:
        self._steps.close()  # type: ignore[attr-defined]

    @property
    def finish_reason(self) -> str | None:
        return self._state.get("finish_reason")


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
        api_key: str | None = None,
        api_key_env: str = DEFAULT_KEY_ENV,
        timeout: float = TIMEOUT_S,
        scope: CancelScope | None = None,
    ) -> None:
        if not is_remote(url):
            raise RemoteError(f"{url!r} is not a server address (http://HOST:PORT/v1)")
        url, named = split_target(url)
        model = model or named
        self._setup(url, api_key, api_key_env, timeout)
        self.capabilities = self._detect(model, scope)
        model = self.capabilities.model
        # llama.cpp names its model by the file's path: the file's name says enough.
        short = model.rsplit("/", 1)[-1] if model.startswith("/") else model
        self.name = f"{short} @ {urllib.parse.urlsplit(self.root).netloc}"
        self.target = remote_target(self.url, self.capabilities.model)

    def _setup(self, url: str, api_key: str | None, api_key_env: str, timeout: float) -> None:
        self.root = server_root(url)
        self.url = self.root + "/v1"
        self.api_key_env = api_key_env
        # The key: given, else from the environment variable, else kept in the keyring.
        given = api_key or os.environ.get(api_key_env) or stored_key(self.root) or ""
        key = given.strip()  # (an env file written on Windows leaves a "\r")
        if key and (not key.isascii() or not key.isprintable()):
            raise RemoteError(
                f"the API key (from the environment variable {api_key_env}, the keyring or the "
                "dialog) has characters a request header cannot carry; type it again"
            )
        self._key = key or None
        self.timeout = timeout
        self._lock = threading.Lock()
        self._exchanges: set[_Exchange] = set()

    @classmethod
    def list_models(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        api_key_env: str = DEFAULT_KEY_ENV,
        timeout: float = 15.0,
    ) -> tuple[str, ...]:
        """The models a server serves (GET /v1/models), without connecting to one."""
        if not is_remote(url):
            raise RemoteError(f"{url!r} is not a server address (http://HOST:PORT/v1)")
        client = cls.__new__(cls)
        client._setup(split_target(url)[0], api_key, api_key_env, timeout)
        listing = client._json("/v1/models")
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list):
            raise RemoteError(f"{client.url}/models does not list models: not an OpenAI-style API")
        return tuple(str(m.get("id")) for m in data if isinstance(m, dict) and m.get("id"))

    # ----- HTTP ------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def _open(
        self, path: str, body: dict | None = None, scope: CancelScope | None = None
    ) -> _Exchange:
        """One request; its response (read it inside `with`). `cancel()` (or the scope's)
        from another thread ends it at once, waiting or reading."""
        url = urllib.parse.urlsplit(self.root + path)
        connection_class = (
            http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        )
        connect_timeout = min(self.timeout, CONNECT_TIMEOUT_S)
        connection = connection_class(url.hostname, url.port, timeout=connect_timeout)
        exchange = _Exchange(self, connection, scope)
        with self._lock:
            self._exchanges.add(exchange)
        if scope is not None:
            scope._add(exchange)
        try:
            if exchange.cancelled:
                raise RemoteCancelled("the request to the server was cancelled")
            try:
                connection.connect()
            except TimeoutError:
                raise RemoteError(
                    f"{self.root} cannot be reached (no connection within {connect_timeout:g} "
                    "s): is the address right and the server up?"
                ) from None
            connection.sock.settimeout(self.timeout)
            exchange.attach(connection.sock)  # from now on a cancel shuts it
            data = None if body is None else json.dumps(body).encode()
            target = url.path + (f"?{url.query}" if url.query else "")
            connection.request(
                "GET" if body is None else "POST", target, body=data, headers=self._headers()
            )
            response = connection.getresponse()
        except RemoteError:
            exchange.close()
            raise
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
        if exchange.cancelled or isinstance(e, RemoteCancelled):
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
        error = self._http_error_message(code, reason, headers, text, path)
        error.status, error.detail = code, _error_text(text)
        return error

    def _http_error_message(
        self, code: int, reason: str, headers: Any, text: str, path: str
    ) -> RemoteError:
        detail = _error_text(text)
        if code in (401, 403):
            return RemoteError(
                f"{self.root} refused the request ({code}: {detail or reason}); put its API "
                f"key in the environment variable {self.api_key_env}, or type it in Models > "
                "Connect to a server (kept in the system keyring)"
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

    def _json(self, path: str, body: dict | None = None, scope: CancelScope | None = None) -> Any:
        with self._open(path, body, scope) as exchange:
            raw = exchange.read()
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            shown = raw[:80].decode("utf-8", errors="replace")
            raise RemoteError(
                f"{self.root}{path} answered something that is not JSON: {shown!r}"
            ) from None

    def _probe(
        self, path: str, scope: CancelScope | None = None, body: dict | None = None
    ) -> Any | None:
        """`path`, None when the server has no such thing (it tells the kind apart)."""
        try:
            return self._json(path, body, scope)
        except RemoteCancelled:
            raise
        except RemoteError:
            return None

    # ----- what the server is ----------------------------------------------------------------

    def _detect(self, wanted: str | None, scope: CancelScope | None) -> Capabilities:
        listing = self._json("/v1/models", scope=scope)
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list):
            raise RemoteError(f"{self.url}/models does not list models: not an OpenAI-style API")
        entries = {str(m.get("id")): m for m in data if isinstance(m, dict) and m.get("id")}
        models = tuple(entries)
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
        sizes = _sizes(entries[wanted])
        ours = self._probe("/tokenscope", scope)
        if isinstance(ours, dict) and isinstance(ours.get("max_logprobs"), int):
            # `tokenscope serve`: raw log-probabilities, of the prompt too, and its tokens.
            top = max(1, ours["max_logprobs"])
            return Capabilities("Tokenscope", wanted, models, top, True, "raw", *sizes, True)
        props = self._probe("/props", scope)
        if isinstance(props, dict) and "default_generation_settings" in props:
            # llama.cpp: any number of alternatives; probabilities before sampling unless a
            # request asks for post_sampling_probs; no log-probs of the prompt itself.
            return Capabilities("llama.cpp", wanted, models, 100, False, "raw", *sizes, True)
        top = self._largest_top_k(wanted, scope)
        echo = self._echoes(wanted, scope)
        answer = self._probe("/tokenize", scope, {"model": wanted, "prompt": "a"})
        tokenizes = isinstance(answer, dict) and isinstance(answer.get("tokens"), list)
        if isinstance(self._probe("/version", scope), dict):
            # vLLM: at most --max-logprobs (20 by default); --logprobs-mode is server-wide.
            kind, probabilities = "vLLM", "raw (by default)"
        elif isinstance(self._probe("/get_model_info", scope), dict):
            kind, probabilities = "SGLang", "scaled by temperature"
        elif isinstance(self._probe("/api/version", scope), dict):
            kind, probabilities = "Ollama", "unknown"
        else:
            kind, probabilities = "OpenAI-compatible", "unknown"
        return Capabilities(kind, wanted, models, top, echo, probabilities, *sizes, tokenizes)

    def _echoes(self, model: str, scope: CancelScope | None = None) -> bool:
        """Whether the server returns log-probabilities of the prompt's own tokens (echo)."""
        body = {"model": model, "prompt": "a b", "max_tokens": 1, "logprobs": 1, "echo": True}
        try:
            choice = self._json("/v1/completions", body, scope)["choices"][0]
            values = (choice.get("logprobs") or {}).get("token_logprobs")
        except RemoteCancelled:
            raise
        except (RemoteError, KeyError, IndexError, TypeError, AttributeError):
            return False
        return isinstance(values, list) and len(values) >= 2

    def _largest_top_k(self, model: str, scope: CancelScope | None = None) -> int:
        """Ask for DEFAULT_TOP_K alternatives; a server that allows fewer says how many in its
        error ("... max allowed: 5"), and that number is taken."""
        body = {"model": model, "prompt": "a", "max_tokens": 1, "logprobs": DEFAULT_TOP_K}
        try:
            self._json("/v1/completions", body, scope)
            return DEFAULT_TOP_K
        except RemoteCancelled:
            raise
        except RemoteError as e:
            # Only a refusal of the request itself, read from the server's own words (the
            # address in the message has numbers too).
            if e.status in (400, 422):
                numbers = [int(n) for n in re.findall(r"\b(\d+)\b", e.detail) if 0 < int(n) < 20]
                if numbers:
                    return min(numbers)
            raise

    # ----- the seed API ----------------------------------------------------------------------

    def _completion(
        self, prompt: str | list[int], scope: CancelScope | None = None, **extra: Any
    ) -> dict:
        c = self.capabilities
        body = {"model": c.model, "prompt": prompt, "logprobs": c.max_top_k, **extra}
        answer = self._json("/v1/completions", body, scope)
        try:
            return answer["choices"][0]
        except (KeyError, IndexError, TypeError):
            raise RemoteError(f"{self.url}/completions answered without choices") from None

    def _token(self, token_id: Any, text: str, raw: Any, probability: float) -> RemoteToken:
        """A listed token (its id where the server gives one)."""
        if not isinstance(token_id, int) or isinstance(token_id, bool) or token_id < 0:
            token_id = None
        return RemoteToken(token_id, text, _display(text, raw), probability)

    def _positions(self, logprobs: Any) -> list[tuple[RemoteToken | None, list[RemoteToken]]]:
        """(the token at that position, its listed alternatives) per position, from either
        shape servers use: OpenAI's legacy completions ({"tokens": [...], "token_logprobs":
        [...], "top_logprobs": [{text: logprob}]}) or the chat-style list llama.cpp returns
        ({"content": [{"token", "id", "bytes", "logprob", "top_logprobs"}]})."""
        if not isinstance(logprobs, dict):
            return []
        out: list[tuple[RemoteToken | None, list[RemoteToken]]] = []
        if isinstance(logprobs.get("content"), list):
            for item in logprobs["content"]:
                if not isinstance(item, dict):
                    continue
                top = [
                    self._token(t.get("id"), str(t.get("token", "")), t.get("bytes"),
                                _probability(t["logprob"]))
                    for t in item.get("top_logprobs") or []
                    if isinstance(t, dict) and "logprob" in t
                ]  # fmt: skip
                top.sort(key=lambda t: -t.probability)
                text = str(item.get("token", ""))
                own_id = item.get("id")
                if isinstance(own_id, int) and not isinstance(own_id, bool):
                    # by id: pieces of one character split across tokens share a text
                    listed = next((t for t in top if t.token_id == own_id), None)
                else:
                    listed = next((t for t in top if t.text == text), None)
                if listed is None:
                    p = _probability(item["logprob"]) if "logprob" in item else 0.0
                    listed = self._token(item.get("id"), text, item.get("bytes"), p)
                out.append((listed, top))
            return out
        tokens, tops = logprobs.get("tokens"), logprobs.get("top_logprobs")
        values = logprobs.get("token_logprobs")
        if isinstance(tokens, list) and isinstance(tops, list):
            for i, (token, top) in enumerate(zip(tokens, tops, strict=False)):
                listed = [
                    self._token(None, str(text), None, _probability(lp))
                    for text, lp in (top or {}).items()
                ]
                listed.sort(key=lambda t: -t.probability)
                own = values[i] if isinstance(values, list) and i < len(values) else None
                chosen = next((t for t in listed if t.text == token), None)
                if chosen is None:
                    p = _probability(own) if own is not None else 0.0
                    chosen = self._token(None, str(token), None, p)
                out.append((chosen, listed))
        return out

    def predict_next_token_probabilities(
        self, prompt: str, top_k: int | None = None, *, scope: CancelScope | None = None
    ) -> RemoteDistribution:
        """The server's top-k next tokens after `prompt` (raw where the server can say)."""
        k = min(top_k or self.capabilities.max_top_k, self.capabilities.max_top_k)
        choice = self._completion(prompt, scope, max_tokens=1, temperature=0.0)
        positions = self._positions(choice.get("logprobs"))
        if not positions or not positions[0][1]:
            raise RemoteError(f"{self.root} returned no log-probabilities for this prompt")
        top = positions[0][1][:k]
        listed = sum(t.probability for t in top)
        return RemoteDistribution(tuple(top), max(0.0, 1.0 - listed), self.capabilities.label)

    def get_most_likely_token(self, dist: RemoteDistribution) -> str:
        return dist.most_likely.text

    def tokenize(
        self, text: str, *, special: bool = False, scope: CancelScope | None = None
    ) -> list[TextToken]:
        """The text split as the server splits it (llama.cpp's and vLLM's /tokenize);
        `special`: with the tokens the server adds to a prompt (BOS)."""
        c = self.capabilities
        if not c.tokenizes:
            raise RemoteError(f"{c.kind} at {self.root} does not show how it splits a text")
        if c.kind == "llama.cpp":
            body = {"content": text, "with_pieces": True, "add_special": special}
            answer = self._json("/tokenize", body, scope)
            items = answer.get("tokens") if isinstance(answer, dict) else None
            if not isinstance(items, list):
                raise RemoteError(f"{self.root}/tokenize answered without tokens")
            pieces = [
                (int(t["id"]), bytes(t["piece"]) if isinstance(t["piece"], list)
                 else str(t["piece"]).encode("utf-8"))
                for t in items if isinstance(t, dict) and "id" in t and "piece" in t
            ]  # fmt: skip
        else:
            body = {"model": c.model, "prompt": text, "return_token_strs": True,
                    "add_special_tokens": special}  # fmt: skip
            answer = self._json("/tokenize", body, scope)
            ids = answer.get("tokens") if isinstance(answer, dict) else None
            strs = answer.get("token_strs") if isinstance(answer, dict) else None
            if not isinstance(ids, list):
                raise RemoteError(f"{self.root}/tokenize answered without tokens")
            if not isinstance(strs, list) or len(strs) != len(ids):
                strs = ["?"] * len(ids)  # ids without their text: shown as they are
            pieces = [(int(i), str(t).encode("utf-8")) for i, t in zip(ids, strs, strict=True)]
        return _spans(text, pieces)

    def score_continuation(
        self, context: str, continuation: str, *, scope: CancelScope | None = None
    ) -> RemoteScore:
        """P(continuation | context) from the log-probabilities the server gives the prompt's
        own tokens (`echo`), where it can; a message saying which servers can, where not."""
        c = self.capabilities
        if not continuation:
            raise RemoteError("the continuation is empty")
        if not c.prompt_logprobs:
            if c.tokenizes:
                return self._score_through_top_k(context, continuation, scope)
            raise RemoteError(
                f"{c.kind} at {self.root} returns no log-probabilities of the prompt and does "
                "not show its tokens, so it cannot score a given answer (vLLM, SGLang and "
                "llama.cpp can; or open the model locally)"
            )
        choice = self._completion(context + continuation, scope, max_tokens=1, echo=True)
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
        scores: list[float] = []
        for offset, value in zip(offsets[first:], values[first:], strict=False):
            if offset >= end:
                break  # the generated token after the prompt
            if value is None:
                raise RemoteError(f"{self.root} gave a prompt token no log-probability")
            scores.append(float(value))
        positions = self._positions(logprobs)
        rank, top_text, top_p = 0, "", 0.0  # (0: the server listed no alternatives there)
        if first < len(positions) and positions[first][1]:
            token, top = positions[first]
            top_text, top_p = top[0].text, top[0].probability
            rank = next((i for i, t in enumerate(top, 1) if t.text == token.text), len(top) + 1)
        total = sum(scores)
        return RemoteScore(math.exp(total), total, tuple(scores), rank, top_text, top_p)

    def _score_through_top_k(
        self, context: str, continuation: str, scope: CancelScope | None
    ) -> RemoteScore:
        """Token by token: the server's tokens of context + continuation (it shows them),
        then one request per continuation token with the token ids before it as the prompt,
        reading that token's probability off the listed alternatives. A token not listed
        counts as the last listed one's probability, and the score says it is a bound."""
        head = [t.token_id for t in self.tokenize(context, special=True, scope=scope)]
        whole = self.tokenize(context + continuation, special=True, scope=scope)
        ids = [t.token_id for t in whole]
        if ids[: len(head)] != head:
            raise RemoteError(
                "the server's tokens do not start where the continuation does: a token spans "
                "the end of the context (end the context before a space, or the answer with one)"
            )
        if len(ids) == len(head):
            raise RemoteError("the continuation adds no token")
        logprobs: list[float] = []
        rank, top_text, top_p, bound = 0, "", 0.0, False
        for at in range(len(head), len(ids)):
            choice = self._completion(ids[:at], scope, max_tokens=1, temperature=0.0)
            positions = self._positions(choice.get("logprobs"))
            if not positions or not positions[0][1]:
                raise RemoteError(f"{self.root} returned no log-probabilities for this prompt")
            top = positions[0][1]
            wanted = whole[at]  # by id where the list has ids, else by its text
            found = next(
                (
                    i
                    for i, t in enumerate(top)
                    if (
                        t.token_id == wanted.token_id
                        if t.token_id is not None
                        else t.text == wanted.text
                    )
                ),
                None,
            )
            if found is None:
                p, bound = top[-1].probability, True
            else:
                p = top[found].probability
            if at == len(head):
                rank = len(top) + 1 if found is None else found + 1
                top_text, top_p = top[0].text, top[0].probability
            logprobs.append(math.log(max(p, 1e-300)))
        total = sum(logprobs)
        return RemoteScore(math.exp(total), total, tuple(logprobs), rank, top_text, top_p,
                           upper_bound=bound)  # fmt: skip

    def generate(
        self,
        prompt: str,
        max_tokens: int = 32,
        *,
        temperature: float = 1.0,
        seed: int | None = None,
        sampling: SamplingSettings | None = None,
        scope: CancelScope | None = None,
    ) -> RemoteGeneration:
        """Tokens as the server streams them, each with its listed alternatives. A stream cut
        mid-way ends with RemoteError after the tokens that arrived. `sampling` (the knobs)
        goes to the server; the knobs a plain OpenAI API lacks only when they are set."""
        c = self.capabilities
        body: dict[str, Any] = {"model": c.model, "prompt": prompt, "max_tokens": max_tokens,
                                "stream": True, "logprobs": c.max_top_k,
                                "temperature": temperature}  # fmt: skip
        if sampling is not None:
            body["temperature"] = sampling.temperature
            seed = sampling.seed if sampling.seed is not None else seed
            if sampling.top_p < 1.0:
                body["top_p"] = sampling.top_p
            if sampling.top_k:
                body["top_k"] = sampling.top_k
            if sampling.min_p > 0.0:
                body["min_p"] = sampling.min_p
            if sampling.repetition_penalty != 1.0:
                body["repetition_penalty"] = sampling.repetition_penalty
                body["repeat_penalty"] = sampling.repetition_penalty  # (llama.cpp's name)
        if seed is not None:
            body["seed"] = seed
        state: dict[str, str] = {}
        return RemoteGeneration(self._stream(body, scope, state), state)

    def _stream(
        self, body: dict[str, Any], scope: CancelScope | None, state: dict[str, str]
    ) -> Iterator[RemoteStep]:
        index = 0
        finished = False
        with self._open("/v1/completions", body, scope) as exchange:
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
                    positions = self._positions(choice.get("logprobs"))
                    if not positions and text:  # a server without log-probs
                        positions = [(None, [])]
                    for token, top in positions:
                        if token is None:
                            yield RemoteStep(index, text, None, ())
                        else:
                            p = token.probability if token.probability > 0 else None
                            # One token per event (llama.cpp, vLLM streaming): the event's
                            # text is the server's own decoding, whole characters even where
                            # one is split across tokens; continuing a branch sends it back.
                            own = text if len(positions) == 1 else token.text
                            yield RemoteStep(index, own, p, tuple(top), token)
                        index += 1
                    if choice.get("finish_reason"):
                        finished = True
                        state["finish_reason"] = str(choice["finish_reason"])
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

    def __init__(
        self,
        owner: RemoteModel,
        connection: http.client.HTTPConnection,
        scope: CancelScope | None = None,
    ) -> None:
        self.owner, self.connection, self.scope = owner, connection, scope
        self.response: http.client.HTTPResponse | None = None
        self.sock: socket.socket | None = None  # once connected (a response may take it over)
        self.cancelled = False

    def attach(self, sock: socket.socket) -> None:
        """The connection is open: a cancel shuts this socket (one that came meanwhile, now)."""
        self.sock = sock
        if self.cancelled:
            self.shut()

    def __enter__(self) -> _Exchange:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def read(self) -> bytes:
        try:
            data = self.response.read()
        except BaseException as e:
            raise self.owner._network_error(e, self) from None
        if self.cancelled:  # it came whole before the cancel could cut it
            raise RemoteCancelled("the request to the server was cancelled")
        return data

    def lines(self) -> Iterator[bytes]:
        while not self.cancelled and (line := self.response.readline()):
            yield line

    def shut(self) -> None:
        """Wake a thread blocked on this connection (cancel). The socket kept when it opened:
        a response that closes the connection when done takes it from the connection."""
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self.owner._lock:
            self.owner._exchanges.discard(self)
        if self.scope is not None:
            self.scope._discard(self)
        if self.response is not None:
            self.response.close()
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


def _probability(logprob: Any) -> float:
    try:
        return math.exp(float(logprob))
    except (TypeError, ValueError, OverflowError):
        return 0.0


def _sizes(entry: dict) -> tuple[int, int, int]:
    """(parameters, context length, vocabulary) where the server's model listing says:
    llama.cpp under "meta", vLLM as "max_model_len"."""
    meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}

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


def _spans(text: str, pieces: list[tuple[int, bytes]]) -> list[TextToken]:
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
        out.append(TextToken(token_id, piece.decode("utf-8", errors="replace"),
                             display_bytes(piece), first, last))  # fmt: skip
        at += len(piece)
    return out
