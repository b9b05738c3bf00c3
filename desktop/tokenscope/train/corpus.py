"""The training corpus: find text files, read them safely, tokenize them into memory-mapped ids.

Files are read in chunks and token ids are appended to files on disk, so a corpus of several
GB never sits in memory at once. Invalid UTF-8 is replaced (and counted); binary files are
skipped with a reason; a corpus with no text is an error that says so.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokenscope.lm.errors import TokenscopeError
from tokenscope.lm.tokenizer import Tokenizer

READ_BLOCK = 1 << 20  # bytes read at a time
CHUNK_CHARS = 1 << 14  # text handed to the tokenizer at a time (cut at a newline)
BINARY_SNIFF = 8192


class CorpusError(TokenscopeError):
    """The corpus cannot be used (nothing there, nothing readable, too small)."""


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


def find_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Text files under the given files and folders (sorted), and what was skipped and why."""
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
            try:
                if q.stat().st_size == 0:
                    skipped.append((q, "empty file"))
                elif _is_binary(q):
                    skipped.append((q, "binary file (it contains NUL bytes)"))
                else:
                    files.append(q)
            except OSError as e:
                skipped.append((q, f"cannot be read: {e.strerror or e}"))
    return files, skipped


def iter_text(path: Path) -> Iterator[tuple[str, int, int]]:
    """(text, bytes read, invalid bytes) blocks of a file, decoded as UTF-8 with replacement."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with open(path, "rb") as f:
        while True:
            raw = f.read(READ_BLOCK)
            final = not raw
            text = decoder.decode(raw, final=final)
            # Replacement characters that were not literally in the file mark invalid bytes.
            invalid = text.count("\ufffd") - raw.count("\ufffd".encode())
            if text or raw:
                yield text, len(raw), max(0, invalid)
            if final:
                return


def iter_chunks(path: Path) -> Iterator[tuple[str, int, int]]:
    """Like iter_text, but in pieces of about CHUNK_CHARS characters cut after a newline."""
    pending = ""
    for text, nbytes, invalid in iter_text(path):
        pending += text
        first = True
        while len(pending) >= 2 * CHUNK_CHARS:
            cut = pending.rfind("\n", CHUNK_CHARS, 2 * CHUNK_CHARS)
            cut = cut + 1 if cut >= 0 else CHUNK_CHARS
            yield pending[:cut], (nbytes if first else 0), (invalid if first else 0)
            pending, first = pending[cut:], False
        if first:
            yield "", nbytes, invalid  # still report the bytes read
    if pending:
        yield pending, 0, 0


def summarize(paths: Iterable[str | Path]) -> CorpusSummary:
    """Count files, bytes, characters and encoding problems (reads every file once)."""
    files, skipped = find_files(paths)
    summary = CorpusSummary(files=files, skipped=skipped)
    for f in files:
        for text, nbytes, invalid in iter_text(f):
            summary.bytes += nbytes
            summary.characters += len(text)
            summary.invalid_bytes += invalid
    return summary


def iter_corpus_text(files: Iterable[Path]) -> Iterator[str]:
    """Every chunk of text in the corpus, for training a tokenizer on it."""
    for f in files:
        for text, _, _ in iter_chunks(f):
            if text:
                yield text


@dataclass
class TokenizedCorpus:
    train_path: Path
    val_path: Path
    train_tokens: int
    val_tokens: int
    summary: CorpusSummary


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def tokenize_corpus(
    files: list[Path],
    tokenizer: Tokenizer,
    out_dir: Path,
    *,
    val_fraction: float,
    skipped: list[tuple[Path, str]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TokenizedCorpus:
    """Tokenize files into out_dir/train.bin and out_dir/val.bin (raw ids, native endianness).

    Every k-th chunk (k = 1 / val_fraction) goes to validation, so both splits see every part
    of the corpus. Files are separated by the end-of-text token when the tokenizer has one.
    `progress(bytes_done, bytes_total)` is called as chunks are done.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(tokenizer.vocab_size)
    total = sum(f.stat().st_size for f in files)
    done = 0
    period = max(2, round(1 / val_fraction))
    counts = [0, 0]
    chunk_index = 0
    eos = tokenizer.eos_id
    paths = (out_dir / "train.bin", out_dir / "val.bin")
    summary = CorpusSummary(files=list(files), skipped=list(skipped or []))
    with open(paths[0], "wb") as train_f, open(paths[1], "wb") as val_f:
        outs = (train_f, val_f)
        for f in files:
            for text, nbytes, invalid in iter_chunks(f):
                summary.bytes += nbytes
                summary.characters += len(text)
                summary.invalid_bytes += invalid
                done += nbytes
                if text:
                    split = 1 if chunk_index % period == period - 1 else 0
                    ids = np.asarray(tokenizer.encode(text), dtype=dtype)
                    ids.tofile(outs[split])
                    counts[split] += len(ids)
                    chunk_index += 1
                if progress:
                    progress(done, total)
            if eos is not None:
                np.asarray([eos], dtype=dtype).tofile(train_f)
                counts[0] += 1
    if summary.characters == 0:
        raise CorpusError("the corpus holds no text")
    if counts[1] == 0 or counts[0] < 2 * counts[1]:
        # A small corpus has too few chunks to interleave: keep its last tokens for validation.
        everything = np.concatenate([np.fromfile(p, dtype=dtype) for p in paths])
        n_val = max(2, int(len(everything) * val_fraction))
        everything[:-n_val].tofile(paths[0])
        everything[-n_val:].tofile(paths[1])
        counts = [len(everything) - n_val, n_val]
    return TokenizedCorpus(paths[0], paths[1], counts[0], counts[1], summary)


class TokenDataset:
    """Random windows of a memory-mapped token file; which windows depends only on (seed, step)."""

    def __init__(self, path: Path, vocab_size: int) -> None:
        self.tokens = np.memmap(path, dtype=token_dtype(vocab_size), mode="r")

    def __len__(self) -> int:
        return len(self.tokens)

    def window_starts(self, seed: int, step: int, count: int, length: int) -> np.ndarray:
        high = len(self.tokens) - length
        if high < 1:
            raise CorpusError(
                f"the corpus split has {len(self.tokens)} tokens; need more than {length} "
                "(use more text or a shorter context)"
            )
        rng = np.random.default_rng([seed, step])
        return rng.integers(0, high, size=count)

    def batch(self, starts: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets (count, length), targets shifted by one token."""
        rows = np.stack(
            [np.asarray(self.tokens[s : s + length + 1], dtype=np.int64) for s in starts]
        )
        return rows[:, :-1], rows[:, 1:]
