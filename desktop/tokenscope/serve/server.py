"""serve(): load a model, bind the socket, and run the app under uvicorn until interrupted."""

from __future__ import annotations

import os
import socket
from typing import Any

from tokenscope.serve.state import DEFAULT_MAX_LOGPROBS

DEFAULT_PORT = 8000

__all__ = ["DEFAULT_MAX_LOGPROBS", "DEFAULT_PORT", "serve"]


def serve(
    target: str,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    max_logprobs: int = DEFAULT_MAX_LOGPROBS,
    api_key_env: str | None = None,
    dtype: str | None = None,
    threads: int | None = None,
    announce: Any = print,
) -> None:
    """Load `target` and serve it until interrupted (port 0: a free one, announced), on
    `threads` CPU threads (None: chosen from the model's size, as everywhere)."""
    try:
        import uvicorn

        from tokenscope.serve.app import create_app
    except ImportError:
        raise SystemExit(
            "tokenscope serve needs FastAPI and uvicorn: pip install 'tokenscope[serve]'"
        ) from None
    from pathlib import Path

    from tokenscope.lm.loading import load_model

    api_key = os.environ.get(api_key_env, "").strip() if api_key_env else ""
    if api_key_env and not api_key:
        raise SystemExit(f"the environment variable {api_key_env} is empty: no key to require")
    model = load_model(target, dtype=dtype)
    name = model.name or Path(target).name or target
    app = create_app(model, name=name, max_logprobs=max_logprobs, api_key=api_key or None)
    model.set_threads(threads)
    # Decoding compiles in the background where it pays (lm.background_compile); requests
    # are answered eagerly until the compiled step takes over.
    compiling = model.compile_in_background(dtype) is not None
    sock = listening_socket(host, port)
    shown = f"[{host}]" if ":" in host else host
    announce(f"serving {name} at http://{shown}:{sock.getsockname()[1]}/v1 (Ctrl+C stops)")
    if compiling:
        announce("compiling the decode step in the background; answers are eager until then")
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket listening at (host, port): connections wait from now on, so the address
    announced answers at once."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without, a response written in two pieces (headers,
    # body) waits for the client's delayed ACK, 40 ms a request (measured: 44 ms for
    # /v1/models, 0.9 ms with it).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock
