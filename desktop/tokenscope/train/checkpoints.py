"""Training checkpoints: a native checkpoint folder plus what resuming needs.

    RUN/checkpoints/step-000200/   config.json, model.safetensors, tokenizer.json  (loadable
                                   by tokenscope.load_model as any checkpoint) and
                                   optimizer.safetensors, training_state.json
    RUN/checkpoints/best.json      which step had the lowest validation loss

A checkpoint is written into a hidden temporary folder and renamed into place, so a run
killed at any moment leaves the previous checkpoint intact. Data order and dropout depend
only on (seed, step), so the step number is all the random state a resume needs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tokenscope.files import atomic_write
from tokenscope.lm.checkpoint import write_checkpoint
from tokenscope.lm.errors import TokenscopeError
from tokenscope.lm.model import Transformer
from tokenscope.lm.tokenizer import Tokenizer
from tokenscope.train.run_folder import (
    BEST_FILE,
    STATE_FILE,
    best_checkpoint,
    checkpoint_dir,
    latest_checkpoint,
    list_checkpoints,
    step_folder,
)

__all__ = [
    "CheckpointError",
    "best_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "load_training_state",
    "mark_best",
    "read_training_state",
    "save_training_checkpoint",
]

OPTIMIZER_FILE = "optimizer.safetensors"


def _optimizer_tensors(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


class CheckpointError(TokenscopeError):
    """A checkpoint could not be written (a full disk, a file size limit, no permission)."""


def _why(error: BaseException) -> str:
    """The operating system's reason in a few words, also from inside a SafetensorError."""
    if isinstance(error, OSError):
        return error.strerror or str(error)
    text = str(error)
    found = re.search(r'message: "([^"]+)"', text)  # Rust's io::Error, as safetensors shows it
    return found.group(1) if found else text.splitlines()[0] if text else type(error).__name__


def save_training_checkpoint(
    run_dir: Path,
    step: int,
    transformer: Transformer,
    tokenizer: Tokenizer,
    optimizer_state: dict[str, Any],
    state: dict[str, Any],
    *,
    name: str,
    keep: int,
) -> Path:
    """Write the checkpoint for `step` (completed steps), then prune old ones.

    `optimizer_state` is what `optimizer.state_dict()` gives in one process: each parameter's
    state under its index (FSDP gathers its shards into that form first).

    On failure nothing of the new checkpoint is left behind and the earlier ones are as they
    were; CheckpointError says why, and which complete checkpoint is the latest."""
    final = step_folder(run_dir, step)
    tmp = final.with_name(f".tmp-{final.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_checkpoint(tmp, transformer, tokenizer, name=name)
        tensors, optimizer_meta = _optimizer_tensors(optimizer_state)
        atomic_write(tmp / OPTIMIZER_FILE, lambda p: save_file(tensors, p))
        payload = {**state, "step": step, "optimizer": optimizer_meta}
        text = json.dumps(payload, indent=2)
        atomic_write(tmp / STATE_FILE, lambda p: Path(p).write_text(text))
    except (OSError, SafetensorError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        latest = latest_checkpoint(run_dir)
        kept = f"the latest complete one, {latest.name}, is intact" if latest else "none is left"
        raise CheckpointError(
            f"could not save the checkpoint of step {step} in {checkpoint_dir(run_dir)}: "
            f"{_why(e)}; {kept}"
        ) from e
    if final.exists():  # re-saving a step (e.g. stopped right after a periodic save)
        old = final.with_name(f".old-{final.name}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _prune(run_dir, keep)
    return final


def mark_best(run_dir: Path, checkpoint: Path, val_loss: float) -> None:
    payload = {"checkpoint": checkpoint.name, "val_loss": val_loss}
    atomic_write(
        checkpoint_dir(run_dir) / BEST_FILE, lambda p: Path(p).write_text(json.dumps(payload))
    )


def _prune(run_dir: Path, keep: int) -> None:
    best = best_checkpoint(run_dir)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        if best is None or old.name != best.name:
            shutil.rmtree(old, ignore_errors=True)


def load_training_state(checkpoint: Path, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore the optimizer from a checkpoint and return its training state (step, best...)."""
    optimizer_state, payload = read_training_state(checkpoint)
    optimizer.load_state_dict(optimizer_state)
    return payload


def read_training_state(checkpoint: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The optimizer's state dict, as `optimizer.state_dict()` gives it in one process, and
    the training state (step, best...) of a checkpoint."""
    payload = json.loads((checkpoint / STATE_FILE).read_text())
    tensors = load_file(str(checkpoint / OPTIMIZER_FILE))
    meta = payload.pop("optimizer")
    per_param: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        per_param.setdefault(int(index), {})[name] = value
    for index, values in meta["scalars"].items():
        per_param.setdefault(int(index), {}).update(values)
    return {"state": per_param, "param_groups": meta["param_groups"]}, payload
