"""Tests for tokenscope.lm.tokenizer: round trips, exact token bytes, labels and loading."""

from __future__ import annotations

import json
import os
import re
import unicodedata

import pytest
import tokenizers
from tokenizers import decoders, models, pre_tokenizers, processors

from tokenscope.lm.errors import ModelFormatError
from tokenscope.lm.tokenizer import IncrementalDecoder, Tokenizer, display_bytes

CHINESE = "语言模型预测下一个词"
EMOJI = "👩‍💻 🇮🇩 👍🏽"
COMBINING = "e\u0301 n\u0303"
WHITESPACE = "a   b\n\n\n  c\t\td"
MIXED = f"Jakarta, {CHINESE}! {EMOJI}\r\n{COMBINING}\t end"

ROUND_TRIP = [CHINESE, EMOJI, COMBINING, WHITESPACE, MIXED, "", " ", "\n"]

# None of these characters occur in CORPUS, so byte-level BPE must fall back to bytes.
UNSEEN = [
    "Ελληνικά и русский текст",
    "鼠年快乐 🦜🐉",
    "مرحبا بالعالم",
    "ꙮ \u00a0\u3000\u200b\u2028 \x00\x07\x1b\x7f",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \U0010fffd",
]

CORPUS = [
    "The capital of Indonesia is Jakarta, and Jakarta is a large city.",
    "Language models predict the next token from the tokens before it.",
    "The cat sat on the mat. The dog sat on the log.",
    *ROUND_TRIP,
] * 8


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    return Tokenizer.train_bpe(CORPUS, vocab_size=400)


@pytest.fixture(scope="module")
def chars() -> Tokenizer:
    return Tokenizer.train_chars(CORPUS)


@pytest.fixture(params=["bpe", "chars"])
def any_tokenizer(request: pytest.FixtureRequest) -> Tokenizer:
    return request.getfixturevalue(request.param)


def _sentencepiece_style() -> Tokenizer:
    vocab = {
        "<unk>": 0,
        "<s>": 1,
        "</s>": 2,
        "<0x0A>": 3,
        "▁": 4,
        "t": 5,
        "h": 6,
        "e": 7,
        "▁t": 8,
        "▁th": 9,
        "▁the": 10,
    }
    merges = [("▁", "t"), ("▁t", "h"), ("▁th", "e")]
    backend = tokenizers.Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    backend.add_special_tokens(["<unk>", "<s>", "</s>"])
    # Llama-style files add BOS in the post-processor; encode() must not.
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", 1)]
    )
    return Tokenizer(backend)


# -- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip(any_tokenizer: Tokenizer, text: str) -> None:
    ids = any_tokenizer.encode(text)
    assert any_tokenizer.decode(ids) == text
    assert all(not any_tokenizer.is_special(i) for i in ids)


@pytest.mark.parametrize("text", UNSEEN)
def test_bpe_round_trips_unseen_text(bpe: Tokenizer, text: str) -> None:
    assert bpe.decode(bpe.encode(text)) == text


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_token_bytes_concatenate_to_text(any_tokenizer: Tokenizer, text: str) -> None:
    ids = any_tokenizer.encode(text)
    assert b"".join(any_tokenizer.token_bytes(i) for i in ids) == text.encode("utf-8")


@pytest.mark.parametrize("text", UNSEEN)
def test_bpe_token_bytes_of_unseen_text(bpe: Tokenizer, text: str) -> None:
    ids = bpe.encode(text)
    assert b"".join(bpe.token_bytes(i) for i in ids) == text.encode("utf-8")


def test_chars_unseen_character_is_unk(chars: Tokenizer) -> None:
    unk = chars.token_to_id("<unk>")
    assert unk is not None
    assert chars.encode("aΩb") == [chars.token_to_id("a"), unk, chars.token_to_id("b")]
    assert chars.decode(chars.encode("Ω")) == "<unk>"


def test_chars_vocabulary_is_sorted_code_points(chars: Tokenizer) -> None:
    seen = sorted({c for text in CORPUS for c in text})
    assert chars.vocab_size == len(seen) + 2  # <unk> and <|endoftext|>
    assert chars.id_to_token(0) == "<unk>"
    assert [chars.id_to_token(i) for i in range(2, chars.vocab_size)] == seen
    assert chars.kind == "char"


def test_special_token_in_text_is_kept(any_tokenizer: Tokenizer) -> None:
    ids = any_tokenizer.encode("hi<|endoftext|>")
    assert ids[-1] == any_tokenizer.eos_id
    assert any_tokenizer.decode(ids) == "hi<|endoftext|>"


# -- display -------------------------------------------------------------------------------


def test_display_of_trained_tokens(bpe: Tokenizer) -> None:
    jakarta = bpe.encode(" Jakarta")
    assert len(jakarta) == 1
    assert bpe.display(jakarta[0]) == "␣Jakarta"
    assert bpe.token_text(jakarta[0]) == " Jakarta"
    (newline,) = bpe.encode("\n")
    assert bpe.display(newline) == "↵"
    (tab,) = bpe.encode("\t")
    assert bpe.display(tab) == "⇥"


def test_display_of_partial_character(bpe: Tokenizer) -> None:
    lead = bpe.token_to_id("ä")  # the byte-level stand-in for 0xE4
    assert lead is not None
    assert bpe.token_bytes(lead) == b"\xe4"
    assert bpe.display(lead) == "<E4>"
    assert bpe.token_text(lead) == "\ufffd"
    pieces = bpe.encode("ꙮ")  # EA 99 AE, never seen in training
    assert len(pieces) > 1
    for i in pieces:
        assert re.fullmatch(r"(<[0-9A-F]{2}>)+", bpe.display(i))


def test_display_of_special_tokens(bpe: Tokenizer, chars: Tokenizer) -> None:
    assert bpe.eos_id is not None
    assert bpe.display(bpe.eos_id) == "<|endoftext|>"
    unk = chars.token_to_id("<unk>")
    assert unk is not None and chars.is_special(unk)
    assert chars.display(unk) == "<unk>"
    assert chars.display(chars.encode(" ")[0]) == "␣"
    assert not bpe.is_special(bpe.encode("a")[0])


def test_every_label_is_visible(bpe: Tokenizer) -> None:
    for i in range(bpe.vocab_size):
        label = bpe.display(i)
        assert label
        assert not any(c.isspace() or unicodedata.category(c) in ("Cc", "Cf") for c in label), (
            i,
            label,
        )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b" Jakarta", "␣Jakarta"),
        (b"a  b", "a␣␣b"),
        (b"\n", "↵"),
        (b"\t", "⇥"),
        (b"\r\n", "␍↵"),
        (b"a\x07b", "a\\x07b"),
        (b"\x00\x1b\x7f", "\\x00\\x1b\\x7f"),
        (b"", "∅"),
        ("\u0301".encode(), "◌\u0301"),
        ("\u0301\u0303".encode(), "◌\u0301\u0303"),
        ("e\u0301".encode(), "e\u0301"),
        (b" \xe4\xb8", "␣<E4><B8>"),
        (b"\xb8\x8a", "<B8><8A>"),
        (b"\xe4A", "<E4>A"),
        (b"\xff", "<FF>"),
        ("语".encode(), "语"),
        ("👍🏽".encode(), "👍🏽"),
        ("\u00a0".encode(), "\\u00a0"),
        ("\u200d".encode(), "\\u200d"),
        (b"<|endoftext|>", "<|endoftext|>"),
    ],
)
def test_display_bytes(data: bytes, expected: str) -> None:
    assert display_bytes(data) == expected


# -- streaming -----------------------------------------------------------------------------


def _complete_prefix(data: bytes) -> str:
    """The text of the longest prefix of ``data`` that ends on a character boundary."""
    for cut in range(len(data), max(len(data) - 4, -1), -1):
        try:
            return data[:cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    raise AssertionError(f"not a UTF-8 prefix: {data!r}")


@pytest.mark.parametrize("text", [CHINESE, EMOJI, "鼠年快乐 🦜🐉", MIXED])
def test_incremental_decoder_streams_exact_text(bpe: Tokenizer, text: str) -> None:
    decoder = IncrementalDecoder(bpe)
    pieces: list[str] = []
    inside_char = 0
    so_far = b""
    for i in bpe.encode(text):
        piece = decoder.feed(i)
        so_far += bpe.token_bytes(i)
        # Exactly the newly completed characters come out, nothing of an unfinished one.
        assert piece == _complete_prefix(so_far)[len("".join(pieces)) :]
        if _complete_prefix(so_far) == "".join(pieces):
            assert piece == ""
            inside_char += 1
        pieces.append(piece)
    pieces.append(decoder.flush())
    assert "".join(pieces) == text
    assert not any("\ufffd" in p for p in pieces)
    if text == "鼠年快乐 🦜🐉":  # unseen, so some token must end inside a character
        assert inside_char > 0


def test_incremental_decoder_flush_replaces_unfinished_bytes(bpe: Tokenizer) -> None:
    decoder = IncrementalDecoder(bpe)
    lead = bpe.token_to_id("ä")
    assert lead is not None
    assert decoder.feed(bpe.encode("a")[0]) == "a"
    assert decoder.feed(lead) == ""
    assert decoder.flush() == "\ufffd"
    assert decoder.feed(bpe.encode("b")[0]) == "b"  # a fresh stream after flush


# -- files ---------------------------------------------------------------------------------


def test_save_and_load_round_trip(bpe: Tokenizer, tmp_path: os.PathLike[str]) -> None:
    target = os.path.join(tmp_path, "tokenizer.json")
    bpe.save(target)
    assert os.listdir(tmp_path) == ["tokenizer.json"]  # no temp file left behind
    loaded = Tokenizer.from_file(target)
    assert loaded.eos_id == bpe.eos_id
    assert loaded.vocab_size == bpe.vocab_size
    assert loaded.kind == "byte-bpe"
    assert loaded.encode(MIXED) == bpe.encode(MIXED)
    assert Tokenizer.from_file(tmp_path).encode(CHINESE) == bpe.encode(CHINESE)


def test_save_replaces_existing_file(chars: Tokenizer, bpe: Tokenizer, tmp_path) -> None:
    target = tmp_path / "tokenizer.json"
    bpe.save(target)
    chars.save(target)
    assert Tokenizer.from_file(target).kind == "char"
    assert sorted(os.listdir(tmp_path)) == ["tokenizer.json"]


def test_from_str_round_trip(chars: Tokenizer) -> None:
    loaded = Tokenizer.from_str(chars.to_str())
    assert loaded.encode(WHITESPACE) == chars.encode(WHITESPACE)
    assert loaded.eos_id == chars.eos_id == chars.token_to_id("<|endoftext|>")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "does not exist"),
        (bytes(range(256)) * 4, "not UTF-8"),
        (b"", "empty"),
        (b"this is not json", "not valid JSON"),
        (b'{"hello": 1}', '"model"'),
        (b"[1, 2, 3]", '"model"'),
        (b'{"model": {"type": "Nope"}}', "not a tokenizer file"),
    ],
)
def test_from_file_rejects_bad_files(tmp_path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "tokenizer.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelFormatError) as caught:
        Tokenizer.from_file(path)
    assert str(path) in str(caught.value)
    assert reason in str(caught.value)


def test_from_str_rejects_foreign_json() -> None:
    with pytest.raises(ModelFormatError, match="not a tokenizer file"):
        Tokenizer.from_str(json.dumps({"hello": 1}))


# -- pipelines that blow text up -------------------------------------------------------------


def _replace(pattern: str, content: str) -> dict:
    return {"type": "Replace", "pattern": {"String": pattern}, "content": content}


def _with(bpe: Tokenizer, tmp_path, **sections) -> os.PathLike[str]:
    """A real tokenizer.json: the trained BPE one with these pipeline sections."""
    data = json.loads(bpe.to_str())
    data.update(sections)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("sections", "said"),
    [
        # The file that made `predict` grow past 5 GB: "a" became 1 MB.
        ({"normalizer": _replace("a", "x" * 1_000_000)}, "normalizer step Replace inserts a "
         "text of 1,000,000 characters"),
        ({"normalizer": {"type": "Prepend", "prepend": "▁" * 300}}, "step Prepend inserts"),
        ({"normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Lowercase"},
            {"type": "Sequence", "normalizers": [_replace(" ", "▁" * 257)]},
        ]}}, "normalizer step Replace inserts a text of 257"),
        ({"pre_tokenizer": {"type": "Metaspace", "replacement": "▁" * 300,
                            "prepend_scheme": "always", "split": True}}, "pre_tokenizer step"),
        ({"decoder": _replace("a", "y" * 5000)}, "decoder step Replace inserts"),
        # Each step within bounds, together 200 x 200: found by normalizing, step by step.
        ({"normalizer": {"type": "Sequence", "normalizers": [
            _replace("a", "b" * 200), _replace("b", "c" * 200), _replace("c", "d" * 200),
        ]}}, "at its Replace step) makes text over 64 times longer"),
        # One rare character made 100 characters long: found on that character.
        ({"normalizer": _replace("ꙮ", "z" * 100)}, "makes text over 64 times longer"),
        ({"decoder": {"type": "Sequence", "decoders": [
            _replace("a", "b" * 200), _replace("b", "c" * 200),
        ]}}, "decoding makes text over 64 times longer"),
    ],
)  # fmt: skip
def test_a_pipeline_that_blows_text_up_is_refused_naming_the_file(
    bpe: Tokenizer, tmp_path, sections: dict, said: str
) -> None:
    path = _with(bpe, tmp_path, **sections)
    with pytest.raises(ModelFormatError) as caught:
        Tokenizer.from_file(path)
    message = str(caught.value)
    assert str(path) in message and said in message and "\n" not in message, message


def test_pipelines_that_insert_a_little_still_load(bpe: Tokenizer, tmp_path) -> None:
    """Llama / SentencePiece style: a "▁" put before the text and for every space."""
    normalizer = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"}, _replace(" ", "▁"), _replace("\t", "<tab>"),
    ]}  # fmt: skip
    tok = Tokenizer.from_file(_with(bpe, tmp_path, normalizer=normalizer))
    assert tok.backend.normalizer.normalize_str("a b") == "▁a▁b"


# -- offsets -------------------------------------------------------------------------------


def test_offsets_cover_ascii_sentence(bpe: Tokenizer) -> None:
    text = "The cat sat on the mat in Jakarta, twice."
    spans = bpe.encode_with_offsets(text)
    assert [i for i, _, _ in spans] == bpe.encode(text)
    assert "".join(text[start:end] for _, start, end in spans) == text


def test_offsets_for_chars_are_code_points(chars: Tokenizer) -> None:
    text = f"{EMOJI}\n{CHINESE}"
    spans = chars.encode_with_offsets(text)
    assert [(start, end) for _, start, end in spans] == [(k, k + 1) for k in range(len(text))]
    assert "".join(text[start:end] for _, start, end in spans) == text


# -- training and ids ----------------------------------------------------------------------


def test_train_bpe_respects_vocab_size(bpe: Tokenizer) -> None:
    assert 256 < bpe.vocab_size <= 400
    small = Tokenizer.train_bpe(CORPUS, vocab_size=270)
    assert small.vocab_size == 270
    assert small.decode(small.encode(MIXED)) == MIXED


def test_train_bpe_rejects_too_small_vocab() -> None:
    with pytest.raises(ValueError, match="at least 257"):
        Tokenizer.train_bpe(CORPUS, vocab_size=256)
    with pytest.raises(ValueError, match="at least 258"):
        Tokenizer.train_bpe(CORPUS, vocab_size=257, special_tokens=["<|endoftext|>", "<pad>"])


def test_train_bpe_eos(bpe: Tokenizer) -> None:
    eos = bpe.token_to_id("<|endoftext|>")
    assert eos is not None
    assert bpe.eos_id == eos
    assert bpe.is_special(eos)
    assert bpe.bos_id is None
    assert bpe.kind == "byte-bpe"


def test_explicit_ids_override_guess(bpe: Tokenizer) -> None:
    a = bpe.encode("a")[0]
    tok = Tokenizer(bpe.backend, bos_id=a, eos_id=a)
    assert (tok.bos_id, tok.eos_id) == (a, a)
    with pytest.raises(ValueError, match="eos_id"):
        Tokenizer(bpe.backend, eos_id=bpe.vocab_size)


def test_unknown_ids(bpe: Tokenizer) -> None:
    assert bpe.id_to_token(-1) is None
    assert bpe.id_to_token(bpe.vocab_size) is None
    assert bpe.token_to_id("no such token at all") is None
    with pytest.raises(IndexError):
        bpe.token_bytes(bpe.vocab_size)
    with pytest.raises(IndexError):
        bpe.display(-1)


def test_stored_truncation_is_ignored() -> None:
    tok = Tokenizer.train_chars(["abc"])
    tok.backend.enable_truncation(2)
    assert len(Tokenizer(tok.backend).encode("abcabc")) == 6


# -- sentencepiece-style -------------------------------------------------------------------


def test_sentencepiece_style_tokens() -> None:
    tok = _sentencepiece_style()
    assert tok.kind == "other"
    assert (tok.bos_id, tok.eos_id) == (1, 2)
    the, newline = tok.token_to_id("▁the"), tok.token_to_id("<0x0A>")
    assert the is not None and newline is not None
    assert tok.token_bytes(the) == b" the"
    assert tok.display(the) == "␣the"
    assert tok.token_bytes(newline) == b"\n"
    assert tok.display(newline) == "↵"
    assert tok.display(1) == "<s>"
    ids = tok.encode("the\nthe")
    assert ids[:2] == [the, newline]  # no BOS although the post-processor would add one
    assert b"".join(tok.token_bytes(i) for i in ids) == b" the\nthe"
