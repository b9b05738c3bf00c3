"""A `tokenizers` tokenizer rebuilt from a GGUF file's metadata, the way llama.cpp reads it.

    tokenizer.ggml.model        "gpt2": byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM)
                                "llama": SentencePiece-style BPE with byte fallback (Llama 2,
                                Mistral, TinyLlama)
    tokenizer.ggml.pre          how text is split before BPE: looked up in PRE_TOKENIZERS
    tokenizer.ggml.tokens       the vocabulary, by id
    tokenizer.ggml.merges       "a b" pairs, by rank (gpt2); llama derives them from scores
    tokenizer.ggml.token_type   1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte

Control tokens (e.g. "<|im_start|>") become special added tokens so that a chat template's
markers encode to their single ids, as in llama.cpp and Hugging Face.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tokenizers
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers

from tokenscope.lm.config import MAX_VOCAB_SIZE
from tokenscope.lm.errors import ModelFormatError
from tokenscope.lm.tokenizer import MAX_TOKEN_CHARS, Tokenizer, probe_backend

_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6
# Deriving SentencePiece merges tries every split of every piece: its cost grows with the
# square of a piece's length. Real vocabularies cost ~1e7 character steps; refuse far beyond.
_MAX_SPLIT_WORK = 200_000_000

# The splitting regexes of llama.cpp's pre-tokenizer types (llama-vocab.cpp), which match the
# original models' tokenizer.json files.
_LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# tokenizer.ggml.pre -> the steps before byte-level BPE:
#   "gpt2"    the GPT-2 regex (what ByteLevel(use_regex=True) does)
#   "digits"  every digit on its own first (SmolLM: "x = 42" -> "4", "2")
#   ("split", regex)  a Split on that regex, then ByteLevel without its own regex
PRE_TOKENIZERS: dict[str, tuple[Any, ...]] = {
    "gpt-2": ("gpt2",),
    "gpt2": ("gpt2",),
    "default": ("gpt2",),
    "smollm": ("digits", "gpt2"),
    "llama3": (("split", _LLAMA3_REGEX),),
    "llama-bpe": (("split", _LLAMA3_REGEX),),
    "llama-v3": (("split", _LLAMA3_REGEX),),
    "smaug-bpe": (("split", _LLAMA3_REGEX),),
    "qwen2": (("split", _QWEN2_REGEX),),
}
# Llama 3's tokenizer looks a whole pre-token up in the vocabulary before merging.
_IGNORE_MERGES = frozenset({"llama3", "llama-bpe", "llama-v3", "smaug-bpe"})


class _Meta:
    """Typed reads of `tokenizer.ggml.*` metadata; every problem names the file and the key."""

    def __init__(self, meta: Mapping[str, Any], source: str) -> None:
        self.meta, self.source = meta, source

    def error(self, message: str) -> ModelFormatError:
        return ModelFormatError(f"{self.source}: {message}")

    def strings(self, key: str) -> list[str]:
        value = self.meta.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(f"the GGUF metadata {key!r} is missing or not a list of strings")
        return value

    def numbers(self, key: str, n: int, label: str, *, integers: bool) -> list[Any] | None:
        """A numeric array of n items, or None when the key is absent."""
        value = self.meta.get(key)
        if value is None:
            return None
        kinds = "iu" if integers else "iuf"
        if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype.kind not in kinds:
            what = "whole numbers" if integers else "numbers"
            raise self.error(f"the GGUF metadata {key!r} is not an array of {what}")
        if len(value) != n:
            raise self.error(f"the GGUF tokenizer has {n} tokens but {len(value)} {label}")
        items: list[Any] = value.tolist()
        if not integers and not all(math.isfinite(x) for x in items):
            raise self.error(f"the GGUF metadata {key!r} holds numbers that are not finite")
        return items

    def text(self, key: str, default: str) -> str:
        value = self.meta.get(key, default)
        if not isinstance(value, str):
            raise self.error(f"the GGUF metadata {key!r} is not a text")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.meta.get(key, default)
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise self.error(f"the GGUF metadata {key} = {_short(value)} is not true or false")

    def token_id(self, key: str, n: int) -> int | None:
        value = self.meta.get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < n:
            raise self.error(
                f"the GGUF metadata {key} = {_short(value)} is not a token id (0..{n - 1})"
            )
        return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _vocab(tokens: Sequence[str]) -> dict[str, int]:
    vocab: dict[str, int] = {}
    for index, token in enumerate(tokens):
        # A duplicated string keeps its first id, as llama.cpp; the later id has no string of
        # its own in the library's vocabulary and reads as an empty token (reserve_ids).
        vocab.setdefault(token, index)
    return vocab


def _pre_tokenizer(pre: str, m: _Meta) -> pre_tokenizers.PreTokenizer:
    try:
        steps = PRE_TOKENIZERS[pre]
    except KeyError:
        known = ", ".join(sorted(PRE_TOKENIZERS))
        raise m.error(
            f"the GGUF tokenizer's pre-tokenizer {_short(pre)} is not supported "
            f"(supported: {known})"
        ) from None
    built: list[pre_tokenizers.PreTokenizer] = []
    for step in steps:
        if step == "digits":
            built.append(pre_tokenizers.Digits(individual_digits=True))
        elif step == "gpt2":
            built.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
        else:
            built.append(pre_tokenizers.Split(Regex(step[1]), behavior="isolated", invert=False))
            built.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
    return built[0] if len(built) == 1 else pre_tokenizers.Sequence(built)


def _byte_level(m: _Meta, tokens: list[str]) -> tokenizers.Tokenizer:
    merges = []
    for rank, line in enumerate(m.strings("tokenizer.ggml.merges")):
        left, sep, right = line.partition(" ")
        if not sep or not left or not right:
            raise m.error(f"GGUF merge #{rank} {_short(line)} is not two tokens")
        merges.append((left, right))
    pre = m.text("tokenizer.ggml.pre", "default")
    vocab = _vocab(tokens)
    unknown = next(((a, b) for a, b in merges if a not in vocab or b not in vocab), None)
    if unknown is not None:
        raise m.error(
            f"the GGUF merge {_short(' '.join(unknown))} names a token not in the vocabulary"
        )
    model = models.BPE(vocab, merges, ignore_merges=pre in _IGNORE_MERGES, fuse_unk=False)
    backend = tokenizers.Tokenizer(model)
    backend.pre_tokenizer = _pre_tokenizer(pre, m)
    backend.decoder = decoders.ByteLevel()
    return backend


def _sentencepiece_merges(
    tokens: Sequence[str], scores: Sequence[float], types: Sequence[int], vocab: dict[str, int]
) -> list[tuple[str, str]]:
    """BPE merges implied by a SentencePiece vocabulary: a piece is made from two pieces.

    SentencePiece merges the pair whose result has the highest score first, so each split of
    a piece into two known pieces is a merge ranked by the piece's score (then its id).
    """
    found = []
    for index, piece in enumerate(tokens):
        if types[index] != _NORMAL or len(piece) < 2:
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in vocab and right in vocab:
                found.append((-scores[index], index, vocab[left], vocab[right], left, right))
    found.sort()
    return [(left, right) for *_, left, right in found]


def _sentencepiece(m: _Meta, tokens: list[str], types: list[int]) -> tokenizers.Tokenizer:
    scores = m.numbers("tokenizer.ggml.scores", len(tokens), "scores", integers=False)
    scores = scores if scores is not None else [0.0] * len(tokens)
    work = sum(len(t) ** 2 for t, kind in zip(tokens, types, strict=True) if kind == _NORMAL)
    if work > _MAX_SPLIT_WORK:
        raise m.error("the GGUF tokenizer's pieces are far longer than any real vocabulary's")
    unk_id = m.token_id("tokenizer.ggml.unknown_token_id", len(tokens))
    unk = tokens[unk_id if unk_id is not None else 0]
    vocab = _vocab(tokens)
    model = models.BPE(
        vocab,
        _sentencepiece_merges(tokens, scores, types, vocab),
        unk_token=unk,
        fuse_unk=True,
        byte_fallback=True,
    )
    backend = tokenizers.Tokenizer(model)
    prefix = m.flag("tokenizer.ggml.add_space_prefix", True)
    steps: list[Any] = [normalizers.Replace(" ", "▁")]
    if prefix:
        steps.insert(0, normalizers.Prepend("▁"))
    backend.normalizer = normalizers.Sequence(steps)
    decode: list[Any] = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if prefix:
        decode.append(decoders.Strip(" ", 1, 0))
    backend.decoder = decoders.Sequence(decode)
    return backend


def _build(m: _Meta) -> tuple[Tokenizer, bool]:
    kind = m.meta.get("tokenizer.ggml.model")
    tokens = m.strings("tokenizer.ggml.tokens")
    if not 1 <= len(tokens) <= MAX_VOCAB_SIZE:
        raise m.error(f"the GGUF tokenizer has {len(tokens):,} tokens")
    if max(map(len, tokens)) > MAX_TOKEN_CHARS:
        raise m.error(f"a GGUF token is longer than {MAX_TOKEN_CHARS:,} characters")
    n = len(tokens)
    types = m.numbers("tokenizer.ggml.token_type", n, "token types", integers=True) or [_NORMAL] * n
    if kind == "gpt2":
        backend = _byte_level(m, tokens)
    elif kind == "llama":
        backend = _sentencepiece(m, tokens, types)
    else:
        raise m.error(
            f"the GGUF tokenizer model {_short(kind)} is not supported (supported: gpt2, llama)"
        )
    specials = [
        AddedToken(tokens[i], special=types[i] != _USER_DEFINED, normalized=False)
        for i in range(n)
        if tokens[i]
        and (types[i] in (_CONTROL, _USER_DEFINED) or (types[i] == _UNKNOWN and kind == "llama"))
    ]
    if specials:
        backend.add_special_tokens([t for t in specials if t.special])
        backend.add_tokens([t for t in specials if not t.special])
    bos = m.token_id("tokenizer.ggml.bos_token_id", n)
    eos = m.token_id("tokenizer.ggml.eos_token_id", n)
    # llama.cpp's defaults when the file does not say: SentencePiece models start with BOS.
    add_bos = m.flag("tokenizer.ggml.add_bos_token", kind == "llama")
    probe_backend(backend, f"{m.source}: the GGUF tokenizer")
    try:
        tokenizer = Tokenizer(backend, bos_id=bos, eos_id=eos)
    except ValueError as e:
        raise m.error(f"the GGUF tokenizer is inconsistent: {e}") from None
    tokenizer.reserve_ids(n)  # ids of duplicated strings stay valid, as empty tokens
    return tokenizer, add_bos and bos is not None


def tokenizer_from_gguf(
    meta: Mapping[str, Any], source: str = "the GGUF file"
) -> tuple[Tokenizer, bool]:
    """The tokenizer a GGUF file describes, and whether a BOS token starts every input.

    Every value is checked for its type and range first; whatever the tokenizers library
    still refuses (it reports plain Exceptions, or panics) becomes a ModelFormatError naming
    `source`.
    """
    m = _Meta(meta, source)
    try:
        return _build(m)
    except ModelFormatError:
        raise
    except Exception as e:
        raise m.error(f"the GGUF tokenizer cannot be built ({_first_line(e)})") from None
    except BaseException as e:
        if type(e).__name__ != "PanicException":  # a Rust panic derives from BaseException
            raise
        raise m.error(f"the GGUF tokenizer cannot be built ({_first_line(e)})") from None


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__
