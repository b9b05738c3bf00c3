"""Shared fixtures: tiny models trained or built here, never downloaded."""

from __future__ import annotations

import faulthandler
import os
import sys
import tempfile

import pytest

# An empty Hugging Face cache of the run's own, unless a test points elsewhere: the model
# lists the window and `models list` show must not depend on what this machine downloaded.
# Set before anything imports huggingface_hub (it reads the variable once).
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="tokenscope-test-hf-cache-")
# Never the person's own keyring (API keys of model servers): tests that keep a key set an
# in-memory one; subprocesses get the keyring that keeps nothing.
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
# One inductor cache for the whole run (subprocesses too): what one test compiled, the next
# reuses (compiling from an empty cache took 260 of one test's 295 s on a busy 2-core
# machine), and nothing lands in the person's own cache.
os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="tokenscope-test-inductor-")
# No background compile of the decode step unless a test asks for one (tests of it unset
# this): a window or `tokenscope serve` on SmolLM2 would otherwise compile for minutes
# beside the test, on CI's two cores.
os.environ["TOKENSCOPE_COMPILE"] = "0"
# No packed-weights cache either, unless a test asks for one (tests/lm/formats/
# test_packed_cache.py): every test has a home of its own, so each load of SmolLM2 or Gemma
# would write 160-630 MB into it. (Mapped or packed afresh, the layers compute the same.)
os.environ["TOKENSCOPE_PACKED_CACHE"] = "0"

#: A test still running after this long is hung, not slow. pytest-timeout (600 s) raises in
#: Python code, which a Qt slot can swallow and a thread stuck in C never reaches; this
#: watchdog runs in C, prints every thread's stack and ends the run, so CI reports a hang in
#: minutes with its stacks instead of waiting for its own limit.
HANG_S = 900

CORPUS = (
    "The capital of Indonesia is Jakarta. The capital of France is Paris.\n"
    "A language model predicts the next token. 语言模型预测下一个词。 👍🏽\n"
    "def add(a, b):\n\treturn a + b\n"
) * 8


@pytest.fixture(autouse=True)
def hang_watchdog():
    faulthandler.dump_traceback_later(HANG_S, exit=True, file=sys.__stderr__)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def private_home(tmp_path, monkeypatch):
    """Settings, recent models and runs go to a folder of the test's own (subprocesses too)."""
    home = tmp_path / "tokenscope-home"
    monkeypatch.setenv("TOKENSCOPE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def bpe_tokenizer():
    from tokenscope.lm import Tokenizer

    return Tokenizer.train_bpe([CORPUS], vocab_size=320)


@pytest.fixture(scope="session")
def make_model(bpe_tokenizer):
    """make_model(preset_name="tiny", seed=0, **config_overrides) -> LanguageModel."""
    from tokenscope.lm import LanguageModel, Transformer, preset

    def make(name: str = "tiny", seed: int = 0, tokenizer=None, **overrides):
        tok = tokenizer or bpe_tokenizer
        config = preset(name, vocab_size=tok.vocab_size, **overrides)
        return LanguageModel(Transformer(config).init_weights(seed=seed), tok, name=f"test-{name}")

    return make


@pytest.fixture(scope="session")
def endless_model(make_model):
    """A tiny model whose tokenizer has no end-of-text token: generation never ends by itself."""
    from tokenscope.lm import Tokenizer

    return make_model("tiny", tokenizer=Tokenizer.train_bpe([CORPUS], 320, special_tokens=()))


@pytest.fixture
def tiny_model(make_model):
    return make_model("tiny")


@pytest.fixture
def checkpoint(tmp_path, tiny_model):
    """A native checkpoint folder of the tiny model."""
    return tiny_model.save(tmp_path / "tiny-checkpoint")


@pytest.fixture
def endless_checkpoint(tmp_path, endless_model):
    """A checkpoint folder of a model that never emits end-of-text."""
    return endless_model.save(tmp_path / "endless")


@pytest.fixture
def other_checkpoint(tmp_path, make_model):
    """A second tiny model with other weights (a different curve, a different answer)."""
    return make_model("tiny", seed=7).save(tmp_path / "other-checkpoint")


# ----- model servers (tests/lm/formats/remote_servers.py) ---------------------------------------


@pytest.fixture(scope="session")
def llama():
    """The /v1 address of llama.cpp's own server on SmolLM2 (a process of its own, one thread),
    shared by the run's tests."""
    from .lm.formats.remote_servers import llama_server

    running, url = llama_server()
    yield url
    running.stop()


@pytest.fixture
def faulty():
    """A small local server that lists one model and misbehaves as its `mode` says."""
    from .lm.formats.remote_servers import FaultyServer

    server = FaultyServer()
    yield server
    server.release.set()  # (a request still held by mode "slow")
    server.http.shutdown()
