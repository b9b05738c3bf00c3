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
import stat
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tokenscope.files import FileReadError, atomic_write, kind_of, load_json, open_regular_file
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
    "checkpoint_to_resume",
    "latest_checkpoint",
    "list_checkpoints",
    "load_training_state",
    "mark_best",
    "read_training_state",
    "save_training_checkpoint",
]

OPTIMIZER_FILE = "optimizer.safetensors"
#: training_state.json: the step, the best loss and the optimizer's settings (a few KB)
MAX_STATE_BYTES = 16 << 20


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
    the training state (step, best...) of a checkpoint. CheckpointError, naming the file,
    when either is unreadable or not what a checkpoint holds."""
    optimizer_file = checkpoint / OPTIMIZER_FILE
    try:
        payload = load_json(checkpoint / STATE_FILE, MAX_STATE_BYTES, "a training state")
        # safetensors opens the file itself, and its open() would block on a FIFO.
        open_regular_file(optimizer_file, "the optimizer's state (safetensors)").close()
    except FileReadError as e:  # (its message names the file)
        raise CheckpointError(f"cannot resume: {e}") from None
    try:
        tensors = load_file(str(optimizer_file))
    except (SafetensorError, OSError) as e:
        why = _why(e)
        raise CheckpointError(f"cannot resume: {optimizer_file} cannot be read ({why})") from None
    try:
        return _optimizer_state(tensors, payload), payload
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(
            f"cannot resume from {checkpoint}: its {STATE_FILE} is not a training state this "
            f"version can read ({type(e).__name__}: {e})"
        ) from None


def _optimizer_state(tensors: dict[str, torch.Tensor], payload: Any) -> dict[str, Any]:
    """The optimizer's state dict from the saved tensors and the state file's other values
    (the optimizer's part is taken out of `payload`)."""
    step = payload["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step should be a whole number, not {step!r}")
    meta = payload.pop("optimizer")
    per_param: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        per_param.setdefault(int(index), {})[name] = value
    for index, values in meta["scalars"].items():
        per_param.setdefault(int(index), {}).update(values)
    return {"state": per_param, "param_groups": meta["param_groups"]}


def checkpoint_to_resume(run_dir: Path) -> Path | None:
    """The checkpoint a resume continues from: the newest, which must be complete. None when
    the run has none yet (no checkpoints folder, or nothing in it).

    CheckpointError when checkpoints may be there but cannot be read: a checkpoints "folder"
    that is a file or a FIFO, one that cannot be listed, a newest checkpoint that is damaged.
    Starting again from step 0 instead would quietly throw the run away."""
    folder = checkpoint_dir(run_dir)
    names = _listing(folder)
    steps = sorted(name for name in names or () if name.startswith("step-"))
    if not steps:
        return None
    newest = folder / steps[-1]
    try:
        if not newest.is_dir():
            raise FileReadError(f"{newest} is not a folder")
        open_regular_file(newest / STATE_FILE, "a training state").close()
    except FileReadError as e:
        raise CheckpointError(
            f"cannot resume: the newest checkpoint is incomplete or damaged ({e}); remove "
            f"{newest.name} to resume from the one before it, or start a new run"
        ) from None
    return newest


def _listing(folder: Path) -> list[str] | None:
    """The names in a checkpoints folder; None when there is none."""
    try:
        mode = os.stat(folder).st_mode
        if not stat.S_ISDIR(mode):
            raise CheckpointError(
                f"cannot resume: {folder} is {kind_of(mode)}, not a folder of checkpoints; "
                "move it aside, or start a new run"
            )
        return os.listdir(folder)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CheckpointError(
            f"cannot resume: the checkpoints folder {folder} cannot be read ({_why(e)})"
        ) from None
