"""Checking a tokenizer file before the Rust library sees it, and its backend after.

`tokenizers` panics (aborting the interpreter) on some hostile files (a token id of 2^31) and
gives cryptic messages on foreign JSON; its splitting regexes can backtrack without end. So a
tokenizer.json is checked here first (`check_tokenizer_spec`: ids, sizes, pipeline steps),
parsed (`parse_backend`: every failure a ModelFormatError naming the file) and tried on a few
hard texts (`probe_backend`) before any prompt of a person's reaches it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TypeGuard

import tokenizers
from tokenizers import normalizers

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


#: Characters a pipeline step may insert (a Replace's content, a Prepend, a Metaspace
#: replacement, a decoder's prefix): real tokenizers insert one or a few. A normalizer that
#: replaced "a" with 1 MB made every prompt a thousand times its length (5 GB for `predict`).
MAX_INSERTED_CHARS = 256
_INSERTING_KEYS = ("content", "prepend", "replacement", "prefix", "suffix")
_PIPELINE = ("normalizer", "pre_tokenizer", "decoder")
#: How much longer normalizing may make a text (real ones: the same length, or a character
#: more), measured step by step on a sample so that a chain of steps cannot compound unseen.
MAX_NORMALIZED_GROWTH = 64
_GROWTH_SAMPLE = "Hello, World! It's 42: ünïcödé 语言 👍🏽 a\tb\n  x\u0000"

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


def _check_inserted_texts(data: dict[str, Any], refuse: _Refuse) -> None:
    """Refuse a normalizer, pre-tokenizer or decoder step (in a Sequence too) that inserts
    more than MAX_INSERTED_CHARS characters."""
    for section in _PIPELINE:
        stack = [data.get(section)]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, dict):
                for key, value in node.items():
                    if key in _INSERTING_KEYS and isinstance(value, str):
                        if len(value) > MAX_INSERTED_CHARS:
                            step = str(node.get("type", "?"))[:40]
                            raise refuse(
                                f"its {section} step {step} inserts a text of {len(value):,} "
                                f"characters ({key}); a tokenizer inserts a few at most "
                                f"(here: {MAX_INSERTED_CHARS})"
                            )
                    elif isinstance(value, (dict, list)):
                        stack.append(value)


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
    _check_inserted_texts(data, refuse)
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


def _normalizer_steps(backend: tokenizers.Tokenizer) -> list[dict[str, Any]]:
    """The backend's normalizer as its steps in order, nested Sequences flattened."""
    if backend.normalizer is None:
        return []
    steps: list[dict[str, Any]] = []
    stack = [json.loads(backend.normalizer.__getstate__())]
    while stack:
        node = stack.pop()
        if isinstance(node, dict) and node.get("type") == "Sequence":
            stack.extend(reversed(node.get("normalizers") or []))
        elif isinstance(node, dict):
            steps.append(node)
    return steps


def _growth_probes(steps: list[dict[str, Any]]) -> list[str]:
    """Texts to normalize: a sample of varied characters, and what the steps look for and
    put in (a step that lengthens one rare character, or a chain of steps each feeding the
    next, shows only on those)."""
    probes = [_GROWTH_SAMPLE]
    for spec in steps:
        pattern = spec.get("pattern")
        found = pattern.get("String") if isinstance(pattern, dict) else None
        for text in (found, spec.get("content"), spec.get("prepend")):
            if isinstance(text, str) and text and text not in probes:
                probes.append(text[:MAX_INSERTED_CHARS])
    return probes[:64]


def check_normalizer_growth(backend: tokenizers.Tokenizer, where: str) -> None:
    """Refuse a normalizer that makes text more than MAX_NORMALIZED_GROWTH times longer.

    Its steps run one at a time, each result checked before the next step: a chain of steps
    that each lengthen text within bounds (256 times, three times over: 16 M) is stopped at
    the first step past the limit, never computed whole."""
    steps = _normalizer_steps(backend)
    built = []
    for spec in steps:
        step = normalizers.Sequence([])
        try:
            step.__setstate__(json.dumps(spec).encode())  # this one step, from its JSON
        except Exception as err:
            raise ModelFormatError(f"{where} has a normalizer step that cannot be built: "
                                   f"{first_error_line(err)}") from None  # fmt: skip
        built.append((str(spec.get("type", "?"))[:40], step))
    for probe in _growth_probes(steps):
        text = probe
        for kind, step in built:
            try:
                text = step.normalize_str(text)
            except Exception as err:
                raise ModelFormatError(
                    f"{where} cannot normalize text: {first_error_line(err)}"
                ) from None
            if len(text) > MAX_NORMALIZED_GROWTH * max(len(probe), 1):
                raise ModelFormatError(
                    f"{where} is not a usable tokenizer: its normalizer (at its {kind} step) "
                    f"makes text over {MAX_NORMALIZED_GROWTH} times longer ({len(probe)} "
                    f"characters became {len(text):,}): a prompt would grow alike"
                )


def probe_backend(backend: tokenizers.Tokenizer, where: str) -> None:
    """Normalize a sample, then encode and decode a few texts, so that a tokenizer that
    fails on text (or blows it up) fails now."""
    check_normalizer_growth(backend, where)
    for text in _PROBE_TEXTS:
        try:
            decoded = backend.decode(backend.encode(text, add_special_tokens=False).ids)
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
        if len(decoded) > MAX_NORMALIZED_GROWTH * (len(text) + 1):
            raise ModelFormatError(
                f"{where} is not a usable tokenizer: decoding makes text over "
                f"{MAX_NORMALIZED_GROWTH} times longer ({len(text)} characters became "
                f"{len(decoded):,})"
            )


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
