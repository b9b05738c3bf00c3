"""How a run's steps go fast: the optimizer, and the opt-in compiled step (config `compile`).

AdamW is fused on CUDA (one kernel updates every parameter) and PyTorch's default
implementation elsewhere (the fused CPU kernel is no faster there, and MPS/XPU lack it).

torch.compile is lazy: nothing is compiled until the first call, and the backward graph only at
the first backward. So a failure (no C++ compiler for inductor on the CPU, an operation it
cannot lower) would surface in the middle of step 1. `compile_for_training` runs one forward
and backward of the training shape through the compiled module at once; if that raises, the
run warns with the reason and trains uncompiled. The trial's gradients are dropped, so the
first step is the same either way.

The compiled module is a wrapper (its state dict would prefix every name with `_orig_mod.`):
checkpoints are written from the model itself, and evaluation and samples run it uncompiled
(their shapes vary; a recompile for each would cost more than it saves).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import cast

import torch

from tokenscope.train.config import TrainConfig


def adamw(model: torch.nn.Module, c: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices only (not biases, norms' gains)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": c.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = True if device.type == "cuda" else None  # None: torch's choice
    return torch.optim.AdamW(groups, lr=c.learning_rate, betas=(c.beta1, c.beta2), fused=fused)


def _use_disk_cache() -> None:
    """Inductor keeps what it built in Tokenscope's cache folder, so a second run of the same
    shape compiles in seconds (TORCHINDUCTOR_CACHE_DIR, when set, wins)."""
    from tokenscope.paths import inductor_cache_dir

    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        try:
            path = inductor_cache_dir()
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            return  # inductor's own default folder then
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)


def compile_for_training(
    module: torch.nn.Module,
    trial_loss: Callable[[torch.nn.Module], torch.Tensor],
    agree: Callable[[bool], bool],
    warn: Callable[[str], object],
) -> tuple[torch.nn.Module, bool]:
    """(the compiled module, True), or (`module` itself, False) after `warn`ing why not.

    `trial_loss(m)` computes a scalar loss of one batch of the training shape with `m`; its
    gradients are dropped. `agree(failed)` tells whether any process failed: with several
    processes all of them train the same way."""
    problem: str | None = None
    try:
        _use_disk_cache()
        candidate = cast(torch.nn.Module, torch.compile(module))  # an OptimizedModule
        trial_loss(candidate).backward()
    except Exception as e:  # inductor raises many kinds (BackendCompilerFailed, OSError, ...)
        problem = _reason(e)
    module.zero_grad(set_to_none=True)
    if agree(problem is not None):
        torch._dynamo.reset()  # no half-built graphs kept around
        why = problem or "another process could not compile"
        warn(f"torch.compile failed, so this run trains uncompiled: {why}")
        return module, False
    return candidate, True


def _reason(error: BaseException) -> str:
    """The first line of the innermost cause, which names what is missing (a compiler, an
    operation), rather than the wrapper torch puts around it."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
