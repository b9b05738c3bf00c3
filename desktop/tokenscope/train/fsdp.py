"""The `fsdp` strategy: parameters, gradients and optimizer state sharded over the processes.

For a model that does not fit one device. PyTorch FSDP2 (`fully_shard`) leaves each process
1/N of every weight, gradient and AdamW moment (DTensor shards), and gathers one Transformer
block's full weights only while that block computes. Everything else is the run DDP trains:
the same batches, the same averaged gradients, the same updates, so the losses agree with
DDP's to float rounding.

What changes is whatever needs the whole model, and all of it is collective (every rank
must take part, or the others wait for ever):
- a forward pass gathers weights, so evaluation runs on every rank (each on its rows);
- checkpoints, samples and probes use a full copy gathered onto rank 0's CPU;
- the optimizer state of a checkpoint is gathered the same way and stored under parameter
  indices, as one process stores it: a run saved under FSDP resumes under DDP or alone, and
  the other way round.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard

from tokenscope.lm.model import Transformer

# Full tensors, gathered onto rank 0's CPU (the others get nothing): a model that does not
# fit one device must not be gathered onto one.
GATHERED = StateDictOptions(full_state_dict=True, cpu_offload=True)


def shard(model: Transformer, device: torch.device, world: int) -> None:
    """Shard `model` in place over the `world` processes, a unit per block and one for the
    rest (embeddings, final norm, head), so one block's weights are gathered at a time.

    The model may sit on the CPU: each shard is moved to `device` as it is made, so the
    device never holds the whole model. The mesh is explicit: the default one follows the
    machine's accelerator, not the device the run asked for."""
    mesh = init_device_mesh(device.type, (world,))
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


@contextmanager
def gradient_sync_off(model: FSDPModule) -> Iterator[None]:
    """FSDP's `no_sync`: gradients accumulate unreduced until a micro-step with sync on."""
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def full_model(model: Transformer) -> Transformer | None:
    """A whole, unsharded copy of `model` on rank 0's CPU (None on the other ranks, which
    must call this too: gathering is collective)."""
    state = get_model_state_dict(model, options=GATHERED)
    if dist.get_rank() != 0:
        return None
    with torch.device("meta"):  # no memory until the gathered tensors are assigned
        copy = Transformer(model.config)
    copy.load_state_dict(state, assign=True)
    return copy


def full_optimizer_state(model: Transformer, optimizer: torch.optim.Optimizer) -> dict | None:
    """The optimizer's whole state on rank 0's CPU as `optimizer.state_dict()` gives it in
    one process: keyed by parameter index, not name (None on the other ranks, which must call
    this too)."""
    state = get_optimizer_state_dict(model, optimizer, options=GATHERED)
    if dist.get_rank() != 0:
        return None
    index = {name: i for i, name in enumerate(_parameter_names(model, optimizer))}
    return _rekeyed(state, index)


def load_optimizer_state(
    model: Transformer, optimizer: torch.optim.Optimizer, saved: dict[str, Any]
) -> None:
    """Load a whole optimizer state (keyed by index, as saved) into the sharded optimizer;
    every rank passes the same `saved` and keeps its shard of it."""
    names = dict(enumerate(_parameter_names(model, optimizer)))
    set_optimizer_state_dict(
        model, optimizer, _rekeyed(saved, names), options=StateDictOptions(full_state_dict=True)
    )


def _parameter_names(model: Transformer, optimizer: torch.optim.Optimizer) -> list[str]:
    """The optimizer's parameters by name, in the order `optimizer.state_dict()` numbers
    them (group by group)."""
    name_of = {id(p): name for name, p in model.named_parameters()}
    return [name_of[id(p)] for group in optimizer.param_groups for p in group["params"]]


def _rekeyed(state: dict[str, Any], keys: dict) -> dict[str, Any]:
    """An optimizer state dict with each parameter's key (index or name) replaced."""
    return {
        "state": {keys[k]: values for k, values in state["state"].items()},
        "param_groups": [
            {**group, "params": [keys[k] for k in group["params"]]}
            for group in state["param_groups"]
        ],
    }
