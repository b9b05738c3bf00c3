"""A bound on request bodies, and memory given back after a large one.

    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)

The largest body a client needs is a batch of prompts at the model's context (lm-evaluation-
harness sends up to a few MB); MAX_BODY_BYTES leaves room for far more and refuses the rest
with a 413 in errors.py's shape: a declared Content-Length at once, before a byte is read, a
chunked body as soon as it passes the bound. After a request whose body and answer come to
more than TRIM_AFTER_BYTES, the C allocator is asked to hand freed memory back to the system
(glibc's malloc_trim; elsewhere nothing), so that one huge request does not leave the server
large.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenscope.serve.errors import error_response

MAX_BODY_BYTES = 32 * 2**20
TRIM_AFTER_BYTES = 256 * 1024


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: at most `max_bytes` of body per request (plain ASGI, as auth.py)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, int(declared))
            return
        received = sent = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started, sent
            started = started or message["type"] == "http.response.start"
            sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if not started:
                await self._refuse(scope, receive, send, received)
        finally:
            if received + sent > TRIM_AFTER_BYTES:  # (a large answer took large work)
                await run_in_threadpool(give_back_memory)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: int) -> None:
        message = (
            f"the request's body is {size:,} bytes or more; this server takes at most "
            f"{self.max_bytes:,}"
        )
        await error_response(413, message)(scope, receive, send)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def give_back_memory() -> None:
    """Return the allocator's free memory to the system, where the C library can (glibc)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
