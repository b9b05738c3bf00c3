"""A server on the loopback address that answers whatever a case scripts, down to the bytes:
malformed status lines, lying lengths, bodies that never end, a byte now and then, silence.

    with HostileServer(script) as server:      # script(request) -> a Reply
        url = server.url

A Reply writes to the socket itself (`reply(out, stopping)`); the helpers below make the
usual ones. Every writer stops when the client hangs up or the server is stopped, so a body
that "never ends" ends with the case. Only the standard library is used.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

Writer = Callable[[Any, threading.Event], None]


@dataclass
class Request:
    method: str
    path: str  # with its query
    headers: dict[str, str]
    body: bytes
    host_port: int

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


@dataclass
class Log:
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: Request) -> None:
        with self.lock:
            self.requests.append(request)


# ----- replies ------------------------------------------------------------------------------


def _head(status: int | str, headers: dict[str, str]) -> bytes:
    line = status if isinstance(status, str) else f"HTTP/1.1 {status} X"
    lines = [line, *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode("utf-8", errors="surrogateescape")


def respond(status: int | str, body: bytes | Any = b"", headers: dict[str, str] | None = None,
            *, length: int | str | None = "exact") -> Writer:  # fmt: skip
    """A whole answer: `body` (bytes, else JSON); `length` the Content-Length to declare
    ("exact", None for none: the body then ends when the connection closes, or a lie)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = {"Content-Type": "application/json", "Connection": "close", **(headers or {})}
    if length == "exact":
        head["Content-Length"] = str(len(data))
    elif length is not None:
        head["Content-Length"] = str(length)

    def write(out: Any, stopping: threading.Event) -> None:
        out.sendall(_head(status, head) + data)

    return write


def stream(
    status: int,
    pieces: Iterable[bytes],
    headers: dict[str, str] | None = None,
    *,
    delay: float = 0.0,
    length: int | None = None,
    chunked: bool = False,
) -> Writer:
    """A body written piece by piece (`delay` seconds apart), for as long as `pieces` goes
    on and the client reads."""
    head = {"Content-Type": "text/event-stream", "Connection": "close", **(headers or {})}
    if length is not None:
        head["Content-Length"] = str(length)
    if chunked:
        head["Transfer-Encoding"] = "chunked"

    def write(out: Any, stopping: threading.Event) -> None:
        out.sendall(_head(status, head))
        for piece in pieces:
            if stopping.is_set():
                return
            if chunked:
                piece = b"%x\r\n%s\r\n" % (len(piece), piece)
            out.sendall(piece)
            if delay and stopping.wait(delay):
                return

    return write


def raw(data: bytes) -> Writer:
    """Exactly these bytes, then the connection closes."""

    def write(out: Any, stopping: threading.Event) -> None:
        out.sendall(data)

    return write


def drip(data: bytes, every: float) -> Writer:
    """`data` (a whole response) one byte at a time, `every` seconds apart."""

    def write(out: Any, stopping: threading.Event) -> None:
        for i in range(len(data)):
            out.sendall(data[i : i + 1])
            if stopping.wait(every):
                return

    return write


def silent(seconds: float = 3600.0) -> Writer:
    """Nothing at all (until the case ends)."""

    def write(out: Any, stopping: threading.Event) -> None:
        stopping.wait(seconds)

    return write


def forever(piece: bytes) -> Iterator[bytes]:
    while True:
        yield piece


# ----- the server ---------------------------------------------------------------------------


class HostileServer:
    def __init__(self, script: Callable[[Request], Writer]) -> None:
        self.script = script
        self.log = Log()
        self.stopping = threading.Event()
        hostile = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.settimeout(10)
                try:
                    request = _read_request(sock, hostile.port)
                    if request is None:
                        return
                    hostile.log.add(request)
                    hostile.script(request)(sock, hostile.stopping)
                except OSError:
                    pass  # the client hung up: what it does then is the case's business

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        # socketserver's shutdown() waits for serve_forever without a limit; once in 2,000
        # soak cases it never returned (the client had long finished). The loop thread is a
        # daemon, so a server that will not stop in 5 s is left to the process's end.
        stopper = threading.Thread(target=self._server.shutdown, daemon=True)
        stopper.start()
        stopper.join(5)
        self._server.server_close()


def _read_request(sock: socket.socket, port: int) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1 << 20:
            return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path = ([*lines[0].split(" "), "", ""])[:2]
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    while len(body) < min(length, 1 << 22):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Request(method, path, headers, body, port)
