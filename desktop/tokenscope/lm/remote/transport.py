"""HTTP to a model server: one request at a time per call, cancellable, errors a person reads.

The standard library's client is enough (plain JSON requests and a text event stream). Every
request belongs to the caller's CancelToken: cancelling shuts its socket, which wakes a
thread blocked waiting on the server, and the call raises Cancelled. Every request has a
deadline (twice the timeout; connecting, 15 s for all its requests together: `within`) and
every read a bound: a JSON body by MAX_BODY_BYTES, an event-stream line by MAX_LINE_BYTES and
its time by the timeout (tokenscope.lm.net does the work).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

from tokenscope.escapes import printable
from tokenscope.lm.cancel import Cancelled, CancelToken
from tokenscope.lm.errors import TokenscopeError
from tokenscope.lm.net import CONNECT_S, Call, Limits, NetError, open_call, parse_json

DEFAULT_KEY_ENV = "TOKENSCOPE_API_KEY"
KEYRING_SERVICE = "tokenscope"
TIMEOUT_S = 60.0
#: the most of an error's body read (its message is in the first lines)
ERROR_BODY_BYTES = 8192
#: the largest JSON answer read (a top-100 list for a few hundred prompt tokens is ~1 MB)
MAX_BODY_BYTES = 64 * 1024 * 1024
#: the longest line of an event stream (one token's event is a few KB)
MAX_LINE_BYTES = 1024 * 1024


class RemoteError(TokenscopeError):
    """The server could not be reached or answered something unusable; the message says which
    (in one line: whatever the server put in it is escaped). `status` and `detail`: the HTTP
    status and the server's own message, where it answered."""

    status: int | None = None
    detail: str = ""

    def __init__(self, message: str) -> None:
        super().__init__(printable(message))


def remote_target(url: str, model: str | None = None) -> str:
    """One string naming a model on a server: "http://host:8000/v1#NAME" (the part after #
    never reaches the server); without a name, the server's one model."""
    return f"{url.rstrip('/')}#{model}" if model else url.rstrip("/")


def split_target(target: str) -> tuple[str, str | None]:
    """(server address, model name or None) of a remote_target string."""
    url, _, model = target.partition("#")
    return url, (model or None)


def server_root(url: str) -> str:
    """The server's address without /v1 (the name its key is kept under)."""
    return re.sub(r"/v1/?$", "", split_target(url)[0].rstrip("/"))


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


def error_text(text: str) -> str:
    """The message in a JSON error body ({"error": {"message": ...}} or {"error": "..."})."""
    try:
        data = parse_json(text)
    except ValueError:
        return printable(text.strip().splitlines()[0][:200]) if text.strip() else ""
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or error
    return printable(str(error)[:200])


class Exchange:
    """A request to a model server in flight (a net.Call and the server it went to). While it
    is open, cancelling the caller's token, or its deadline, shuts its socket."""

    def __init__(self, server: Server, call: Call) -> None:
        self.server, self.call = server, call

    @property
    def cancelled(self) -> bool:
        return self.call.cancelled

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def read(self) -> bytes:
        """The whole body, at most MAX_BODY_BYTES."""
        try:
            data = self.call.read(MAX_BODY_BYTES, "an answer")
        except NetError as e:
            raise self.server.error(e) from None
        if self.cancelled:  # it came whole before the cancel could cut it
            raise Cancelled
        return data

    def lines(self, per_line_s: float | None = None) -> Iterator[bytes]:
        """The body line by line (an event stream), each at most MAX_LINE_BYTES and each within
        `per_line_s` (the server's timeout): a stream has no total deadline of its own, as
        long as its events keep coming, but no event may take longer than that."""
        per_line = per_line_s if per_line_s is not None else self.server.timeout
        source = self.call.lines(MAX_LINE_BYTES, "a stream line")
        while True:
            self.call.deadline(per_line)
            try:
                line = next(source, None)
            except NetError as e:
                raise self.server.error(e) from None
            self.call.pause()  # (the caller's time between lines is not the server's)
            if line is None:
                return
            yield line

    def shut(self) -> None:
        self.call.shut()

    def close(self) -> None:
        self.call.close()


class Server:
    """An OpenAI-style server's address, key and timeouts, and its requests."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        api_key_env: str = DEFAULT_KEY_ENV,
        timeout: float = TIMEOUT_S,
        keyless: bool = False,
    ) -> None:
        """`keyless`: send no key at all (looking around, a key is not for whoever answers).
        `timeout`: the longest any read waits; a whole request has twice that."""
        self.root = server_root(url)
        self.url = self.root + "/v1"
        self.api_key_env = api_key_env
        # The key: given, else from the environment variable, else kept in the keyring.
        given = ""
        if not keyless:
            given = api_key or os.environ.get(api_key_env) or stored_key(self.root) or ""
        key = given.strip()  # (an env file written on Windows leaves a "\r")
        if key and (not key.isascii() or not key.isprintable()):
            raise RemoteError(
                f"the API key (from the environment variable {api_key_env}, the keyring or the "
                "dialog) has characters a request header cannot carry; type it again"
            )
        self._key = key or None
        self.timeout = timeout
        self._budget: tuple[float, float] | None = None  # (ends at, seconds), see within()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    @contextlib.contextmanager
    def within(self, seconds: float) -> Iterator[None]:
        """Every request inside ends within `seconds` of entering, all of them together
        (connecting: finding out what the server is takes many small requests)."""
        saved = self._budget
        ends = time.monotonic() + seconds
        if saved is None or saved[0] > ends:  # (inside another, the sooner end holds)
            self._budget = (ends, seconds)
        try:
            yield
        finally:
            self._budget = saved

    def _limits(self) -> tuple[Limits, str]:
        total, why = 2 * self.timeout, ""
        if self._budget is not None:
            ends, seconds = self._budget
            left = ends - time.monotonic()
            if left <= 0:
                raise RemoteError(
                    f"{self.root} did not finish answering within {seconds:g} s while connecting"
                )
            if left < total:
                total, why = left, f"{seconds:g} s while connecting"
        return Limits(total_s=total, read_s=self.timeout, connect_s=min(CONNECT_S, total)), why

    def open(
        self, path: str, body: dict[str, Any] | None = None, cancel: CancelToken | None = None
    ) -> Exchange:
        """One request; its response (read it inside `with`). Cancelling `cancel` from
        another thread ends it at once, waiting or reading."""
        limits, why = self._limits()
        data = None if body is None else json.dumps(body).encode()
        try:
            call = open_call(self.root + path, method="GET" if body is None else "POST",
                             headers=self._headers(), body=data, limits=limits,
                             cancel=cancel)  # fmt: skip
        except NetError as e:
            raise self.error(e, why) from None
        exchange = Exchange(self, call)
        response = call.response
        assert response is not None
        if response.status >= 400:
            try:
                text = call.read(ERROR_BODY_BYTES, "an error").decode("utf-8", errors="replace")
            except NetError:
                text = ""
            exchange.close()
            raise self.http_error(response.status, response.reason, response.headers, text, path)
        return exchange

    def error(self, e: NetError, why: str = "") -> RemoteError:
        """A NetError as this server's RemoteError, in words that say what to check."""
        root = self.root
        if e.reason == "refused":
            return RemoteError(
                f"nothing answers at {root} (connection refused): is the server running?"
            )
        if e.reason == "silent":
            return RemoteError(f"{root} did not answer within {self.timeout:g} s")
        if e.reason == "expired" and why:
            return RemoteError(f"{root} did not finish answering within {why}")
        # (the address as the person gave it, not just its host and port)
        message = str(e).replace(urllib.parse.urlsplit(root).netloc, root, 1)
        if e.reason == "no connection":
            message += ": is the address right and the server up?"
        return RemoteError(message)

    def timeout_error(self) -> RemoteError:
        return RemoteError(f"{self.root} did not answer within {self.timeout:g} s")

    def http_error(self, code: int, reason: str, headers: Any, text: str, path: str) -> RemoteError:
        detail = error_text(text)
        if code in (401, 403):
            error = RemoteError(
                f"{self.root} refused the request ({code}: {detail or reason}); put its API "
                f"key in the environment variable {self.api_key_env}, or type it in Models > "
                "Connect to a server (kept in the system keyring)"
            )
        elif code == 404:
            error = RemoteError(f"{self.root} has no {path} ({detail or 'not found'})")
        elif code == 429:
            wait = headers.get("Retry-After")
            after = f"; it asks to retry after {wait} s" if wait else ""
            error = RemoteError(f"{self.root} is busy (429: too many requests){after}")
        elif code >= 500:
            error = RemoteError(f"{self.root} failed ({code}: {detail or reason})")
        else:
            error = RemoteError(f"{self.root} refused the request ({code}: {detail or reason})")
        error.status, error.detail = code, detail
        return error

    def json(
        self, path: str, body: dict[str, Any] | None = None, cancel: CancelToken | None = None
    ) -> Any:
        with self.open(path, body, cancel) as exchange:
            raw = exchange.read()
        try:
            return parse_json(raw)
        except ValueError as e:
            raise RemoteError(f"{self.root}{path} answered {e}") from None

    def probe(
        self, path: str, cancel: CancelToken | None = None, body: dict[str, Any] | None = None
    ) -> Any | None:
        """`path`, None when the server has no such thing (it tells the kind apart)."""
        try:
            return self.json(path, body, cancel)
        except RemoteError:
            return None
