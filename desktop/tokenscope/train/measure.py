"""How long a planned run will take on this machine, measured in parts, not guessed.

A rough FLOP-based guess can be off several times on a CPU (memory, thread pools, small
matrices), and the optimizer steps are not all a run does: it starts a process, reads and
tokenizes the text, evaluates, samples and saves checkpoints as it goes. This builds the
run's model and times each of those parts on random tokens of the run's batch shape (after
one step to warm up), in a process of its own:

    python -m tokenscope.train --config run.json --measure-steps 3
    {"event": "measure", "seconds_per_step": 0.41, "seconds_per_eval": 0.3, ...}

The caller adds the process's own start-up (the wall time less `work_seconds`) and multiplies
each part by how often the run does it (tokenscope.train.estimate).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tokenscope.lm.model import Transformer
from tokenscope.train.config import TrainConfig
from tokenscope.train.memory import check_fits

# Tokenizing is timed on this much of the corpus and scaled to all of it.
PREPARE_SAMPLE_CHARS = 200_000
STEPS_FOR_SECONDS = 2.0  # fast steps are timed for this long at least...
MAX_STEPS = 100  # ...but no more than this many
EVAL_PASSES_TIMED = 3


def seconds_per_step(config: TrainConfig, vocab_size: int, steps: int = 3) -> float:
    """The mean time of at least `steps` optimizer steps (batch, accumulation, clipping,
    AdamW)."""
    return float(measure_run(config, vocab_size, steps, parts=False)["seconds_per_step"])


def measure_run(
    config: TrainConfig, vocab_size: int, steps: int = 3, *, parts: bool = True
) -> dict[str, Any]:
    """Seconds per optimizer step and, with `parts`, per evaluation, per checkpoint, per
    sample, and per character of the corpus to prepare (None without readable text)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    model_config = config.model_config(vocab_size)
    micro = config.batch_size // config.grad_accum
    check_fits(model_config, micro, config.context or model_config.context_length, "cpu")
    model = Transformer(model_config).init_weights(seed=0).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    context = min(config.context or model.config.context_length, model.config.context_length)
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab_size, (micro, context), generator=generator)
    y = torch.randint(0, vocab_size, (micro, context), generator=generator)
    began = time.perf_counter()

    def step() -> float:
        started = time.perf_counter()
        for _ in range(config.grad_accum):
            logits = model(x)  # (B, T, V)
            loss = F.cross_entropy(logits.reshape(-1, vocab_size), y.reshape(-1))
            (loss / config.grad_accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    step()  # the first step allocates and warms caches
    # At least `steps` steps and at least STEPS_FOR_SECONDS of them (fast models): the mean
    # of a longer stretch is what a run sees on a machine that is doing other things too.
    times = [step() for _ in range(max(1, steps))]
    while sum(times) < STEPS_FOR_SECONDS and len(times) < MAX_STEPS:
        times.append(step())
    result: dict[str, Any] = {"seconds_per_step": statistics.fmean(times), "steps": len(times)}
    if parts:
        result["seconds_per_eval"] = _eval_seconds(model, x, y, config.eval_batches)
        result["seconds_per_sample"] = _sample_seconds(model, config, context)
        result["seconds_per_checkpoint"] = _checkpoint_seconds(model, optimizer)
        result["prepare_seconds_per_char"] = _prepare_seconds_per_char(config)
    result["work_seconds"] = time.perf_counter() - began
    return result


@torch.no_grad()
def _eval_seconds(model: Transformer, x: torch.Tensor, y: torch.Tensor, batches: int) -> float:
    """An evaluation: `batches` forward passes on the training split and as many on the
    validation split (the mean of three, the first after switching to evaluation as in a
    run, scaled)."""
    model.eval()
    started = time.perf_counter()
    for _ in range(EVAL_PASSES_TIMED):
        logits = model(x)
        F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
    seconds = (time.perf_counter() - started) / EVAL_PASSES_TIMED
    model.train()
    model._head_copy = None
    return seconds * 2 * batches


@torch.no_grad()
def _sample_seconds(model: Transformer, config: TrainConfig, context: int) -> float:
    """The samples a run writes: sample_tokens forward passes per prompt, one sequence each,
    over a window as long as the text so far (timed on a few lengths, scaled)."""
    if not config.sample_prompts:
        return 0.0
    model.eval()
    tokens = config.sample_tokens
    lengths = sorted({min(context, n) for n in (4, tokens // 2 + 4, tokens + 4)})
    times = []
    for n in lengths:
        ids = torch.zeros((1, n), dtype=torch.long)
        started = time.perf_counter()
        model(ids)
        times.append(time.perf_counter() - started)
    model.train()
    model._head_copy = None
    return statistics.mean(times) * tokens * len(config.sample_prompts)


def _checkpoint_seconds(model: Transformer, optimizer: torch.optim.Optimizer) -> float:
    """Writing the weights and the optimizer's state (a checkpoint's bulk) to a scratch
    folder, removed after."""
    with tempfile.TemporaryDirectory(prefix="tokenscope-measure-") as tmp:
        started = time.perf_counter()
        torch.save(model.state_dict(), Path(tmp) / "model.pt")
        torch.save(optimizer.state_dict(), Path(tmp) / "optimizer.pt")
        return time.perf_counter() - started


def _prepare_seconds_per_char(config: TrainConfig) -> float | None:
    """Training the tokenizer and tokenizing, per character, timed on the start of the
    corpus (None: no readable text, or the tokenizer is a model's)."""
    from tokenscope.lm.errors import TokenscopeError
    from tokenscope.lm.tokenizer import Tokenizer
    from tokenscope.train.corpus import find_files, iter_corpus_text

    if config.tokenizer == "model":
        return None
    try:
        files, _ = find_files(list(config.data), lambda: False)
    except (OSError, ValueError, TokenscopeError):
        return None  # no corpus named yet (the window measures before one is chosen)
    text, size = [], 0
    for chunk in iter_corpus_text(files):
        text.append(chunk[: PREPARE_SAMPLE_CHARS - size])
        size += len(text[-1])
        if size >= PREPARE_SAMPLE_CHARS:
            break
    if size < 1000:
        return None
    started = time.perf_counter()
    if config.tokenizer == "char":
        tokenizer = Tokenizer.train_chars(iter(text))
    else:
        tokenizer = Tokenizer.train_bpe(iter(text), vocab_size=config.vocab_size)
    for chunk in text:
        tokenizer.encode(chunk)
    return (time.perf_counter() - started) / size
