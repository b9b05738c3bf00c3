"""Token files: the corpus as token ids on disk, written so that a partial file is never used.

    RUN/data/train.bin, val.bin    raw ids (uint16, or uint32 for vocabularies over 65,536)
    RUN/data/manifest.json         the corpus's fingerprint, byte and token counts

The ids are appended to files under temporary names, which are renamed into place when the
corpus is done; the manifest is written last. Token files without a manifest that matches
them are incomplete and are made again: a run killed while tokenizing never trains on part
of its corpus, and a file another process has mapped is never rewritten under it (it keeps
the old file; the folder gets a new one).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tokenscope.files import atomic_write_text
from tokenscope.lm.tokenizer import Tokenizer
from tokenscope.train.corpus import (
    BinaryFileError,
    CorpusError,
    CorpusSummary,
    StopCheck,
    binary_reason,
    iter_chunks,
    iter_text,
)

COPY_TOKENS = 1 << 20  # tokens moved at a time when the splits are redrawn
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "tokenscope-token-files"
MANIFEST_VERSION = 1
#: the manifest lists every corpus file (path, size, time): ~100 bytes each
MAX_MANIFEST_BYTES = 256 << 20
SPLITS = ("train.bin", "val.bin")


@dataclass
class TokenizedCorpus:
    train_path: Path
    val_path: Path
    train_tokens: int
    val_tokens: int
    summary: CorpusSummary


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def tokenizer_fingerprint(tokenizer: Tokenizer) -> str:
    """A short hash of the tokenizer's definition (its tokenizer.json text)."""
    return hashlib.sha256(tokenizer.to_str().encode("utf-8")).hexdigest()[:32]


def _file_hash() -> hashlib.blake2b:
    return hashlib.blake2b(digest_size=16)


# ----- writing token files ---------------------------------------------------------------------


class _SplitWriter:
    """The two token files being written under temporary names, with per-file rollback."""

    def __init__(self, out_dir: Path, dtype: np.dtype) -> None:
        self.dtype = dtype
        self.tmp = [out_dir / f".{name}.tmp" for name in SPLITS]
        self.files = [open(p, "wb") for p in self.tmp]  # noqa: SIM115
        self.counts = [0, 0]
        self.chunk_index = 0

    def mark(self) -> tuple[list[int], int]:
        return list(self.counts), self.chunk_index

    def rollback(self, mark: tuple[list[int], int]) -> None:
        """Forget everything written since `mark` (a file that turned out to be binary)."""
        self.counts, self.chunk_index = list(mark[0]), mark[1]
        for f, count in zip(self.files, self.counts, strict=True):
            f.flush()
            f.truncate(count * self.dtype.itemsize)
            f.seek(count * self.dtype.itemsize)

    def write(self, split: int, ids: list[int]) -> None:
        arr = np.asarray(ids, dtype=self.dtype)
        self.files[split].write(arr.tobytes())  # a full disk raises OSError(ENOSPC) here
        self.counts[split] += len(arr)

    def finish(self) -> None:
        for f in self.files:
            f.flush()
            os.fsync(f.fileno())
            f.close()

    def discard(self) -> None:
        for f, p in zip(self.files, self.tmp, strict=True):
            f.close()
            p.unlink(missing_ok=True)


def _redraw_splits(paths: list[Path], dtype: np.dtype, n_val: int) -> tuple[int, int]:
    """Make the last `n_val` tokens of train+val the validation split, copying in blocks
    (bounded memory whatever the corpus size). Paths are the temporary files, replaced."""
    sources = [np.memmap(p, dtype=dtype, mode="r") if p.stat().st_size else np.zeros(0, dtype)
               for p in paths]  # fmt: skip
    total = sum(len(s) for s in sources)
    n_train = total - n_val
    out = [p.with_name(p.name.removesuffix(".tmp") + ".split.tmp") for p in paths]

    def tokens(start: int, stop: int) -> Iterator[np.ndarray]:
        offset = 0
        for s in sources:
            lo, hi = max(start - offset, 0), min(stop - offset, len(s))
            for i in range(lo, hi, COPY_TOKENS):
                yield s[i : min(i + COPY_TOKENS, hi)]
            offset += len(s)

    try:
        for target, (start, stop) in zip(out, ((0, n_train), (n_train, total)), strict=True):
            with open(target, "wb") as f:
                for block in tokens(start, stop):
                    f.write(np.asarray(block).tobytes())
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        for p in out:
            p.unlink(missing_ok=True)
        raise
    for src, dst in zip(out, paths, strict=True):
        os.replace(src, dst)
    return n_train, n_val


def tokenize_corpus(
    files: list[Path],
    tokenizer: Tokenizer,
    out_dir: Path,
    *,
    val_fraction: float,
    skipped: list[tuple[Path, str]] | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: StopCheck | None = None,
    settings: dict[str, Any] | None = None,
) -> TokenizedCorpus:
    """Tokenize files into out_dir/train.bin and out_dir/val.bin (raw ids, native endianness),
    then write out_dir/manifest.json, which marks them complete.

    Every k-th chunk (k = 1 / val_fraction) goes to validation, so both splits see every part
    of the corpus. Files are separated by the end-of-text token when the tokenizer has one.
    A file found to be binary part-way is taken out again and listed in the summary's
    `skipped`. `progress(bytes_done, bytes_total)` is called as chunks are done; `settings`
    (JSON) is stored in the manifest for the caller to compare later.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)  # from here on, the token files are not complete
    dtype = token_dtype(tokenizer.vocab_size)
    total = sum(f.stat().st_size for f in files)
    done = 0
    period = max(2, round(1 / val_fraction))
    eos = tokenizer.eos_id
    summary = CorpusSummary(files=[], skipped=list(skipped or []))
    fingerprint: list[dict[str, Any]] = []
    writer = _SplitWriter(out_dir, dtype)
    try:
        for f in files:
            mark, before = writer.mark(), (summary.bytes, summary.characters, summary.invalid_bytes)
            stat, hasher = f.stat(), _file_hash()
            try:
                for text, nbytes, invalid in iter_chunks(f, should_stop, hasher):
                    summary.bytes += nbytes
                    summary.characters += len(text)
                    summary.invalid_bytes += invalid
                    done += nbytes
                    if text:
                        split = 1 if writer.chunk_index % period == period - 1 else 0
                        writer.write(split, tokenizer.encode(text))
                        writer.chunk_index += 1
                    if progress:
                        progress(done, total)
            except OSError as e:
                if e.filename is None or os.path.abspath(e.filename) != os.path.abspath(f):
                    raise  # not the corpus file: writing the token files failed
                raise CorpusError(f"cannot read {f}: {e.strerror or e}") from None
            except BinaryFileError as e:
                writer.rollback(mark)
                done -= summary.bytes - before[0]  # the file no longer counts, read or not
                total -= stat.st_size
                summary.bytes, summary.characters, summary.invalid_bytes = before
                summary.skipped.append((f, binary_reason(e.offset)))
                continue
            if eos is not None:
                writer.write(0, [eos])
            summary.files.append(f)
            fingerprint.append(
                {"path": os.path.abspath(f), "bytes": stat.st_size,
                 "mtime_ns": stat.st_mtime_ns, "hash": hasher.hexdigest()}
            )  # fmt: skip
        writer.finish()
        if summary.characters == 0:
            raise CorpusError("the corpus holds no text")
        counts = writer.counts
        if counts[1] == 0 or counts[0] < 2 * counts[1]:
            # A small corpus has too few chunks to interleave: keep its last tokens for
            # validation.
            n_val = max(2, int(sum(counts) * val_fraction))
            counts = list(_redraw_splits(writer.tmp, dtype, n_val))
        paths = [out_dir / name for name in SPLITS]
        for tmp, final in zip(writer.tmp, paths, strict=True):
            os.replace(tmp, final)  # a new file: a reader that mapped the old one keeps it
    except BaseException:
        writer.discard()
        raise
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "dtype": dtype.name,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "val_fraction": val_fraction,
        "files": fingerprint,
        "skipped": [[str(p), reason] for p, reason in summary.skipped],
        "bytes": summary.bytes,
        "characters": summary.characters,
        "invalid_bytes": summary.invalid_bytes,
        "splits": {
            name: {"tokens": n, "bytes": n * dtype.itemsize}
            for name, n in zip(SPLITS, counts, strict=True)
        },
        "settings": settings or {},
    }
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=1))
    return TokenizedCorpus(paths[0], paths[1], counts[0], counts[1], summary)


# ----- reading the manifest back -----------------------------------------------------------------


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The token files' manifest, or None when it is missing or damaged."""
    from tokenscope.files import FileReadError, load_json

    try:
        manifest = load_json(out_dir / MANIFEST, MAX_MANIFEST_BYTES, "a token files' manifest")
    except FileReadError:
        return None  # made again from the corpus
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return None
    if manifest.get("version") != MANIFEST_VERSION:
        return None
    return manifest


def _same_content(path: Path, expected: str, should_stop: StopCheck | None) -> bool:
    hasher = _file_hash()
    try:
        for _ in iter_text(path, should_stop, hasher):
            pass
    except (OSError, BinaryFileError):
        return False
    return hasher.hexdigest() == expected


def token_files_problem(
    out_dir: Path,
    files: list[Path],
    tokenizer: Tokenizer,
    *,
    val_fraction: float,
    settings: dict[str, Any] | None = None,
    should_stop: StopCheck | None = None,
) -> str | None:
    """Why the token files in out_dir cannot be used for this corpus and tokenizer, in a few
    words; None when they are complete and current.

    Files are compared by size and modification time; a file touched since is read again and
    compared by content. `settings` (when given) must equal those stored by tokenize_corpus.
    """
    manifest = read_manifest(out_dir)
    if manifest is None:
        return "they are incomplete (no manifest: the tokenizing did not finish)"
    try:
        for name, split in manifest["splits"].items():
            if (out_dir / name).stat().st_size != split["bytes"]:
                return f"{name} is incomplete"
        if manifest["tokenizer"] != tokenizer_fingerprint(tokenizer):
            return "they were made with another tokenizer"
        if manifest["val_fraction"] != val_fraction or (
            settings is not None and manifest["settings"] != settings
        ):
            return "they were made with other settings"
        recorded = manifest["files"]
        skipped_later = {p for p, reason in manifest["skipped"] if reason.startswith("binary")}
        current = [os.path.abspath(f) for f in files if os.path.abspath(f) not in skipped_later]
        if [r["path"] for r in recorded] != current:
            return "the corpus files changed"
        for r in recorded:
            stat = os.stat(r["path"])
            if stat.st_size != r["bytes"]:
                return f"{r['path']} changed"
            if stat.st_mtime_ns != r["mtime_ns"] and not _same_content(
                Path(r["path"]), r["hash"], should_stop
            ):
                return f"{r['path']} changed"
        if manifest["bytes"] != sum(r["bytes"] for r in recorded):
            return "they hold part of the corpus"
    except (OSError, KeyError, TypeError, AttributeError):
        return "they are incomplete or damaged"
    return None


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
