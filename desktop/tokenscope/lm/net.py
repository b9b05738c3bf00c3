"""HTTP with limits, for everything that talks to a network: model servers and the Hub.

    call = open_call("https://host/path", limits=Limits(total_s=60), cancel=token)
    with call:
        data = call.read(max_bytes=1 << 20)      # or call.lines(...), call.chunks(...)

Whatever the other side does, a request ends: it has a time to connect, a time any one read
may wait, and a total deadline after which a watchdog shuts its socket (a server that sends a
byte a second keeps every read short, so only a deadline over the whole request stops it).
Every read is bounded: a body by `max_bytes` (a declared Content-Length beyond it is refused
before anything is read), a line by its own cap. Cancelling the caller's token shuts the
socket at once. Failures raise NetError with one line for a person; anything the server
said in it is escaped (tokenscope.escapes.printable), so no escape sequence or newline of
theirs reaches a terminal or a label.

The standard library's client is enough. Proxies in the environment (https_proxy, ...) are
honoured as other tools honour them, except for this machine's own addresses.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import itertools
import json
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tokenscope.escapes import printable
from tokenscope.lm.cancel import Cancelled, CancelToken

#: no connection takes longer to open (a cancel cannot cut it short: there is no socket yet)
CONNECT_S = 10.0


class NetError(Exception):
    """A request failed; the message is one line a person reads. `reason` says which way, for
    callers that say it in their own words: "refused" (nothing listens), "no connection"
    (none opened in time), "silent" (a read waited too long), "expired" (the deadline
    passed), "too large", "unreachable" (anything else on the way)."""

    def __init__(self, message: str, reason: str = "unreachable"):
        super().__init__(printable(message))
        self.reason = reason

    @property
    def expired(self) -> bool:
        return self.reason == "expired"


@dataclass(frozen=True)
class Limits:
    """How long a request may take: to connect, for any one read, in all (None: no total;
    the caller then bounds it some other way, e.g. a deadline per line it re-arms)."""

    total_s: float | None
    read_s: float = 60.0
    connect_s: float = CONNECT_S


# ----- the watchdog -------------------------------------------------------------------------


class _Watchdog:
    """One thread for the whole process that calls each armed callback when its time comes
    (shutting a socket whose deadline passed). Arming again moves the time."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[int, tuple[float, Callable[[], None]]] = {}
        self._heap: list[tuple[float, int]] = []
        self._keys = itertools.count()
        self._thread: threading.Thread | None = None

    def key(self) -> int:
        return next(self._keys)

    def arm(self, key: int, when: float, fire: Callable[[], None]) -> None:
        with self._cond:
            self._due[key] = (when, fire)
            heapq.heappush(self._heap, (when, key))
            if self._thread is None:  # (kept only once started: a failed start tries again)
                thread = threading.Thread(target=self._run, name="net-deadlines", daemon=True)
                thread.start()
                self._thread = thread
            self._cond.notify()

    def disarm(self, key: int) -> None:
        with self._cond:
            self._due.pop(key, None)

    def _run(self) -> None:
        while True:
            try:
                fire = self._next()
            except Exception:  # (never: but a watchdog that dies lets every request hang)
                time.sleep(0.1)
                continue
            with contextlib.suppress(Exception):
                fire()

    def _next(self) -> Callable[[], None]:
        """Wait for the next callback whose time has come."""
        while True:
            with self._cond:
                while True:
                    # Drop entries moved or disarmed since they were pushed.
                    while (
                        self._heap
                        and self._due.get(self._heap[0][1], (None,))[0] != (self._heap[0][0])
                    ):
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    when, key = self._heap[0]
                    wait = when - time.monotonic()
                    if wait <= 0:
                        heapq.heappop(self._heap)
                        return self._due.pop(key)[1]
                    self._cond.wait(wait)


WATCHDOG = _Watchdog()


# ----- one request --------------------------------------------------------------------------


class Call:
    """One request in flight: its connection and, once headers came, its response."""

    def __init__(self, url: str, limits: Limits, cancel: CancelToken | None) -> None:
        self.url = url
        self.host = urllib.parse.urlsplit(url).netloc
        self.limits = limits
        self.started = time.monotonic()
        self.response: http.client.HTTPResponse | None = None
        self.connection: http.client.HTTPConnection | None = None
        self.sock: socket.socket | None = None
        self.cancelled = False
        self.expired = False
        self._deadline_s: float | None = None
        self._key = WATCHDOG.key()
        self._stack = contextlib.ExitStack()
        if cancel is not None:
            self._stack.enter_context(cancel.calling(self._on_cancel))
        if limits.total_s is not None:
            self.deadline(limits.total_s)

    # -- time --

    def deadline(self, seconds: float) -> None:
        """From now on the request ends within `seconds` (a stream re-arms this per line)."""
        self._deadline_s = seconds
        WATCHDOG.arm(self._key, time.monotonic() + seconds, self._expire)

    def pause(self) -> None:
        """No deadline until the next `deadline()` (while the caller, not the server, works)."""
        WATCHDOG.disarm(self._key)

    def remaining(self) -> float | None:
        if self.limits.total_s is None:
            return None
        return self.started + self.limits.total_s - time.monotonic()

    def _expire(self) -> None:
        self.expired = True
        self.shut()

    def _on_cancel(self) -> None:
        self.cancelled = True
        self.shut()

    def attach(self, sock: socket.socket) -> None:
        self.sock = sock
        if self.cancelled or self.expired:
            self.shut()

    def shut(self) -> None:
        """Wake a thread blocked on this request (a cancel, a deadline)."""
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        WATCHDOG.disarm(self._key)
        self._stack.close()
        if self.response is not None:
            self.response.close()
        if self.connection is not None:
            self.connection.close()

    def __enter__(self) -> Call:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- what went wrong --

    def failure(self, e: BaseException) -> BaseException:
        """What to raise for an exception met on the way: Cancelled, a NetError that says
        which limit was hit, or `e` itself (KeyboardInterrupt and the like)."""
        if self.cancelled or isinstance(e, Cancelled):
            return Cancelled()
        if self.expired:
            return NetError(
                f"{self.host} did not finish answering within {self._deadline_s:g} s", "expired"
            )
        if isinstance(e, NetError):
            return e
        if isinstance(e, ConnectionRefusedError):
            return NetError(f"nothing answers at {self.host} (connection refused)", "refused")
        if isinstance(e, TimeoutError):
            return NetError(f"{self.host} sent nothing for {self.limits.read_s:g} s", "silent")
        if isinstance(e, (OSError, http.client.HTTPException, ValueError)):
            what = str(e) or type(e).__name__
            return NetError(f"{self.host} cannot be reached ({what[:200]})")
        if isinstance(e, MemoryError):  # (nothing here reads without a bound; just in case)
            return NetError(f"{self.host} sent more than this machine's memory holds", "too large")
        return e

    # -- reading --

    def _response(self) -> http.client.HTTPResponse:
        assert self.response is not None, "read after the request failed"
        return self.response

    def declared_length(self) -> int | None:
        value = self._response().getheader("Content-Length")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    def read(self, max_bytes: int, what: str = "an answer") -> bytes:
        """The whole body, refused (NetError) beyond `max_bytes`: a declared length at once,
        else once that many bytes came."""
        declared = self.declared_length()
        if declared is not None and declared > max_bytes:
            raise NetError(
                f"{self.host} declares {what} of {_size(declared)}, more than the "
                f"{_size(max_bytes)} any such answer needs",
                "too large",
            )
        parts: list[bytes] = []
        got = 0
        for chunk in self.chunks():
            got += len(chunk)
            if got > max_bytes:
                raise NetError(
                    f"{self.host} sent {what} larger than {_size(max_bytes)}, more than any "
                    "such answer needs",
                    "too large",
                )
            parts.append(chunk)
        return b"".join(parts)

    def chunks(self, size: int = 1 << 16) -> Iterator[bytes]:
        """The body as it comes, at most `size` bytes at a time (each read returns what one
        arrived: a slow server cannot hold a read for longer than the read time)."""
        response = self._response()
        while True:
            try:
                chunk = response.read1(size)
            except BaseException as e:
                raise self.failure(e) from None
            if self.cancelled:
                raise Cancelled
            if not chunk:
                if self.expired:
                    raise self.failure(TimeoutError())
                return
            yield chunk

    def lines(self, max_line: int, what: str = "a line") -> Iterator[bytes]:
        """The body line by line, each at most `max_line` bytes."""
        response = self._response()
        while True:
            try:
                line = response.readline(max_line + 1)
            except BaseException as e:
                raise self.failure(e) from None
            if self.cancelled:
                raise Cancelled
            if not line:
                if self.expired:
                    raise self.failure(TimeoutError())
                return
            if len(line) > max_line and not line.endswith(b"\n"):
                message = f"{self.host} sent {what} longer than {_size(max_line)}"
                raise NetError(message, "too large")
            yield line


def parse_json(raw: bytes | str) -> Any:
    """JSON from a network (or a file), or ValueError saying in a few words why not: not
    JSON, or nested too deep for the parser (a hostile answer can nest 100,000 levels)."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply to read") from None
    except (ValueError, UnicodeDecodeError):
        text = raw[:80] if isinstance(raw, str) else raw[:80].decode("utf-8", errors="replace")
        raise ValueError(f"something that is not JSON: {printable(text)!r}") from None


def _size(n: int) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _proxy_for(url: urllib.parse.SplitResult) -> urllib.parse.SplitResult | None:
    """The proxy the environment names for `url` (never for this machine's own addresses)."""
    host = url.hostname or ""
    if _is_loopback(host):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme)
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    parsed = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return parsed if parsed.scheme in ("http", "https") and parsed.hostname else None


def open_call(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    limits: Limits,
    cancel: CancelToken | None = None,
) -> Call:
    """Send one request and wait for the response's headers (the status may be anything:
    the caller decides). Raises NetError or Cancelled; the Call must be closed."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NetError(f"{url[:200]!r} is not an http:// or https:// address")
    call = Call(url, limits, cancel)
    try:
        if call.cancelled:
            raise Cancelled
        remaining = call.remaining()
        connect_s = limits.connect_s if remaining is None else min(limits.connect_s, remaining)
        if connect_s <= 0:
            raise call.failure(TimeoutError())
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        proxy = _proxy_for(parts)
        https = parts.scheme == "https"
        where = proxy if proxy is not None else parts
        if https:
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                where.hostname or "", where.port, timeout=connect_s
            )
        else:
            connection = http.client.HTTPConnection(
                where.hostname or "", where.port, timeout=connect_s
            )
        if proxy is not None:
            if https:
                connection.set_tunnel(parts.hostname or "", parts.port)
            else:
                target = url  # a plain-http proxy takes the whole address
        call.connection = connection
        try:
            connection.connect()
        except TimeoutError:
            raise NetError(
                f"{parts.netloc} cannot be reached (no connection within {connect_s:g} s)",
                "no connection",
            ) from None
        assert connection.sock is not None
        connection.sock.settimeout(limits.read_s)
        call.attach(connection.sock)
        connection.request(method, target, body=body, headers=headers or {})
        call.response = connection.getresponse()
    except BaseException as e:
        failure = call.failure(e)
        call.close()
        raise failure from None
    return call
