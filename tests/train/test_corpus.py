"""The corpus: finding text, skipping binaries (also past the first bytes), counting bad
bytes, cutting long lines, and noticing a stop request while the corpus is read."""

import numpy as np
import pytest

from tokenscope.lm import Tokenizer
from tokenscope.train import corpus as corpus_mod
from tokenscope.train.corpus import CorpusError, find_files, summarize
from tokenscope.train.token_files import tokenize_corpus


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


def test_a_nul_byte_past_the_first_8_kb_is_found_while_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_mod, "READ_BLOCK", 4096)
    good = tmp_path / "good.txt"
    good.write_text("The capital of Peru is Lima.\n" * 400)
    late = tmp_path / "late.txt"
    late.write_bytes(b"looks like text\n" * 1000 + b"\x00\x01binary tail")  # NUL at 16,000
    files, skipped = find_files([tmp_path])
    assert sorted(f.name for f in files) == ["good.txt", "late.txt"] and not skipped
    summary = summarize([tmp_path])
    assert [f.name for f in summary.files] == ["good.txt"]
    assert summary.skipped == [(late, "binary file (a NUL byte at offset 16,000)")]
    assert summary.bytes == good.stat().st_size

    tok = Tokenizer.train_chars(["The capital of Peru is Lima.\nlooks like text"])
    result = tokenize_corpus(sorted(files), tok, tmp_path / "data", val_fraction=0.1)
    assert [f.name for f in result.summary.files] == ["good.txt"]
    assert result.summary.skipped[0][0] == late
    ids = np.concatenate([np.fromfile(p, dtype=np.uint16) for p in (result.train_path,
                                                                     result.val_path)])  # fmt: skip
    assert "looks like" not in tok.decode(ids.tolist())  # none of its tokens were kept


def test_one_enormous_line_is_cut_into_bounded_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_mod, "READ_BLOCK", 10_000)
    monkeypatch.setattr(corpus_mod, "CHUNK_CHARS", 500)
    text = "word " * 50_000  # 250,000 characters, no newline
    path = tmp_path / "line.txt"
    path.write_text(text)
    chunks = [c for c, _, _ in corpus_mod.iter_chunks(path)]
    assert "".join(chunks) == text
    assert max(len(c) for c in chunks) <= 2 * 500


def test_a_sigterm_is_seen_while_the_tokenizer_library_reads_the_corpus(tmp_path):
    """The BPE trainer pulls the corpus from a thread of its own while the main thread waits
    in native code, where Python's signal handler cannot run: the stop check must see the
    signal anyway (through the wakeup pipe), or a SIGTERM waits for the whole training."""
    import signal
    import threading

    from tokenscope.train.corpus import Interrupted, iter_corpus_text
    from tokenscope.train.stop_request import StopRequested

    (tmp_path / "a.txt").write_text("hello world, the capital of Peru is Lima\n" * 20_000)
    stop = StopRequested(tmp_path)
    stop.install()
    readers, seen_at = set(), []

    def should_stop():
        readers.add(threading.current_thread() is threading.main_thread())
        if len(seen_at) == 0 and stop.requested():
            seen_at.append("seen")
        return stop.requested()

    def texts():
        for i, text in enumerate(iter_corpus_text([tmp_path / "a.txt"] * 50,
                                                  should_stop=should_stop)):  # fmt: skip
            if i == 2:
                signal.raise_signal(signal.SIGTERM)
            yield text

    try:
        with pytest.raises(Interrupted):
            Tokenizer.train_bpe(texts(), vocab_size=300)
    finally:
        stop.uninstall()
    assert seen_at == ["seen"] and stop.flag
    assert readers == {False}  # it was read from the library's thread, not the main one
