"""What the Training tab asks the engine before a run: which device it would train on (and its
rough peak), and how a sample sentence splits under the tokenizer the run would make."""

from __future__ import annotations

import pytest
import torch

from tokenscope.lm.tokenizer import Tokenizer
from tokenscope.train import devices
from tokenscope.train.devices import TrainingDevice, detect_device, peak_flops
from tokenscope.train.tokenizer_preview import PREVIEW_SAMPLE_CHARS, preview_tokens

SENTENCE = "The capital of Peru is Lima."


def test_without_a_gpu_the_cpu_trains_with_every_process_threads(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    one = detect_device(1, 1)
    assert one == TrainingDevice("cpu", "CPU, 1 × 1 thread", peak_flops(torch.device("cpu"), 1))
    several = detect_device(2, 3)
    assert several.kind == "cpu" and several.label == "CPU, 2 × 3 threads"
    assert several.peak_flops == pytest.approx(6 * one.peak_flops)


def test_gpus_are_counted_up_to_the_processes(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    four = detect_device(4, 1)
    assert four == TrainingDevice("cuda", "2 × NVIDIA H200", 2 * 989e12)
    assert detect_device(1, 1).peak_flops == 989e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some GPU")
    assert devices.peak_flops(torch.device("cuda:0"), 1) == 100e12  # an unknown one: a guess


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("The capital of Peru is Lima.\n" * 50, encoding="utf-8")
    (folder / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")  # skipped, as in a run
    return folder


def test_characters_and_bpe_are_learned_from_the_corpus(corpus):
    chars = preview_tokens([str(corpus)], "char", 2048, "builtin", SENTENCE)
    assert len(chars.pieces) == len(SENTENCE)
    expected = Tokenizer.train_chars([(corpus / "a.txt").read_text()])
    assert chars.vocab_size == expected.vocab_size
    bpe = preview_tokens([str(corpus)], "bpe", 300, "builtin", SENTENCE)
    assert 0 < len(bpe.pieces) < len(SENTENCE)  # a corpus of that sentence: merged pieces
    assert bpe.vocab_size <= 300 and "".join(bpe.pieces).replace("␣", " ") == SENTENCE


def test_the_sample_is_the_start_of_a_large_corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    # The first MB is all "a"; "z" only comes after it, so the preview never learns it.
    (folder / "a.txt").write_text("a" * (PREVIEW_SAMPLE_CHARS + 65536) + "z" * 100)
    preview = preview_tokens([str(folder)], "char", 0, "builtin", "az")
    assert len(preview.pieces) == 2 and preview.pieces[0] == "a" and preview.pieces[1] != "z"


def test_a_models_tokenizer_is_read_from_its_folder(tmp_path):
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    tokenizer = Tokenizer.train_chars([SENTENCE])
    tokenizer.save(folder / "tokenizer.json")
    preview = preview_tokens([], "model", 0, str(folder), SENTENCE)
    assert preview.pieces == tuple(tokenizer.display(i) for i in tokenizer.encode(SENTENCE))
    assert preview.vocab_size == tokenizer.vocab_size


def test_no_text_and_no_model_are_errors_to_show(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no readable text"):
        preview_tokens([str(tmp_path / "empty")], "bpe", 300, "builtin", SENTENCE)
    with pytest.raises(Exception, match="no-such-model"):
        preview_tokens([], "model", 0, str(tmp_path / "no-such-model"), SENTENCE)
