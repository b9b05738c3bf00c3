"""The FastAPI app: the routes, and create_app() putting them around one model.

    app = create_app(model, name="tiny", max_logprobs=20, api_key=None)

The routes live on a module-level router and reach the model through a dependency reading
`app.state.served` (state.py). Nothing slow runs on the event loop: the endpoints that call the
model are plain `def`, which FastAPI runs in its thread pool, and they hold the model's lock;
they return their JSON already encoded, so that a large answer is not encoded on the loop
either. The two that only read what create_app counted are `async`.
"""

# (No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.)
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute

from tokenscope import __version__
from tokenscope.serve import chat, completions
from tokenscope.serve.auth import RequireKey
from tokenscope.serve.errors import Refusal, engine_refusals, install_error_handlers
from tokenscope.serve.limits import MAX_BODY_BYTES, BodyLimit
from tokenscope.serve.schemas import (
    ChatRequest,
    CompletionRequest,
    DetokenizeRequest,
    TokenizeRequest,
)
from tokenscope.serve.state import DEFAULT_MAX_LOGPROBS, Served
from tokenscope.serve.strict_json import StrictJSONResponse as JSONResponse


async def _served(request: Request) -> Served:
    # async: a lookup, not worth a trip to the thread pool
    return request.app.state.served


Model = Annotated[Served, Depends(_served)]
router = APIRouter()


@router.get("/v1/models")
async def models(served: Model) -> dict[str, Any]:
    """The one model served, with its sizes where llama.cpp and vLLM put them."""
    window = served.window
    meta = {"n_params": served.parameters, "n_ctx": window, "n_vocab": served.tokenizer.vocab_size}
    entry = {
        "id": served.name,
        "object": "model",
        "owned_by": "tokenscope",
        "max_model_len": window,
        "meta": meta,
    }
    return {"object": "list", "data": [entry]}


@router.get("/tokenscope")
async def about(served: Model) -> dict[str, Any]:
    """What tells a client this is Tokenscope (lm/remote/detect.py reads `max_logprobs`): raw
    log-probabilities, of the prompt too, and its tokenizer."""
    return {
        "name": served.name,
        "version": __version__,
        "max_logprobs": served.max_logprobs,
        "context_length": served.window,
    }


@router.post("/tokenize")
def tokenize(request: TokenizeRequest, served: Model) -> JSONResponse:
    """The prompt's token ids and texts (`add_special_tokens`: with the BOS the model adds)."""
    model, text = served.model, request.prompt
    with served.lock, engine_refusals():
        ids = (
            model._context_ids(text, "prompt") if request.add_special_tokens else model.encode(text)
        )
        strs = [served.tokenizer.token_text(i) for i in ids]
    return JSONResponse(
        {"tokens": ids, "token_strs": strs, "count": len(ids), "max_model_len": served.window}
    )


@router.post("/detokenize")
def detokenize(request: DetokenizeRequest, served: Model) -> JSONResponse:
    """Token ids back to text (vLLM's /detokenize)."""
    vocab = served.vocab_size
    if any(not 0 <= i < vocab for i in request.tokens):
        raise Refusal(400, f"a token id is outside the vocabulary (0..{vocab - 1})", "tokens")
    with served.lock:
        text = served.tokenizer.decode(request.tokens)
    return JSONResponse({"prompt": text})


@router.get("/tokenizer_info")
def tokenizer_info(served: Model) -> JSONResponse:
    """The special tokens and the chat template (vLLM's /tokenizer_info: lm-evaluation-harness
    uses the server's own tokenizer through it and /tokenize, with nothing to download)."""
    tok, model = served.tokenizer, served.model

    def text(i: int | None) -> str | None:
        return tok.token_text(i) if i is not None else None

    return JSONResponse(
        {
            "tokenizer_class": "tokenscope",
            "eos_token": text(tok.eos_id),
            "bos_token": text(tok.bos_id),
            "pad_token": text(tok.eos_id),
            "chat_template": model.chat_template,
            "model_max_length": served.window,
            "vocab_size": tok.vocab_size,
        }
    )


@router.post("/v1/completions", response_model=None)
def complete(request: CompletionRequest, served: Model) -> JSONResponse | StreamingResponse:
    """Completions with log-probabilities: whole, or streamed as server-sent events."""
    with served.lock, engine_refusals():
        job = completions.prepare(served, request)
    if not request.stream:
        with engine_refusals():
            return JSONResponse(completions.complete(served, job))
    return StreamingResponse(completions.events(served, job), media_type="text/event-stream")


@router.post("/v1/chat/completions", response_model=None)
def chat_complete(request: ChatRequest, served: Model) -> JSONResponse | StreamingResponse:
    """Chat completions through the model's chat template: whole, or streamed."""
    with served.lock, engine_refusals():
        job = chat.prepare(served, request)
    if not request.stream:
        with engine_refusals():
            return JSONResponse(chat.complete(served, job))
    return StreamingResponse(chat.events(served, job), media_type="text/event-stream")


def create_app(
    model: Any, *, name: str, max_logprobs: int = DEFAULT_MAX_LOGPROBS, api_key: str | None = None
) -> FastAPI:
    """The FastAPI application serving `model` (a tokenscope LanguageModel) as `name`;
    with `api_key`, every request must bring it (`Authorization: Bearer <key>`)."""
    # (every answer strict JSON, those FastAPI encodes from a dict too: strict_json.py)
    app = FastAPI(
        title="Tokenscope",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        default_response_class=JSONResponse,
    )
    app.state.served = Served.of(model, name, max_logprobs)
    install_error_handlers(app, _endpoints())
    app.include_router(router)
    # (added last runs first: the key is checked before a body is read)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    if api_key:
        app.add_middleware(RequireKey, key=api_key)
    return app


def _endpoints() -> str:
    """What a request for an unknown route is told: "GET /v1/models, GET /tokenscope, ..."."""
    routes = [route for route in router.routes if isinstance(route, APIRoute)]
    return ", ".join(f"{'/'.join(sorted(route.methods or ()))} {route.path}" for route in routes)
