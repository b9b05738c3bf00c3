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

from collections.abc import Mapping, Sequence
from typing import Any

import tokenizers
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers

from tokenscope.lm.errors import ModelFormatError
from tokenscope.lm.tokenizer import Tokenizer

_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6

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


def _strings(meta: Mapping[str, Any], key: str) -> list[str]:
    value = meta.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ModelFormatError(f"the GGUF metadata {key!r} is missing or not a list of strings")
    return value


def _token_types(meta: Mapping[str, Any], n: int) -> list[int]:
    types = meta.get("tokenizer.ggml.token_type")
    if types is None:
        return [_NORMAL] * n
    types = [int(t) for t in types]
    if len(types) != n:
        raise ModelFormatError(f"the GGUF tokenizer has {n} tokens but {len(types)} token types")
    return types


def _vocab(tokens: Sequence[str]) -> dict[str, int]:
    vocab: dict[str, int] = {}
    for index, token in enumerate(tokens):
        vocab.setdefault(token, index)  # a duplicated string keeps its first id, as llama.cpp
    return vocab


def _pre_tokenizer(pre: str) -> pre_tokenizers.PreTokenizer:
    try:
        steps = PRE_TOKENIZERS[pre]
    except KeyError:
        known = ", ".join(sorted(PRE_TOKENIZERS))
        raise ModelFormatError(
            f"the GGUF tokenizer's pre-tokenizer {pre!r} is not supported (supported: {known})"
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


def _byte_level(meta: Mapping[str, Any], tokens: list[str]) -> tokenizers.Tokenizer:
    merges = []
    for rank, line in enumerate(_strings(meta, "tokenizer.ggml.merges")):
        left, sep, right = line.partition(" ")
        if not sep:
            raise ModelFormatError(f"GGUF merge #{rank} {line!r} is not two tokens")
        merges.append((left, right))
    pre = str(meta.get("tokenizer.ggml.pre", "default"))
    model = models.BPE(_vocab(tokens), merges, ignore_merges=pre in _IGNORE_MERGES, fuse_unk=False)
    backend = tokenizers.Tokenizer(model)
    backend.pre_tokenizer = _pre_tokenizer(pre)
    backend.decoder = decoders.ByteLevel()
    return backend


def _sentencepiece_merges(
    tokens: Sequence[str], scores: Sequence[float], types: Sequence[int]
) -> list[tuple[str, str]]:
    """BPE merges implied by a SentencePiece vocabulary: a piece is made from two pieces.

    SentencePiece merges the pair whose result has the highest score first, so each split of
    a piece into two known pieces is a merge ranked by the piece's score (then its id).
    """
    vocab = _vocab(tokens)
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


def _sentencepiece(meta: Mapping[str, Any], tokens: list[str], types: list[int]) -> Any:
    scores = meta.get("tokenizer.ggml.scores")
    scores = [float(s) for s in scores] if scores is not None else [0.0] * len(tokens)
    if len(scores) != len(tokens):
        raise ModelFormatError(
            f"the GGUF tokenizer has {len(tokens)} tokens but {len(scores)} scores"
        )
    unk_id = int(meta.get("tokenizer.ggml.unknown_token_id", 0))
    unk = tokens[unk_id] if 0 <= unk_id < len(tokens) else None
    model = models.BPE(
        _vocab(tokens),
        _sentencepiece_merges(tokens, scores, types),
        unk_token=unk,
        fuse_unk=True,
        byte_fallback=True,
    )
    backend = tokenizers.Tokenizer(model)
    prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
    steps: list[Any] = [normalizers.Replace(" ", "▁")]
    if prefix:
        steps.insert(0, normalizers.Prepend("▁"))
    backend.normalizer = normalizers.Sequence(steps)
    decode: list[Any] = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if prefix:
        decode.append(decoders.Strip(" ", 1, 0))
    backend.decoder = decoders.Sequence(decode)
    return backend


def _token_id(meta: Mapping[str, Any], key: str, n: int) -> int | None:
    value = meta.get(key)
    if value is None:
        return None
    value = int(value)
    if not 0 <= value < n:
        raise ModelFormatError(f"the GGUF metadata {key} = {value} is not a token id (0..{n - 1})")
    return value


def tokenizer_from_gguf(meta: Mapping[str, Any]) -> tuple[Tokenizer, bool]:
    """The tokenizer a GGUF file describes, and whether a BOS token starts every input."""
    kind = meta.get("tokenizer.ggml.model")
    tokens = _strings(meta, "tokenizer.ggml.tokens")
    types = _token_types(meta, len(tokens))
    if kind == "gpt2":
        backend = _byte_level(meta, tokens)
    elif kind == "llama":
        backend = _sentencepiece(meta, tokens, types)
    else:
        raise ModelFormatError(
            f"the GGUF tokenizer model {kind!r} is not supported (supported: gpt2, llama)"
        )
    specials = [
        AddedToken(tokens[i], special=types[i] != _USER_DEFINED, normalized=False)
        for i in range(len(tokens))
        if types[i] in (_CONTROL, _USER_DEFINED) or (types[i] == _UNKNOWN and kind == "llama")
    ]
    if specials:
        backend.add_special_tokens([t for t in specials if t.special])
        backend.add_tokens([t for t in specials if not t.special])
    bos = _token_id(meta, "tokenizer.ggml.bos_token_id", len(tokens))
    eos = _token_id(meta, "tokenizer.ggml.eos_token_id", len(tokens))
    # llama.cpp's defaults when the file does not say: SentencePiece models start with BOS.
    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", kind == "llama"))
    try:
        return Tokenizer(backend, bos_id=bos, eos_id=eos), add_bos and bos is not None
    except ValueError as e:
        raise ModelFormatError(f"the GGUF tokenizer is inconsistent: {e}") from None
