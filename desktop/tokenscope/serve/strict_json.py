"""Every answer as strict JSON: no NaN, Infinity or -Infinity, which Python writes by default
and which the OpenAI SDK, browsers and most JSON parsers refuse.

    encoded({"logprob": -math.inf})  -> b'{"logprob":-9999.0}'

A log-probability of -inf (a token the model gives probability 0, as float32 does far down
its list) becomes -9999.0, vLLM's floor for the same case, so that a client still reads a
number; NaN and +inf, which no answer should hold, become null. Answers are dumped as they are
first and walked only if that fails: a long echo is thousands of numbers.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi.responses import JSONResponse

#: what -inf is written as (vLLM's floor for log-probabilities)
FLOOR = -9999.0


def encoded(value: Any) -> bytes:
    """`value` as compact, strict JSON in UTF-8."""
    try:
        return _dumps(value, ascii_only=False).encode("utf-8")
    except ValueError:  # NaN or infinity somewhere (UnicodeEncodeError is a ValueError too)
        return _dumps(finite(value), ascii_only=True).encode("ascii")


def finite(value: Any) -> Any:
    """`value` with -inf as FLOOR and NaN and +inf as None, in dicts and lists at any depth."""
    if isinstance(value, float) and not math.isfinite(value):
        return FLOOR if value == -math.inf else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def _dumps(value: Any, *, ascii_only: bool) -> str:
    # ascii_only also writes a lone surrogate as its \u escape, which UTF-8 cannot carry
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=False, separators=(",", ":"))


class StrictJSONResponse(JSONResponse):
    """A JSONResponse that never sends NaN or Infinity (the app's default response class)."""

    def render(self, content: Any) -> bytes:
        return encoded(content)
