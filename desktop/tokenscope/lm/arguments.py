"""Checks for the values a caller hands the engine: one clear error at the boundary.

    temperature = number("temperature", value, low=0, high=MAX_TEMPERATURE)
    top_k = whole("top_k", value, low=0)
    ids = token_ids("context", ids, vocab_size)

Each check names the parameter, the allowed range and what it got, and raises
`InvalidArgumentError` (a `ValueError`, so older `except ValueError` callers still catch it).
Booleans are not numbers here (`top_k=True` is a mistake, not 1), NaN is never in a range, and
a string that looks like a number is still a string: the CLI converts, the API does not guess.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

from tokenscope.lm.errors import TokenscopeError

#: the longest text the engine takes in one call (characters); a book is ~1 M
MAX_TEXT_CHARS = 20_000_000
#: the most tokens one generation may ask for
MAX_NEW_TOKENS = 1_000_000
MAX_TEMPERATURE = 100.0
MAX_REPETITION_PENALTY = 100.0
MAX_TOP_K_SHOWN = 100_000
MAX_STOP_STRINGS = 64
MAX_STOP_CHARS = 1_000
MAX_SEED = 2**63 - 1


class InvalidArgumentError(TokenscopeError, ValueError):
    """A value handed to the engine has the wrong type or is out of its allowed range."""


def _what(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return "any finite number"


def number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """`value` as a float if it is a finite real number within the range, else raise."""
    allowed = _range(low, high, low_open, high_open)
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidArgumentError(
            f"{name} must be a number ({allowed}), not {type(value).__name__} {_what(value)}"
        )
    x = float(value)
    if (
        math.isnan(x)
        or math.isinf(x)
        or (low is not None and (x < low or (low_open and x == low)))
        or (high is not None and (x > high or (high_open and x == high)))
    ):
        raise InvalidArgumentError(f"{name} must be {allowed} (got {_what(value)})")
    return x


def whole(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int if it is a whole number within [low, high], else raise."""
    allowed = _range(low, high, False, False)
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InvalidArgumentError(
            f"{name} must be a whole number ({allowed}), not {type(value).__name__} {_what(value)}"
        )
    n = int(value)
    if (low is not None and n < low) or (high is not None and n > high):
        raise InvalidArgumentError(f"{name} must be {allowed} (got {n})")
    return n


def text(name: str, value: Any, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    """`value` if it is a str of at most `max_chars` characters of real text, else raise."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be text (str), not {type(value).__name__}")
    if len(value) > max_chars:
        raise InvalidArgumentError(
            f"{name} is {len(value):,} characters long; the most is {max_chars:,}"
        )
    return unicode_text(name, value)


_SURROGATE = re.compile("[\\ud800-\\udfff]")


def unicode_text(name: str, value: str) -> str:
    """`value` if it holds no lone surrogate, else raise naming the first (lone_surrogate).

    A str can hold what no text can: Python reads bytes that are not UTF-8 on a command line
    as U+DC80..U+DCFF (surrogateescape), and JSON's "\\ud800" without its pair is one too.
    No tokenizer can encode them (the Rust one fails with a TypeError). Such text is refused
    with where it breaks, never repaired: replacing it with U+FFFD would show the model
    something other than what was given, and the numbers would be about that."""
    where = lone_surrogate(value)
    if where is not None:
        raise InvalidArgumentError(f"{name} is not valid text: {where}")
    return value


def lone_surrogate(value: str) -> str | None:
    """Where `value` stops being text ("character 3 is the byte 0xFF, which is not UTF-8"),
    or None when it holds no lone surrogate."""
    lone = _SURROGATE.search(value)
    if lone is None:
        return None
    code = ord(lone.group())
    what = (
        f"the byte 0x{code - 0xDC00:02X}, which is not UTF-8"
        if 0xDC80 <= code <= 0xDCFF
        else f"\\u{code:04x}, half of a surrogate pair without the other half"
    )
    return f"character {lone.start() + 1:,} is {what}"


def strings(name: str, value: Any, *, most: int, max_chars: int) -> tuple[str, ...]:
    """A sequence of short strings (e.g. stop strings); a lone str is a mistake, not letters."""
    if isinstance(value, str) or not isinstance(value, (Sequence, set, frozenset)):
        raise InvalidArgumentError(
            f"{name} must be a list of strings, not {type(value).__name__} {_what(value)}"
        )
    items = tuple(value)
    if len(items) > most:
        raise InvalidArgumentError(f"{name} has {len(items)} entries; the most is {most}")
    for item in items:
        text(f"each of {name}", item, max_chars=max_chars)
    return items


def token_ids(name: str, value: Any, vocab_size: int) -> list[int]:
    """A sequence of token ids, each a whole number in [0, vocab_size)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidArgumentError(
            f"{name} must be text or a list of token ids, not {type(value).__name__}"
        )
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidArgumentError(f"{name} has {len(value):,} ids; the most is {MAX_TEXT_CHARS:,}")
    ids = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, Integral):
            raise InvalidArgumentError(
                f"{name}[{i}] must be a token id (a whole number), not {type(item).__name__}"
            )
        token = int(item)
        if not 0 <= token < vocab_size:
            raise InvalidArgumentError(
                f"{name}[{i}] is {token}, not a token id of this model (0..{vocab_size - 1})"
            )
        ids.append(token)
    return ids
