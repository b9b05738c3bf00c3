"""Tokenizers rebuilt from GGUF metadata: SentencePiece-style vocabularies, pre-tokenizers,
special tokens and the messages for what is not supported."""

import numpy as np
import pytest

from tokenscope.lm import ModelFormatError
from tokenscope.lm.formats.gguf_tokenizer import PRE_TOKENIZERS, tokenizer_from_gguf


def _spm_meta(**extra):
    # A Llama-2-style vocabulary: <unk> <s> </s>, 256 byte tokens, then pieces by score.
    pieces = ["▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "he", "ll", "▁he", "llo", "▁hello",
              "▁w", "or", "▁wor", "ld", "▁world"]  # fmt: skip
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + pieces
    types = [2, 3, 3] + [6] * 256 + [1] * len(pieces)
    scores = [0.0] * 259 + [-float(i) for i in range(len(pieces))]
    # Longer pieces must win: give the merged pieces higher scores than their parts.
    for piece in ("▁hello", "▁world", "llo", "▁wor", "ld", "▁he", "▁h", "he", "ll", "or", "▁w"):
        scores[tokens.index(piece)] = 10.0 + len(piece)
    meta = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": np.array(types, dtype=np.int32),
        "tokenizer.ggml.scores": np.array(scores, dtype=np.float32),
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0,
    }
    meta.update(extra)
    return meta


def test_sentencepiece_vocabulary_with_byte_fallback():
    tok, add_bos = tokenizer_from_gguf(_spm_meta())
    assert add_bos  # SentencePiece models start with BOS unless the file says otherwise
    assert (tok.bos_id, tok.eos_id) == (1, 2)
    ids = tok.encode("hello world")
    assert [tok.backend.id_to_token(i) for i in ids] == ["▁hello", "▁world"]
    assert tok.decode(ids) == "hello world"
    # A character outside the vocabulary falls back to its UTF-8 bytes.
    ids = tok.encode("hé")
    assert [tok.backend.id_to_token(i) for i in ids] == ["▁h", "<0xC3>", "<0xA9>"]
    assert tok.decode(ids) == "hé"
    assert tok.token_bytes(ids[-1]) == b"\xa9"
    assert tok.encode("</s>") == [2]  # control tokens are special tokens


def test_add_bos_and_space_prefix_follow_the_metadata():
    tok, add_bos = tokenizer_from_gguf(
        _spm_meta(
            **{"tokenizer.ggml.add_bos_token": False, "tokenizer.ggml.add_space_prefix": False}
        )
    )
    assert not add_bos
    assert tok.backend.id_to_token(tok.encode("hello")[0]) != "▁hello"


def test_unsupported_tokenizer_model_and_pre_tokenizer_are_named():
    with pytest.raises(
        ModelFormatError, match=r"tokenizer model 'rwkv' is not supported.*gpt2, llama"
    ):
        tokenizer_from_gguf(_spm_meta(**{"tokenizer.ggml.model": "rwkv"}))
    meta = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "deepseek-coder",
        "tokenizer.ggml.tokens": ["a", "b", "ab"],
        "tokenizer.ggml.merges": ["a b"],
    }
    with pytest.raises(ModelFormatError, match=r"'deepseek-coder' is not supported.*smollm"):
        tokenizer_from_gguf(meta)


def test_inconsistent_metadata_is_refused():
    with pytest.raises(ModelFormatError, match=r"49 tokens but 48 token types|token types"):
        tokenizer_from_gguf(_spm_meta(**{"tokenizer.ggml.token_type": np.ones(3, dtype=np.int32)}))
    with pytest.raises(ModelFormatError, match=r"eos_token_id = 9999 is not a token id"):
        tokenizer_from_gguf(_spm_meta(**{"tokenizer.ggml.eos_token_id": 9999}))
    with pytest.raises(ModelFormatError, match=r"'tokenizer.ggml.tokens' is missing"):
        tokenizer_from_gguf({"tokenizer.ggml.model": "gpt2"})


@pytest.mark.parametrize("pre", sorted(PRE_TOKENIZERS))
def test_every_listed_pre_tokenizer_builds(pre):
    meta = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre,
        "tokenizer.ggml.tokens": ["a", "b", "ab", "1", "Ġ"],
        "tokenizer.ggml.merges": ["a b"],
    }
    tok, _ = tokenizer_from_gguf(meta)
    assert tok.encode("ab") == [2]
