"""The run's tokenizer and token files: made from the corpus, or reused when a resume finds
them complete (rank 0 alone does this; the other ranks load what it made)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokenscope.lm.errors import TokenscopeError
from tokenscope.lm.tokenizer import Tokenizer
from tokenscope.train.config import TrainConfig
from tokenscope.train.corpus import CorpusError, StopCheck, find_files, iter_corpus_text
from tokenscope.train.events import EventWriter, ProgressEvent, WarningEvent
from tokenscope.train.token_files import read_manifest, token_files_problem, tokenize_corpus


def prepare_data(
    config: TrainConfig,
    run_dir: Path,
    events: EventWriter,
    *,
    resume: bool,
    resume_from: Path | None,
    should_stop: StopCheck,
) -> tuple[Tokenizer, dict[str, Any]]:
    """The run's tokenizer (saved as RUN/tokenizer.json) and complete token files in RUN/data;
    also the start event's summary of the corpus. Warnings go to `events`.

    When resuming, complete token files that match the corpus and the tokenizer are reused;
    incomplete or stale ones are made again, with a warning saying why. Raises Interrupted
    when `should_stop()` says so, CorpusError when there is no text to train on.
    """
    c, tok_path, data_dir = config, run_dir / "tokenizer.json", run_dir / "data"
    data = list(c.data)
    if c.corpus_recipe == "induction":
        from tokenscope.train import induction_corpus

        data.append(str(induction_corpus.write(run_dir / "corpus" / "induction.txt")))
    elif c.corpus_recipe:
        from tokenscope.train import default_corpus

        data.append(str(default_corpus.write(run_dir / "corpus" / "default.txt")))
    files, skipped = find_files(data, should_stop)
    # The tokenizer: a checkpoint's own when resuming from one; the run's when resuming
    # a run stopped before its first checkpoint (if made with the same settings); else new.
    settings = {"tokenizer": c.tokenizer, "vocab_size": c.vocab_size, "init_from": c.init_from}
    tokenizer = None
    if resume_from is not None:
        tokenizer = Tokenizer.from_file(resume_from)
    elif resume and tok_path.is_file():
        manifest = read_manifest(data_dir)
        if manifest is not None and manifest.get("settings") == settings:
            tokenizer = Tokenizer.from_file(tok_path)
    if resume and tokenizer is not None:
        problem = token_files_problem(
            data_dir, files, tokenizer, val_fraction=c.val_fraction,
            settings=settings if resume_from is None else None,
            should_stop=should_stop,
        )  # fmt: skip
        if problem is None:
            if resume_from is not None:
                tokenizer.save(tok_path)
            return tokenizer, _corpus_info(read_manifest(data_dir) or {})
        events.emit(WarningEvent(message=f"the token files cannot be reused: {problem}; "
                                 "tokenizing the corpus again"))  # fmt: skip
    for path, reason in skipped:
        events.emit(WarningEvent(message=f"skipped {path}: {reason}"))
    if not files:
        raise CorpusError("the corpus is empty: no readable text files in " + ", ".join(data))
    if tokenizer is None:
        tokenizer, files = _make_tokenizer(c, files, skipped, events, should_stop)
    tokenizer.save(tok_path)
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] > 0.5 or done == total:
            last[0] = now
            events.emit(ProgressEvent(stage="tokenize", done=done, total=total))

    corpus = tokenize_corpus(
        files,
        tokenizer,
        data_dir,
        val_fraction=c.val_fraction,
        skipped=skipped,
        progress=progress,
        should_stop=should_stop,
        settings=settings,
    )
    for path, reason in corpus.summary.skipped[len(skipped) :]:
        events.emit(WarningEvent(message=f"skipped {path}: {reason}"))
    invalid = corpus.summary.invalid_bytes
    if invalid:
        events.emit(WarningEvent(message=f"{invalid} bytes were not valid UTF-8 and were replaced"))
    return tokenizer, _corpus_info(read_manifest(data_dir) or {})


def _make_tokenizer(
    c: TrainConfig,
    files: list[Path],
    skipped: list[tuple[Path, str]],
    events: EventWriter,
    should_stop: StopCheck,
) -> tuple[Tokenizer, list[Path]]:
    """A tokenizer for the corpus, and the files it holds: any found to be binary part-way
    are reported, added to `skipped`, and the tokenizer is made again without them."""
    if c.tokenizer == "model":
        from tokenscope.lm.loading import load_model

        assert c.init_from is not None  # the "model" tokenizer is init_from's (config checks)
        return load_model(c.init_from).tokenizer, files
    events.emit(ProgressEvent(stage="tokenizer", done=0, total=1))
    while True:
        binary: list[tuple[Path, int]] = []
        texts = iter_corpus_text(files, should_stop=should_stop, on_binary=_collect(binary))
        try:
            if c.tokenizer == "char":
                tokenizer = Tokenizer.train_chars(texts)
            else:
                tokenizer = Tokenizer.train_bpe(texts, vocab_size=c.vocab_size)
        except ValueError as e:  # e.g. a vocab_size too small for byte-level BPE
            raise TokenscopeError(str(e)) from None
        if not binary:
            break
        for path, offset in binary:
            reason = f"binary file (a NUL byte at offset {offset:,})"
            skipped.append((path, reason))
            events.emit(WarningEvent(message=f"skipped {path}: {reason}"))
        files = [f for f in files if f not in {path for path, _ in binary}]
        if not files:
            raise CorpusError("the corpus is empty: every file turned out to be binary")
    events.emit(ProgressEvent(stage="tokenizer", done=1, total=1))
    return tokenizer, files


def _collect(found: list[tuple[Path, int]]) -> Callable[[Path, int], None]:
    """An on_binary callback that lists the files found to be binary, and where."""
    return lambda path, offset: found.append((path, offset))


def _corpus_info(manifest: dict[str, Any]) -> dict[str, Any]:
    """The start event's summary of the corpus, from the token files' manifest."""
    splits = manifest.get("splits", {})
    return {
        "files": len(manifest.get("files", [])),
        "skipped": len(manifest.get("skipped", [])),
        "bytes": manifest.get("bytes", 0),
        "characters": manifest.get("characters", 0),
        "invalid_bytes": manifest.get("invalid_bytes", 0),
        "train_tokens": splits.get("train.bin", {}).get("tokens", 0),
        "val_tokens": splits.get("val.bin", {}).get("tokens", 0),
    }
