"""`tokenscope serve`: a model opened in Tokenscope as an OpenAI-compatible HTTP server.

    tokenscope serve -m runs/my-run/best --port 8000
    # then: tokenscope predict "..." -m http://127.0.0.1:8000/v1, the window's Connect to a
    # server, or an evaluation harness that needs log-probabilities

It answers the legacy completions API with full log-probabilities: every generated token's
top-k (up to --max-logprobs), the prompt's own tokens with `echo` (what few-shot scoring and
harnesses need), a stream of server-sent events with `stream`, token-id prompts, and
/tokenize. Built on FastAPI and uvicorn (the `serve` extra). One model, one request at a time:
the model runs in a worker thread, so the server keeps answering while it computes, and a
client that goes away mid-stream stops its generation.
"""

# (No `from __future__ import annotations`: FastAPI reads the endpoints' annotations, and
# Request is imported inside create_app, where the strings could not be resolved.)
import asyncio
import math
import os
import socket
from typing import Any

DEFAULT_PORT = 8000
DEFAULT_MAX_LOGPROBS = 20


class _Failure(Exception):
    """A request the server refuses, with the status and message the client gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _whole(body: dict, key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _Failure(400, f"{key} must be a whole number from {low} to {high} (got {value!r})")
    return value


def _number(body: dict, key: str, default: float) -> float:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _Failure(400, f"{key} must be a number (got {value!r})")
    return float(value)


def create_app(
    model: Any, *, name: str, max_logprobs: int = DEFAULT_MAX_LOGPROBS, api_key: str | None = None
):
    """The FastAPI application serving `model` (a tokenscope LanguageModel) as `name`."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse

    from tokenscope import __version__
    from tokenscope.lm.errors import TokenscopeError
    from tokenscope.lm.sampling import SamplingSettings

    app = FastAPI(title="Tokenscope", version=__version__, docs_url=None, redoc_url=None)
    lock = asyncio.Lock()  # one model: one request computes at a time
    tok = model.tokenizer
    window = model.config.context_length

    def error(status: int, message: str) -> JSONResponse:
        kind = "authentication_error" if status == 401 else "invalid_request_error"
        return JSONResponse(
            {"error": {"message": message, "type": kind, "code": status}}, status_code=status
        )

    @app.middleware("http")
    async def check_key(request: Request, call_next):
        if api_key and request.headers.get("authorization") != f"Bearer {api_key}":
            return error(401, "invalid or missing API key")
        return await call_next(request)

    async def body_of(request: Request) -> dict:
        try:
            body = await request.json()
        except ValueError:
            raise _Failure(400, "the request body is not JSON") from None
        if not isinstance(body, dict):
            raise _Failure(400, "the request body must be a JSON object")
        return body

    def prompt_ids(prompt: Any) -> tuple[list[int], list[tuple[int, int, int]], str]:
        """(the ids the model sees, (id, start, end) of the prompt's own tokens, its text)."""
        if isinstance(prompt, list) and prompt and all(isinstance(i, int) for i in prompt):
            if any(not 0 <= i < model.config.vocab_size for i in prompt):
                last = model.config.vocab_size - 1
                raise _Failure(400, f"a token id is outside the vocabulary (0..{last})")
            spans, at = [], 0
            for i in prompt:
                piece = tok.token_text(i)
                spans.append((i, at, at + len(piece)))
                at += len(piece)
            text = "".join(tok.token_text(i) for i in prompt)
            return model._context_ids(prompt, "prompt"), spans, text
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise _Failure(400, "prompt must be text or a list of token ids (one prompt a request)")
        return model._context_ids(prompt, "prompt"), tok.encode_with_offsets(prompt), prompt

    def item(token_id: int, logprob: float | None, top: list[tuple[int, float]]) -> dict:
        """One position as llama.cpp and OpenAI's chat API write it: with ids and bytes, so a
        client can tell apart two tokens with one text (the legacy keys cannot)."""

        def one(i: int) -> dict:
            return {"id": i, "token": tok.token_text(i), "bytes": list(tok.token_bytes(i))}

        return {
            **one(token_id),
            "logprob": logprob,
            "top_logprobs": [{**one(i), "logprob": lp} for i, lp in top],
        }

    def entries(ids_and_lps: list[tuple[int, float]]) -> dict[str, float]:
        out: dict[str, float] = {}
        for i, lp in ids_and_lps:  # (two tokens with one text: the likelier one is kept)
            out.setdefault(tok.token_text(i), lp)
        return out

    def sampling_of(body: dict) -> SamplingSettings:
        top_k = _whole(body, "top_k", 0, -1, 10**9)
        try:
            return SamplingSettings(
                temperature=_number(body, "temperature", 1.0),
                top_k=max(0, top_k),  # (-1: off, as vLLM says it)
                top_p=_number(body, "top_p", 1.0),
                min_p=_number(body, "min_p", 0.0),
                repetition_penalty=_number(body, "repetition_penalty", 1.0),
                seed=body.get("seed"),
            )
        except (TokenscopeError, ValueError) as e:
            raise _Failure(400, str(e)) from None

    def echo_part(ids: list[int], spans: list, k: int) -> dict[str, list]:
        """The prompt's own tokens with their log-probabilities (the first has none unless the
        model puts BOS before it)."""
        scored = model.prompt_logprobs(ids, k)
        lead = len(ids) - len(spans)  # BOS the model added
        tokens, values, tops, offsets, content = [], [], [], [], []
        for j, (i, start, _end) in enumerate(spans):
            at = lead + j - 1  # scored[at] is about ids[at + 1]
            tokens.append(tok.token_text(i))
            offsets.append(start)
            if at >= 0:
                values.append(scored[at][0])
                tops.append(entries(scored[at][1]) if k else None)
                content.append(item(i, scored[at][0], scored[at][1]))
            else:
                values.append(None)
                tops.append(None)
                content.append(item(i, None, []))
        return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops,
                "text_offset": offsets, "content": content}  # fmt: skip

    def step_part(step: Any, k: int, offset: int) -> dict[str, list]:
        top = [(a.token_id, math.log(a.probability)) for a in step.top_raw if a.probability > 0]
        own = math.log(step.probability) if step.probability > 0 else -math.inf
        own = own if math.isfinite(own) else -9999.0
        return {
            "tokens": [tok.token_text(step.token_id)],
            "token_logprobs": [own],
            "top_logprobs": [entries(top[:k]) if k else None],
            "text_offset": [offset],
            "content": [item(step.token_id, own, top[:k])],
        }

    def merge(parts: list[dict[str, list]]) -> dict[str, list]:
        keys = ("tokens", "token_logprobs", "top_logprobs", "text_offset", "content")
        return {key: [v for p in parts for v in p[key]] for key in keys}

    def parse(body: dict) -> dict[str, Any]:
        if body.get("model") not in (None, name):
            asked = body.get("model")
            raise _Failure(404, f"this server has no model {asked!r} (it serves {name!r})")
        logprobs = body.get("logprobs")
        if logprobs is not None and (not isinstance(logprobs, int) or isinstance(logprobs, bool)):
            raise _Failure(400, f"logprobs must be a whole number (got {logprobs!r})")
        if logprobs is not None and logprobs > max_logprobs:
            raise _Failure(
                400,
                f"Requested logprobs of {logprobs}, which is greater than max allowed: "
                f"{max_logprobs}",
            )
        ids, spans, text = prompt_ids(body.get("prompt"))
        max_tokens = _whole(body, "max_tokens", 16, 0, window)
        if len(ids) > window:
            raise _Failure(
                400,
                f"the prompt has {len(ids)} tokens; this model's context is {window} tokens",
            )
        return {"ids": ids, "spans": spans, "text": text, "max_tokens": max_tokens,
                "k": max(0, logprobs or 0), "wants": logprobs is not None,
                "echo": bool(body.get("echo")), "sampling": sampling_of(body),
                "stream": bool(body.get("stream"))}  # fmt: skip

    def run_blocking(job: dict) -> dict[str, Any]:
        parts, text = [], ""
        if job["echo"]:
            parts.append(echo_part(job["ids"], job["spans"], job["k"]))
            text = job["text"]
        offset = len(text)
        gen = model.generate(job["ids"], max_tokens=job["max_tokens"], sampling=job["sampling"],
                             top_k=job["k"])  # fmt: skip
        for step in gen:
            parts.append(step_part(step, job["k"], offset))
            piece = tok.token_text(step.token_id)
            text += piece
            offset += len(piece)
        reason = "stop" if gen.stop_reason == "eos" else "length"
        choice = {"index": 0, "text": text, "finish_reason": reason,
                  "logprobs": merge(parts) if job["wants"] else None}  # fmt: skip
        return {"id": "cmpl-tokenscope", "object": "text_completion", "model": name,
                "choices": [choice]}  # fmt: skip

    def event(payload: dict) -> bytes:
        import json

        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    async def stream(job: dict):
        async with lock:
            gen = await asyncio.to_thread(
                model.generate, job["ids"], max_tokens=job["max_tokens"],
                sampling=job["sampling"], top_k=job["k"],
            )  # fmt: skip
            offset = 0
            try:
                if job["echo"]:
                    part = await asyncio.to_thread(echo_part, job["ids"], job["spans"], job["k"])
                    yield event({"object": "text_completion", "model": name, "choices": [
                        {"index": 0, "text": job["text"], "finish_reason": None,
                         "logprobs": part if job["wants"] else None}]})  # fmt: skip
                    offset = len(job["text"])
                while True:
                    step = await asyncio.to_thread(next, gen, None)
                    if step is None:
                        break
                    piece = tok.token_text(step.token_id)
                    part = step_part(step, job["k"], offset)
                    offset += len(piece)
                    yield event({"object": "text_completion", "model": name, "choices": [
                        {"index": 0, "text": piece, "finish_reason": None,
                         "logprobs": part if job["wants"] else None}]})  # fmt: skip
                reason = "stop" if gen.stop_reason == "eos" else "length"
                last = {"index": 0, "text": "", "finish_reason": reason, "logprobs": None}
                yield event({"object": "text_completion", "model": name, "choices": [last]})
                yield b"data: [DONE]\n\n"
            finally:
                gen.close()  # a client that went away stops the generation here

    @app.exception_handler(_Failure)
    async def refused(_request: Request, e: _Failure) -> JSONResponse:
        return error(e.status, e.message)

    @app.get("/v1/models")
    async def models() -> dict:
        meta = {"n_params": model.parameter_count, "n_ctx": window, "n_vocab": tok.vocab_size}
        return {"object": "list", "data": [{"id": name, "object": "model",
                "owned_by": "tokenscope", "max_model_len": window, "meta": meta}]}  # fmt: skip

    @app.get("/tokenscope")
    async def about() -> dict:
        return {"name": name, "version": __version__, "max_logprobs": max_logprobs,
                "context_length": window}  # fmt: skip

    @app.post("/tokenize")
    async def tokenize(request: Request) -> dict:
        body = await body_of(request)
        text = body.get("prompt", body.get("content"))
        if not isinstance(text, str):
            raise _Failure(400, "prompt must be text")
        special = body.get("add_special_tokens", body.get("add_special", False))
        ids = model._context_ids(text, "prompt") if special else model.encode(text)
        return {"tokens": ids, "token_strs": [tok.token_text(i) for i in ids], "count": len(ids),
                "max_model_len": window}  # fmt: skip

    @app.post("/v1/completions")
    async def completions(request: Request):
        try:
            job = parse(await body_of(request))
        except (TokenscopeError, ValueError) as e:
            if isinstance(e, _Failure):
                raise
            raise _Failure(400, str(e)) from None
        if job["stream"]:
            return StreamingResponse(stream(job), media_type="text/event-stream")
        async with lock:
            try:
                return await asyncio.to_thread(run_blocking, job)
            except (TokenscopeError, ValueError) as e:
                raise _Failure(400, str(e)) from None

    return app


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
