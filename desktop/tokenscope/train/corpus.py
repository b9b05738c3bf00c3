"""The training corpus: find text files and read them safely, in chunks.

Files are read in blocks, so a corpus of several GB never sits in memory at once. Invalid
UTF-8 is replaced (and counted); binary files are skipped with a reason (a NUL byte anywhere:
the first bytes are looked at when listing, the rest while reading); a corpus with no text is
an error that says so. `should_stop()` is asked between blocks, so a stop request is honoured
while a corpus is read. tokenscope.train.token_files turns the text into token ids.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tokenscope.lm.errors import TokenscopeError

if TYPE_CHECKING:
    import hashlib

READ_BLOCK = 1 << 20  # bytes read at a time
CHUNK_CHARS = 1 << 14  # text handed to the tokenizer at a time (cut at a newline)
BINARY_SNIFF = 8192  # bytes looked at when listing files (the rest is checked while reading)

StopCheck = Callable[[], bool]


class CorpusError(TokenscopeError):
    """The corpus cannot be used (nothing there, nothing readable, too small)."""


class BinaryFileError(CorpusError):
    """A file that looked like text holds a NUL byte further in: it is not text."""

    def __init__(self, path: Path, offset: int) -> None:
        super().__init__(f"{path} is a binary file (a NUL byte at offset {offset:,})")
        self.path = path
        self.offset = offset


class Interrupted(Exception):  # not an error: the person asked to stop
    """Raised between chunks when `should_stop()` says so."""


@dataclass
class CorpusSummary:
    """What a corpus holds, for a person deciding whether to train on it."""

    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    bytes: int = 0
    characters: int = 0
    invalid_bytes: int = 0  # bytes that were not valid UTF-8 and were replaced

    @property
    def estimated_tokens(self) -> int:
        """A rough count for byte-level BPE on English-like text (about 4 characters a token)."""
        return self.characters // 4


def _is_binary(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(BINARY_SNIFF)
    return b"\x00" in head


def binary_reason(offset: int) -> str:
    return f"binary file (a NUL byte at offset {offset:,})"


def find_files(
    paths: Iterable[str | Path], should_stop: StopCheck | None = None
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Text files under the given files and folders (sorted), and what was skipped and why.

    Only the first bytes of each file are looked at here; reading checks the rest."""
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for p in map(Path, paths):
        if not p.exists():
            raise CorpusError(f"{p} does not exist")
        candidates = (
            [p]
            if p.is_file()
            else sorted(
                q
                for q in p.rglob("*")
                if q.is_file() and not any(part.startswith(".") for part in q.relative_to(p).parts)
            )
        )
        for q in candidates:
            if should_stop and should_stop():
                raise Interrupted
            try:
                if not q.is_file():
                    skipped.append((q, "not a regular file"))
                elif q.stat().st_size == 0:
                    skipped.append((q, "empty file"))
                elif _is_binary(q):
                    skipped.append((q, "binary file (it contains NUL bytes)"))
                else:
                    files.append(q)
            except OSError as e:
                skipped.append((q, f"cannot be read: {e.strerror or e}"))
    return files, skipped


def iter_text(
    path: Path, should_stop: StopCheck | None = None, hasher: hashlib.blake2b | None = None
) -> Iterator[tuple[str, int, int]]:
    """(text, bytes read, invalid bytes) blocks of a file, decoded as UTF-8 with replacement.

    Raises BinaryFileError at the first block holding a NUL byte (before yielding it), and
    Interrupted between blocks when `should_stop()` is true. `hasher.update` sees the bytes.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    offset = 0
    with open(path, "rb") as f:
        while True:
            if should_stop and should_stop():
                raise Interrupted
            raw = f.read(READ_BLOCK)
            nul = raw.find(b"\x00")
            if nul >= 0:
                raise BinaryFileError(path, offset + nul)
            if hasher is not None:
                hasher.update(raw)
            offset += len(raw)
            final = not raw
            text = decoder.decode(raw, final=final)
            # Replacement characters that were not literally in the file mark invalid bytes.
            invalid = text.count("\ufffd") - raw.count("\ufffd".encode())
            if text or raw:
                yield text, len(raw), max(0, invalid)
            if final:
                return


def iter_chunks(
    path: Path, should_stop: StopCheck | None = None, hasher: hashlib.blake2b | None = None
) -> Iterator[tuple[str, int, int]]:
    """Like iter_text, but in pieces of about CHUNK_CHARS characters cut after a newline
    (or anywhere, in a line longer than that)."""
    pending = ""
    for text, nbytes, invalid in iter_text(path, should_stop, hasher):
        pending += text
        pos, first = 0, True
        while len(pending) - pos >= 2 * CHUNK_CHARS:
            cut = pending.rfind("\n", pos + CHUNK_CHARS, pos + 2 * CHUNK_CHARS)
            cut = cut + 1 if cut >= 0 else pos + CHUNK_CHARS
            yield pending[pos:cut], (nbytes if first else 0), (invalid if first else 0)
            pos, first = cut, False
        pending = pending[pos:]
        if first:
            yield "", nbytes, invalid  # still report the bytes read
    if pending:
        yield pending, 0, 0


def summarize(paths: Iterable[str | Path], should_stop: StopCheck | None = None) -> CorpusSummary:
    """Count files, bytes, characters and encoding problems (reads every file once)."""
    files, skipped = find_files(paths, should_stop)
    summary = CorpusSummary(files=[], skipped=skipped)
    for f in files:
        counts = [0, 0, 0]
        try:
            for text, nbytes, invalid in iter_text(f, should_stop):
                counts[0] += nbytes
                counts[1] += len(text)
                counts[2] += invalid
        except BinaryFileError as e:
            summary.skipped.append((f, binary_reason(e.offset)))
            continue
        summary.files.append(f)
        summary.bytes += counts[0]
        summary.characters += counts[1]
        summary.invalid_bytes += counts[2]
    return summary


def iter_corpus_text(
    files: Iterable[Path],
    *,
    should_stop: StopCheck | None = None,
    on_binary: Callable[[Path, int], None] | None = None,
) -> Iterator[str]:
    """Every chunk of text in the corpus, for training a tokenizer on it.

    A file found to be binary part-way is left (`on_binary(path, offset)` is told)."""
    for f in files:
        try:
            for text, _, _ in iter_chunks(f, should_stop):
                if text:
                    yield text
        except BinaryFileError as e:
            if on_binary is not None:
                on_binary(f, e.offset)
