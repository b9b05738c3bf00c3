"""How long one training step of a planned run takes on this machine, measured, not guessed.

A rough FLOP-based guess can be off several times on a CPU (memory, thread pools, small
matrices). This builds the run's model, feeds it random tokens of the run's batch shape and
times a few real optimizer steps (after one to warm up), in a process of its own:

    python -m tokenscope.train --config run.json --measure-steps 3
    {"event": "measure", "seconds_per_step": 0.41, "threads": 1, "steps": 3}
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from tokenscope.lm.model import Transformer
from tokenscope.train.config import TrainConfig
from tokenscope.train.memory import check_fits


def seconds_per_step(config: TrainConfig, vocab_size: int, steps: int = 3) -> float:
    """The median time of `steps` optimizer steps (batch, accumulation, clipping, AdamW)."""
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
    return statistics.median(step() for _ in range(max(1, steps)))
