"""HTTP to a model server: one request at a time per call, cancellable, errors a person reads.

The standard library's client is enough (plain JSON requests and a text event stream). Every
request belongs to the caller's CancelToken: cancelling shuts its socket, which wakes a
thread blocked waiting on the server, and the call raises Cancelled. Reads are bounded: a
JSON body by MAX_BODY_BYTES, an event-stream line by MAX_LINE_BYTES.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import urllib.parse
from collections.abc import Iterator
from typing import Any

from tokenscope.lm.cancel import Cancelled, CancelToken
from tokenscope.lm.errors import TokenscopeError

DEFAULT_KEY_ENV = "TOKENSCOPE_API_KEY"
KEYRING_SERVICE = "tokenscope"
TIMEOUT_S = 60.0
#: at most this long to open a connection (a cancel cannot cut it short: the socket is not
#: there to shut until it is open)
CONNECT_TIMEOUT_S = 10.0
#: the largest JSON answer read (a top-100 list for a few hundred prompt tokens is ~1 MB)
MAX_BODY_BYTES = 64 * 1024 * 1024
#: the longest line of an event stream (one token's event is a few KB)
MAX_LINE_BYTES = 1024 * 1024


class RemoteError(TokenscopeError):
    """The server could not be reached or answered something unusable; the message says which.
    `status` and `detail`: the HTTP status and the server's own message, where it answered."""

    status: int | None = None
    detail: str = ""


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
        data = json.loads(text)
    except ValueError:
        return text.strip().splitlines()[0][:200] if text.strip() else ""
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or error
    return str(error)[:200]


class Exchange:
    """A request in flight: its connection and, once headers came, its response. While it is
    open, cancelling the caller's token shuts its socket."""

    def __init__(
        self,
        server: Server,
        connection: http.client.HTTPConnection,
        cancel: CancelToken | None,
    ) -> None:
        self.server, self.connection = server, connection
        self.response: http.client.HTTPResponse | None = None
        self.sock: socket.socket | None = None  # once connected (a response may take it over)
        self.cancelled = False
        self._stack = contextlib.ExitStack()
        if cancel is not None:
            self._stack.enter_context(cancel.calling(self._on_cancel))

    def _on_cancel(self) -> None:
        self.cancelled = True
        self.shut()

    def attach(self, sock: socket.socket) -> None:
        """The connection is open: a cancel shuts this socket (one that came meanwhile, now)."""
        self.sock = sock
        if self.cancelled:
            self.shut()

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def read(self) -> bytes:
        """The whole body, at most MAX_BODY_BYTES."""
        assert self.response is not None
        try:
            data = self.response.read(MAX_BODY_BYTES + 1)
        except BaseException as e:
            raise self.server.network_error(e, self) from None
        if self.cancelled:  # it came whole before the cancel could cut it
            raise Cancelled
        if len(data) > MAX_BODY_BYTES:
            raise RemoteError(
                f"{self.server.root} sent an answer larger than {MAX_BODY_BYTES // 2**20} MB; "
                "no request of Tokenscope's needs that much"
            )
        return data

    def lines(self) -> Iterator[bytes]:
        """The body line by line (an event stream), each at most MAX_LINE_BYTES."""
        assert self.response is not None
        while not self.cancelled:
            line = self.response.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                raise RemoteError(
                    f"{self.server.root} sent a stream line longer than "
                    f"{MAX_LINE_BYTES // 1024} KB; no token's event is that long"
                )
            yield line

    def shut(self) -> None:
        """Wake a thread blocked on this connection (cancel). The socket kept when it opened:
        a response that closes the connection when done takes it from the connection."""
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stack.close()
        if self.response is not None:
            self.response.close()
        self.connection.close()


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
        """`keyless`: send no key at all (looking around, a key is not for whoever answers)."""
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

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def open(
        self, path: str, body: dict[str, Any] | None = None, cancel: CancelToken | None = None
    ) -> Exchange:
        """One request; its response (read it inside `with`). Cancelling `cancel` from
        another thread ends it at once, waiting or reading."""
        url = urllib.parse.urlsplit(self.root + path)
        connection_class = (
            http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        )
        connect_timeout = min(self.timeout, CONNECT_TIMEOUT_S)
        connection = connection_class(url.hostname or "", url.port, timeout=connect_timeout)
        exchange = Exchange(self, connection, cancel)
        try:
            if exchange.cancelled:
                raise Cancelled
            try:
                connection.connect()
            except TimeoutError:
                raise RemoteError(
                    f"{self.root} cannot be reached (no connection within {connect_timeout:g} "
                    "s): is the address right and the server up?"
                ) from None
            assert connection.sock is not None
            connection.sock.settimeout(self.timeout)
            exchange.attach(connection.sock)  # from now on a cancel shuts it
            data = None if body is None else json.dumps(body).encode()
            target = url.path + (f"?{url.query}" if url.query else "")
            connection.request(
                "GET" if body is None else "POST", target, body=data, headers=self._headers()
            )
            response = connection.getresponse()
        except (RemoteError, Cancelled):
            exchange.close()
            raise
        except BaseException as e:
            exchange.close()
            raise self.network_error(e, exchange) from None
        exchange.response = response
        if response.status >= 400:
            try:
                text = response.read(2000).decode("utf-8", errors="replace")
            except OSError:
                text = ""
            exchange.close()
            raise self.http_error(response.status, response.reason, response.headers, text, path)
        return exchange

    def network_error(self, e: BaseException, exchange: Exchange) -> BaseException:
        if exchange.cancelled or isinstance(e, Cancelled):
            return Cancelled()
        if isinstance(e, ConnectionRefusedError):
            return RemoteError(
                f"nothing answers at {self.root} (connection refused): is the server running?"
            )
        if isinstance(e, TimeoutError):
            return self.timeout_error()
        if isinstance(e, (OSError, http.client.HTTPException)):
            return RemoteError(f"{self.root} cannot be reached ({e})")
        return e  # (KeyboardInterrupt and the like go on as they are)

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
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            shown = raw[:80].decode("utf-8", errors="replace")
            raise RemoteError(
                f"{self.root}{path} answered something that is not JSON: {shown!r}"
            ) from None

    def probe(
        self, path: str, cancel: CancelToken | None = None, body: dict[str, Any] | None = None
    ) -> Any | None:
        """`path`, None when the server has no such thing (it tells the kind apart)."""
        try:
            return self.json(path, body, cancel)
        except RemoteError:
            return None
