"""The memory a training run would need, and the memory this machine can give it.

Checked before the model is built: a config asking for 10^6 layers or a batch of 10^7 rows
is refused with a message, instead of allocating gigabytes and failing (or being killed by
the system) half-way.

The estimate is deliberately simple (float32 training with AdamW):

    weights + gradients + two AdamW moments      16 bytes per parameter (over N with FSDP
                                                 on N processes: each holds one shard)
    activations kept for backward, per layer    ~(10 d_model + 3 d_ff + 2 n_head T) floats
                                                 per token of the micro-batch
    logits, log-probabilities and their grad     3 x micro-batch x T x vocabulary floats

It is a floor, not a promise: the point is to refuse what cannot fit, not to predict usage.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import TYPE_CHECKING

from tokenscope.lm.config import ModelConfig
from tokenscope.lm.errors import TokenscopeError

if TYPE_CHECKING:
    import torch

FLOAT = 4


class NotEnoughMemory(TokenscopeError):
    """The run would need more memory than the device has available."""


def training_bytes(
    model: ModelConfig, micro_batch: int, context: int, *, shards: int = 1
) -> dict[str, int]:
    """Estimated bytes for one training step of `micro_batch` rows of `context` tokens, on a
    device that holds 1/`shards` of the weights, gradients and moments (FSDP)."""
    t = min(context, model.context_length)
    tokens = micro_batch * t
    state = 16 * model.parameter_count() // shards
    per_token = model.n_layer * (10 * model.d_model + 3 * model.ffn_dim + 2 * model.n_head * t)
    activations = FLOAT * tokens * per_token
    logits = 3 * FLOAT * tokens * model.vocab_size
    return {
        "state": state,
        "activations": activations,
        "logits": logits,
        "total": state + activations + logits,
    }


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    """What the memory cgroup (v2) this process runs in still allows, if it sets a limit."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        return max(0, int(limit) - used)
    except (OSError, ValueError):
        return None


def _address_space_available() -> int | None:
    """Room left under RLIMIT_AS (a cap a harness or a shell may set), if there is one."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return max(0, soft - int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return soft


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory for `device` (a torch.device): GPU memory, or RAM within this process's
    limits. None when it cannot be told."""
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    found = [
        b
        for b in (_meminfo_available(), _cgroup_available(), _address_space_available())
        if b is not None
    ]
    return min(found) if found else None


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def check_fits(
    model: ModelConfig,
    micro_batch: int,
    context: int,
    device: torch.device | str,
    *,
    shards: int = 1,
) -> dict[str, int]:
    """Raise NotEnoughMemory, naming what to change, when the run cannot fit on `device`."""
    need = training_bytes(model, micro_batch, context, shards=shards)
    free = available_bytes(device)
    if free is not None and need["total"] > free:
        biggest = max(("state", "activations", "logits"), key=lambda k: need[k])
        advice = {
            "state": "fewer or narrower layers (model.n_layer, model.d_model) or a smaller "
            "vocab_size",
            "activations": "a smaller batch_size, a larger grad_accum or a shorter context",
            "logits": "a smaller vocab_size, a smaller batch_size or a larger grad_accum",
        }[biggest]
        raise NotEnoughMemory(
            f"the model ({model.parameter_count():,} parameters) and a micro-batch of "
            f"{micro_batch} x {min(context, model.context_length)} tokens need about "
            f"{_gb(need['total'])}, but {device} has {_gb(free)} available: use {advice}"
        )
    return need
