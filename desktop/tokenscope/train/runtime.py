"""Where a training run executes: its processes and device, and what they share.

One process, or several under torchrun (WORLD_SIZE, RANK and LOCAL_RANK in the environment),
on the device the config asks for (refused, with the reason, where this machine lacks it);
mixed precision by the config and the device; and the small helpers every rank uses.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from tokenscope.lm.errors import TokenscopeError
from tokenscope.train.config import TrainConfig


@dataclass(frozen=True)
class Runtime:
    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # What every process must learn together (each a no-op in a single process).

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def mean(self, values: list[float]) -> list[float]:
        """The mean of each value over the processes."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return list((t / self.world).tolist())

    def max(self, value: int) -> int:
        """The largest of every process's `value`."""
        if self.world == 1:
            return value
        t = torch.tensor([float(value)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def any(self, flag: bool) -> bool:
        """Whether any process says yes (every process stops at the same step if any was
        asked to)."""
        return self.max(int(flag)) > 0


def device_for(config: TrainConfig, local_rank: int) -> torch.device:
    """The device the config asks for, refused with a message when this machine lacks it."""
    if config.device == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(config.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                f"this torch ({torch.__version__}) was built without CUDA"
                if torch.version.cuda is None
                else "no CUDA GPU was found"
            )
            raise TokenscopeError(f'device "{config.device}" is not available: {why}; '
                                  'use device "auto" or "cpu"')  # fmt: skip
        index = local_rank if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise TokenscopeError(
                f'device "{config.device}" is not available: this machine has '
                f"{torch.cuda.device_count()} CUDA GPU(s), numbered from 0"
            )
        return torch.device("cuda", index)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise TokenscopeError('device "mps" is not available here; use device "auto" or "cpu"')
    if device.type == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise TokenscopeError('device "xpu" is not available here; use device "auto" or "cpu"')
    return device


def start_runtime(config: TrainConfig) -> Runtime:
    world, rank, local_rank = ranks()
    device = device_for(config, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return Runtime(rank, world, device)


def ranks() -> tuple[int, int, int]:
    """(world size, rank, local rank) from torchrun's environment (1, 0, 0 without it)."""
    env = os.environ
    return (
        int(env.get("WORLD_SIZE", "1")),
        int(env.get("RANK", "0")),
        int(env.get("LOCAL_RANK", "0")),
    )


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    if config.precision == "fp32":
        return None
    if config.precision == "bf16":
        return torch.bfloat16
    if config.precision == "fp16":
        return torch.float16
    if device.type == "cuda":  # auto
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None  # auto on CPU: float32 is the fast and exact choice there


def clip_gradients(model: torch.nn.Module, max_norm: float) -> float:
    """Clip the gradients to `max_norm`; return their norm before clipping. Under FSDP the
    gradients are DTensor shards and so is the norm: its full value is the whole gradient's
    norm, the figure DDP or one process reports."""
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    if hasattr(norm, "full_tensor"):  # a DTensor
        norm = norm.full_tensor()
    return float(norm)


class OtherRankFailed(Exception):  # a signal between ranks
    """Rank 0 could not take the run folder; it reports why, the other ranks just end."""


WRITE_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "a file grew past the size limit",
    errno.EROFS: "the file system is read-only",
}


def one_line(error: BaseException) -> str:
    """One line for a person: what failed and why, with the file when it is an OS error."""
    if isinstance(error, OSError) and not isinstance(error, TokenscopeError):
        where = f" ({error.filename})" if error.filename else ""
        if error.errno in WRITE_ERRORS:
            return f"cannot write the run's files{where}: {WRITE_ERRORS[error.errno]}"
        if error.errno in (errno.EACCES, errno.EPERM):
            return f"permission denied{where}"
        return f"{error.strerror or error}{where}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__
