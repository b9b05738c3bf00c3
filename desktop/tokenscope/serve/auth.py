"""The API key check: with a key set, every request must bring it as `Authorization: Bearer`."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from tokenscope.serve.errors import error_response


class RequireKey:
    """ASGI middleware answering 401 (in errors.py's shape) to any request without the key.

    Plain ASGI rather than FastAPI's `@app.middleware("http")`, which would put every
    response, streams included, through one more layer of tasks; and before routing, so that
    without the key nothing is told, not even which routes exist."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.expected = f"Bearer {key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            # Compared in constant time: how long a refusal takes says nothing about the key.
            if not hmac.compare_digest(given, self.expected):
                await error_response(401, "invalid or missing API key")(scope, receive, send)
                return
        await self.app(scope, receive, send)
