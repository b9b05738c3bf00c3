"""Token files: the whole text as ids, written under temporary names and marked complete by
a manifest; incomplete, stale or interrupted token files are never taken for complete ones."""

import errno
import os

import numpy as np
import pytest

from tokenscope.lm import Tokenizer
from tokenscope.train import corpus as corpus_mod
from tokenscope.train import token_files as token_files_mod
from tokenscope.train.corpus import CorpusError, Interrupted, find_files
from tokenscope.train.token_files import (
    TokenDataset,
    read_manifest,
    token_files_problem,
    tokenize_corpus,
)


def test_tokenized_files_hold_the_whole_text(tmp_path, monkeypatch):
    # Small read blocks and chunks force the streaming paths (chunk cuts, block boundaries).
    monkeypatch.setattr(corpus_mod, "READ_BLOCK", 1000)
    monkeypatch.setattr(corpus_mod, "CHUNK_CHARS", 300)
    text = "".join(f"Line {i}: 语言模型 {'x' * (i % 7)}\n" for i in range(800))
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    tok = Tokenizer.train_chars([text])
    files, _ = find_files([tmp_path / "t.txt"])
    seen = []
    result = tokenize_corpus(
        files,
        tok,
        tmp_path / "data",
        val_fraction=0.1,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1][0] == seen[-1][1] == len(text.encode())
    assert result.summary.bytes == len(text.encode())
    assert result.summary.characters == len(text) and result.summary.invalid_bytes == 0
    train = np.fromfile(result.train_path, dtype=np.uint16)
    val = np.fromfile(result.val_path, dtype=np.uint16)
    assert len(train) == result.train_tokens and len(val) == result.val_tokens
    assert 0.05 < len(val) / (len(train) + len(val)) < 0.2
    decoded = tok.decode(train.tolist()) + tok.decode(val.tolist())
    assert sorted(decoded.replace("<|endoftext|>", "")) == sorted(text)


def test_windows_depend_only_on_seed_and_step(tmp_path):
    path = tmp_path / "ids.bin"
    np.arange(1000, dtype=np.uint16).tofile(path)
    data = TokenDataset(path, vocab_size=2000)
    a = data.window_starts(seed=1, step=5, count=4, length=16)
    b = data.window_starts(seed=1, step=5, count=4, length=16)
    c = data.window_starts(seed=1, step=6, count=4, length=16)
    assert (a == b).all() and not (a == c).all()
    x, y = data.batch(a, 16)
    assert x.shape == y.shape == (4, 16)
    assert (y[:, :-1] == x[:, 1:]).all() and (x[:, 0] == a).all()
    with pytest.raises(CorpusError, match="need more than"):
        data.window_starts(1, 0, 1, 1000)


def _made(tmp_path, text="The capital of Kenya is Nairobi.\n" * 300):
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    (corpus / "a.txt").write_text(text)
    tok = Tokenizer.train_chars([text])
    files, _ = find_files([corpus])
    tokenize_corpus(files, tok, tmp_path / "data", val_fraction=0.1, settings={"k": 1})
    return files, tok


def test_token_files_are_complete_only_with_a_manifest_that_matches(tmp_path):
    files, tok = _made(tmp_path)
    data = tmp_path / "data"

    def problem(tokenizer=tok, settings=None):
        return token_files_problem(data, files, tokenizer, val_fraction=0.1, settings=settings)

    assert problem() is None and problem(settings={"k": 1}) is None
    manifest = read_manifest(data)
    assert manifest["bytes"] == files[0].stat().st_size and len(manifest["files"]) == 1
    assert problem(settings={"k": 2}) == "they were made with other settings"
    assert problem(Tokenizer.train_chars(["xyz"])) == "they were made with another tokenizer"
    # Touched but the same text: still current (compared by content).
    os.utime(files[0], ns=(1, 1))
    assert problem() is None
    # The same size, another text: made again.
    files[0].write_text(files[0].read_text().replace("Kenya", "Kanya"))
    assert "changed" in problem()
    _made(tmp_path)
    with open(data / "val.bin", "r+b") as f:
        f.truncate(10)
    assert problem() == "val.bin is incomplete"
    (data / "manifest.json").unlink()
    assert "no manifest" in problem()


def test_a_stop_while_tokenizing_leaves_no_token_files(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_mod, "READ_BLOCK", 1000)
    files, tok = _made(tmp_path)  # complete token files from before
    calls = []

    def stop_on_the_third_check():
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(Interrupted):
        tokenize_corpus(files, tok, tmp_path / "data", val_fraction=0.1,
                        should_stop=stop_on_the_third_check)  # fmt: skip
    data = tmp_path / "data"
    assert read_manifest(data) is None  # the old files no longer count as complete
    assert not [p.name for p in data.iterdir() if p.name.startswith(".")]


def test_small_corpora_redraw_the_splits_in_bounded_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(token_files_mod, "COPY_TOKENS", 7)
    text = "".join(f"line {i}\n" for i in range(300))
    (tmp_path / "t.txt").write_text(text)
    tok = Tokenizer.train_chars([text])
    result = tokenize_corpus([tmp_path / "t.txt"], tok, tmp_path / "data", val_fraction=0.1)
    train = np.fromfile(result.train_path, dtype=np.uint16)
    val = np.fromfile(result.val_path, dtype=np.uint16)
    assert len(val) == int((len(train) + len(val)) * 0.1)
    assert tok.decode(np.concatenate([train, val]).tolist()).replace("<|endoftext|>", "") == text


def test_a_disk_that_fills_while_tokenizing_leaves_no_token_files(tmp_path, small_disk):
    text = "The capital of Japan is Tokyo.\n" * 20_000  # 620 KB of text, ~1.2 MB of ids
    (tmp_path / "big.txt").write_text(text)
    tok = Tokenizer.train_chars([text])
    small_disk.fill(256 * 1024)
    data = small_disk.path / "data"
    with small_disk.here(), pytest.raises(OSError) as raised:
        tokenize_corpus([tmp_path / "big.txt"], tok, data, val_fraction=0.1)
    assert raised.value.errno in (errno.ENOSPC, errno.EFBIG)
    assert sorted(p.name for p in data.iterdir()) == []  # no token files, no manifest
