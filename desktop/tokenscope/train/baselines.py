"""Two older kinds of language model, trained on the same tokens as a run, for comparison.

- An n-gram model: counts of token trigrams, bigrams and unigrams with interpolated absolute
  discounting (the smoothing behind Kneser-Ney), so unseen sequences still get probability.
- A small LSTM language model, trained with the same batches, optimiser and schedule.

Each reports its validation perplexity per token as a `baseline` event in the run's
events.jsonl, beside the Transformer's `eval` events.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tokenscope.lm.errors import TokenscopeError
from tokenscope.train.config import TrainConfig
from tokenscope.train.events import BaselineEvent, ErrorEvent, EventWriter, ProgressEvent
from tokenscope.train.loop import learning_rate
from tokenscope.train.token_files import TokenDataset, read_manifest

DISCOUNT = 0.75
PROGRESS_EVERY_S = 0.5


class NGramModel:
    """Interpolated absolute-discounting trigram model over token ids (vectorised with NumPy)."""

    def __init__(self, vocab_size: int, order: int = 3) -> None:
        self.vocab_size = vocab_size
        self.order = order

    def _keys(self, tokens: np.ndarray, n: int) -> np.ndarray:
        key = np.zeros(len(tokens) - n + 1, dtype=np.int64)
        for i in range(n):
            key = key * self.vocab_size + tokens[i : len(tokens) - n + 1 + i]
        return key

    def fit(self, tokens: np.ndarray) -> NGramModel:
        tokens = np.asarray(tokens, dtype=np.int64)
        self.unigram = np.bincount(tokens, minlength=self.vocab_size).astype(np.float64)
        self.total = self.unigram.sum()
        # For each order n >= 2: sorted n-gram keys with counts, and per-context totals and
        # the number of distinct followers (how much mass the discount frees).
        self.tables = {}
        for n in range(2, self.order + 1):
            keys, counts = np.unique(self._keys(tokens, n), return_counts=True)
            contexts = keys // self.vocab_size
            ctx_keys, first = np.unique(contexts, return_index=True)
            ctx_totals = np.add.reduceat(counts, first)
            ctx_types = np.diff(np.append(first, len(keys)))
            self.tables[n] = (keys, counts, ctx_keys, ctx_totals, ctx_types)
        return self

    @staticmethod
    def _lookup(sorted_keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(sorted_keys, query)
        pos = np.minimum(pos, len(sorted_keys) - 1)
        found = sorted_keys[pos] == query
        return np.where(found, values[pos], 0)

    def probabilities(self, tokens: np.ndarray) -> np.ndarray:
        """P(tokens[i] | up to order-1 tokens before it) for i >= order - 1."""
        tokens = np.asarray(tokens, dtype=np.int64)
        start = self.order - 1
        target = tokens[start:]
        # Add-one unigram floor, so a token never seen in training is not impossible.
        p = (self.unigram[target] + 1.0) / (self.total + self.vocab_size)
        for n in range(2, self.order + 1):
            keys, counts, ctx_keys, ctx_totals, ctx_types = self.tables[n]
            full = self._keys(tokens, n)[start - (n - 1) :]
            ctx = full // self.vocab_size
            c = self._lookup(keys, counts, full).astype(np.float64)
            total = self._lookup(ctx_keys, ctx_totals, ctx).astype(np.float64)
            types = self._lookup(ctx_keys, ctx_types, ctx).astype(np.float64)
            seen = total > 0
            safe = np.where(seen, total, 1.0)
            interpolated = np.maximum(c - DISCOUNT, 0) / safe + DISCOUNT * types / safe * p
            p = np.where(seen, interpolated, p)
        return p

    def perplexity(self, tokens: np.ndarray) -> float:
        p = self.probabilities(tokens)
        return float(math.exp(-np.mean(np.log(p))))


class LstmLanguageModel(nn.Module):
    def __init__(self, vocab_size: int, width: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.lstm = nn.LSTM(width, width, num_layers=layers, batch_first=True)
        self.head = nn.Linear(width, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(self.embed(ids))  # (B, T, width)
        return self.head(hidden)  # (B, T, V)


def train_lstm(
    config: TrainConfig,
    train: TokenDataset,
    val: TokenDataset,
    vocab: int,
    context: int,
    *,
    width: int = 256,
    layers: int = 1,
    steps: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[LstmLanguageModel, float]:
    """Train an LSTM on the run's batches; return it and its validation perplexity.

    `progress(done, total)` is called after every step."""
    torch.manual_seed(config.seed)
    model = LstmLanguageModel(vocab, width, layers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.0)
    steps = steps or config.steps
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config.replace(steps=steps))
        x, y = train.batch(
            train.window_starts(config.seed, step, config.batch_size, context), context
        )
        logits = model(torch.from_numpy(x))
        loss = F.cross_entropy(logits.reshape(-1, vocab), torch.from_numpy(y).reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        if progress is not None:
            progress(step + 1, steps)
    model.eval()
    losses = []
    with torch.no_grad():
        length = min(context, len(val) - 1)
        for i in range(config.eval_batches):
            starts = val.window_starts(config.seed, 1_000_003 + i, config.batch_size, length)
            x, y = val.batch(starts, length)
            logits = model(torch.from_numpy(x))
            losses.append(
                float(F.cross_entropy(logits.reshape(-1, vocab), torch.from_numpy(y).reshape(-1)))
            )
    return model, math.exp(sum(losses) / len(losses))


def _token_files_problem(data_dir: Path) -> str | None:
    """Why the token files are not complete (their manifest is missing or disagrees)."""
    manifest = read_manifest(data_dir)
    if manifest is None:
        return "are incomplete (the tokenizing did not finish)"
    for name, split in manifest["splits"].items():
        path = data_dir / name
        if not path.is_file() or path.stat().st_size != split["bytes"]:
            return f"are incomplete ({name} does not match its manifest)"
    return None


def run_baselines(config: TrainConfig, *, lstm_steps: int | None = None) -> bool:
    """Train both baselines on a run's token files and append their results to its events."""
    run_dir = Path(config.out_dir)
    events = EventWriter(run_dir / "events.jsonl")
    try:
        from tokenscope.lm.tokenizer import Tokenizer

        tokenizer = Tokenizer.from_file(run_dir / "tokenizer.json")
        problem = _token_files_problem(run_dir / "data")
        if problem:
            message = (f"the run's token files {problem}: resume the run first, so that it "
                       "tokenizes its corpus to the end")  # fmt: skip
            events.emit(ErrorEvent(message=message))
            return False
        vocab = tokenizer.vocab_size
        train = TokenDataset(run_dir / "data" / "train.bin", vocab)
        val = TokenDataset(run_dir / "data" / "val.bin", vocab)
        started = time.perf_counter()
        events.emit(ProgressEvent(stage="ngram", done=0, total=1))
        ngram = NGramModel(vocab).fit(np.asarray(train.tokens))
        ppl = ngram.perplexity(np.asarray(val.tokens))
        events.emit(
            BaselineEvent(
                model="ngram",
                order=ngram.order,
                val_perplexity=ppl,
                val_loss=math.log(ppl),
                seconds=time.perf_counter() - started,
            )
        )
        started = time.perf_counter()
        context = min(config.context or 128, len(train) - 1)
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.perf_counter()
            if now - last[0] >= PROGRESS_EVERY_S or done == total:
                last[0] = now
                eta = (now - started) / done * (total - done)
                events.emit(ProgressEvent(stage="lstm", done=done, total=total, eta_s=eta))

        _, ppl = train_lstm(config, train, val, vocab, context, steps=lstm_steps,
                            progress=progress)  # fmt: skip
        events.emit(
            BaselineEvent(
                model="lstm",
                val_perplexity=ppl,
                val_loss=math.log(ppl),
                seconds=time.perf_counter() - started,
            )
        )
        return True
    except (OSError, ValueError, TokenscopeError) as e:
        events.emit(ErrorEvent(message=f"baselines need a prepared run folder: {e}"))
        return False
    finally:
        events.close()
