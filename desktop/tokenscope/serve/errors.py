"""Every refusal in one shape, OpenAI's: {"error": {"message", "type", "param", "code"}}.

The message is one line a person can act on: which field, what is allowed, what came. Bodies
that fail their schema (schemas.py), unknown routes and methods, the engine's own refusals and
unexpected failures all answer this way, so a client reads one shape whatever went wrong.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from tokenscope.lm.arguments import lone_surrogate
from tokenscope.lm.errors import TokenscopeError
from tokenscope.serve.strict_json import StrictJSONResponse as JSONResponse

_KINDS = {401: "authentication_error", 500: "server_error"}
_MOST_SHOWN = 3  # problems named in one message; the rest are counted
_JSON = "Content-Type: application/json"


class Refusal(Exception):
    """A request the server refuses, with the status, message and field the client gets."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


def error_response(status: int, message: str, param: str | None = None) -> JSONResponse:
    """The JSON answer for a refusal."""
    kind = _KINDS.get(status, "invalid_request_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return JSONResponse(body, status_code=status)


@contextmanager
def engine_refusals() -> Iterator[None]:
    """The engine's refusals of a request's values (a prompt too long, a knob out of range)
    as 400s, with the engine's own message."""
    try:
        yield
    except (TokenscopeError, ValueError) as e:
        raise Refusal(400, str(e)) from None


def install_error_handlers(app: FastAPI, endpoints: str) -> None:
    """Answer every failure of `app` in the shape above; a request for a route it lacks is
    told its `endpoints` ("GET /v1/models, POST /v1/completions")."""

    async def http(request: Request, e: Exception) -> JSONResponse:
        assert isinstance(e, HTTPException)
        asked = f"{request.method} {request.url.path}"
        if e.status_code == 400 and e.__cause__ is not None:  # a body the parser gave up on
            message = _unreadable(e.__cause__)
        elif e.status_code == 404:
            message = f"this server has no {asked}; it answers {endpoints}"
        elif e.status_code == 405:
            allowed = (e.headers or {}).get("Allow", "another method")
            message = f"{request.url.path} answers {allowed}, not {request.method}"
        else:
            message = f"{asked}: {e.detail}"
        response = error_response(e.status_code, message)
        response.headers.update(e.headers or {})
        return response

    app.add_exception_handler(Refusal, _refused)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, http)
    app.add_exception_handler(Exception, _failed)


def _field(loc: tuple[Any, ...]) -> str | None:
    """("body", "prompt", 3) -> "prompt[3]"; None for the body as a whole."""
    name = ""
    for part in loc[1:]:
        name += f"[{part}]" if isinstance(part, int) else f".{part}" if name else str(part)
    return name or None


def _unreadable(cause: BaseException) -> str:
    """Why a body that FastAPI could not parse was refused, in words (FastAPI says only
    "There was an error parsing the body", whatever the reason)."""
    if isinstance(cause, RecursionError):  # (Python's parser recurses once a level)
        return (
            "the request body is nested too deeply to read (arrays or objects hundreds of "
            "levels inside each other)"
        )
    if isinstance(cause, UnicodeDecodeError):
        return "the request body is not UTF-8 text"
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        return (
            "the request body holds a number too long to read (at most "
            f"{sys.get_int_max_str_digits():,} digits)"
        )
    return f"the request body could not be read as JSON ({type(cause).__name__})"


def _shown(value: Any) -> str:
    """What came, cut to 40 characters; never an error of its own (a value nested hundreds
    of levels deep is too deep to dump again, a huge text is cut before it is dumped)."""
    if isinstance(value, str) and len(value) > 40:
        value = value[:40]
    try:
        text = json.dumps(value, default=repr)
    except (RecursionError, ValueError):
        return "a value nested too deeply to show"
    return text if len(text) <= 40 else text[:37] + "..."


def _sentence(error: dict[str, Any]) -> tuple[str, str | None]:
    """(one Pydantic error as a sentence naming its field, the field)."""
    field, kind = _field(tuple(error.get("loc", ()))), error.get("type")
    if kind == "json_invalid":
        why = (error.get("ctx") or {}).get("error")
        return "the request body is not JSON" + (f" ({why})" if why else ""), None
    if field is None:  # the body itself: a list, a form, nothing
        return f"the request body must be a JSON object, sent as {_JSON}", None
    if kind == "missing":
        return f"{field} is required", field
    if kind == "string_unicode" and isinstance(error.get("input"), str):
        # Pydantic's own refusal of a lone surrogate (where a length is checked), in the words
        # schemas.py uses for the same thing elsewhere
        where = lone_surrogate(error["input"])
        if where is not None:
            return f"{field} is not valid text: {where} (got {_shown(error['input'])})", field
    message = str(error.get("msg", "is not valid"))  # "Input should be ...": Pydantic's words
    message = f"{field} {message[6:]}" if message.startswith("Input ") else f"{field}: {message}"
    return f"{message} (got {_shown(error.get('input'))})", field


async def _refused(_request: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, Refusal)
    return error_response(e.status, e.message, e.param)


async def _invalid(_request: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, RequestValidationError)
    said = [_sentence(error) for error in e.errors()] or [("the request is not valid", None)]
    message = "; ".join(text for text, _ in said[:_MOST_SHOWN])
    if len(said) > _MOST_SHOWN:
        message += f"; and {len(said) - _MOST_SHOWN} more"
    return error_response(400, message, said[0][1])


async def _failed(_request: Request, e: Exception) -> JSONResponse:
    # Starlette raises the exception again after this answer, so the server's log has it; the
    # client learns only its kind (a message may hold paths of the server's machine).
    return error_response(500, f"the server failed ({type(e).__name__}); its log says more")
