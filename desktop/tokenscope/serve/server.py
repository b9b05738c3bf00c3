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
    announce: Any = print,
) -> None:
    """Load `target` and serve it until interrupted (port 0: a free one, announced)."""
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
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # connections wait from now on, so the announced address answers at once
    shown = f"[{host}]" if ":" in host else host
    announce(f"serving {name} at http://{shown}:{sock.getsockname()[1]}/v1 (Ctrl+C stops)")
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
