"""The corpus: finding text, skipping binaries, counting bad bytes, memory-mapped token files."""

import numpy as np
import pytest

from tokenscope.lm import Tokenizer
from tokenscope.train import corpus as corpus_mod
from tokenscope.train.corpus import (
    CorpusError,
    TokenDataset,
    find_files,
    summarize,
    tokenize_corpus,
)


def test_binary_and_empty_files_are_skipped_with_reasons(tmp_path):
    (tmp_path / "a.txt").write_text("hello world\n")
    (tmp_path / "b.bin").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "c.md").write_text("")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    files, skipped = find_files([tmp_path])
    assert [f.name for f in files] == ["a.txt"]
    reasons = {p.name: r for p, r in skipped}
    assert "binary" in reasons["b.bin"] and "empty" in reasons["c.md"]


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        find_files([tmp_path / "nope"])


def test_invalid_utf8_is_replaced_and_counted(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café ok \ufffd literal\n".encode() + b"caf\xe9 \xff\xfe end\n")
    summary = summarize([path])
    assert summary.invalid_bytes == 3  # \xe9, \xff, \xfe; the literal U+FFFD is not counted
    assert summary.characters == len("café ok \ufffd literal\n") + len("caf? ?? end\n")


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
