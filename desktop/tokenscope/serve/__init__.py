"""`tokenscope serve`: a model opened in Tokenscope as an OpenAI-compatible HTTP server.

    tokenscope serve -m runs/my-run/best --port 8000
    # then: tokenscope predict "..." -m http://127.0.0.1:8000/v1, the window's Connect to a
    # server, or an evaluation harness that needs log-probabilities

It answers the legacy completions API with full log-probabilities: every generated token's
top-k (up to --max-logprobs), the prompt's own tokens with `echo` (what few-shot scoring and
harnesses need), a stream of server-sent events with `stream`, token-id prompts, and
/tokenize. Built on FastAPI and uvicorn (the `serve` extra).

    server.py       serve(): load the model, bind the socket, run uvicorn
    app.py          create_app() and the routes
    schemas.py      the request bodies (Pydantic): types, ranges, defaults
    completions.py  one completion, whole or streamed, with its log-probabilities
    logprobs.py     log-probabilities in the shapes clients read
    state.py        what one app serves: the model, its lock and its limits
    errors.py       every refusal as {"error": {"message", "type", "param", "code"}}
    auth.py         the API key check
"""

from typing import Any

from tokenscope.serve.server import DEFAULT_MAX_LOGPROBS, DEFAULT_PORT, serve

__all__ = ["DEFAULT_MAX_LOGPROBS", "DEFAULT_PORT", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    # create_app needs FastAPI (the serve extra): imported when asked for, so that
    # `from tokenscope.serve import serve` works without it and serve() can say what to install.
    if name == "create_app":
        from tokenscope.serve.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
