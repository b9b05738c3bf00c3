"""Tokenizers over Hugging Face ``tokenizers``, with exact per-token bytes and readable labels.

The views in Tokenscope show one token at a time, so this module answers questions the
library leaves open: which bytes a single token stands for (a byte-level BPE token may be
half of a Chinese character), how to print a token so that spaces, newlines and partial
characters stay visible, and how to stream generated ids into text without ever showing a
replacement character for a character that is merely not finished yet.
"""

from __future__ import annotations

import codecs
import json
import operator
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import tokenizers
from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers

from tokenscope.files import atomic_write_text
from tokenscope.lm.errors import ModelFormatError
from tokenscope.lm.formats.safe_io import (
    MAX_TOKENIZER_BYTES,
    read_bytes,
    stat_path,
)
from tokenscope.lm.tokenizer_checks import (
    MAX_TOKEN_CHARS,
    check_tokenizer_spec,
    first_error_line,
    is_panic,
    parse_backend,
    probe_backend,
)

__all__ = [
    "MAX_TOKEN_CHARS",
    "IncrementalDecoder",
    "Tokenizer",
    "check_tokenizer_spec",
    "display_bytes",
    "probe_backend",
]

_FILE_NAME = "tokenizer.json"

# Preference order matters: chat models carry several of these, and the first one listed is
# the one that ends a document rather than a turn.
_EOS_NAMES = ("<|endoftext|>", "</s>", "<|im_end|>", "<eos>", "<|end_of_text|>")
# "<|im_start|>" is left out on purpose: it opens a chat turn, not a document, so it is only
# a BOS when the caller says so.
_BOS_NAMES = ("<s>", "<|begin_of_text|>", "<bos>")

_UNK = "<unk>"
_EOT = "<|endoftext|>"


def _gpt2_byte_table() -> tuple[str, ...]:
    """The byte -> printable character table of GPT-2 style byte-level BPE.

    Printable latin-1 bytes stand for themselves; the 68 others (controls, space, DEL, the
    C1 range, NBSP and the soft hyphen) are moved, in byte order, to code points from 256 on
    so that every byte has a visible, non-whitespace stand-in.
    """
    printable = {*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
    table: list[str] = []
    shifted = 256
    for byte in range(256):
        if byte in printable:
            table.append(chr(byte))
        else:
            table.append(chr(shifted))
            shifted += 1
    return tuple(table)


_BYTE_TO_UNICODE = _gpt2_byte_table()
_UNICODE_TO_BYTE = {char: byte for byte, char in enumerate(_BYTE_TO_UNICODE)}

_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_METASPACE = "▁"

_SYMBOLS = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}
_MARK_CATEGORIES = frozenset({"Mn", "Mc", "Me"})
# Format characters (zero-width joiners, bidi marks, BOM) and the non-ASCII separators
# (NBSP, ideographic space, line/paragraph separator) would otherwise render as nothing or
# as a plain-looking gap, which hides what the token really is.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Zs", "Zl", "Zp"})


def _display_char(char: str) -> str:
    symbol = _SYMBOLS.get(char)
    if symbol is not None:
        return symbol
    category = unicodedata.category(char)
    if category == "Cc":
        return f"\\x{ord(char):02x}"
    if category in _INVISIBLE_CATEGORIES:
        code = ord(char)
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return char


def _display_text(text: str) -> str:
    if not text:
        return ""
    shown = "".join(_display_char(char) for char in text)
    # A leading combining mark would attach to whatever the UI drew just before the label
    # (or to nothing at all), so it gets its own visible base.
    if unicodedata.category(text[0]) in _MARK_CATEGORIES:
        shown = "◌" + shown
    return shown


def display_bytes(data: bytes) -> str:
    """Return a label a person can read for the raw bytes of one token.

    Spaces, newlines, tabs and carriage returns become ␣ ↵ ⇥ ␍, other control characters
    ``\\xNN`` escapes, invisible format characters and non-ASCII spaces ``\\uNNNN`` escapes,
    and a leading combining mark gets a dotted-circle base. Bytes that are not valid UTF-8
    (for example one third of a Chinese character) are shown one by one as ``<E4>``.
    Empty input is shown as "∅".
    """
    if not data:
        return "∅"
    parts: list[str] = []
    rest = bytes(data)
    while rest:
        try:
            text = rest.decode("utf-8")
        except UnicodeDecodeError as err:
            parts.append(_display_text(rest[: err.start].decode("utf-8")))
            parts.extend(f"<{byte:02X}>" for byte in rest[err.start : err.end])
            rest = rest[err.end :]
        else:
            parts.append(_display_text(text))
            break
    return "".join(parts)


def _contains_type(node: Any, type_name: str) -> bool:
    """Whether a pipeline section of tokenizer.json, Sequences included, has a step of a type."""
    if isinstance(node, dict):
        if node.get("type") == type_name:
            return True
        return any(_contains_type(value, type_name) for value in node.values())
    if isinstance(node, list):
        return any(_contains_type(item, type_name) for item in node)
    return False


def _component(
    part: normalizers.Normalizer | pre_tokenizers.PreTokenizer | decoders.Decoder | None,
) -> Any:
    """A tokenizer's normalizer, pre-tokenizer or decoder as its JSON spec (None if unset)."""
    return None if part is None else json.loads(part.__getstate__())


_T = TypeVar("_T")


class Tokenizer:
    """A text <-> token id mapping with per-token bytes and display labels.

    Wraps a ``tokenizers.Tokenizer`` (``backend``). Do not add tokens to the backend after
    wrapping it: the special-token set and the display cache are taken once.
    """

    def __init__(
        self,
        backend: tokenizers.Tokenizer,
        *,
        bos_id: int | None = None,
        eos_id: int | None = None,
    ) -> None:
        """Wrap ``backend``; BOS/EOS ids not given are guessed from well-known special tokens.

        Truncation and padding settings stored in the backend are switched off, because they
        would silently cut or pad what a person typed.
        """
        self.backend = backend
        backend.no_truncation()
        backend.no_padding()

        # The pipeline's parts, each serialised on its own: the whole tokenizer as JSON would
        # mean 12 MB to write and parse for a vocabulary of 262k pieces (Gemma's).
        normalizer, pre, decoder = (
            _component(c) for c in (backend.normalizer, backend.pre_tokenizer, backend.decoder)
        )
        self._byte_level = _contains_type([normalizer, pre, decoder], "ByteLevel")
        model_type = type(backend.model).__name__
        if self._byte_level and model_type == "BPE":
            self._kind = "byte-bpe"
        elif (
            model_type == "WordLevel"
            and isinstance(decoder, dict)
            and (decoder.get("type") == "Fuse")
        ):
            self._kind = "char"
        else:
            self._kind = "other"

        added = backend.get_added_tokens_decoder()
        self._added: dict[int, str] = {index: token.content for index, token in added.items()}
        self._special_ids = frozenset(index for index, token in added.items() if token.special)
        ids = backend.get_vocab(with_added_tokens=True).values()
        self._vocab_size = max(ids, default=-1) + 1
        # Ids below this that have no token (a model's padding rows, a duplicated string in a
        # GGUF vocabulary) read as empty tokens; see reserve_ids.
        self._id_limit = self._vocab_size
        self._display_cache: list[str | None] | None = None

        self.bos_id = self._pick_id(bos_id, _BOS_NAMES, "bos_id")
        self.eos_id = self._pick_id(eos_id, _EOS_NAMES, "eos_id")

    def _pick_id(self, given: int | None, names: Sequence[str], label: str) -> int | None:
        if given is not None:
            given = operator.index(given)
            if self.id_to_token(given) is None:
                raise ValueError(
                    f"{label}={given} is not a token of this tokenizer "
                    f"(vocabulary has {self._vocab_size} ids)"
                )
            return given
        # Only added tokens count: a byte-level BPE trained on HTML can have "</s>" as an
        # ordinary merged token, and that must not end generation.
        by_content = {content: index for index, content in self._added.items()}
        for name in names:
            if name in by_content:
                return by_content[name]
        return None

    # -- construction -------------------------------------------------------------------

    @classmethod
    def train_bpe(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        *,
        special_tokens: Sequence[str] = (_EOT,),
        min_frequency: int = 2,
        show_progress: bool = False,
    ) -> Tokenizer:
        """Train a GPT-2 style byte-level BPE tokenizer on ``texts``.

        All 256 byte symbols are in the vocabulary whether or not they occur, so any text
        encodes and decodes back exactly. The result has at most ``vocab_size`` tokens
        (fewer when the texts do not support that many merges). Raises ValueError when
        ``vocab_size`` cannot hold the 256 bytes plus the special tokens.
        """
        specials = list(dict.fromkeys(special_tokens))
        needed = len(_BYTE_TO_UNICODE) + len(specials)
        if vocab_size < needed:
            raise ValueError(
                f"vocab_size={vocab_size} is too small for a byte-level BPE tokenizer: it needs "
                f"at least {needed} (256 byte tokens + {len(specials)} special tokens)"
            )
        backend = tokenizers.Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials,
            initial_alphabet=list(_BYTE_TO_UNICODE),
            show_progress=show_progress,
        )
        backend.train_from_iterator(texts, trainer=trainer)
        return cls(backend, eos_id=backend.token_to_id(_EOT))

    @classmethod
    def train_chars(
        cls,
        texts: Iterable[str],
        *,
        special_tokens: Sequence[str] = (_EOT,),
    ) -> Tokenizer:
        """Build a character-level tokenizer: one token per code point seen in ``texts``.

        Ids are "<unk>" first, then the special tokens, then the characters in code point
        order. Characters never seen encode as "<unk>".
        """
        chars = sorted({char for text in texts for char in text})
        specials = [token for token in dict.fromkeys(special_tokens) if token != _UNK]
        vocab: dict[str, int] = {}
        for token in (_UNK, *specials, *chars):
            vocab.setdefault(token, len(vocab))
        backend = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token=_UNK))
        # "." would not do: Oniguruma's dot skips "\n", and Split keeps the unmatched gap
        # ("\n\n") as one piece, which then becomes <unk>.
        backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        backend.decoder = decoders.Fuse()
        backend.add_special_tokens([_UNK, *specials])
        return cls(backend)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        bos_id: int | None = None,
        eos_id: int | None = None,
    ) -> Tokenizer:
        """Load a tokenizer.json file (or the tokenizer.json inside a folder).

        Raises ModelFormatError, naming the path, when the file is missing, unreadable, not
        JSON, or JSON of some other kind.
        """
        file = Path(path)
        st = stat_path(file)
        if st is not None and stat.S_ISDIR(st.st_mode):
            file = file / _FILE_NAME
            st = stat_path(file)
        if st is None:
            raise ModelFormatError(f"{file} does not exist (expected a {_FILE_NAME} file)")
        raw = read_bytes(file, MAX_TOKENIZER_BYTES, f"a {_FILE_NAME} file")
        try:
            # utf-8-sig: some editors put a byte order mark in front of JSON they save.
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ModelFormatError(
                f"{file} is not a tokenizer file: it is not UTF-8 text (binary or corrupt data)"
            ) from None
        return cls(parse_backend(text, str(file)), bos_id=bos_id, eos_id=eos_id)

    @classmethod
    def from_str(
        cls,
        json_text: str,
        *,
        bos_id: int | None = None,
        eos_id: int | None = None,
    ) -> Tokenizer:
        """Load a tokenizer from tokenizer.json text; ModelFormatError when it is not one."""
        return cls(parse_backend(json_text, "the given text"), bos_id=bos_id, eos_id=eos_id)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write tokenizer.json to ``path`` (or into it, when it is a folder), atomically.

        BOS/EOS ids are not part of the file; they are guessed again on loading.
        """
        target = Path(path)
        if target.is_dir():
            target = target / _FILE_NAME
        text = self.backend.to_str(pretty=True)
        # A crash half-way must never leave a truncated tokenizer.json where a good one was.
        atomic_write_text(target, text)

    def to_str(self) -> str:
        """Return the tokenizer as tokenizer.json text."""
        return self.backend.to_str()

    # -- vocabulary ---------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids, added and special tokens included (highest id + 1)."""
        return self._vocab_size

    @property
    def kind(self) -> str:
        """One of "byte-bpe", "char" or "other" (e.g. a sentencepiece-style tokenizer.json)."""
        return self._kind

    def token_to_id(self, token: str) -> int | None:
        """The id of a raw vocabulary string, or None."""
        return self.backend.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        """The raw vocabulary string of an id (e.g. "Ġthe" in byte-level BPE), or None."""
        token_id = operator.index(token_id)
        # The backend raises OverflowError for negative ids instead of answering None.
        if not 0 <= token_id < self._vocab_size:
            return None
        return self.backend.id_to_token(token_id)

    def is_special(self, token_id: int) -> bool:
        """Whether the id is a special token (such as "<|endoftext|>")."""
        return token_id in self._special_ids

    def reserve_ids(self, count: int) -> None:
        """Accept ids up to `count` - 1: those without a token are empty ("∅").

        For models with more output rows than tokens (vocabularies padded to a round size):
        the model can still predict such an id, and it must be shown, not fail.
        """
        if count > self._id_limit:
            self._id_limit = count
            self._display_cache = None

    # -- text <-> ids -------------------------------------------------------------------

    def _run(self, call: Callable[[], _T]) -> _T:
        """Call the backend; a failure of the tokenizer's own rules is a ModelFormatError."""
        try:
            return call()
        except (TypeError, UnicodeError):
            raise  # the caller's text, not the tokenizer
        except Exception as err:
            raise ModelFormatError(
                f"the model's tokenizer failed on this text: {first_error_line(err)}"
            ) from None
        except BaseException as err:
            if not is_panic(err):
                raise
            raise ModelFormatError(
                "the model's tokenizer failed on this text (its splitting rules gave up, e.g. "
                f"a regular expression that backtracks without end): {first_error_line(err)}"
            ) from None

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; BOS/EOS or other special tokens are never added."""
        return self._run(lambda: self.backend.encode(text, add_special_tokens=False).ids)

    def encode_with_offsets(self, text: str) -> list[tuple[int, int, int]]:
        """``(id, start, end)`` per token, offsets in characters of ``text``.

        Tokens that are parts of one character (byte-level BPE) share that character's span.
        """
        encoding = self._run(lambda: self.backend.encode(text, add_special_tokens=False))
        return [
            (index, start, end)
            for index, (start, end) in zip(encoding.ids, encoding.offsets, strict=True)
        ]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; special tokens stay in the text."""
        ids = [operator.index(index) for index in ids]
        return self._run(lambda: self.backend.decode(ids, skip_special_tokens=False))

    # -- single tokens ------------------------------------------------------------------

    def token_bytes(self, token_id: int) -> bytes:
        """The exact bytes a token stands for; IndexError for an id outside the vocabulary.

        An id inside it that has no token of its own (see reserve_ids) has no bytes.
        """
        token = self.id_to_token(token_id)
        if token is None:
            if 0 <= operator.index(token_id) < self._id_limit:
                return b""  # an id without a token: see reserve_ids
            raise IndexError(
                f"token id {token_id} is not in the vocabulary (ids 0..{self._id_limit - 1})"
            )
        added = self._added.get(operator.index(token_id))
        if added is not None:
            return added.encode("utf-8")
        if self._byte_level:
            # Characters outside the table only occur in hand-edited vocabularies; keeping
            # them as UTF-8 beats failing on them.
            return b"".join(
                bytes((_UNICODE_TO_BYTE[char],))
                if char in _UNICODE_TO_BYTE
                else char.encode("utf-8")
                for char in token
            )
        if self._kind == "char":
            return token.encode("utf-8")
        fallback = _BYTE_FALLBACK.fullmatch(token)
        if fallback is not None:
            return bytes((int(fallback.group(1), 16),))
        return token.replace(_METASPACE, " ").encode("utf-8")

    def token_text(self, token_id: int) -> str:
        """The token's bytes as text; partial characters become U+FFFD."""
        return self.token_bytes(token_id).decode("utf-8", errors="replace")

    def display(self, token_id: int) -> str:
        """A label a person can read for one token (see display_bytes); specials as-is.

        Labels for the whole vocabulary are computed on first use and cached.
        """
        cache = self._display_cache
        if cache is None:
            cache = [self._compute_display(index) for index in range(self._id_limit)]
            self._display_cache = cache
        index = operator.index(token_id)
        label = cache[index] if 0 <= index < len(cache) else None
        if label is None:
            raise IndexError(
                f"token id {token_id} is not in the vocabulary (ids 0..{self._id_limit - 1})"
            )
        return label

    def _compute_display(self, token_id: int) -> str | None:
        if self.id_to_token(token_id) is None:
            return display_bytes(b"")
        if token_id in self._special_ids:
            return self._added[token_id]
        return display_bytes(self.token_bytes(token_id))

    def __repr__(self) -> str:
        return (
            f"Tokenizer(kind={self._kind!r}, vocab_size={self._vocab_size}, "
            f"bos_id={self.bos_id}, eos_id={self.eos_id})"
        )


class IncrementalDecoder:
    """Turns a stream of token ids into text, holding back bytes of an unfinished character.

    Text is built from each token's exact bytes, so a sentencepiece-style first token keeps
    its leading space (the backend's decoder would strip it).
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        """Start an empty stream for ``tokenizer``."""
        self.tokenizer = tokenizer
        # The codec already holds back an unfinished sequence and replaces bytes that can
        # never become valid at once, which is exactly the streaming rule wanted here.
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        """Add one token; return the text it completes ("" while inside a multi-byte char)."""
        return self._utf8.decode(self.tokenizer.token_bytes(token_id))

    def flush(self) -> str:
        """Return whatever is held back (invalid bytes as U+FFFD) and start a fresh stream."""
        rest = self._utf8.decode(b"", final=True)
        self._utf8.reset()
        return rest
