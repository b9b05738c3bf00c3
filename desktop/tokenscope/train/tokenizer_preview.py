"""How a sentence would split under the tokenizer a run would make, before the run starts.

    preview = preview_tokens(["texts/"], "bpe", 2048, "builtin", "The capital of Indonesia is")
    preview.pieces, preview.vocab_size                  # ("The", "␣capital", ...), 2048

Characters and BPE are learned from a sample of the corpus (its first PREVIEW_SAMPLE_CHARS
characters), as the run would learn them from all of it; "model" takes the tokenizer of the
model the run starts from. Training a BPE tokenizer or opening a model takes seconds: call it
off the window's thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: the preview tokenizer learns from the first MB of the corpus
PREVIEW_SAMPLE_CHARS = 1 << 20


@dataclass(frozen=True)
class TokenPreview:
    """A sentence's tokens (as labels a person can read) and the tokenizer's size."""

    pieces: tuple[str, ...]
    vocab_size: int


def _corpus_sample(paths: list[str]) -> list[str]:
    """The corpus's first chunks of text, up to about PREVIEW_SAMPLE_CHARS characters."""
    from tokenscope.train.corpus import find_files, iter_corpus_text

    files, _ = find_files(paths)
    sample: list[str] = []
    total = 0
    for chunk in iter_corpus_text(files):
        if total >= PREVIEW_SAMPLE_CHARS:
            break
        sample.append(chunk)
        total += len(chunk)
    return sample


def preview_tokens(
    paths: list[str], kind: str, vocab_size: int, init_from: str, sentence: str
) -> TokenPreview:
    """How `sentence` splits under the tokenizer a run with these settings would make.

    `kind` is the run's tokenizer (char, bpe or model); `vocab_size` is BPE's; `init_from` the
    model whose tokenizer "model" uses (a checkpoint folder's tokenizer.json is read alone).
    Raises ValueError when the corpus has no readable text, and whatever opening the model
    raises (tokenscope.lm.errors) when it cannot be opened."""
    from tokenscope.lm.tokenizer import Tokenizer

    if kind == "model":
        folder = Path(init_from).expanduser()
        if (folder / "tokenizer.json").is_file():
            tokenizer = Tokenizer.from_file(folder / "tokenizer.json")
        else:
            from tokenscope.lm.loading import load_model

            tokenizer = load_model(init_from).tokenizer
    else:
        sample = _corpus_sample(paths)
        if not sample:
            raise ValueError("the corpus has no readable text yet")
        if kind == "char":
            tokenizer = Tokenizer.train_chars(sample)
        else:
            tokenizer = Tokenizer.train_bpe(sample, vocab_size=vocab_size)
    ids = tokenizer.encode(sentence)
    return TokenPreview(tuple(tokenizer.display(i) for i in ids), tokenizer.vocab_size)
