"""Checking a tokenizer file before the Rust library sees it, and its backend after.

`tokenizers` panics (aborting the interpreter) on some hostile files (a token id of 2^31) and
gives cryptic messages on foreign JSON; its splitting regexes can backtrack without end. So a
tokenizer.json is checked here first (`check_tokenizer_spec`: ids, sizes, pipeline steps),
parsed (`parse_backend`: every failure a ModelFormatError naming the file) and tried on a few
hard texts (`probe_backend`) before any prompt of a person's reaches it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeGuard

import tokenizers

from tokenscope.lm.config import MAX_VOCAB_SIZE
from tokenscope.lm.errors import ModelFormatError
from tokenscope.lm.formats.safe_io import check_depth, parse_json


def _first_line(message: str) -> str:
    lines = message.strip().splitlines()
    return lines[0] if lines else "unknown error"


#: No real token is longer than a few hundred characters.
MAX_TOKEN_CHARS = 1 << 16
_MODEL_TYPES = ("BPE", "WordPiece", "WordLevel", "Unigram")
# Encoded at load: a splitting regex that backtracks catastrophically on runs of one
# character class fails here (Oniguruma gives up after its retry limit) instead of later,
# on some person's prompt.
_PROBE_TEXTS = (
    "Hello, world! It's 2024: x = 42; ünïcödé 语言模型 👍🏽\n\tdef f(a, b):\r\n",
    "a" * 48 + "!",
    "1" * 48 + "x",
    " " * 48 + "x",
    "\n" * 24 + "x",
    "aA1 " * 12 + "\u0000",
)


#: What a check raises: refuse("reason") names the file and the reason.
_Refuse = Callable[[str], ModelFormatError]


def is_panic(error: BaseException) -> bool:
    """A Rust panic in tokenizers surfaces as pyo3's PanicException, a BaseException."""
    return type(error).__name__ == "PanicException"


def _int_id(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_vocabulary(model: dict[str, Any], refuse: _Refuse) -> list[int]:
    """The ids of model.vocab after checking its shape, types and ranges."""
    kind = model.get("type")
    vocab = model.get("vocab")
    if kind is None:
        kind = "Unigram" if isinstance(vocab, list) else "BPE"
    if kind not in _MODEL_TYPES:
        raise refuse(f"its model type {str(kind)[:40]!r} is not one of {', '.join(_MODEL_TYPES)}")
    if kind == "Unigram":
        if not isinstance(vocab, list):
            raise refuse("model.vocab must be a list of [token, score] pairs")
        for index, entry in enumerate(vocab):
            if (
                not isinstance(entry, list)
                or len(entry) != 2
                or not isinstance(entry[0], str)
                or len(entry[0]) > MAX_TOKEN_CHARS
                or not isinstance(entry[1], (int, float))
                or isinstance(entry[1], bool)
                or not math.isfinite(entry[1])
            ):
                raise refuse(f"model.vocab[{index}] is not a [token, finite score] pair")
        unk = model.get("unk_id")
        if unk is not None and (not _int_id(unk) or not 0 <= unk < len(vocab)):
            raise refuse(f"model.unk_id {str(unk)[:40]} is not an id of its {len(vocab)} tokens")
        return list(range(len(vocab)))
    if not isinstance(vocab, dict):
        raise refuse("model.vocab must be an object of token: id")
    for token, index in vocab.items():
        if not _int_id(index) or not 0 <= index < MAX_VOCAB_SIZE:
            raise refuse(
                f"the token {token[:40]!r} has the id {str(index)[:40]}; ids are whole numbers "
                f"from 0 to {MAX_VOCAB_SIZE - 1:,}"
            )
        if len(token) > MAX_TOKEN_CHARS:
            raise refuse(f"a token of {len(token):,} characters is not a real token")
    if kind == "BPE":
        merges = model.get("merges", [])
        if not isinstance(merges, list):
            raise refuse("model.merges must be a list")
        for index, merge in enumerate(merges):
            pair = merge.split(" ") if isinstance(merge, str) else merge
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not all(isinstance(part, str) for part in pair)
            ):
                raise refuse(f"merge #{index} is not a pair of tokens")
    return list(vocab.values())


def _check_added_tokens(added: Any, refuse: _Refuse) -> list[int]:
    if added is None:
        return []
    if not isinstance(added, list):
        raise refuse("added_tokens must be a list")
    ids = []
    for index, token in enumerate(added):
        if not isinstance(token, dict):
            raise refuse(f"added_tokens[{index}] is not an object")
        token_id, content = token.get("id"), token.get("content")
        if not _int_id(token_id) or not 0 <= token_id < MAX_VOCAB_SIZE:
            raise refuse(
                f"added_tokens[{index}] has the id {str(token_id)[:40]}; ids are whole numbers "
                f"from 0 to {MAX_VOCAB_SIZE - 1:,}"
            )
        if not isinstance(content, str) or len(content) > MAX_TOKEN_CHARS:
            raise refuse(f"added_tokens[{index}] has no usable content text")
        ids.append(token_id)
    return ids


def _post_processor_ids(node: Any) -> list[Any]:
    """Token ids a post-processor inserts: "ids" lists and ["token", id] cls/sep pairs."""
    found: list[Any] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "ids" and isinstance(value, list):
                    found.extend(value)
                elif key in ("cls", "sep") and isinstance(value, list) and len(value) == 2:
                    found.append(value[1])
                elif isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return found


def check_tokenizer_spec(data: dict[str, Any], where: str) -> None:
    """Check tokenizer.json data before the Rust library sees it.

    The library trusts its input: an id of 2**31 makes it abort the whole interpreter, ids
    with gaps give tokens that cannot be shown. So the vocabulary must be ids 0..n-1 without
    gaps (model and added tokens together), of sane size, and nothing may nest deeply.
    """

    def refuse(reason: str) -> ModelFormatError:
        return ModelFormatError(f"{where} is not a tokenizer file: {reason}")

    model = data["model"]
    rest = {key: value for key, value in data.items() if key != "model"}
    rest["model"] = {key: value for key, value in model.items() if key not in ("vocab", "merges")}
    check_depth(rest, where)
    ids = set(_check_vocabulary(model, refuse))
    ids.update(_check_added_tokens(data.get("added_tokens"), refuse))
    if not ids:
        raise refuse("its vocabulary is empty")
    size = max(ids) + 1
    if len(ids) != size:
        missing = next(i for i in range(size) if i not in ids)
        raise refuse(
            f"token ids must run from 0 to {size - 1:,} without gaps, but id {missing:,} "
            f"has no token ({size - len(ids):,} ids are missing)"
        )
    for token_id in _post_processor_ids(data.get("post_processor")):
        if not _int_id(token_id) or not 0 <= token_id < size:
            raise refuse(
                f"its post-processor inserts the id {str(token_id)[:40]}, which is not one of "
                f"its {size:,} tokens"
            )


def first_error_line(error: BaseException) -> str:
    return _first_line(str(error))[:300]


def probe_backend(backend: tokenizers.Tokenizer, where: str) -> None:
    """Encode and decode a few texts, so that a tokenizer that fails on text fails now."""
    for text in _PROBE_TEXTS:
        try:
            backend.decode(backend.encode(text, add_special_tokens=False).ids)
        except Exception as err:
            raise ModelFormatError(
                f"{where} cannot tokenize text: {first_error_line(err)}"
            ) from None
        except BaseException as err:
            if not is_panic(err):
                raise
            raise ModelFormatError(
                f"{where} cannot tokenize text (its splitting rules fail, e.g. a regular "
                f"expression that backtracks without end): {first_error_line(err)}"
            ) from None


def parse_backend(text: str, where: str) -> tokenizers.Tokenizer:
    """Build a backend from tokenizer.json text, turning every failure into ModelFormatError."""

    def refuse(reason: str) -> ModelFormatError:
        return ModelFormatError(f"{where} is not a tokenizer file: {reason}")

    if not text.strip():
        raise refuse("it is empty")
    # The library's own parse errors for foreign JSON are cryptic ('{"hello": 1}' gives
    # "expected `,` or `}`"), so the shape is checked here first.
    data = parse_json(text, where, depth=None)
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise refuse('the JSON has no "model" section, so it holds something else')
    check_tokenizer_spec(data, where)
    try:
        backend = tokenizers.Tokenizer.from_str(text)
    except Exception as err:
        raise refuse(first_error_line(err)) from None
    except BaseException as err:
        if not is_panic(err):
            raise
        raise refuse(first_error_line(err)) from None
    probe_backend(backend, where)
    return backend
